"""The Prometheus text exposition format, series selectors, and the arithmetic on scrapes.

``parse_exposition`` reads format 0.0.4 (``# HELP``, ``# TYPE``, samples with
escaped label values, optional timestamps); it also tolerates OpenMetrics'
``# EOF`` and exemplars. A line it cannot read is counted by reason and
skipped, never fatal: a scrape is judged by what it could read.

``increase`` and ``histogram_quantile`` follow Prometheus's own definitions
(counter resets; linear interpolation within the bucket holding the rank), so
a value derived here matches what a Prometheus server reports for the same data.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped", "unknown"})
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}

Labels = tuple[tuple[str, str], ...]  # sorted by name


class Malformed(ValueError):
    """A line (or selector) that does not follow the format; ``reason`` is a short key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: series name, labels (sorted), value and optional timestamp (ms)."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None

    def label(self, name: str) -> str | None:
        """The value of label ``name``, or None."""
        return dict(self.labels).get(name)


@dataclass
class Family:
    """A metric family: its declared type and help, and its samples in file order."""

    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


@dataclass
class Exposition:
    """One parsed scrape."""

    families: dict[str, Family] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)

    def samples(self) -> Iterator[Sample]:
        """Every sample of every family."""
        for family in self.families.values():
            yield from family.samples


