"""Log anomalies: a new error template and a spike of a known template, from real log files.

The arithmetic (error-like texts, the Poisson tail, the usual count, the
spike threshold) is checked on its own; the detectors through real files
read by the real ingestion into a real SQLite data directory, windows closed
and judged as the agent does; and a whole cycle through the real engine: a
release that starts raising a new error opens a ``new_error_template``
incident whose diagnosis names the commit that added the raise.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scipy.stats import poisson
from sqlmodel import col, select

from agent.settings import load_settings
from states.detect import logs
from states.detect.beats import evaluate
from states.detect.policies import LogDetection
from states.settings import Settings
from states.telemetry.ingest import close_due_windows, poll_sources
from storage import repository as repo
from storage import window_store
from storage.db import open_database
from storage.tables import AnomalyRow
from tests.operator_support import append, log_line
from tests.support.ticking import commit, new_repository, read_artifact, tick_minutes

POLICY = LogDetection()

# --- arithmetic ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level", "error"),
    [
        ("Payment declined for <*>", "error", True),
        ("Connection to <ADDR> refused", "warning", False),  # the writer said warning
        ("Connection to <ADDR> refused", "info", True),  # "info" is also every default
        ("Connection to <ADDR> refused", None, True),
        ("Worker <NUM> started", None, False),
        ("Request timed out after <DUR>", None, True),
        ("cache warmed", "critical", True),
        ("Unhandled exception in <*>", "debug", False),
    ],
)
def test_a_template_looks_like_an_error_by_its_level_else_by_its_words(
    text: str, level: str | None, error: bool
) -> None:
    assert logs.looks_like_error(text, level) is error


@pytest.mark.parametrize("rate", [0.01, 0.3, 1.0, 4.5, 30.0, 400.0])
def test_the_poisson_tail_matches_scipy_on_both_sides_of_the_mean(rate: float) -> None:
    for count in sorted(
        {0, 1, 2, int(rate), int(rate) + 1, int(3 * rate) + 5, int(10 * rate) + 20}
    ):
        expected = float(poisson.sf(count - 1, rate))
        assert logs.poisson_tail(count, rate) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_the_usual_count_is_the_median_or_for_a_rare_template_its_mean() -> None:
    assert logs.usual_count([3, 4, 5, 90, 4]) == 4.0, "a past burst does not move it"
    assert logs.usual_count([0, 0, 2, 0, 0, 0, 1, 0, 0, 0]) == pytest.approx(0.3)
    assert logs.usual_count([0] * 20) == pytest.approx(1 / 20), "silent: one over the baseline"


def test_a_spike_needs_the_minimum_count_the_factor_and_a_rare_tail() -> None:
    assert logs.spike_threshold(0.05, POLICY) == POLICY.spike_min_count
    assert logs.spike_threshold(10.0, POLICY) == 50, "five times the usual count"
    strict = LogDetection(spike_factor=1.5, spike_alpha=1e-12)
    threshold = logs.spike_threshold(10.0, strict)
    assert logs.poisson_tail(threshold, 10.0) < 1e-12 <= logs.poisson_tail(threshold - 1, 10.0)


def test_a_known_template_too_young_for_a_baseline_is_never_a_spike() -> None:
    short = [2] * (POLICY.min_baseline_windows - 1)
    assert logs.spike_finding("catalog", "app:3", 500, short, "t", POLICY) is None
    found = logs.spike_finding("catalog", "app:3", 500, [*short, 2], "t", POLICY)
    assert found is not None and found.baseline == 2.0 and found.severity == "critical"


# --- real log files ---------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=1)
WARNINGS = ("cart {n} is empty", "coupon {code} has expired")
FAST = {"duration_ms": 5.0}


class Service:
    """A catalog writing JSON lines (and a regex-format worker log) one minute at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "logs" / "catalog.log"
        self.worker = root / "logs" / "worker.txt"
        self.rng = random.Random(4)
        self.minute_start = T0

    def lines(self, extra: Sequence[tuple[str, str]] = (), worker: Sequence[str] = ()) -> None:
        """Thirty requests with a few usual warnings, plus ``extra`` (level, message) records."""
        start, out = self.minute_start, []
        for i in range(30):
            out.append(log_line(start + timedelta(seconds=2 * i), **FAST))
        for i in range(self.rng.randint(0, 4)):
            text = WARNINGS[i % 2].format(n=self.rng.randint(1, 999), code=f"X{i}")
            out.append(
                log_line(start + timedelta(seconds=i), level="warning", message=text, **FAST)
            )
        for i, (level, text) in enumerate(extra):
            at = start + timedelta(seconds=(i * 7) % 60)
            out.append(log_line(at, level=level, message=text, status=400, **FAST))
        append(self.log, "".join(line + "\n" for line in out))
        append(self.worker, "".join(f"{start.isoformat()} {text}\n" for text in worker))
        self.minute_start += WINDOW


