"""Phase 6: roll a validated fix out in guarded waves, and back when a gate fails."""
