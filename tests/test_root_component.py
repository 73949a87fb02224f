"""A front component slowed by its dependency: the agent diagnoses the dependency's code.

Two components log their requests as the service would: ``web`` answers every
request by calling ``catalog``, so web's latency contains catalog's. A release
of three commits (one in web, the culprit in catalog, one in the docs) makes
catalog slow, a little in the first window and much more from the second. Web
breaches its objective first, so the cycle opens on web; the diagnosis must
rank catalog first and name the catalog commit.

The engine runs in-process (``engine.open_runtime`` and ``engine.tick``, as
the daemon does) with a stepped clock, on a real SQLite file and a real git
repository, with autonomy ``observe`` so the cycle ends after validation.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import engine, reports
from states.artifacts import DiagnosisArtifact
from states.settings import Settings
from storage import repository as repo
from tests.support.clocks import SteppedClock
from tests.support.history import git
from tests.support.ticking import commit, run_until_a_cycle_closes

WINDOW_S = 5.0
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HEALTHY_WINDOWS = 30
MAX_TICKS = 80
REQUESTS_PER_WINDOW = 12

WEB = '''"""Web front: every page asks the catalog."""

from catalog import store


def page(request):
    items = store.items(request.query)
    return render(items)
'''
CATALOG = '''"""Catalog store."""

import db


def items(query):
    rows = db.query("SELECT id, price FROM items WHERE name LIKE ?", query)
    return [r for r in rows if r.price > 0]
'''


@dataclass(frozen=True)
class Release:
    """The service's repository: the healthy version, the release and its culprit."""

    path: Path
    healthy: str
    culprit: str
    head: str


def make_release(root: Path) -> Release:
    path = root / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    healthy = commit(
        path, "import", {"web/app.py": WEB, "catalog/store.py": CATALOG, "docs/README.md": "x\n"}
    )
    commit(
        path,
        "web: log the query",
        {"web/app.py": WEB.replace("    items", "    log(request)\n    items")},
    )
    culprit = commit(
        path,
        "catalog: load fresh prices",
        {
            "catalog/store.py": CATALOG.replace(
                "    return [r for r in rows if r.price > 0]",
                '    rows = [db.query("SELECT * FROM prices WHERE id = ?", r.id) for r in rows]\n'
                "    return [r for r in rows if r.price > 0]",
            )
        },
    )
    head = commit(path, "docs: describe the catalog", {"docs/README.md": "x\ncatalog\n"})
    return Release(path, healthy, culprit, head)


def make_settings(root: Path, release: Release, calls: bool) -> Settings:
    quiet = [sys.executable, "-c", "pass"]
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data"), "autonomy": "observe"},
            "telemetry": {
                "window_s": WINDOW_S,
                "lateness_s": 1.0,
                "sources": [{"name": "svc", "paths": [str(root / "logs" / "*.log")]}],
            },
            "components": {
                "web": {
                    "paths": ["web/"],
                    "slo_p95_ms": 120.0,
                    "calls": ["catalog"] if calls else [],
                },
                "catalog": {"paths": ["catalog/"]},
            },
            "repository": {"path": str(release.path)},
            "validate": {"test_command": quiet},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": quiet, "version": quiet},
            },
        }
    )


@dataclass
class Service:
    """The two components' request log, one window of requests per tick."""

    root: Path
    release: Release
    clock: SteppedClock
    rng: random.Random
    windows: int = 0

    def extra_ms(self) -> float:
        """How much slower catalog answers in the current window."""
        incident = self.windows - HEALTHY_WINDOWS
        return 0.0 if incident < 0 else 30.0 if incident == 0 else 130.0

    def write_window(self) -> None:
        start = self.clock.now()
        version = self.release.healthy if self.windows < HEALTHY_WINDOWS else self.release.head
        lines = []
        for i in range(REQUESTS_PER_WINDOW):
            at = start + timedelta(seconds=WINDOW_S * (i + 0.5) / REQUESTS_PER_WINDOW)
            catalog = 100.0 + self.rng.uniform(-3, 3) + self.extra_ms()
            web = catalog + 5.0 + self.rng.uniform(-1, 1)
            for component, ms in (("catalog", catalog), ("web", web)):
                lines.append(self.record(at, component, ms, version))
        with (self.root / "logs" / "svc.log").open("a") as log:
            log.write("\n".join(lines) + "\n")
        self.windows += 1

    @staticmethod
    def record(at: datetime, component: str, ms: float, version: str) -> str:
        return json.dumps(
            {
                "ts": at.isoformat(),
                "component": component,
                "operation": "GET /page" if component == "web" else "items",
                "duration_ms": round(ms, 2),
                "status": 200,
                "level": "info",
                "message": "served",
                "version": version,
                "instance": "i1",
            }
        )


