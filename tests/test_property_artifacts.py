"""Cycle artifacts survive the disk: what is written reads back exactly, damage is a ValidationError.

Beats read ``diagnosis.json`` and ``patch.json`` back after a restart, and
operators' tools read every artifact. A file cut short by a full disk or edited
by hand must be refused with pydantic's ``ValidationError`` (which callers
handle), never with another exception; a file written by ``write_atomically``
must read back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from states.artifacts import (
    ARTIFACT_MODELS,
    AnomaliesArtifact,
    AnomalyEntry,
    Candidate,
    CommandRun,
    DeploymentArtifact,
    DiagnosisArtifact,
    OperationEntry,
    PatchArtifact,
    PatternEntry,
    PatternsArtifact,
    SuspectEntry,
    TelemetryArtifact,
    ValidationArtifact,
    WaveEntry,
    WindowSnapshot,
)
from storage.artifacts import write_atomically

CHECKS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.text(max_size=30)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
MOMENTS = st.datetimes(timezones=st.just(UTC))
JSON_DATA: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | FLOATS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_DATA, max_size=3)
COUNTS = st.dictionaries(TEXT, st.integers(0, 2**31), max_size=3)

OPTIONAL_FLOATS = st.none() | FLOATS
WINDOWS = st.builds(
    WindowSnapshot,
    start=MOMENTS,
    error_rate=FLOATS,
    p50_ms=OPTIONAL_FLOATS,
    p95_ms=OPTIONAL_FLOATS,
    p99_ms=OPTIONAL_FLOATS,
    health=OPTIONAL_FLOATS,
    versions=COUNTS,
)
ANOMALIES = st.builds(
    AnomalyEntry,
    onset=MOMENTS,
    last_seen=MOMENTS,
    value=FLOATS,
    threshold=FLOATS,
    baseline=OPTIONAL_FLOATS,
    evidence=JSON_OBJECTS,
)
SUSPECTS = st.builds(
    SuspectEntry,
    committed_at=MOMENTS,
    score=FLOATS,
    confidence=FLOATS,
    features=st.dictionaries(TEXT, FLOATS, max_size=3),
)
OPERATIONS = st.builds(
    OperationEntry,
    changes=st.lists(st.sampled_from(["slower", "failing"]), min_size=1, max_size=2, unique=True),
    before_mean_ms=OPTIONAL_FLOATS,
    after_mean_ms=OPTIONAL_FLOATS,
    before_error_rate=FLOATS,
    after_error_rate=FLOATS,
    slowdown=FLOATS,
    error_ratio=FLOATS,
    moved=FLOATS,
)
PATTERNS = st.builds(PatternEntry, confidence=FLOATS)
ARTIFACTS: dict[str, st.SearchStrategy[BaseModel]] = {
    "telemetry": st.builds(
        TelemetryArtifact,
        window_s=FLOATS,
        windows=st.lists(WINDOWS, max_size=3),
        sources=st.dictionaries(TEXT, JSON_OBJECTS, max_size=2),
    ),
    "anomalies": st.builds(AnomaliesArtifact, anomalies=st.lists(ANOMALIES, max_size=3)),
    "diagnosis": st.builds(
        DiagnosisArtifact,
        onset=MOMENTS,
        confidence=FLOATS,
        suspects=st.lists(SUSPECTS, max_size=2),
        candidates=st.lists(st.builds(Candidate), max_size=2),
        change_events=st.lists(JSON_OBJECTS, max_size=2),
        evidence=st.lists(TEXT, max_size=3),
        operations=st.lists(OPERATIONS, max_size=2),
    ),
    "patch": st.builds(PatchArtifact),
    "validation": st.builds(
        ValidationArtifact,
        required_improvement=FLOATS,
        benchmark_unpatched=st.none() | FLOATS,
        benchmark_patched=st.none() | FLOATS,
        improvement=st.none() | FLOATS,
        runs=st.lists(st.builds(CommandRun, duration_s=FLOATS), max_size=2),
    ),
    "deployment": st.builds(
        DeploymentArtifact,
        waves=st.lists(
            st.builds(WaveEntry, applied_at=st.none() | MOMENTS, gate=JSON_OBJECTS), max_size=2
        ),
    ),
    "patterns": st.builds(
        PatternsArtifact, learned=st.none() | PATTERNS, library=st.lists(PATTERNS, max_size=2)
    ),
}
KINDS = sorted(ARTIFACT_MODELS)


def test_every_published_artifact_kind_has_a_generator() -> None:
    assert set(ARTIFACTS) == set(ARTIFACT_MODELS)


def written(data: bytes, name: str = "artifact.json") -> tuple[bytes, str, list[str]]:
    """Write ``data`` atomically into a fresh cycle folder; what is on disk afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cycles" / "c-1" / name
        digest = write_atomically(path, data)
        return path.read_bytes(), digest, sorted(p.name for p in path.parent.iterdir())


