"""Phase 7: remember what worked for which signature so the next cycle starts there."""
