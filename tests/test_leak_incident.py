"""A leak end to end: a real endpoint's RSS gauge, the real engine ticking, anomalies.json, diagnosis.

A shop's catalog logs its requests (JSON lines with the running version) and
exposes ``process_resident_memory_bytes`` on an HTTP endpoint on 127.0.0.1.
The engine ticks once a simulated minute on a real SQLite data directory, the
clock moved by the test. A release whose middle commit caches every lookup
makes RSS grow; the agent must open a ``memory_leak`` incident, write it to
``anomalies.json`` with its evidence, and diagnose the commit deployed before
the leak began. The same service with a flat, noisy RSS must open nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from agent import engine
from agent.settings import load_settings
from states.settings import Settings
from storage import repository as repo
from storage import window_store
from storage.tables import AnomalyRow
from tests.operator_support import append, log_line
from tests.support.http_endpoint import Endpoint, serving_page
from tests.support.ticking import commit, new_repository, read_artifact, tick_minutes

MB = 1024 * 1024
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)  # ticks half-way through each minute
DEPLOYED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LEAK_SUBJECT = "catalog: remember every looked-up item"

CATALOG = '''"""Catalog lookups."""

ITEMS = {"a-1": 3, "b-2": 5}


def lookup(sku):
    return ITEMS.get(sku)
'''


@dataclass(frozen=True)
class Release:
    healthy: str
    unhealthy: str
    culprit: str


def shop_repository(root: Path) -> Release:
    """The healthy release, then one of three commits: logging, the leaking cache, docs."""
    new_repository(root)
    healthy = commit(
        root,
        "catalog: lookups",
        {"shop/catalog.py": CATALOG, "README.md": "shop\n"},
        "2026-02-20T10:00:00Z",
    )
    logged = CATALOG.replace("def lookup(sku):\n", "def lookup(sku):\n    print('lookup', sku)\n")
    commit(root, "catalog: log lookups", {"shop/catalog.py": logged}, "2026-02-25T10:00:00Z")
    cached = logged.replace(
        "    return ITEMS.get(sku)\n",
        "    item = ITEMS.get(sku)\n    _LOOKUP_CACHE[sku, len(_LOOKUP_CACHE)] = item\n    return item\n",
    ).replace("ITEMS = {", "_LOOKUP_CACHE = {}\nITEMS = {")
    culprit = commit(root, LEAK_SUBJECT, {"shop/catalog.py": cached}, "2026-02-26T10:00:00Z")
    unhealthy = commit(
        root, "docs: describe lookups", {"README.md": "shop: lookups\n"}, "2026-02-27T10:00:00Z"
    )
    return Release(healthy, unhealthy, culprit)


def config(root: Path, endpoint: Endpoint) -> Path:
    path = root / "config.toml"
    path.write_text(
        f"""
[agent]
data_dir = "data"
autonomy = "observe"

[telemetry]
window_s = 60.0
lateness_s = 5.0

[[telemetry.sources]]
name = "shop"
paths = ["logs/*.log"]
format = "json"

[[telemetry.metrics]]
name = "catalog-process"
kind = "scrape"
url = "{endpoint.url}/metrics"
component = "catalog"
timeout_s = 2.0

[components.catalog]
paths = ["shop/catalog.py"]
slo_p95_ms = 250.0

[[components.catalog.gauges]]
name = "rss_bytes"
selector = "process_resident_memory_bytes"
limit = 1073741824

[repository]
path = "repo"

[validate]
test_command = ["{{python}}", "-c", "pass"]
timeout_s = 60

