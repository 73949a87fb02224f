"""Log anomalies from per-window template counts: new error texts, and templates far above their usual.

A release that breaks something usually says so in words before any
objective moves: an error message nobody has seen before, or a known warning
that suddenly fills the log. Both are judged on what windows already hold
(template counts, the templates first seen in each window):

- a template first seen within the last ``new_template_windows`` windows
  whose creating record was logged at an error level (or, when the format
  gave no level, whose text has error words) is a ``new_error_template``;
- a known template whose count in the window is a rare event under its own
  usual rate (a Poisson tail below ``spike_alpha``), at least
  ``spike_factor`` times that rate and ``spike_min_count`` messages, is a
  ``log_spike``. The usual rate is the median count of its recent windows,
  robust to an earlier burst; a template seen in fewer than half of them has
  a median of zero, so its mean stands in, floored at one message over the
  whole baseline.

Pure functions; the template texts and levels are looked up by the caller.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from typing import Final

from states.detect.judgement import Finding
from states.detect.policies import LogDetection
from states.telemetry.records import ERROR_LEVELS

NEW_ERROR: Final = "new_error_template"
SPIKE: Final = "log_spike"
METRIC_PREFIX: Final = "template:"
# "info" is what every format records when a line names no level, so it decides nothing.
UNDECIDED_LEVELS: Final = frozenset({"", "info"})
ERROR_WORDS: Final = re.compile(
    r"\b(?:errors?|exceptions?|fail(?:s|ed|ure|ing)?|fatal|panic(?:ked)?|traceback|crash(?:ed)?"
    r"|refused|denied|timed?[ -]?out|unavailable|cannot|can't|unable|abort(?:ed)?|segfault"
    r"|killed|unhandled|unreachable)\b",
    re.IGNORECASE,
)
MAX_THRESHOLD_STEPS: Final = 10_000


def metric_of(template_key: str) -> str:
    """The metric name of a template's anomalies (``template:<source>:<id>``)."""
    return METRIC_PREFIX + template_key


def looks_like_error(text: str, level: str | None) -> bool:
    """An error level decides; another explicit level (warning, debug) rules it out; else words."""
    if level in ERROR_LEVELS:
        return True
    if level is not None and level not in UNDECIDED_LEVELS:
        return False
    return ERROR_WORDS.search(text) is not None


def poisson_tail(count: int, rate: float) -> float:
    """P(X >= count) for X ~ Poisson(rate), summed where the terms shrink (no cancellation)."""
    if count <= 0:
        return 1.0
    if rate <= 0:
        return 0.0
    if count > rate:
        term, total, k = _pmf(count, rate), 0.0, count
        while term > 0.0 and term > total * 1e-17:
            total += term
            k += 1
            term *= rate / k
        return min(1.0, total)
    term, total, k = _pmf(count - 1, rate), 0.0, count - 1
    while k >= 0 and term > 0.0 and term > total * 1e-17:
        total += term
        term *= k / rate
        k -= 1
    return max(0.0, 1.0 - total)


def _pmf(k: int, rate: float) -> float:
    return math.exp(-rate + k * math.log(rate) - math.lgamma(k + 1))


def usual_count(counts: Sequence[int]) -> float:
    """A template's usual count per window (see the module docstring)."""
    median = float(statistics.median(counts))
    if median > 0:
        return median
    return max(statistics.fmean(counts), 1.0 / len(counts))


def spike_threshold(rate: float, policy: LogDetection) -> int:
    """The smallest count that is a spike for a template whose usual count is ``rate``."""
    count = max(policy.spike_min_count, math.ceil(policy.spike_factor * rate))
    for _ in range(MAX_THRESHOLD_STEPS):
        if poisson_tail(count, rate) < policy.spike_alpha:
            break
        count += 1
    return count


def new_error_finding(
    component: str, key: str, count: int, text: str, level: str | None, policy: LogDetection
) -> Finding | None:
    """A ``new_error_template`` finding for a young template seen ``count`` times, if it is one."""
    if not policy.new_errors or count < policy.new_error_min_count:
        return None
    if not looks_like_error(text, level):
        return None
    return Finding(
        component=component,
        metric=metric_of(key),
        category=NEW_ERROR,
        detector="new_template",
        value=float(count),
        threshold=float(policy.new_error_min_count),
        baseline=None,
        score=1.0,
        evidence={"template": text, "template_key": key, "level": level, "count": count},
    )


def spike_finding(
    component: str, key: str, count: int, baseline: Sequence[int], text: str, policy: LogDetection
) -> Finding | None:
    """A ``log_spike`` finding when ``count`` is far above the template's ``baseline`` counts."""
    if not policy.spikes or len(baseline) < policy.min_baseline_windows:
        return None
    rate = usual_count(baseline)
    threshold = spike_threshold(rate, policy)
    if count < threshold:
        return None
    p_value = poisson_tail(count, rate)
    return Finding(
        component=component,
        metric=metric_of(key),
        category=SPIKE,
        detector="template_baseline",
        value=float(count),
        threshold=float(threshold),
        baseline=rate,
        score=round(1.0 - p_value, 9),
        evidence={
            "template": text,
            "template_key": key,
            "count": count,
            "usual_count": rate,
            "threshold": threshold,
            "p_value": p_value,
            "baseline_windows": len(baseline),
        },
    )
