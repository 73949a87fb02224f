"""The Prometheus text exposition format and series selectors.

``parse_exposition`` reads format 0.0.4 (``# HELP``, ``# TYPE``, samples with
escaped label values, optional timestamps); it also tolerates OpenMetrics'
``# EOF`` and exemplars. A line it cannot read is counted by reason and
skipped, never fatal: a scrape is judged by what it could read. What the
samples mean for windows (increases, quantiles) is ``metric_windows``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

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