[deploy]
kind = "command"
[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["true"]
"""
    )
    return path


class Service:
    """The catalog's log and its metrics endpoint, one simulated minute at a time."""

    def __init__(self, root: Path, endpoint: Endpoint, release: Release) -> None:
        self.log = root / "logs" / "catalog.log"
        self.endpoint = endpoint
        self.release = release
        self.rng = random.Random(5)

    def minute(self, ending: datetime, rss: float) -> None:
        """Twenty requests in the minute before ``ending``, and RSS as it is at ``ending``."""
        lines = []
        for i in range(20):
            at = ending - timedelta(seconds=60 - 3 * i)
            version = self.release.unhealthy if at >= DEPLOYED else self.release.healthy
            duration = round(self.rng.uniform(4.0, 6.0), 2)
            lines.append(log_line(at, version=version, duration_ms=duration) + "\n")
        append(self.log, "".join(lines))
        self.endpoint.page["text"] = (
            f"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss:.0f}\n"
        )


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = serving_page()
    yield served
    served.close()


def run(
    root: Path, endpoint: Endpoint, rss: Callable[[datetime], float], minutes: int
) -> tuple[Settings, Release]:
    """Tick the engine once a minute until a cycle closed or ``minutes`` passed."""
    release = shop_repository(root / "repo")
    settings = load_settings(config(root, endpoint))
    service = Service(root, endpoint, release)
    tick_minutes(settings, START, minutes, lambda now: service.minute(now, rss(now)))
    return settings, release


def leaking_rss(at: datetime) -> float:
    noise = random.Random(at.timestamp()).gauss(0.0, 1.0 * MB)
    grown = max(0.0, (at - DEPLOYED).total_seconds() / 60.0) * 3.0 * MB  # 180 MB an hour
    return 400 * MB + grown + noise


def flat_rss(at: datetime) -> float:
    return 400 * MB + random.Random(at.timestamp()).gauss(0.0, 8.0 * MB)


def test_a_growing_rss_opens_a_memory_leak_diagnosed_to_the_commit_deployed_before_it(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    settings, release = run(tmp_path, endpoint, leaking_rss, minutes=90)

    db = engine.open_readonly(settings)
    cycle = db.query(repo.last_closed_cycle)
    assert cycle is not None, "no cycle closed within an hour of leaking"
    assert (cycle.component, cycle.category, cycle.metric) == (
        "catalog",
        "memory_leak",
        "rss_bytes",
    )
    opened_after = cycle.opened_at - DEPLOYED
    assert opened_after < timedelta(minutes=30)

    [leak] = read_artifact(settings, cycle.id, "anomalies")["anomalies"]
    assert (leak["fingerprint"], leak["category"], leak["detector"]) == (
        "catalog:rss_bytes",
        "memory_leak",
        "trend",
    )
    assert leak["severity"] in ("minor", "major", "critical")
    assert abs(datetime.fromisoformat(leak["onset"]) - DEPLOYED) <= timedelta(minutes=2)
    evidence = leak["evidence"]
    assert evidence["slope_per_hour"] > 60 * MB and evidence["p_value"] < 0.01
    assert evidence["limit"] == 1024 * MB
    assert 0 < evidence["time_to_limit_s"] <= 86400
    assert leak["value"] == evidence["current"] and leak["threshold"] == 1024 * MB
    assert leak["score"] > 0.99

    diagnosis = read_artifact(settings, cycle.id, "diagnosis")
    assert (diagnosis["healthy_version"], diagnosis["unhealthy_version"]) == (
        release.healthy,
        release.unhealthy,
    )
    assert diagnosis["suspect_commit"] == release.culprit
    assert diagnosis["file"] == "shop/catalog.py"
    top = diagnosis["suspects"][0]["features"]
    assert top["adds_category_cues"] > 0, "the memory cue of the cache is what sets it apart"
    telemetry = read_artifact(settings, cycle.id, "telemetry")
    assert any("rss_bytes" in w["gauges"] for w in telemetry["windows"])
    db.dispose()


def test_a_flat_noisy_rss_opens_no_anomaly(tmp_path: Path, endpoint: Endpoint) -> None:
    settings, _ = run(tmp_path, endpoint, flat_rss, minutes=100)

    db = engine.open_readonly(settings)
    windows = db.query(lambda s: window_store.component_windows(s, "catalog"))
    assert len(windows) >= 95 and all("rss_bytes" in w.gauges for w in windows[1:])
    assert all(w.evaluated for w in windows)
    anomalies = db.query(lambda s: list(s.exec(select(AnomalyRow))))
    assert anomalies == []
    db.dispose()
