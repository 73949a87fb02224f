"""Phase 2: decide which windows are anomalous and which anomalies are actionable."""