def assert_validation_error_or_model(model: type[BaseModel], data: bytes) -> None:
    try:
        loaded = model.model_validate_json(data)
    except ValidationError:
        return
    assert isinstance(loaded, model)


# --- written artifacts read back -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@CHECKS
@given(data=st.data())
def test_a_written_artifact_reads_back_byte_identical_and_equal(
    kind: str, data: st.DataObject
) -> None:
    artifact = data.draw(ARTIFACTS[kind])
    encoded = artifact.model_dump_json(indent=2).encode()

    on_disk, digest, names = written(encoded, f"{kind}.json")

    assert on_disk == encoded
    assert digest == hashlib.sha256(encoded).hexdigest()
    assert names == [f"{kind}.json"], "a temporary file was left behind"
    assert ARTIFACT_MODELS[kind].model_validate_json(on_disk) == artifact


@CHECKS
@given(data=st.binary(max_size=4096), before=st.binary(max_size=256))
@example(data=b"", before=b"old")
def test_any_bytes_written_over_an_old_file_read_back_byte_identical(
    data: bytes, before: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "patch.json"
        path.write_bytes(before)
        write_atomically(path, data)
        assert path.read_bytes() == data
        assert [p.name for p in Path(tmp).iterdir()] == ["patch.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "diagnosis.json"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(path, "text is not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["diagnosis.json"]


# --- damaged artifacts are refused with ValidationError ------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@CHECKS
@given(data=st.data())
def test_a_truncated_artifact_is_a_validation_error(kind: str, data: st.DataObject) -> None:
    encoded = (
        data.draw(ARTIFACTS[kind])
        .model_dump_json(indent=data.draw(st.sampled_from([None, 2])))
        .encode()
    )
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ValidationError):
        ARTIFACT_MODELS[kind].model_validate_json(encoded[:cut])


@st.composite
def mutated(draw: st.DrawFn, encoded: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(encoded)))
        operation = draw(st.sampled_from(["insert", "delete", "flip", "splice"]))
        if operation == "insert":
            extra = draw(
                st.binary(min_size=1, max_size=4)
                | st.sampled_from([b"\xff", b"\x00", b"[", b"{", b"1e999", b"NaN", b'"'])
            )
            encoded = encoded[:at] + extra + encoded[at:]
        elif operation == "delete":
            encoded = encoded[:at] + encoded[at + draw(st.integers(1, 16)) :]
        elif operation == "flip" and encoded:
            index = min(at, len(encoded) - 1)
            encoded = (
                encoded[:index]
                + bytes([encoded[index] ^ draw(st.integers(1, 255))])
                + encoded[index + 1 :]
            )
        else:
            value = json.dumps(draw(JSON_DATA)).encode()
            encoded = encoded[:at] + value + encoded[at + draw(st.integers(0, 16)) :]
    return encoded


@pytest.mark.parametrize("kind", KINDS)
@CHECKS
@given(data=st.data())
def test_a_mutated_artifact_is_a_model_or_a_validation_error(
    kind: str, data: st.DataObject
) -> None:
    encoded = data.draw(ARTIFACTS[kind]).model_dump_json().encode()
    assert_validation_error_or_model(ARTIFACT_MODELS[kind], data.draw(mutated(encoded)))


@pytest.mark.parametrize("kind", KINDS)
@CHECKS
@given(field=st.data(), value=JSON_DATA)
def test_any_value_in_any_field_is_a_model_or_a_validation_error(
    kind: str, field: st.DataObject, value: Any
) -> None:
    document = json.loads(field.draw(ARTIFACTS[kind]).model_dump_json())
    document[field.draw(st.sampled_from(sorted(document)))] = value
    assert_validation_error_or_model(ARTIFACT_MODELS[kind], json.dumps(document).encode())