@dataclass(frozen=True)
class Finished:
    """What the agent recorded for the one cycle it ran."""

    release: Release
    diagnosis: DiagnosisArtifact
    outputs: dict[str, dict[str, Any]]
    cycle_component: str
    brief: dict[str, Any]  # the cycle as ``selfheal history --json`` shows it


def run_incident(root: Path, calls: bool) -> Finished:
    (root / "logs").mkdir()
    release = make_release(root)
    clock = SteppedClock(START)
    service = Service(root, release, clock, random.Random(5))
    rt = engine.open_runtime(make_settings(root, release, calls), threading.Event(), clock=clock)
    try:
        cycle = run_until_a_cycle_closes(rt, clock, service.write_window, WINDOW_S, MAX_TICKS)
        runs = rt.db.query(lambda s: repo.cycle_beat_runs(s, cycle.id))
        path = root / "data" / "cycles" / cycle.id / "diagnosis.json"
        diagnosis = DiagnosisArtifact.model_validate_json(path.read_bytes())
        outputs = {r.beat_id: r.output for r in runs if r.phase == "diagnosing"}
        brief = reports.history(rt.db, 1)[0]
        return Finished(release, diagnosis, outputs, cycle.component, brief)
    finally:
        engine.close_runtime(rt)


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    yield run_incident(tmp_path_factory.mktemp("configured"), calls=True)


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    yield run_incident(tmp_path_factory.mktemp("learned"), calls=False)


def test_the_cycle_opens_on_the_front_component(configured: Finished) -> None:
    assert configured.cycle_component == "web"
    assert configured.diagnosis.component == "web"


def test_the_dependency_is_ranked_first_and_its_code_diagnosed(configured: Finished) -> None:
    diagnosis = configured.diagnosis
    assert diagnosis.root_component == "catalog"
    assert diagnosis.call_graph == "configured"
    ranked = [c.component for c in diagnosis.components]
    assert ranked == ["catalog", "web"]
    assert all(c.anomalous for c in diagnosis.components)
    web = diagnosis.components[1]
    assert web.contributions["dependencies"] < 0  # its move is its callee's
    assert any("diagnosing the code of catalog" in line for line in diagnosis.evidence)


def test_the_diagnosis_names_the_commit_in_the_dependencys_paths(configured: Finished) -> None:
    diagnosis = configured.diagnosis
    assert diagnosis.suspect_commit == configured.release.culprit
    assert diagnosis.file == "catalog/store.py"
    assert (diagnosis.healthy_version, diagnosis.unhealthy_version) == (
        configured.release.healthy,
        configured.release.head,
    )


def test_candidates_carry_component_category_confidence_and_features(
    configured: Finished,
) -> None:
    first = configured.diagnosis.candidates[0]
    assert (first.strategy, first.component, first.category) == (
        "revert_commit",
        "catalog",
        "latency",
    )
    assert (first.commit, first.file) == (configured.release.culprit, "catalog/store.py")
    assert first.line is not None and first.confidence == configured.diagnosis.confidence
    assert first.features["touches_component_paths"] > 0


def test_operators_see_the_component_behind_the_front(configured: Finished) -> None:
    assert configured.brief["root_component"] == "catalog"
    shown = reports.render_status(
        {
            "state": "fixing",
            "paused": False,
            "cycle": configured.brief,
            "current_beat": None,
            "components": {},
            "anomalies": [],
            "sources": {},
            "transitions": [],
        }
    )
    assert f"  suspect in catalog: {configured.release.culprit[:12]} catalog/store.py:" in shown


def test_the_ranking_is_a_checkpointed_beat_the_later_beats_follow(configured: Finished) -> None:
    ranking = configured.outputs["rank-components"]
    assert (ranking["front"], ranking["component"], ranking["category"]) == (
        "web",
        "catalog",
        "latency",
    )
    assert configured.outputs["find-onset"]["component"] == "catalog"
    assert configured.outputs["rank-suspects"]["component"] == "catalog"


def test_without_a_configured_graph_one_is_learned_from_co_movement(learned: Finished) -> None:
    diagnosis = learned.diagnosis
    assert diagnosis.call_graph == "learned", diagnosis.evidence
    assert any("web -> catalog (r=" in line for line in diagnosis.evidence)
    assert diagnosis.root_component == "catalog"
    assert diagnosis.suspect_commit == learned.release.culprit