def _unescape_help(text: str) -> str:
    """HELP text escapes only backslash and newline; any other backslash stays as written."""
    escapes = {"\\": "\\", "n": "\n"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), text)


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The escaped string starting at the quote at ``text[i]``, and the index after its end."""
    if i >= len(text) or text[i] != '"':
        raise Malformed("bad_labels")
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in LABEL_ESCAPES:
                raise Malformed("bad_escape")
            out.append(LABEL_ESCAPES[text[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    raise Malformed("bad_labels")


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def parse_matchers(
    text: str, i: int, operators: Sequence[str]
) -> tuple[list[tuple[str, str, str]], int]:
    """``{name op "value", ...}`` from the brace at ``text[i]``: (name, op, value) and the index after ``}``."""
    matchers: list[tuple[str, str, str]] = []
    i = _skip_blanks(text, i + 1)
    while i < len(text) and text[i] != "}":
        name = LABEL_NAME.match(text, i)
        if name is None:
            raise Malformed("bad_labels")
        i = _skip_blanks(text, name.end())
        op = next((o for o in operators if text.startswith(o, i)), None)
        if op is None:
            raise Malformed("bad_labels")
        value, i = _quoted(text, _skip_blanks(text, i + len(op)))
        matchers.append((name.group(), op, value))
        i = _skip_blanks(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip_blanks(text, i + 1)
        elif i < len(text) and text[i] != "}":
            raise Malformed("bad_labels")
    if i >= len(text):
        raise Malformed("bad_labels")
    return matchers, i + 1


def parse_value(token: str) -> float:
    """A sample value as Prometheus writes it (``+Inf``, ``-Inf``, ``NaN`` included)."""
    if "_" in token:  # Python's float() accepts digit separators; the format does not
        raise Malformed("bad_value")
    try:
        return float(token)
    except ValueError:
        raise Malformed("bad_value") from None


def parse_sample(line: str) -> Sample:
    """One sample line; raises ``Malformed`` with the reason."""
    name = METRIC_NAME.match(line)
    if name is None:
        raise Malformed("bad_name")
    i = name.end()
    labels: dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        matchers, i = parse_matchers(line, i, ("=",))
        for label, _, text in matchers:
            if label in labels:
                raise Malformed("duplicate_label")
            labels[label] = text
    if i < len(line) and line[i] not in " \t":
        raise Malformed("bad_name")
    rest = line[i:].split(" #", 1)[0].split()  # an OpenMetrics exemplar follows " # "
    if not rest or len(rest) > 2:
        raise Malformed("bad_value")
    value = parse_value(rest[0])
    timestamp = None
    if len(rest) == 2:
        try:
            timestamp = int(rest[1])
        except ValueError:
            raise Malformed("bad_timestamp") from None
    return Sample(name.group(), tuple(sorted(labels.items())), value, timestamp)


def _family_name(sample_name: str, families: Mapping[str, Family]) -> str:
    """The family a sample belongs to: its own name, or a histogram/summary it is a part of."""
    if sample_name in families:
        return sample_name
    for kind, suffixes in SUFFIXES.items():
        for suffix in suffixes:
            base = sample_name.removesuffix(suffix)
            if base != sample_name and base in families and families[base].type == kind:
                return base
    return sample_name


def _comment(line: str, exposition: Exposition) -> None:
    parts = line[1:].strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HELP", "TYPE"):
        return  # a plain comment, or OpenMetrics' "# EOF"
    keyword, name = parts[0], parts[1]
    text = parts[2] if len(parts) == 3 else ""
    if METRIC_NAME.fullmatch(name) is None:
        exposition.rejected["bad_name"] += 1
        return
    family = exposition.families.setdefault(name, Family(name))
    if keyword == "HELP":
        family.help = _unescape_help(text)
    elif text.strip() not in TYPES:
        exposition.rejected["bad_type"] += 1
    elif family.samples and family.type != text.strip():
        exposition.rejected["late_type"] += 1
    else:
        family.type = text.strip()


def parse_exposition(text: str) -> Exposition:
    """Every family and sample of a scrape; malformed lines are counted in ``rejected`` and skipped."""
    exposition = Exposition()
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            _comment(line, exposition)
            continue
        try:
            sample = parse_sample(line)
        except Malformed as exc:
            exposition.rejected[exc.reason] += 1
            continue
        name = _family_name(sample.name, exposition.families)
        exposition.families.setdefault(name, Family(name)).samples.append(sample)
    return exposition


# --- selectors -------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """``name{label="v", label!="v", label=~"re", label!~"re"}``, as in PromQL (regexes anchored)."""

    name: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    def matches(self, sample: Sample, name: str | None = None) -> bool:
        """Whether ``sample`` is a series of this selector (named ``name`` if given)."""
        if sample.name != (name or self.name):
            return False
        labels = dict(sample.labels)
        for label, op, value in self.matchers:
            got = labels.get(label, "")
            if op == "=" and got != value:
                return False
            if op == "!=" and got == value:
                return False
            if op in ("=~", "!~") and (re.fullmatch(value, got) is None) == (op == "=~"):
                return False
        return True


def parse_selector(text: str) -> Selector:
    """A series selector from configuration; raises ``ValueError`` saying what is wrong."""
    stripped = text.strip()
    name = METRIC_NAME.match(stripped)
    if name is None:
        raise ValueError(f"selector {text!r} must start with a metric name")
    i = name.end()
    matchers: list[tuple[str, str, str]] = []
    if i < len(stripped) and stripped[i] == "{":
        try:
            matchers, i = parse_matchers(stripped, i, ("=~", "!~", "!=", "="))
        except Malformed as exc:
            raise ValueError(f"selector {text!r}: {exc.reason}") from None
    if stripped[i:].strip():
        raise ValueError(f"selector {text!r} has text after its labels")
    for _, op, value in matchers:
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"selector {text!r}: bad regular expression: {exc}") from None
    return Selector(name.group(), tuple(matchers))


# --- arithmetic --------------------------------------------------------------------


def increase(previous: float | None, current: float) -> float:
    """How much a counter grew; a drop is a reset (the process restarted and counts from zero)."""
    if previous is None or current < previous:
        return current
    return current - previous


def rate(previous: float | None, current: float, seconds: float) -> float:
    """Per-second increase over ``seconds``."""
    if seconds <= 0:
        raise ValueError("a rate needs a positive interval")
    return increase(previous, current) / seconds


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus computes it.

    NaN when undefined (no ``+Inf`` bucket, fewer than two buckets, no
    observations). Within the bucket that holds rank ``q x total`` the value
    is interpolated linearly from its lower bound (0 for the first bucket);
    a rank in the ``+Inf`` bucket yields the highest finite bound.
    """
    if not 0 <= q <= 1:
        return q if math.isnan(q) else (-math.inf if q < 0 else math.inf)
    bounds, counts = _cumulative(buckets)
    if not counts or not counts[-1] > 0:
        return math.nan
    return _interpolate(q * counts[-1], bounds, counts)


