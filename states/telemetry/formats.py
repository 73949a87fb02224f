"""One interface over every log format a source can be configured with.

Ingestion reads bytes from files and must not care whether they are JSON
lines, logfmt, access logs, syslog, Serilog or conductor beat events. A source's
configuration is a ``FormatSpec``; ``make_parser`` validates it once and
returns a ``LineParser`` whose ``parse`` never raises on bad input: it returns a
``Record``, a ``Rejection`` with a short reason to count and skip, or ``None``
when a line was taken in but completes no record yet (a conductor start).
``MultilineParser`` adds stack-trace joining for the text formats.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from states.telemetry import conductor, fields, json_lines, logfmt, regex_formats, serilog, syslog
from states.telemetry.fields import Rejection
from states.telemetry.mapping import DEFAULT_FIELDS, BuildRules, RecordBuilder, compile_paths
from states.telemetry.records import Record
from states.telemetry.stacktraces import JoinedLines, StackTraceJoiner

FormatKind = Literal["json", "logfmt", "regex", "nginx", "apache", "syslog", "serilog", "conductor"]
DurationUnit = Literal["ns", "us", "ms", "s"]
ParseResult = Record | Rejection | None
Clock = Callable[[], datetime]

DEFAULT_MAX_LINE_BYTES: Final = 64 * 1024
_UNIT_MS: Final[dict[str, float]] = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1000.0}
_ACCESS_LOG_UNIT: Final[dict[str, DurationUnit]] = {"nginx": "s", "apache": "us"}


class LineParser(Protocol):
    """Turns one raw line (without or with its newline) into a parse result."""

    def parse(self, raw: bytes) -> Record | Rejection | None: ...


class FormatSpec(BaseModel):
    """How one source writes its lines.

    ``fields`` maps record fields (``timestamp``, ``component``, ``operation``,
    ``duration``, ``status``, ``level``, ``message``, ``version``, ``instance``,
    ``stack``) to the names that hold them: dotted paths for JSON, keys for
    logfmt, group names for regex. Entries replace the defaults per field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FormatKind = "json"
    fields: dict[str, list[str]] = Field(default_factory=dict)
    pattern: str | None = None
    component: str | None = None
    component_from_path: bool = True
    timestamp_formats: list[str] = Field(default_factory=lambda: ["iso8601", "epoch"])
    timezone: str = "UTC"
    duration_unit: DurationUnit | None = None
    max_line_bytes: int = Field(default=DEFAULT_MAX_LINE_BYTES, gt=0)
    beat_max_age_s: float = Field(default=3600.0, gt=0)

    @field_validator("fields", mode="before")
    @classmethod
    def _single_names_are_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            fields.zone_named(value)
        except (KeyError, ValueError) as error:
            raise ValueError(
                f"unknown timezone {value!r}: use UTC, +02:00 or an IANA name"
            ) from error
        return value

    @model_validator(mode="after")
    def _pattern_fits_kind(self) -> FormatSpec:
        if self.kind == "regex":
            if not self.pattern:
                raise ValueError("kind 'regex' needs a 'pattern' with named groups")
            try:
                groups = set(re.compile(self.pattern).groupindex)
            except (re.error, OverflowError, RecursionError) as error:
                raise ValueError(f"pattern does not compile: {error}") from error
            if "timestamp" not in groups and "timestamp" not in self.fields:
                raise ValueError("pattern needs a (?P<timestamp>...) group or a fields entry")
        elif self.pattern is not None:
            raise ValueError(f"'pattern' only applies to kind 'regex', not {self.kind!r}")
        compile_paths(self.fields, dotted=True)
        return self


