"""Whether a change adds the kind of code that causes the kind of regression seen.

When telemetry points at no line (a latency or memory regression without a
stack trace), a person reading the release's diffs looks for the usual
suspects: a sleep, a retry loop, a table scan, a query per item or a list
searched per item for latency; a cache or a module-level collection that only
grows for memory; a raise, a parse, an index that may not exist or a division
by a collection's size (empty one day) for errors. These are those cues, for
Python, Java, JavaScript and their relatives, matched against the lines a
commit added.

A person also reads what the line does, not every word on it: "retrying" in
a log message retries nothing, and a query keyed by ``WHERE`` or a lookup
given a criterion is not a table scan. So code cues are matched against the
line with its string literals emptied, and query cues against the strings
themselves, where SQL lives.

They are hints, not proof: plenty of harmless changes add a raise or a query,
which is why the feature built on them weighs less than blame or frames.
Detection's categories name the cues they read: a ``memory_leak`` reads the
memory cues; a ``new_error_template`` or a ``log_spike`` (a new or surging
message, nearly always an error or a warning) the error cues.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_LATENCY = (
    r"\bsleep\s*\(|\bThread\.sleep\b|\bsetTimeout\s*\(|\bretr(?:y|ies|ying)\b|\bbackoff\b",
    r"\bfor\b.*\b(?:query|fetch|select|request|load|find|get)\w*\s*\(",
    r"\b(?:query|fetch|select|request|load|find|get)\w*\s*\([^)]*\)\s+for\b",  # per item
    r"\.(?:map|forEach|stream\(\)\.map)\s*\(.*\b(?:query|fetch|select|request|load|find)\w*\s*\(",
    # Everything fetched, no criterion given: at most a table name.
    r"\b(?:findAll|queryAll|scanAll|fetchAll|full_scan|scan)\s*\(\s*(?:\"\"|'')?\s*\)",
    r"\bPromise\.all\s*\(.*\.map\s*\(",
    r"\bawait\b.*\bfor\b|\bfor\b.*\bawait\b",
    # A linear membership test inside a loop over a collection: quadratic.
    r"\.(?:filter|map|forEach|some|every|find|anyMatch|allMatch|noneMatch)\s*\(.*"
    r"\.(?:contains|includes|indexOf)\s*\(",
    r"\bfor\s+\w+\s+in\s+\w+.*\bif\b.*\bin\s+\w+\s*[\])]",
)
# A query without a WHERE (or a bound on the rows) reads the whole table.
_LATENCY_QUERIES = (r"(?i)^\s*SELECT\b(?!.*\b(?:WHERE|LIMIT|TOP|FETCH\s+FIRST)\b)",)
_MEMORY = (
    r"(?i:cache|memo)\w*\s*(?:\[[^\]]*\]\s*=[^=]|\.(?:put|set|add|append|push|update)\s*\()",
    r"\b[A-Z][A-Z0-9_]{2,}\s*(?:\[[^\]]*\]\s*=[^=]|\.(?:append|add|push|put|set|extend)\s*\()",
    r"(?i:\bhistory|\bbuffer|\bbacklog)\w*\s*\.(?:append|add|push|extend)\s*\(",
    r"\blru_cache\s*\(\s*maxsize\s*=\s*None|@cache\b|@functools\.cache\b",
    r"\bstatic\b.*\b(?:List|Map|Set)\s*<",
)
_ERRORS = (
    r"\braise\b|\bthrow\b|\brequireNonNull\b|\bassert\b",
    r"\bint\s*\(|\bfloat\s*\(|\bparse(?:Int|Float|Long)?\s*\(|\bJSON\.parse\s*\(|\bjson\.loads\s*\(",
    r"\.split\s*\([^)]*\)\s*\[\s*\d+\s*\]|\[\s*0\s*\]\s*\.|\.get\s*\(\s*0\s*\)",
    r"\]\s*\.\s*\w+\s*\[",
    # Dividing by a collection's size fails (or yields NaN) on an empty one.
    r"/\s*(?:len\s*\(|\w+\.(?:size\s*\(\s*\)|length\b|count\s*\())",
)


def _compiled(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


CUES: dict[str, tuple[re.Pattern[str], ...]] = {
    "latency": _compiled(*_LATENCY),
    "memory": _compiled(*_MEMORY),
    "errors": _compiled(*_ERRORS),
}
QUERY_CUES: dict[str, tuple[re.Pattern[str], ...]] = {"latency": _compiled(*_LATENCY_QUERIES)}

_STRING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`")


def code_of(line: str) -> str:
    """The line with every string literal emptied (its quotes kept)."""
    return _STRING.sub(lambda m: m.group(0)[0] * 2, line)


def strings_of(line: str) -> list[str]:
    """The contents of the line's string literals."""
    return [m.group(0)[1:-1] for m in _STRING.finditer(line)]


# Anomaly categories whose cues are another category's.
CUES_OF_CATEGORY = {"memory_leak": "memory", "new_error_template": "errors", "log_spike": "errors"}


def matches_category(added_lines: Iterable[str], category: str) -> bool:
    """Whether any added line carries a cue of ``category`` (unknown categories never match)."""
    kind = CUES_OF_CATEGORY.get(category, category)
    code_cues, query_cues = CUES.get(kind, ()), QUERY_CUES.get(kind, ())
    for line in added_lines:
        code = code_of(line)
        if any(p.search(code) for p in code_cues):
            return True
        if query_cues and any(p.search(s) for s in strings_of(line) for p in query_cues):
            return True
    return False
