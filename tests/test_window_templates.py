"""Messages mined into templates per window: which are mined, what is stored, what survives.

Real log files are polled into a real SQLite database. A window stores the
count of each template (``<source>:<id>``) and flags the templates first seen
in it; each source's miner is stored with its cursor, in the same
transaction, so a restart goes on with the same ids and a failed poll
teaches the miner nothing. The miner's speed-ups (skipping mask rules that
cannot match, remembering where a message went) must not change a single
assignment.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.json_logs import EVENTS
from benchmarks.loghub import read_structured
from states.settings import Settings
from states.telemetry import ingest, templates
from states.telemetry.masks import (
    DEFAULT_MASKS,
    CompiledMasks,
    compile_masks,
    mask_hex_tokens,
    mask_message,
)
from states.telemetry.templates import CACHE_LIMIT, MiningSettings, TemplateMiner, new_drain
from states.telemetry.window_templates import OTHER, merge_counts, merge_new
from storage import window_store
from storage.db import Database, open_database
from storage.migrations import WINDOW_COLUMNS_ADDED
from storage.tables import WindowRow
from tests.operator_support import append, log_line

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 3, 1, 11, 50, tzinfo=UTC)


def settings_for(root: Path, kind: str) -> Settings:
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data")},
            "telemetry": {
                "sources": [
                    {"name": "app", "paths": [str(root / "logs" / "*.log")], "format": kind}
                ]
            },
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


class Feed:
    def __init__(self, root: Path, kind: str) -> None:
        self.log = root / "logs" / "app.log"
        self.settings = settings_for(root, kind)
        self.path = root / "data" / "selfheal.db"
        self.db: Database = open_database(self.path)

    def poll(self) -> ingest.PollReport:
        report = ingest.poll_sources(self.settings, self.db, NOW)
        assert report.errors == {}
        return report

    def windows(self, component: str = "catalog") -> list[WindowRow]:
        return self.db.query(
            lambda s: window_store.component_windows(s, component, closed_only=False)
        )

    def state(self) -> dict[str, Any] | None:
        return self.db.query(lambda s: window_store.template_state(s, "app"))

    def restart(self) -> None:
        self.db.dispose()
        self.db = open_database(self.path)


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[Feed]:
    feed = Feed(tmp_path, "syslog")
    yield feed
    feed.db.dispose()


@pytest.fixture
def json_feed(tmp_path: Path) -> Iterator[Feed]:
    feed = Feed(tmp_path, "json")
    yield feed
    feed.db.dispose()


def syslog_line(at: datetime, message: str, host: str = "web-1") -> str:
    return f"<14>{at.isoformat()} {host} catalog[42]: {message}\n"


# --- what a window stores ------------------------------------------------------------------


def test_free_text_messages_are_counted_per_template_in_their_window(syslog: Feed) -> None:
    append(
        syslog.log,
        syslog_line(T0, "Connection to 10.0.0.7:5432 timed out after 3000 ms")
        + syslog_line(
            T0 + timedelta(seconds=1), "Connection to 10.0.0.9:5432 timed out after 12 ms"
        )
        + syslog_line(T0 + timedelta(seconds=2), "Worker 3 started")
        + syslog_line(T0 + timedelta(seconds=70), "Worker 4 started", host="web-2"),
    )
    syslog.poll()

    first, second = syslog.windows()
    assert sorted(first.templates.values()) == [1, 2]
    assert all(re.fullmatch(r"app:\d+", key) for key in first.templates)
    assert first.new_templates == list(first.templates)  # both were new in this window
    (worker,) = [k for k, v in first.templates.items() if v == 1]
    assert second.templates == {worker: 1}
    assert second.new_templates == []  # known since the window before
    (instance,) = syslog.db.query(
        lambda s: window_store.component_windows(s, "catalog", instance="web-2", closed_only=False)
    )
    assert instance.templates == {worker: 1}


def test_json_sources_mine_only_warnings_and_errors(json_feed: Feed) -> None:
    lines = [
        log_line(T0, message="served"),
        log_line(T0, message="served again", level="debug"),
        log_line(T0, message="pool exhausted: 12 waiting", level="warning"),
        log_line(T0, message="upstream 10.0.0.3:80 refused", status=502),
        log_line(T0, message="upstream 10.0.0.4:80 refused", level="ERROR"),
        log_line(T0, message="", level="error"),
    ]
    append(json_feed.log, "".join(f"{line}\n" for line in lines))
    json_feed.poll()

    (window,) = json_feed.windows()
    assert sorted(window.templates.values()) == [1, 2]
    state = json_feed.state()
    assert state is not None
    texts = {" ".join(t["tokens"]) for t in state["templates"]}
    assert texts == {"pool exhausted: <NUM> waiting", "upstream <ADDR> refused"}


def test_access_logs_mine_nothing(tmp_path: Path) -> None:
    feed = Feed(tmp_path, "nginx")
    append(
        feed.log,
        '10.0.0.1 - - [01/Mar/2026:11:50:00 +0000] "GET /catalog/items/1 HTTP/1.1" 500 12 "-" "c" 0.010\n',
    )
    feed.poll()
    (window,) = feed.windows()
    assert (window.count, window.templates, feed.state()) == (1, {}, None)
    feed.db.dispose()


def test_a_window_keeps_its_top_templates_and_sums_the_rest_under_other() -> None:
    counts = merge_counts({"a:1": 5, OTHER: 2}, {f"a:{i}": i for i in range(2, 60)}, limit=3)
    assert counts == {"a:59": 59, "a:58": 58, "a:57": 57, OTHER: 2 + 5 + sum(range(2, 57))}
    assert sum(counts.values()) == 5 + 2 + sum(range(2, 60))
    assert merge_new(["a:1"], ["a:2", "a:1", "a:3"], limit=2) == ["a:1", "a:2"]


# --- state across polls, restarts and failures -------------------------------------------------


def test_a_restarted_agent_goes_on_with_the_same_template_ids(syslog: Feed) -> None:
    append(syslog.log, syslog_line(T0, "Cache miss for key item:17"))
    syslog.poll()
    syslog.restart()
    append(syslog.log, syslog_line(T0 + timedelta(seconds=5), "Cache miss for key item:99"))
    syslog.poll()

    (window,) = syslog.windows()
    assert len(window.templates) == 1 and next(iter(window.templates.values())) == 2
    assert window.new_templates == list(window.templates)
    state = syslog.state()
    assert state is not None and [t["size"] for t in state["templates"]] == [2]


def test_a_poll_that_fails_to_commit_teaches_the_miner_nothing(
    syslog: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(syslog.log, syslog_line(T0, "Disk usage at 91% on /dev/sda1"))
    syslog.poll()
    before = syslog.state()
    append(syslog.log, syslog_line(T0 + timedelta(seconds=1), "Disk usage at 92% on /dev/sda1"))

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(window_store, "store_template_state", crash)
    with pytest.raises(RuntimeError):
        syslog.poll()
    monkeypatch.undo()
    assert syslog.state() == before
    assert sum(w.count for w in syslog.windows()) == 1

    syslog.poll()
    state = syslog.state()
    assert state is not None and [t["size"] for t in state["templates"]] == [2]
    (window,) = syslog.windows()
    assert window.count == 2 and list(window.templates.values()) == [2]


# --- the miner's speed-ups change nothing ---------------------------------------------------------

MASKS = compile_masks(DEFAULT_MASKS)


def plain_mask(message: str) -> str:
    """Every rule applied in order, none skipped: what masking did before the hints."""
    for rule in DEFAULT_MASKS:
        message = re.sub(rule.pattern, rule.replacement, message)
    return message


_PIECES = [
    *"abcdefxyzABF0123456789 .:/-_=#,+%<>()\\[]'\"",
    "ms",
    "sec",
    " bytes (",
    "://",
    "\u0663",
]
_LOGGY = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=_LOGGY)
def test_skipping_rules_that_cannot_match_masks_exactly_as_every_rule_would(message: str) -> None:
    assert mask_message(message, MASKS) == plain_mask(message)


def digit_shape(text: str) -> str:
    return text.translate(str.maketrans("23456789", "11111111"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=_LOGGY)
def test_masking_treats_the_digits_1_to_9_alike(message: str) -> None:
    # what lets the miner remember a masked text for every message of the same digit shape
    assert all(rule.digit_blind for rule in DEFAULT_MASKS)
    assert digit_shape(mask_message(message, MASKS)) == mask_message(digit_shape(message), MASKS)


_HEX_DIGITS = st.text("0123456789abcdefABCDEF", min_size=4, max_size=14)
_UUIDS = st.tuples(
    *(st.text("0123456789abcdefABCDEF", min_size=k, max_size=k) for k in (8, 4, 4, 4, 12))
)
# Words chosen to sit next to hex words and tempt every rule: units, sizes, paths (Windows ones
# with spaces), times, addresses, signs and the characters the rules look around for.
_NEIGHBOURS = st.sampled_from(
    [
        "ms",
        "sec",
        "seconds",
        "min",
        "hour",
        "bytes",
        "(18.4",
        "KB)",
        "B",
        "b",
        "e",
        "C:\\dir",
        "/var/lib/x",
        "2024-01-01",
        "10:00:00",
        "+0100",
        "10.0.0.1:80",
        "db-1.internal:5432",
        "http://a.b/c",
        "x=",
        "id#",
        "0x1f",
        "%",
        "12",
        "-1",
        "1.5",
        "<",
        ">",
        ".",
        "-",
        ":",
        "_",
        "<NUM>",
        "T",
        "a.b",
        "",
    ]
)
_WORD = st.one_of(
    _HEX_DIGITS,
    _UUIDS.map("-".join),
    st.tuples(_NEIGHBOURS, _HEX_DIGITS).map("".join),
    st.tuples(_HEX_DIGITS, _NEIGHBOURS).map("".join),
    _NEIGHBOURS,
)
_WORDY = st.lists(st.tuples(_WORD, st.sampled_from([" ", " ", "\t", ""])), max_size=10).map(
    lambda words: "".join(word + gap for word, gap in words)
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=_WORDY)
def test_hex_and_uuid_words_masked_first_change_no_mask(message: str) -> None:
    words = mask_hex_tokens(message)
    assert words is None or mask_message(words, MASKS) == mask_message(message, MASKS)


def test_hex_and_uuid_words_are_masked_only_when_whole_and_space_delimited() -> None:
    uuid = "3fa2b1c0-d9e8-4abc-8def-0123456789ab"
    assert mask_hex_tokens(f"Payment {uuid} declined") == "Payment <UUID> declined"
    assert mask_hex_tokens("Session 3fa2b1c0d9e8 expired") == "Session <NUM> expired"
    for untouched in (
        "hash deadbeef abcdef 123456 3fa2b",  # no digit, no letter, too short
        f"Payment {uuid}: declined",  # not delimited by spaces
        "at C:\\Program Files\\app 3fa2b1c0d9e8",  # a Windows path may reach across spaces
    ):
        assert mask_hex_tokens(untouched) is None


def test_a_new_hex_value_is_answered_by_the_shape_of_its_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    masked: list[str] = []

    def counted(message: str, rules: CompiledMasks) -> str:
        masked.append(message)
        return mask_message(message, rules)

    monkeypatch.setattr(templates, "mask_message", counted)
    miner = TemplateMiner()
    first = miner.assign("Session 3fa2b1c0d9e8 expired after 1200 seconds")
    again = miner.assign("Session 9c0e7d2a41ff expired after 3400 seconds")
    assert again == (first[0], False)
    assert masked == ["Session <NUM> expired after 1200 seconds"]  # masked once, for the first


def test_messages_of_one_digit_shape_share_a_mask_only_when_no_digit_survives() -> None:
    messages = [
        "build v2 took 15 ms",
        "build v3 took 27 ms",  # same shape; v2 and v3 survive masking
        "Worker 3 started",
        "Worker 7 started",
        "item 0x1F of 90 ok",
        "item 5x1F of 90 ok",  # 0x is a hex prefix, 5x is not
        "item 0x1F of 10 ok",
    ]
    miner = TemplateMiner()
    drain = new_drain(MiningSettings())
    for message in messages:
        template_id, is_new = miner.assign(message)
        cluster, change = drain.add_log_message(plain_mask(message))
        assert (template_id, is_new) == (cluster.cluster_id, change == "cluster_created"), message
    assert miner.templates() == {int(c.cluster_id): c.get_template() for c in drain.clusters}


def generated_messages(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    variables: dict[str, Callable[[], object]] = {
        "ip": lambda: f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 9)}",
        "port": lambda: rng.choice((80, 5432)),
        "n": lambda: rng.choice((rng.randint(1, 9), rng.randint(1, 99999))),
        "k": lambda: rng.randint(1, 4),
        "user": lambda: rng.choice(("alice", "bob")),
        "hex": lambda: f"{rng.getrandbits(24):06x}",
        "uuid": lambda: f"{rng.getrandbits(32):08x}-1234-4abc-8def-{rng.getrandbits(48):012x}",
        "status": lambda: rng.choice((500, 503)),
        "host": lambda: rng.choice(("db-1.internal", "cache")),
    }
    messages = []
    for _ in range(n):
        event = rng.choice(EVENTS)
        words = event.split()
        if rng.random() < 0.2:  # constants that turn out to vary make templates change
            words[rng.randrange(len(words))] = rng.choice(("alpha", "beta", "gamma"))
        messages.append(" ".join(words).format(**{k: f() for k, f in variables.items()}))
    return messages


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_remembered_assignments_are_the_ones_drain_would_make(seed: int) -> None:
    messages = generated_messages(3000, seed)
    miner = TemplateMiner()
    drain = new_drain(MiningSettings())
    for message in messages:
        template_id, is_new = miner.assign(message)
        cluster, change = drain.add_log_message(plain_mask(message))
        assert (template_id, is_new) == (cluster.cluster_id, change == "cluster_created")
    assert miner.to_state()["templates"] == [
        {"id": c.cluster_id, "tokens": list(c.log_template_tokens), "size": c.size}
        for c in sorted(drain.clusters, key=lambda c: c.cluster_id)
    ]


def assert_mined_as_drain_would(miner: TemplateMiner, messages: list[str]) -> None:
    drain = new_drain(MiningSettings())
    for message in messages:
        template_id, is_new = miner.assign(message)
        cluster, change = drain.add_log_message(plain_mask(message))
        assert (template_id, is_new) == (cluster.cluster_id, change == "cluster_created"), message
    assert miner.to_state()["templates"] == [
        {"id": c.cluster_id, "tokens": list(c.log_template_tokens), "size": c.size}
        for c in sorted(drain.clusters, key=lambda c: c.cluster_id)
    ]


def test_messages_past_the_memory_limits_are_mined_as_drain_would() -> None:
    # each hex or UUID value is a shape of its own: the remembered shapes and messages
    # are dropped several times while the other events recur, and templates change
    messages = generated_messages(3 * CACHE_LIMIT, 5)
    rng = random.Random(5)
    messages += [f"Session {rng.getrandbits(64):016x} expired" for _ in range(2 * CACHE_LIMIT)]
    rng.shuffle(messages)
    assert_mined_as_drain_would(TemplateMiner(), messages)


LOGHUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "loghub"


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="LogHub samples are not on this machine")
@pytest.mark.parametrize("system", ["HDFS", "BGL", "OpenStack", "Thunderbird", "Mac", "Spark"])
def test_loghub_messages_are_mined_as_drain_would(system: str) -> None:
    messages, _ = read_structured(LOGHUB / system / f"{system}_2k.log_structured.csv")
    assert_mined_as_drain_would(TemplateMiner(), messages * 2)


def test_a_bounded_miner_does_not_remember_and_still_matches_drain() -> None:
    messages = generated_messages(1500, 4)
    miner = TemplateMiner(MiningSettings(max_templates=5))
    drain = new_drain(MiningSettings(max_templates=5))
    for message in messages:
        assert miner.assign(message)[0] == drain.add_log_message(plain_mask(message))[0].cluster_id


def test_a_data_directory_from_before_templates_gains_the_window_columns(tmp_path: Path) -> None:
    path = tmp_path / "data" / "selfheal.db"
    open_database(path).dispose()
    with sqlite3.connect(path) as conn:  # the file as the release before sketches wrote it
        conn.execute("DROP TABLE telemetry_templates")
        for name, _ in WINDOW_COLUMNS_ADDED:
            conn.execute(f"ALTER TABLE metric_window DROP COLUMN {name}")
        conn.execute(
            "INSERT INTO metric_window (component, instance, start, end, count, errors, error_rate,"
            " closed, evaluated, anomalous, samples, versions, frames)"
            " VALUES ('catalog', '', '2026-03-01 11:40:00.000000', '2026-03-01 11:41:00.000000',"
            " 1, 0, 0.0, 0, 0, 0, '[5.0]', '{}', '[]')"
        )
    conn.close()

    feed = Feed(tmp_path, "syslog")
    append(feed.log, syslog_line(T0, "Worker 3 started"))
    feed.poll()

    old, new = feed.windows()
    assert (old.samples, old.sketch, old.templates, old.new_templates) == ([5.0], {}, {}, [])
    assert list(new.templates.values()) == [1]
    feed.db.dispose()
