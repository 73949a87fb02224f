"""Phase 3: localize the cause of an incident to component, commit, file and line."""
