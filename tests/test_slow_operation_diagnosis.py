"""One operation slowed by a release: the agent names the operation and the commit behind it.

The catalog logs three operations, as a service's request log would: item
pages (``GET /catalog/items/{id}``), searches and, now and then, the category
list. A release of four commits changes three catalog functions (item loading,
search ordering, the category query) and the docs. Only item pages get slow:
the culprit made ``store.load_item`` issue a second query, and
``api.get_item``, the function the item route names, calls it. Every code
commit touches the component's paths and the culprit's change is the smallest,
so without the slow operation nothing sets it apart (checked below on the same
repository); with it, the diagnosis names the operation, its figures before
and after the onset, and the commit with the feature's contribution.

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

from agent import engine
from states.artifacts import DiagnosisArtifact
from states.diagnose.commits import FEATURE_WEIGHTS, REACHED_SHARE
from states.diagnose.culprits import CodeEvidence, diagnose_commits
from states.git import commits_between
from states.settings import Settings
from storage import repository as repo
from tests.support.clocks import SteppedClock
from tests.support.history import git
from tests.support.ticking import commit, run_until_a_cycle_closes

WINDOW_S = 5.0
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HEALTHY_WINDOWS = 30
MAX_TICKS = 80
ITEM_ROUTE = "GET /catalog/items/{id}"
SEARCH_ROUTE = "GET /catalog/search"
CATEGORY_ROUTE = "GET /catalog/categories"

API = '''"""Catalog routes."""

from catalog import store


def get_item(request):
    item = store.load_item(request.path_args[0])
    return render(item)


def search(request):
    rows = store.find_by_name(request.query["q"])
    return [render(r) for r in rows]


def categories(request):
    return store.category_names()
'''
STORE = '''"""Catalog store."""

import db


def load_item(sku):
    row = db.query("SELECT * FROM items WHERE sku = ?", sku)
    return row


def find_by_name(text):
    rows = db.query("SELECT * FROM items WHERE name LIKE ?", text)
    return rows


def category_names():
    names = db.query("SELECT DISTINCT category FROM items WHERE visible = 1")
    return names
'''


def edit(repo_path: Path, name: str, old: str, new: str) -> dict[str, str]:
    text = (repo_path / name).read_text()
    assert text.count(old) == 1, f"{old!r} not once in {name}"
    return {name: text.replace(old, new)}


@dataclass(frozen=True)
class Release:
    """The service's repository: the healthy version, the release and its culprit."""

    path: Path
    healthy: str
    culprit: str
    innocents: tuple[str, ...]
    head: str


def make_release(root: Path) -> Release:
    path = root / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    files = {"catalog/api.py": API, "catalog/store.py": STORE, "docs/README.md": "catalog\n"}
    healthy = commit(path, "import the catalog", files)
    ordered = commit(
        path,
        "catalog: order search results by name",
        edit(
            path,
            "catalog/store.py",
            "    return rows\n",
            "    rows = sorted(rows, key=lambda r: r.name)\n    return list(rows)\n",
        ),
    )
    culprit = commit(
        path,
        "catalog: show each item's price history",
        edit(
            path,
            "catalog/store.py",
            "    return row\n",
            '    row.history = db.query("SELECT * FROM prices WHERE sku = ?", sku)\n'
            "    return row\n",
        ),
    )
    hidden = commit(
        path,
        "catalog: hide empty categories",
        edit(
            path,
            "catalog/store.py",
            "    return names\n",
            "    names = [n for n in names if n.items > 0]\n    return list(names)\n",
        ),
    )
    head = commit(path, "docs: the catalog's routes", {"docs/README.md": "catalog\nroutes\n"})
    return Release(path, healthy, culprit, (ordered, hidden), head)