def settings_for(root: Path) -> Settings:
    path = root / "selfheal.toml"
    path.write_text(
        f"""
[agent]
data_dir = "data"
[telemetry]
window_s = 60.0
lateness_s = 5.0
[[telemetry.sources]]
name = "app"
paths = ["{root}/logs/*.log"]
[[telemetry.sources]]
name = "worker"
paths = ["{root}/logs/*.txt"]
format = {{ kind = "regex", pattern = '^(?P<timestamp>\\S+) (?P<message>.*)$', component = "catalog" }}
[detect]
persist_windows = 3
clear_windows = 2
[components.catalog]
slo_error_rate = 0.5
[deploy]
kind = "command"
[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["true"]
"""
    )
    return load_settings(path)


class Feed:
    """The service's files, read, closed and judged once a minute as the agent would."""

    def __init__(self, root: Path) -> None:
        self.service = Service(root)
        self.settings = settings_for(root)
        self.db = open_database(self.settings.agent.data_dir / "selfheal.db")

    def minute(self, extra: Sequence[tuple[str, str]] = (), worker: Sequence[str] = ()) -> None:
        self.service.lines(extra, worker)
        now = self.service.minute_start + timedelta(seconds=6)
        report = poll_sources(self.settings, self.db, now)
        assert report.errors == {}
        self.db.transact(lambda s: close_due_windows(s, self.settings, now))
        self.db.transact(lambda s: evaluate(s, self.settings, now))

    def steady(self, minutes: int) -> None:
        for _ in range(minutes):
            self.minute()

    def anomalies(self) -> list[AnomalyRow]:
        return self.db.query(
            lambda s: list(s.exec(select(AnomalyRow).order_by(col(AnomalyRow.id))))
        )


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    fed = Feed(tmp_path)
    yield fed
    fed.db.dispose()


def test_steady_traffic_with_its_usual_warnings_opens_nothing(feed: Feed) -> None:
    feed.steady(60)

    windows = feed.db.query(lambda s: window_store.component_windows(s, "catalog"))
    assert len(windows) >= 59 and sum(bool(w.templates) for w in windows) > 30
    assert feed.anomalies() == []


def test_a_new_error_template_opens_an_anomaly_that_acts_once_it_recurs(feed: Feed) -> None:
    feed.steady(15)
    failing = [("error", "payment gateway 10.0.0.7:443 refused the charge for order 8812")]

    feed.minute(failing)
    [anomaly] = feed.anomalies()
    assert (anomaly.category, anomaly.detector, anomaly.actionable) == (
        "new_error_template",
        "new_template",
        False,
    )
    assert anomaly.metric.startswith("template:app:")
    assert anomaly.evidence["template"].startswith("payment gateway <ADDR> refused the charge")
    assert (anomaly.evidence["level"], anomaly.evidence["count"]) == ("error", 1)
    assert anomaly.onset == T0 + 15 * WINDOW

    feed.minute(failing * 2)
    feed.minute(failing)
    [anomaly] = feed.anomalies()
    assert (anomaly.consecutive, anomaly.actionable) == (3, True)
    assert anomaly.severity == "major", "the worst window saw it twice its threshold"


def test_a_new_warning_template_is_not_an_error(feed: Feed) -> None:
    feed.steady(15)
    for _ in range(4):
        feed.minute([("warning", "gift card 4411 failed the balance check")])

    assert feed.anomalies() == []


def test_without_a_level_the_words_of_a_new_template_decide(feed: Feed) -> None:
    feed.steady(15)
    feed.minute(worker=["worker 7 started", "worker 8 started"])
    assert feed.anomalies() == []

    feed.minute(worker=["worker 7 crashed: segfault in the image codec"])

    [anomaly] = feed.anomalies()
    assert anomaly.category == "new_error_template"
    assert anomaly.metric.startswith("template:worker:")
    assert anomaly.evidence["level"] == "info", "the regex gave no level: the words decided"


def test_a_new_error_that_flaps_stays_one_anomaly(feed: Feed) -> None:
    feed.steady(15)
    failing = [("error", "inventory lock 42 was lost")]
    for extra in (failing, failing, [], [], failing, failing):
        feed.minute(extra)

    [anomaly] = feed.anomalies()
    assert (anomaly.status, anomaly.evidence["reopened"]) == ("open", 1)
    assert anomaly.onset == T0 + 15 * WINDOW
    assert (anomaly.consecutive, anomaly.actionable) == (2, False), "it must persist again"


def test_a_known_template_far_above_its_usual_count_is_a_spike(feed: Feed) -> None:
    feed.steady(40)
    burst = [("warning", f"cart {n} is empty") for n in range(60)]

    feed.minute(burst)

    [spike] = feed.anomalies()
    assert (spike.category, spike.detector) == ("log_spike", "template_baseline")
    assert spike.evidence["template"] == "cart <NUM> is empty"
    count = spike.evidence["count"]
    assert count >= 60 and spike.value == count
    assert spike.baseline == spike.evidence["usual_count"] <= 2.0
    assert spike.threshold == spike.evidence["threshold"] >= POLICY.spike_min_count
    assert spike.evidence["p_value"] < POLICY.spike_alpha
    assert spike.evidence["baseline_windows"] == POLICY.baseline_windows

    feed.minute()
    feed.minute()
    [spike] = feed.anomalies()
    assert spike.status == "closed", "two ordinary windows close it"