def _cumulative(buckets: Iterable[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Sorted bounds (equal bounds merged) and counts forced monotonic; empty if unusable."""
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return [], []
    counts: list[float] = []
    for _, count in ordered:  # skewed scrapes can leave a bucket below the one before it
        counts.append(max(count, counts[-1]) if counts else count)
    return [bound for bound, _ in ordered], counts


def _interpolate(rank: float, bounds: list[float], counts: list[float]) -> float:
    b = next((i for i, c in enumerate(counts[:-1]) if c >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count <= 0:  # only for q = 0 over an empty first bucket: 0/0, as in Prometheus
        return math.nan
    return start + (bounds[b] - start) * (rank / count)


# --- from scrapes to windows ---------------------------------------------------------

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass
class MetricWindow:
    """What the metrics say about one component (and instance) in one window so far.

    A scrape source adds counter and bucket increases; a query source puts the
    values the server computed (``put``), latencies already in milliseconds.
    ``gauges`` holds the last reading of each watched gauge in the window.
    """

    count: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)

    def add(self, other: MetricWindow) -> None:
        """Add another increase of the same window."""
        self.count += other.count
        self.errors += other.errors
        for bound, count in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + count

    def put(self, name: str, value: float, latency_scale: float) -> bool:
        """Take a computed value (``count``, ``errors``, ``error_rate``, ``p50`` ...); False if impossible."""
        if value < 0 or (name == "error_rate" and value > 1):
            return False
        if name == "count":
            self.count += value
        elif name == "errors":
            self.errors += value
        else:
            scaled = value if name == "error_rate" else value * latency_scale
            self.values[name] = max(scaled, self.values.get(name, scaled))
        return True

    def keep_gauge(self, name: str, value: float) -> None:
        """A gauge's reading; of several series of one window, the largest (nearest its limit)."""
        self.gauges[name] = max(value, self.gauges.get(name, -math.inf))

    def quantiles(self, latency_scale: float) -> dict[str, float | None]:
        """P50/P95/P99 from the buckets (scaled), else the values put; None where undefined."""
        result: dict[str, float | None] = {}
        for name, q in QUANTILES:
            if self.buckets:
                value = histogram_quantile(q, self.buckets.items()) * latency_scale
                result[name] = value if math.isfinite(value) else None
            else:
                result[name] = self.values.get(name)
        return result

    def to_json(self) -> list[Any]:
        """A compact JSON form for the cursor (bounds as text: ``inf`` is not JSON)."""
        data = [self.count, self.errors, [[repr(b), c] for b, c in self.buckets.items()]]
        return [*data, self.gauges] if self.gauges else data

    @classmethod
    def from_json(cls, data: list[Any]) -> MetricWindow:
        """The inverse of ``to_json`` (a cursor written before gauges has three items)."""
        count, errors, buckets, *rest = data
        gauges = {str(k): float(v) for k, v in rest[0].items()} if rest else {}
        buckets = {float(b): float(c) for b, c in buckets}
        return cls(float(count), float(errors), buckets, gauges=gauges)


@dataclass(frozen=True, slots=True)
class Tracked:
    """One scraped series a source maps: its role, component and value.

    ``group`` names the series a reset is judged on together: a histogram's
    buckets reset as one, a counter on its own.
    """

    role: str  # "requests" | "errors" | "latency"
    group: str
    component: str
    instance: str
    bound: float
    value: float


@dataclass(frozen=True)
class ScrapeMapping:
    """How a scrape's series map to windows (from a scrape source's settings)."""

    requests: Selector | None
    errors: Selector | None
    latency: Selector | None
    component_label: str
    component: str | None = None
    instance_label: str | None = None


def _roles(mapping: ScrapeMapping) -> list[tuple[str, Selector, str]]:
    roles = []
    for role, selector, suffix in (
        ("requests", mapping.requests, ""),
        ("errors", mapping.errors, ""),
        ("latency", mapping.latency, "_bucket"),
    ):
        if selector is not None:
            roles.append((role, selector, selector.name + suffix))
    return roles


def tracked_series(
    exposition: Exposition, mapping: ScrapeMapping, rejected: Counter[str]
) -> dict[str, Tracked]:
    """The series of a scrape that a source maps, by a key stable across scrapes."""
    tracked: dict[str, Tracked] = {}
    roles = _roles(mapping)
    for sample in exposition.samples():
        for role, selector, name in roles:
            if not selector.matches(sample, name):
                continue
            bound = math.inf
            if role == "latency":
                try:
                    bound = parse_value(sample.label("le") or "")
                except Malformed:
                    rejected["bad_bucket"] += 1
                    continue
            if not math.isfinite(sample.value) or sample.value < 0:
                rejected["bad_counter"] += 1
                continue
            component = sample.label(mapping.component_label) or mapping.component
            if not component:
                rejected["no_component"] += 1
                continue
            instance = (
                sample.label(mapping.instance_label) if mapping.instance_label else ""
            ) or ""
            rest = [kv for kv in sample.labels if not (role == "latency" and kv[0] == "le")]
            group = json.dumps([role, sample.name, rest])
            key = json.dumps([role, sample.name, sample.labels]) if role == "latency" else group
            tracked[key] = Tracked(role, group, component, instance, bound, sample.value)
    return tracked


@dataclass(frozen=True)
class WatchedGauge:
    """A gauge a component watches: its name in windows and the selector of its series."""

    component: str
    name: str
    selector: Selector


def gauge_readings(
    exposition: Exposition,
    watched: Sequence[WatchedGauge],
    mapping: ScrapeMapping,
    rejected: Counter[str],
) -> dict[tuple[str, str], dict[str, float]]:
    """Each watched gauge's value per (component, instance), ``""`` being all instances.

    A selector matching several series of one component (instances, or labels
    the selector leaves open) keeps the largest: the series nearest its limit.
    """
    readings: dict[tuple[str, str], dict[str, float]] = {}
    for sample in exposition.samples():
        for watch in watched:
            if not watch.selector.matches(sample):
                continue
            component = sample.label(mapping.component_label) or mapping.component
            if component != watch.component:
                rejected["no_component"] += component is None
                continue
            if not math.isfinite(sample.value):
                rejected["bad_gauge"] += 1
                continue
            instance = (
                sample.label(mapping.instance_label) if mapping.instance_label else ""
            ) or ""
            for target in [(component, "")] + ([(component, instance)] if instance else []):
                values = readings.setdefault(target, {})
                values[watch.name] = max(sample.value, values.get(watch.name, -math.inf))
    return readings


def fold_deltas(
    tracked: Mapping[str, Tracked], previous: Mapping[str, float]
) -> dict[tuple[str, str], MetricWindow]:
    """The increase since ``previous`` per (component, instance), ``""`` being all instances.

    A series absent from the previous scrape is new and counts from zero; a
    group with any value lower than before was reset and counts from zero.
    """
    reset = {t.group for key, t in tracked.items() if key in previous and t.value < previous[key]}
    windows: dict[tuple[str, str], MetricWindow] = {}
    for key, t in tracked.items():
        delta = increase(None if t.group in reset else previous.get(key), t.value)
        targets = [(t.component, "")] + ([(t.component, t.instance)] if t.instance else [])
        for target in targets:
            window = windows.setdefault(target, MetricWindow())
            if t.role == "requests":
                window.count += delta
            elif t.role == "errors":
                window.errors += delta
            else:
                window.buckets[t.bound] = window.buckets.get(t.bound, 0.0) + delta
    return windows