def make_settings(root: Path, release: Release) -> Settings:
    quiet = [sys.executable, "-c", "pass"]
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data"), "autonomy": "observe"},
            "telemetry": {
                "window_s": WINDOW_S,
                "lateness_s": 1.0,
                "sources": [{"name": "svc", "paths": [str(root / "logs" / "*.log")]}],
            },
            "components": {"catalog": {"paths": ["catalog/"], "slo_p95_ms": 100.0}},
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
    """The catalog's request log, one window of requests per tick."""

    root: Path
    release: Release
    clock: SteppedClock
    rng: random.Random
    windows: int = 0

    def requests(self, released: bool) -> list[tuple[str, float]]:
        """This window's (operation, duration): item pages ten times slower after the release."""
        item_ms = 200.0 if released else 20.0
        items = [(ITEM_ROUTE, item_ms * self.rng.uniform(0.8, 1.2)) for _ in range(10)]
        searches = [(SEARCH_ROUTE, 40.0 * self.rng.uniform(0.8, 1.2)) for _ in range(10)]
        # Rare and erratic, before and after: never enough records to name it.
        rare = [(CATEGORY_ROUTE, self.rng.uniform(5.0, 90.0)) for _ in range(self.windows % 2)]
        return items + searches + rare

    def write_window(self) -> None:
        start = self.clock.now()
        released = self.windows >= HEALTHY_WINDOWS
        version = self.release.head if released else self.release.healthy
        requests = self.requests(released)
        self.rng.shuffle(requests)
        lines = []
        for i, (operation, ms) in enumerate(requests):
            at = start + timedelta(seconds=WINDOW_S * (i + 0.5) / len(requests))
            lines.append(self.record(at, operation, ms, version))
        with (self.root / "logs" / "svc.log").open("a") as log:
            log.write("\n".join(lines) + "\n")
        self.windows += 1

    @staticmethod
    def record(at: datetime, operation: str, ms: float, version: str) -> str:
        return json.dumps(
            {
                "ts": at.isoformat(),
                "component": "catalog",
                "operation": operation,
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


def run_incident(root: Path) -> Finished:
    (root / "logs").mkdir()
    release = make_release(root)
    clock = SteppedClock(START)
    service = Service(root, release, clock, random.Random(11))
    rt = engine.open_runtime(make_settings(root, release), threading.Event(), clock=clock)
    try:
        cycle = run_until_a_cycle_closes(rt, clock, service.write_window, WINDOW_S, MAX_TICKS)
        runs = rt.db.query(lambda s: repo.cycle_beat_runs(s, cycle.id))
        path = root / "data" / "cycles" / cycle.id / "diagnosis.json"
        diagnosis = DiagnosisArtifact.model_validate_json(path.read_bytes())
        outputs = {r.beat_id: r.output for r in runs if r.phase == "diagnosing"}
        return Finished(release, diagnosis, outputs)
    finally:
        engine.close_runtime(rt)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    yield run_incident(tmp_path_factory.mktemp("slow-operation"))


def test_the_diagnosis_names_the_operation_that_got_slow_with_its_figures(
    finished: Finished,
) -> None:
    operations = finished.diagnosis.operations
    assert [o.operation for o in operations] == [ITEM_ROUTE]
    item = operations[0]
    assert (item.changes, item.baseline) == (["slower"], "own")
    assert item.before_mean_ms is not None and 16 < item.before_mean_ms < 24
    assert item.after_mean_ms is not None and 160 < item.after_mean_ms < 240
    assert item.slowdown > 5 and item.error_ratio == 1.0
    assert item.before_count >= 10 * HEALTHY_WINDOWS // 2 and item.after_count >= 10
    assert (item.before_error_rate, item.after_error_rate) == (0.0, 0.0)


def test_the_commit_changing_the_function_the_operation_reaches_is_the_suspect(
    finished: Finished,
) -> None:
    diagnosis, release = finished.diagnosis, finished.release
    assert diagnosis.suspect_commit == release.culprit
    assert diagnosis.file == "catalog/store.py" and diagnosis.line is not None
    changed = git(release.path, "show", f"{release.culprit}:catalog/store.py").splitlines()
    assert changed[diagnosis.line - 1].startswith("    row.history = db.query(")
    by_commit = {s.commit: s for s in diagnosis.suspects}
    culprit = by_commit[release.culprit]
    reached = round(FEATURE_WEIGHTS["touches_named_functions"] * REACHED_SHARE, 4)
    assert culprit.features["touches_named_functions"] == reached
    assert culprit.functions == {"reached": ["catalog/store.py:load_item"]}
    for sha in release.innocents:
        assert by_commit[sha].features["touches_named_functions"] == 0
        assert by_commit[sha].features["touches_component_paths"] > 0  # as close as can be


def test_operators_read_the_operation_and_the_function_in_the_explanation(
    finished: Finished,
) -> None:
    evidence = finished.diagnosis.evidence
    item = finished.diagnosis.operations[0]
    assert (
        f"operation {ITEM_ROUTE} slower at the onset: mean {item.before_mean_ms} ms -> "
        f"{item.after_mean_ms} ms (x{item.slowdown}); {item.before_count} records before, "
        f"{item.after_count} after, against its own windows before"
    ) in evidence
    reached = round(FEATURE_WEIGHTS["touches_named_functions"] * REACHED_SHARE, 4)
    assert f"touches_named_functions contributed {reached} (catalog/store.py:load_item)" in evidence
    line = finished.diagnosis.line
    assert f"catalog/store.py:{line} chosen by changed a function a named one calls" in evidence


def test_the_operations_are_fixed_in_the_onset_beats_checkpoint(finished: Finished) -> None:
    checkpointed = finished.outputs["find-onset"]["operations"]
    assert [o["operation"] for o in checkpointed] == [ITEM_ROUTE]
    assert checkpointed[0] == finished.diagnosis.operations[0].model_dump()


def test_without_the_slow_operation_the_release_gives_no_reason_to_pick_the_culprit(
    finished: Finished,
) -> None:
    release = finished.release
    commits = tuple(commits_between(release.path, release.healthy, release.head, 50))

    def top(operations: tuple[str, ...]) -> str:
        evidence = CodeEvidence(
            commits=commits,
            running_revision=release.head,
            component_paths=("catalog/",),
            deployed_commits=frozenset(c.sha for c in commits),
            operations=operations,
            category="latency",
        )
        return diagnose_commits(release.path, evidence)[0].suspect.commit.sha

    assert top(()) != release.culprit
    assert top((ITEM_ROUTE,)) == release.culprit
