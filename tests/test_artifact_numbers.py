"""Artifacts keep non-finite numbers: an infinite quantile reads back as infinity, not null."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from states.artifacts import AnomaliesArtifact, AnomalyEntry, TelemetryArtifact, WindowSnapshot

AT = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_an_infinite_anomaly_value_survives_the_round_trip() -> None:
    entry = AnomalyEntry(
        fingerprint="catalog:p95_ms",
        component="catalog",
        metric="p95_ms",
        category="latency",
        detector="slo",
        severity="critical",
        onset=AT,
        last_seen=AT,
        consecutive_windows=3,
        value=math.inf,
        threshold=20.0,
        baseline=None,
    )
    written = AnomaliesArtifact(cycle_id="c1", anomalies=[entry]).model_dump_json()

    back = AnomaliesArtifact.model_validate_json(written)

    assert math.isinf(back.anomalies[0].value)


def test_a_nan_quantile_in_a_nested_window_reads_back_as_nan() -> None:
    window = WindowSnapshot(
        component="catalog",
        start=AT,
        count=1,
        error_rate=0.0,
        p50_ms=1.0,
        p95_ms=math.nan,
        p99_ms=None,
        health=None,
    )
    written = TelemetryArtifact(cycle_id="c1", window_s=60.0, windows=[window]).model_dump_json()

    back = TelemetryArtifact.model_validate_json(written)

    assert back.windows[0].p95_ms is not None and math.isnan(back.windows[0].p95_ms)
    assert back.windows[0].p99_ms is None
