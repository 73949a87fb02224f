"""Phase 5: prove a candidate fix in a sandbox before anything reaches production."""
