"""Whether a change adds the kind of code that causes the kind of regression seen.

When telemetry points at no line (a latency or memory regression without a
stack trace), a person reading the release's diffs looks for the usual
suspects: a sleep, a retry loop or a query per item for latency; a cache or a
module-level collection that only grows for memory; a raise, a parse or an
index that may not exist for errors. These are those cues, for Python, Java,
JavaScript and their relatives, matched against the lines a commit added.

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
    r"SELECT\s+\*|\b(?:findAll|queryAll|scanAll|fetchAll|full_scan|scan)\s*\(",
    r"\bPromise\.all\s*\(.*\.map\s*\(",
    r"\bawait\b.*\bfor\b|\bfor\b.*\bawait\b",
)
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
)
CUES: dict[str, tuple[re.Pattern[str], ...]] = {
    category: tuple(re.compile(p) for p in patterns)
    for category, patterns in (("latency", _LATENCY), ("memory", _MEMORY), ("errors", _ERRORS))
}


# Anomaly categories whose cues are another category's.
CUES_OF_CATEGORY = {"memory_leak": "memory", "new_error_template": "errors", "log_spike": "errors"}


def matches_category(added_lines: Iterable[str], category: str) -> bool:
    """Whether any added line carries a cue of ``category`` (unknown categories never match)."""
    patterns = CUES.get(CUES_OF_CATEGORY.get(category, category), ())
    return any(p.search(line) for line in added_lines for p in patterns)