def test_spikes_and_new_errors_can_be_turned_off_per_component(tmp_path: Path) -> None:
    fed = Feed(tmp_path)
    quiet = fed.settings.components["catalog"].logs.model_copy(
        update={"spikes": False, "new_errors": False}
    )
    fed.settings.components["catalog"].logs = quiet
    fed.steady(40)
    fed.minute([("warning", f"cart {n} is empty") for n in range(60)])
    fed.minute([("error", "payment gateway refused the charge")])

    assert fed.anomalies() == []
    fed.db.dispose()


def test_log_detection_settings_are_validated_by_key(tmp_path: Path) -> None:
    settings_for(tmp_path)
    path = tmp_path / "selfheal.toml"
    path.write_text(
        path.read_text().replace(
            "slo_error_rate = 0.5\n",
            "slo_error_rate = 0.5\n[components.catalog.logs]\nspike_factor = 0.5\n"
            "baseline_windows = 5\nmin_baseline_windows = 9\n",
        )
    )
    with pytest.raises(Exception) as raised:
        load_settings(path)
    message = str(raised.value)
    assert str(path) in message
    assert "key 'components.catalog.logs.spike_factor'" in message
    assert "greater than 1" in message


# --- a whole cycle ----------------------------------------------------------------------------------

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
DEPLOYED = datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
PRICES = '''"""Prices."""

PRICES = {"a-1": 3, "b-2": 5}


def price(sku):
    return PRICES.get(sku, 0)
'''
RAISING = PRICES.replace(
    "    return PRICES.get(sku, 0)\n",
    "    if sku not in PRICES:\n        raise KeyError(f'no price for {sku}')\n    return PRICES[sku]\n",
)
TRACE = """Traceback (most recent call last):
  File "/srv/shop/shop/prices.py", line 8, in price
    raise KeyError(f'no price for {sku}')
KeyError: 'no price for z-9'"""


def test_a_release_that_raises_a_new_error_is_diagnosed_to_the_commit_that_added_the_raise(
    tmp_path: Path,
) -> None:
    root = new_repository(tmp_path / "repo")
    healthy = commit(root, "prices: lookup", {"shop/prices.py": PRICES}, "2026-02-20T10:00:00Z")
    commit(root, "docs: readme", {"README.md": "shop\n"}, "2026-02-24T10:00:00Z")
    culprit = commit(
        root, "prices: refuse unknown SKUs", {"shop/prices.py": RAISING}, "2026-02-25T10:00:00Z"
    )
    unhealthy = commit(
        root, "prices: typing", {"shop/types.py": "SKU = str\n"}, "2026-02-26T10:00:00Z"
    )
    settings = load_settings(cycle_config(tmp_path))
    log = tmp_path / "logs" / "prices.log"

    def minute(now: datetime) -> None:
        lines = []
        for i in range(20):
            at = now - timedelta(seconds=60 - 3 * i)
            version = unhealthy if at >= DEPLOYED else healthy
            lines.append(log_line(at, component="prices", version=version, duration_ms=4.0))
            if version == unhealthy and i == 7:
                failed = {
                    "level": "error",
                    "status": 500,
                    "message": "KeyError: 'no price for z-9'",
                }
                lines.append(
                    log_line(at, component="prices", version=version, stack=TRACE, **failed)
                )
        append(log, "".join(line + "\n" for line in lines))

    tick_minutes(settings, START, 60, minute)

    db = open_database(settings.agent.data_dir / "selfheal.db")
    cycle = db.query(repo.last_closed_cycle)
    assert cycle is not None
    assert (cycle.component, cycle.category) == ("prices", "new_error_template")
    anomalies = read_artifact(settings, cycle.id, "anomalies")["anomalies"]
    new_error = next(a for a in anomalies if a["category"] == "new_error_template")
    assert new_error["evidence"]["template"].startswith("KeyError: 'no price for")
    assert new_error["detector"] == "new_template" and new_error["score"] == 1.0
    assert abs(datetime.fromisoformat(new_error["onset"]) - DEPLOYED) <= timedelta(minutes=1)
    diagnosis = read_artifact(settings, cycle.id, "diagnosis")
    assert diagnosis["suspect_commit"] == culprit
    assert (diagnosis["file"], diagnosis["line"]) == ("shop/prices.py", 8)
    db.dispose()


def cycle_config(root: Path) -> Path:
    path = root / "config.toml"
    path.write_text(
        """
[agent]
data_dir = "data"
autonomy = "observe"
[telemetry]
window_s = 60.0
lateness_s = 5.0
[[telemetry.sources]]
name = "shop"
paths = ["logs/*.log"]
[components.prices]
paths = ["shop/prices.py"]
slo_p95_ms = 250.0
slo_error_rate = 0.2
[repository]
path = "repo"
path_prefixes = ["/srv/shop/"]
[validate]
test_command = ["{python}", "-c", "pass"]
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
