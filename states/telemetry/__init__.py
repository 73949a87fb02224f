"""Phase 1: read telemetry incrementally and fold it into per-component windows."""