HOSTILE_FILES = [
    b"",
    b"\xff\xfe{}",
    b"null",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"cycle_id": "c", "candidate_index": 1' + b"0" * 5000 + b"}",
    b'{"cycle_id": "c", "window_s": NaN, "windows": []}',
    b'{"cycle_id": "c", "window_s": 1e999, "windows": []}',
    b'{"cycle_id": "\xed\xa0\x80"}',
    b'{"cycle_id": "c"' + b', "cycle_id": "d"' * 1000 + b"}",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", HOSTILE_FILES, ids=range(len(HOSTILE_FILES)))
def test_hostile_artifact_files_are_models_or_validation_errors(kind: str, data: bytes) -> None:
    assert_validation_error_or_model(ARTIFACT_MODELS[kind], data)


def test_an_artifact_cut_at_every_byte_is_refused() -> None:
    artifact = DeploymentArtifact(
        cycle_id="c-1",
        version="abc1234",
        previous_versions={"web-1": "0123456", "web-2": None},
        waves=[
            WaveEntry(
                index=0,
                targets=["web-1"],
                status="healthy",
                applied_at=datetime(2026, 1, 1, tzinfo=UTC),
                gate={"p95": 1.5},
            )
        ],
        outcome="healthy",
        final_versions={"web-1": "abc1234", "web-2": None},
    )
    encoded = artifact.model_dump_json(indent=2).encode()
    refused = 0
    for cut in range(len(encoded)):
        with pytest.raises(ValidationError):
            DeploymentArtifact.model_validate_json(encoded[:cut])
        refused += 1
    assert refused == len(encoded)
    assert DeploymentArtifact.model_validate_json(encoded) == artifact


def test_a_diagnosis_written_before_root_components_reads_back_with_defaults() -> None:
    """``diagnosis.json`` as the release before component ranking wrote it (the fix beat reads it)."""
    previous = {
        "cycle_id": "c-1",
        "component": "catalog",
        "category": "latency",
        "metric": "p95_ms",
        "onset": "2026-03-02T12:00:00Z",
        "healthy_version": "a" * 40,
        "unhealthy_version": "b" * 40,
        "suspect_commit": "c" * 40,
        "file": "shop/catalog.py",
        "line": 12,
        "confidence": 0.91,
        "conclusive": True,
        "suspects": [
            {
                "commit": "c" * 40,
                "author": "Dev",
                "committed_at": "2026-03-02T11:00:00Z",
                "subject": "catalog: scan",
                "files": ["shop/catalog.py"],
                "score": 1.2,
                "confidence": 0.91,
                "features": {"touches_component_paths": 0.4},
            }
        ],
        "candidates": [
            {"strategy": "revert_commit", "commit": "c" * 40, "file": "shop/catalog.py"},
            {"strategy": "redeploy_version", "version": "a" * 40, "reason": "last healthy"},
        ],
        "change_events": [],
        "evidence": ["1 commit(s) considered"],
    }
    diagnosis = DiagnosisArtifact.model_validate_json(json.dumps(previous))
    assert (diagnosis.root_component, diagnosis.components, diagnosis.call_graph) == (None, [], "")
    revert = diagnosis.candidates[0]
    assert (revert.component, revert.category, revert.confidence, revert.features) == (
        None,
        None,
        None,
        {},
    )
    assert revert.commit == "c" * 40
    assert (diagnosis.operations, diagnosis.suspects[0].functions) == ([], {})


def test_the_published_schema_describes_candidates_components_and_slow_operations() -> None:
    schema = DiagnosisArtifact.model_json_schema()
    candidate = schema["$defs"]["Candidate"]["properties"]
    assert {"component", "category", "commit", "file", "line", "confidence", "features"} <= set(
        candidate
    )
    ranked = schema["$defs"]["ComponentEntry"]["properties"]
    assert {"component", "score", "metric", "anomalous", "contributions"} <= set(ranked)
    assert {"root_component", "components", "call_graph", "operations"} <= set(schema["properties"])
    operation = schema["$defs"]["OperationEntry"]["properties"]
    assert {"operation", "changes", "before_mean_ms", "after_mean_ms", "after_error_rate"} <= set(
        operation
    )
    assert "functions" in schema["$defs"]["SuspectEntry"]["properties"]
