"""Phase 4: turn a diagnosis into candidate fixes (patches or operational actions)."""
