"""Incident signatures and how much a pattern is trusted.

A signature is readable on purpose (``component:category:metric:files``) so
an operator can tell from ``selfheal patterns`` what a pattern is about.
"""

from __future__ import annotations

from collections.abc import Iterable


def signature_of(component: str, category: str, metric: str, files: Iterable[str]) -> str:
    """The key patterns are stored under."""
    return f"{component}:{category}:{metric}:{','.join(sorted(set(files)))}"


def confidence_of(successes: int, failures: int) -> float:
    """Posterior mean of success under a uniform prior: (s + 1) / (s + f + 2).

    One success gives 0.67 and two give 0.75, so the default threshold (0.75)
    lifts approval only after a strategy has worked twice without failing.
    """
    return round((successes + 1) / (successes + failures + 2), 4)
