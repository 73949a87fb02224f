"""Sources in any supported format feed the same windows, with stack frames attached."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.settings import ConfigError, load_settings
from states.telemetry.ingest import poll_sources
from storage import window_store
from storage.db import open_database

NOW = datetime(2026, 11, 24, 7, 31, tzinfo=UTC)

LOGFMT_WITH_TRACEBACK = """\
ts=2026-11-24T07:30:00Z level=error component=catalog operation="GET /x" duration=12ms status=500 msg=boom
Traceback (most recent call last):
  File "/srv/app/shop/catalog.py", line 42, in lookup
    return self.items[sku]
KeyError: 'x'
ts=2026-11-24T07:30:01Z level=info component=catalog operation="GET /x" duration=3ms status=200 msg=ok
this line has no fields at all
"""


def _config(tmp_path: Path, source_table: str) -> Path:
    path = tmp_path / "selfheal.toml"
    path.write_text(
        f"""
[agent]
data_dir = "data"
[[telemetry.sources]]
name = "app"
paths = ["logs/*.log"]
{source_table}
[deploy]
kind = "command"
[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["echo", "abc1234"]
"""
    )
    return path


def test_a_logfmt_source_joins_a_traceback_onto_its_record(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text(LOGFMT_WITH_TRACEBACK)
    settings = load_settings(_config(tmp_path, 'format = "logfmt"'))
    db = open_database(settings.agent.data_dir / "selfheal.db")

    report = poll_sources(settings, db, NOW)

    assert report.records == 2
    assert report.rejected == {"no_component": 1}
    (window,) = [w for w in db.query(window_store.open_windows) if w.instance == ""]
    assert (window.component, window.count, window.errors) == ("catalog", 2, 1)
    assert window.frames == [["/srv/app/shop/catalog.py", 42, "lookup"]]
    cursor = db.query(window_store.cursors)["app:" + str(tmp_path / "logs" / "app.log")]
    assert cursor.rejected == {"no_component": 1}
    db.dispose()


def test_a_format_table_configures_the_json_field_mapping(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    line = (
        '{"when": "2026-11-24T07:30:00Z", "svc": {"name": "cart"}, "took": "250ms", "code": 200}\n'
    )
    (tmp_path / "logs" / "app.log").write_text(line)
    table = """[telemetry.sources.format]
kind = "json"
fields = { timestamp = "when", component = "svc.name", duration = "took", status = "code" }"""
    settings = load_settings(_config(tmp_path, table))
    db = open_database(settings.agent.data_dir / "selfheal.db")

    poll_sources(settings, db, NOW)

    (window,) = [w for w in db.query(window_store.open_windows) if w.instance == ""]
    assert (window.component, window.count, window.samples) == ("cart", 1, [250.0])
    db.dispose()


def test_an_unknown_format_kind_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(_config(tmp_path, 'format = "xml"'))

    message = str(error.value)
    assert "selfheal.toml" in message
    assert "telemetry.sources.0.format.kind" in message
