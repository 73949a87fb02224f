"""The bundled demo, end to end, judged by what its artifacts say.

``resolved`` runs through the command line (``selfheal demo --json``) with the
demo's own dials; ``bad-fix`` runs through ``run_demo`` with a shorter
baseline and one benchmark repetition, and keeps its fleet running on return
so the test can ask every instance over HTTP which version it ended on.
Everything is real: git, the daemon subprocess, four shop instances on
127.0.0.1, the load generator, the sandbox's pytest and benchmark runs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.demo.config import TARGETS, DemoOptions
from agent.demo.run import run_demo
from agent.settings import load_settings
from states.artifacts import (
    AnomaliesArtifact,
    DeploymentArtifact,
    DiagnosisArtifact,
    PatchArtifact,
    PatternsArtifact,
    TelemetryArtifact,
    ValidationArtifact,
    WindowSnapshot,
)
from states.deploy.fleet_instances import stop_fleet
from states.deploy.local_fleet import LocalFleet
from states.git import worktrees_under
from storage.db import open_database
from tests.support.daemon import PROJECT_ROOT
from tests.support.history import CULPRIT_SUBJECT, changed_lines, commit_with_subject, git
from tests.support.processes import collect_exited_instances, kill_leftovers, processes_of
from tests.support.records import path_of, read_artifacts, transition_log_problems, transitions

CULPRIT_FILE = "shop/catalog.py"
SIGNATURE = "catalog:latency:p95_ms:shop/catalog.py"
SLO_P95_MS = 20.0
SUMMARY_KEYS = {"outcome", "cycle_id", "suspect_commit", "detected_after_s", "mttr_s"}
PATHS = {
    "resolved": [
        ("detecting", "diagnosing"),
        ("diagnosing", "fixing"),
        ("fixing", "validating"),
        ("validating", "deploying"),
        ("deploying", "learning"),
        ("learning", "idle"),
    ],
    "bad-fix": [
        ("detecting", "diagnosing"),
        ("diagnosing", "fixing"),
        ("fixing", "validating"),
        ("validating", "deploying"),
        ("deploying", "rolling_back"),
        ("rolling_back", "learning"),
        ("learning", "idle"),
    ],
}


@dataclass(frozen=True)
class DemoRun:
    """One finished demo: where it ran, what it printed or returned, and what it left."""

    scenario: str
    workspace: Path
    summary: dict[str, Any]
    stdout: str
    culprit: str
    healthy: str
    release_head: str
    min_confidence: float
    artifacts: dict[str, Any]
    transitions: list[Any]
    fleet_versions: dict[str, str | None] | None
    leftovers: dict[int, str]

    @property
    def data_dir(self) -> Path:
        return self.workspace / "data"

    @property
    def cycle_id(self) -> str:
        return str(self.summary["cycle_id"])

    @property
    def cycle_dir(self) -> Path:
        return self.data_dir / "cycles" / self.cycle_id

    @property
    def repo(self) -> Path:
        return self.workspace / "repo"


def _selfheal() -> list[str]:
    script = Path(sys.executable).with_name("selfheal")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent.cli"]


def _finish(
    scenario: str,
    ws: Path,
    summary: dict[str, Any],
    stdout: str,
    fleet_versions: dict[str, str | None] | None,
) -> DemoRun:
    """Read back everything the run left in ``ws`` (after every process of it was stopped)."""
    repo = ws / "repo"
    culprit = commit_with_subject(repo, CULPRIT_SUBJECT)
    db = open_database(ws / "data" / "selfheal.db")
    try:
        cycle_dir = ws / "data" / "cycles" / str(summary["cycle_id"])
        artifacts = read_artifacts(db, cycle_dir)
        log = transitions(db, str(summary["cycle_id"]))
    finally:
        db.dispose()
    return DemoRun(
        scenario=scenario,
        workspace=ws,
        summary=summary,
        stdout=stdout,
        culprit=culprit,
        healthy=git(repo, "rev-parse", f"{culprit}~2"),
        release_head=git(repo, "rev-parse", "main"),
        min_confidence=load_settings(ws / "config.toml").diagnose.min_confidence,
        artifacts=artifacts,
        transitions=log,
        fleet_versions=fleet_versions,
        leftovers=processes_of(ws),
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """``selfheal demo --json`` as a user runs it, in a fresh workspace."""
    ws = tmp_path_factory.mktemp("demo-resolved")
    try:
        done = subprocess.run(
            [*_selfheal(), "demo", "--json", "--workspace", str(ws)],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=420,
            check=False,
        )
        assert done.returncode == 0, f"demo failed:\n{done.stderr[-3000:]}"
        yield _finish("resolved", ws, json.loads(done.stdout), done.stdout, None)
    finally:
        stop_fleet(ws / "fleet")
        kill_leftovers(ws)


@pytest.fixture(scope="module")
def bad_fix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """``run_demo`` for the bad-fix scenario, its fleet kept running to be asked afterwards."""
    ws = tmp_path_factory.mktemp("demo-bad-fix")
    lines: list[str] = []
    options = DemoOptions(
        scenario="bad-fix", healthy_windows=6, benchmark_repeats=1, timeout_s=240, keep_fleet=True
    )
    fleet_dir = ws / "fleet"
    try:
        result = run_demo(ws, options, lines.append)
        settings = load_settings(ws / "config.toml")
        assert settings.deploy.local_fleet is not None
        fleet = LocalFleet(settings.deploy.local_fleet)
        versions = fleet.running_versions()
        stop_fleet(fleet_dir)
        collect_exited_instances()
        yield _finish("bad-fix", ws, result.as_dict(), "\n".join(lines), versions)
    finally:
        stop_fleet(fleet_dir)
        kill_leftovers(ws)


@pytest.fixture(params=["resolved", "bad-fix"])
def run(request: pytest.FixtureRequest) -> DemoRun:
    found: DemoRun = request.getfixturevalue(request.param.replace("-", "_"))
    return found


# --- the command line ------------------------------------------------------------


def test_demo_json_prints_one_object_with_the_summary(resolved: DemoRun) -> None:
    lines = [line for line in resolved.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert isinstance(summary, dict)
    assert SUMMARY_KEYS | {"artifacts_dir"} <= set(summary)
    assert summary["outcome"] == "resolved"
    assert summary["suspect_commit"] == summary["culprit_commit"] == resolved.culprit
    assert Path(summary["artifacts_dir"]) == resolved.cycle_dir
    assert resolved.cycle_dir.is_dir()
    assert 0 <= summary["detected_after_s"] <= summary["mttr_s"]


def test_bad_fix_run_reports_a_rollback(bad_fix: DemoRun) -> None:
    assert set(bad_fix.summary) >= SUMMARY_KEYS
    assert bad_fix.summary["outcome"] == "rolled_back"
    assert bad_fix.summary["suspect_commit"] == bad_fix.culprit
    assert bad_fix.summary["suspect_file"] == CULPRIT_FILE
    assert "legacy bundle pages" in bad_fix.stdout


# --- what the agent saw and concluded ---------------------------------------------


def test_telemetry_shows_the_catalog_p95_rising_with_the_release(run: DemoRun) -> None:
    telemetry = run.artifacts["telemetry"]
    assert isinstance(telemetry, TelemetryArtifact)
    catalog = [
        w
        for w in telemetry.windows
        if w.component == "catalog" and not w.instance and w.p95_ms is not None
    ]

    def release_share(window: WindowSnapshot) -> float:
        return window.versions.get(run.release_head, 0) / max(1, sum(window.versions.values()))

    healthy = [w.p95_ms or 0.0 for w in catalog if release_share(w) == 0]
    regressed = [w.p95_ms or 0.0 for w in catalog if release_share(w) > 0.5]
    assert len(healthy) >= 3 and regressed
    baseline = statistics.median(healthy)
    assert baseline < SLO_P95_MS
    # How slow the culprit is depends on the machine; against the baseline it is always stark.
    assert min(regressed) > 10 * baseline


def test_anomalies_name_catalog_p95_latency(run: DemoRun) -> None:
    anomalies = run.artifacts["anomalies"]
    assert isinstance(anomalies, AnomaliesArtifact)
    latency = [a for a in anomalies.anomalies if (a.component, a.metric) == ("catalog", "p95_ms")]
    assert len(latency) == 1
    assert (latency[0].category, latency[0].fingerprint) == ("latency", "catalog:p95_ms")
    assert latency[0].consecutive_windows >= 3  # detect.persist_windows in the demo's config
    assert latency[0].baseline is not None
    assert latency[0].value > max(latency[0].threshold, 10 * latency[0].baseline)


def test_diagnosis_names_the_culprit_commit_file_and_a_changed_line(run: DemoRun) -> None:
    diagnosis = run.artifacts["diagnosis"]
    assert isinstance(diagnosis, DiagnosisArtifact)
    assert diagnosis.suspect_commit == run.culprit
    assert diagnosis.file == CULPRIT_FILE
    assert diagnosis.line in changed_lines(run.repo, run.culprit, CULPRIT_FILE)
    assert diagnosis.conclusive and diagnosis.confidence >= run.min_confidence
    assert (diagnosis.healthy_version, diagnosis.unhealthy_version) == (
        run.healthy,
        run.release_head,
    )
    assert diagnosis.candidates[0].commit == run.culprit


def test_diagnosis_names_the_slow_catalog_routes_and_the_function_search_reaches(
    run: DemoRun,
) -> None:
    diagnosis = run.artifacts["diagnosis"]
    assert isinstance(diagnosis, DiagnosisArtifact)
    slow = {o.operation: o for o in diagnosis.operations}
    assert {"GET /catalog/search", "GET /catalog/item"} <= set(slow)
    assert all(o.changes == ["slower"] and o.slowdown > 10 for o in slow.values())
    culprit = next(s for s in diagnosis.suspects if s.commit == run.culprit)
    # The search route names Catalog.search, which calls the _resolve the culprit rewrote;
    # the item route names only the server's handler, outside the catalog's paths.
    assert culprit.features["touches_named_functions"] > 0
    assert f"{CULPRIT_FILE}:Catalog._resolve" in culprit.functions["reached"]


def test_patch_reverts_the_culprit_and_applies_to_the_regressed_head(
    run: DemoRun, tmp_path: Path
) -> None:
    patch = run.artifacts["patch"]
    assert isinstance(patch, PatchArtifact)
    assert (patch.strategy, patch.commit, patch.base_version) == (
        "revert_commit",
        run.culprit,
        run.release_head,
    )
    assert patch.files == [CULPRIT_FILE]
    assert any("pytest" in t for t in patch.tests) and "tests/test_catalog.py" in patch.tests
    diff = run.cycle_dir / "fix.patch"
    assert patch.diff_bytes == len(diff.read_bytes())

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(run.repo), str(clone))
    git(clone, "checkout", "--quiet", "--detach", run.release_head)
    git(clone, "apply", "--check", str(diff))
    git(clone, "apply", str(diff))
    before_culprit = git(clone, "show", f"{run.culprit}~1:{CULPRIT_FILE}")
    assert (clone / CULPRIT_FILE).read_text().rstrip("\n") == before_culprit
    assert git(clone, "status", "--porcelain") == f"M {CULPRIT_FILE}"


def test_validation_passed_tests_on_both_trees_and_the_benchmark_improved(run: DemoRun) -> None:
    validation = run.artifacts["validation"]
    assert isinstance(validation, ValidationArtifact)
    assert validation.passed and validation.reasons == []
    assert validation.apply_check and validation.tests_unpatched and validation.tests_patched
    assert validation.base_version == run.release_head
    assert validation.improvement is not None and validation.improvement >= 0.10
    before, after = validation.benchmark_unpatched, validation.benchmark_patched
    assert before is not None and after is not None
    assert validation.improvement == pytest.approx((before - after) / before)
    test_runs = [r for r in validation.runs if "pytest" in r.argv]
    assert sorted(r.tree for r in test_runs) == ["patched", "unpatched"]
    assert all(r.exit_code == 0 and not r.timed_out for r in validation.runs)
    published = git(run.repo, "rev-parse", f"selfheal/{run.cycle_id}")
    assert validation.version == published
    assert git(run.repo, "rev-parse", f"{published}~1") == run.release_head


# --- what it did ---------------------------------------------------------------------


def test_resolved_rollout_passes_three_waves_onto_the_validated_version(
    resolved: DemoRun,
) -> None:
    deployment, validation = resolved.artifacts["deployment"], resolved.artifacts["validation"]
    assert isinstance(deployment, DeploymentArtifact)
    assert isinstance(validation, ValidationArtifact)
    assert deployment.outcome == "healthy"
    assert deployment.version == validation.version
    assert [w.targets for w in deployment.waves] == [["web-1"], ["web-2"], ["web-3", "web-4"]]
    assert [(w.status, w.gate.get("passed")) for w in deployment.waves] == [("passed", True)] * 3
    assert deployment.previous_versions == dict.fromkeys(TARGETS, resolved.release_head)
    assert deployment.final_versions == dict.fromkeys(TARGETS, validation.version)


def test_bad_fix_fails_the_canary_on_error_rate_and_every_target_returns(
    bad_fix: DemoRun,
) -> None:
    deployment = bad_fix.artifacts["deployment"]
    assert isinstance(deployment, DeploymentArtifact)
    assert deployment.outcome == "rolled_back"
    canary, *rest = deployment.waves
    assert (canary.targets, canary.status, canary.gate.get("passed")) == (
        ["web-1"],
        "failed",
        False,
    )
    assert any("error rate" in reason for reason in canary.gate["reasons"])
    assert [(w.status, w.applied_at) for w in rest] == [("planned", None), ("planned", None)]
    previous = dict.fromkeys(TARGETS, bad_fix.release_head)
    assert deployment.previous_versions == previous
    assert deployment.final_versions == previous
    assert bad_fix.fleet_versions == previous  # asked of the instances themselves


def test_patterns_record_the_outcome_for_the_signature(run: DemoRun) -> None:
    patterns = run.artifacts["patterns"]
    assert isinstance(patterns, PatternsArtifact)
    learned = patterns.learned
    assert learned is not None
    assert (learned.signature, learned.strategy, learned.files) == (
        SIGNATURE,
        "revert_commit",
        [CULPRIT_FILE],
    )
    expected = {"resolved": ("resolved", 1, 0), "bad-fix": ("rolled_back", 0, 1)}[run.scenario]
    assert (patterns.outcome, learned.successes, learned.failures) == expected
    library = json.loads((run.data_dir / "patterns.json").read_text())
    assert [p["signature"] for p in library["library"]] == [SIGNATURE]


def test_transition_log_of_the_cycle_is_gap_free(run: DemoRun) -> None:
    assert transition_log_problems(run.transitions) == []
    assert path_of(run.transitions) == PATHS[run.scenario]
    assert {t.actor for t in run.transitions} == {"agent"}


def test_demo_leaves_no_process_worktree_or_sandbox_behind(run: DemoRun) -> None:
    assert run.leftovers == {}
    sandboxes = run.data_dir / "sandboxes"
    assert worktrees_under(run.repo, sandboxes) == []
    assert not sandboxes.exists() or sorted(p.name for p in sandboxes.iterdir()) == []
    assert list((run.data_dir / "children").glob("*.json")) == []