def make_parser(
    spec: FormatSpec, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> LineParser:
    """The parser for one source; ``clock`` dates syslog lines that carry no year."""
    return _FACTORIES[spec.kind](spec, clock)


def _json_parser(spec: FormatSpec, _: Clock) -> LineParser:
    builder = RecordBuilder(build_rules(spec, dotted=True))
    return json_lines.JsonLinesParser(builder, spec.max_line_bytes)


def _logfmt_parser(spec: FormatSpec, _: Clock) -> LineParser:
    builder = RecordBuilder(build_rules(spec, dotted=False))
    return logfmt.LogfmtParser(builder, spec.max_line_bytes)


def _regex_parser(spec: FormatSpec, _: Clock) -> LineParser:
    builder = RecordBuilder(build_rules(spec, dotted=False))
    pattern = re.compile(spec.pattern or "")
    return regex_formats.RegexParser(pattern, builder, spec.max_line_bytes)


def _access_log_parser(spec: FormatSpec, _: Clock) -> LineParser:
    unit = spec.duration_unit or _ACCESS_LOG_UNIT[spec.kind]
    rules = regex_formats.AccessLogRules(_UNIT_MS[unit], spec.component, spec.component_from_path)
    return regex_formats.AccessLogParser(rules, spec.max_line_bytes)


def _syslog_parser(spec: FormatSpec, clock: Clock) -> LineParser:
    rules = syslog.SyslogRules(spec.component, fields.zone_named(spec.timezone))
    return syslog.SyslogParser(rules, spec.max_line_bytes, clock)


def _serilog_parser(spec: FormatSpec, _: Clock) -> LineParser:
    rules = serilog.SerilogRules(spec.component, fields.zone_named(spec.timezone))
    return serilog.SerilogParser(rules, spec.max_line_bytes)


def _conductor_parser(spec: FormatSpec, _: Clock) -> LineParser:
    pairing = conductor.BeatPairing(max_age=timedelta(seconds=spec.beat_max_age_s))
    zone = fields.zone_named(spec.timezone)
    return conductor.ConductorParser(pairing, spec.max_line_bytes, zone)


_FACTORIES: Final[dict[str, Callable[[FormatSpec, Clock], LineParser]]] = {
    "json": _json_parser,
    "logfmt": _logfmt_parser,
    "regex": _regex_parser,
    "nginx": _access_log_parser,
    "apache": _access_log_parser,
    "syslog": _syslog_parser,
    "serilog": _serilog_parser,
    "conductor": _conductor_parser,
}


def build_rules(spec: FormatSpec, dotted: bool) -> BuildRules:
    """Compiled field mapping: defaults overlaid with the spec's entries."""
    names: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_FIELDS.items()}
    if spec.kind == "regex":
        names = {target: [target] for target in DEFAULT_FIELDS}
    names.update(spec.fields)
    if spec.kind == "logfmt" and "duration" not in spec.fields:
        names["duration"] = ["duration_ms", "duration", "dur", "latency"]
    return BuildRules(
        paths=compile_paths(names, dotted=dotted),
        timestamp_formats=tuple(spec.timestamp_formats),
        naive_zone=fields.zone_named(spec.timezone),
        duration_unit_ms=_UNIT_MS[spec.duration_unit or "ms"],
        default_component=spec.component,
    )


class MultilineParser:
    """Joins stack-trace lines onto the record they follow, then parses it.

    Results come out when the next record starts; call ``flush`` when the
    source goes quiet or ends. Held results (``None``) are not returned.
    """

    def __init__(self, parser: LineParser, joiner: StackTraceJoiner | None = None) -> None:
        self._parser = parser
        self._joiner = joiner or StackTraceJoiner()

    def feed(self, raw: bytes) -> list[Record | Rejection]:
        """Add one line; returns the results of the records it completed."""
        return self._finish_all(self._joiner.feed(raw))

    def flush(self) -> list[Record | Rejection]:
        """Parse the record still being assembled."""
        return self._finish_all(self._joiner.flush())

    def _finish_all(self, joined: list[JoinedLines]) -> list[Record | Rejection]:
        results = (self._finish(group) for group in joined)
        return [result for result in results if result is not None]

    def _finish(self, joined: JoinedLines) -> ParseResult:
        result = self._parser.parse(joined.head)
        if isinstance(result, Record) and joined.continuation and not result.frames:
            return dataclasses.replace(result, frames=joined.frames())
        return result
