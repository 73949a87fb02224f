"""Per-operation figures of a window, so diagnosis can name the slow or failing operation.

A window's quantiles and error rate say that a component regressed, not
which of its operations did ("POST /cart" slowed down, "GET /search" did
not). So each window also keeps, per operation name::

    {"count": n, "errors": e, "total_ms": sum of durations, "max_ms": longest}

``total_ms`` and ``max_ms`` cover the records that carry a duration (0 when
none does). Records without an operation are not counted here.

The figures are bounded like template counts: the ``TOP_OPERATIONS``
busiest operations (by count, then name) keep their names and the rest are
summed under ``OTHER`` (counts, errors and totals added, the largest maximum
kept), so a window stays small whatever the cardinality of operation names
(say, paths with ids in them) and its counts still add up. An operation
literally named ``other`` shares that entry.

``total_ms`` is ``math.fsum`` of a poll's durations: correctly rounded
whatever order the records arrived in, so every ingestion path (the JSON
fast path, the general path, the reference ``windows.fold``) gives the same
figures for the same lines. Polls and instances merge by addition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Final

import numpy as np

from states.telemetry.sketches import FloatArray

TOP_OPERATIONS: Final = 50
OTHER: Final = "other"
# Exponents are summed in blocks of 2**_BLOCK_BITS; a value's mantissa shifted within its block
# is split at bit _SPLIT into two parts, each summed exactly in float64 (< 2**53) while a
# window has fewer than _MAX_VALUES values.
_BLOCK_BITS: Final = 4
_SPLIT: Final = 35
_MAX_VALUES: Final = 2**17

Figures = dict[str, float]


@dataclass(slots=True)
class OperationTally:
    """One operation in one window of a poll, before it becomes ``Figures``.

    Durations are kept as lists (``parts``), a folder's own lists shared
    rather than copied, and summed once, exactly, when the figures are made;
    each list's maximum is kept beside it (``longest``), so a list counted
    in two windows (its instance's and the all-instance one) is scanned for
    its maximum once.
    """

    count: int = 0
    errors: int = 0
    parts: list[Sequence[float]] = field(default_factory=list)
    longest: list[float] = field(default_factory=list)  # the maximum of each part
    exact: int = 0  # when ``scale`` is set: the exact sum of every part, in units of 2**scale
    scale: int | None = None

    def add(
        self, count: int, errors: int, durations: Sequence[float], longest: float | None = None
    ) -> None:
        """Count ``count`` records, ``errors`` of them failed, with these durations (whose
        maximum is ``longest``, when the caller knows it)."""
        self.count += count
        self.errors += errors
        if durations:
            self.parts.append(durations)
            self.longest.append(max(durations) if longest is None else longest)

    def add_record(self, error: bool, duration: float | None) -> None:
        """Count one record (the reference fold's way: one at a time)."""
        self.count += 1
        self.errors += error
        if duration is not None:
            self.parts.append((duration,))
            self.longest.append(duration)

    def figures(self) -> Figures:
        """Count, errors, exact sum and maximum of the durations."""
        longest = max(self.longest) if self.longest else 0.0
        if self.exact and self.scale is not None:
            total = scaled_float(self.exact, self.scale)
        else:  # a zero sum too: ``fsum`` chooses the sign of a zero
            parts = self.parts
            total = math.fsum(parts[0] if len(parts) == 1 else chain.from_iterable(parts))
        return {"count": self.count, "errors": self.errors, "total_ms": total, "max_ms": longest}


def segment_sums(values: FloatArray, lengths: Sequence[int]) -> tuple[list[int], int] | None:
    """The exact sum of each run of ``lengths`` consecutive finite ``values``, as integers in
    units of 2**scale, with that scale; None when there are too many values to sum exactly.

    Each value is m * 2**e (``frexp``); exponents are grouped in blocks, a value's 53-bit
    mantissa shifted by its exponent within the block is an exact integer below 2**69, split
    into two parts below 2**35 whose sums per (run, block) are exact float64 integers.
    """
    if len(values) >= _MAX_VALUES or not len(values):
        return None
    mantissas, exponents = np.frexp(values)
    low = int(exponents.min())
    offsets = exponents - low
    blocks = (int(offsets.max()) >> _BLOCK_BITS) + 1
    shifted = np.ldexp(mantissas, (offsets & ((1 << _BLOCK_BITS) - 1)) + 53)
    high = np.trunc(np.ldexp(shifted, -_SPLIT))
    rest = shifted - np.ldexp(high, _SPLIT)
    keys = np.repeat(np.arange(len(lengths)) * blocks, lengths) + (offsets >> _BLOCK_BITS)
    size = len(lengths) * blocks
    highs = np.bincount(keys, weights=high, minlength=size)
    rests = np.bincount(keys, weights=rest, minlength=size)
    present = np.flatnonzero((highs != 0) | (rests != 0))
    sums = [0] * len(lengths)
    for key, h, r in zip(
        present.tolist(), highs[present].tolist(), rests[present].tolist(), strict=True
    ):
        run, block = divmod(key, blocks)
        sums[run] += ((int(h) << _SPLIT) + int(r)) << (block << _BLOCK_BITS)
    return sums, low - 53


def scaled_float(total: int, scale: int) -> float:
    """``total * 2**scale`` correctly rounded (int to float and int / int both round so)."""
    return float(total << scale) if scale >= 0 else total / (1 << -scale)


def figures_of(tallies: Mapping[str, OperationTally]) -> dict[str, Figures]:
    """Bounded figures of one window's operation tallies."""
    return bounded({name: tally.figures() for name, tally in tallies.items()})


def bounded(operations: Mapping[str, Figures], limit: int = TOP_OPERATIONS) -> dict[str, Figures]:
    """The ``limit`` busiest operations by name, the rest (and any ``OTHER``) summed as ``OTHER``."""
    if len(operations) <= limit and OTHER not in operations:
        return dict(operations)
    named = sorted(
        ((name, entry) for name, entry in operations.items() if name != OTHER),
        key=lambda item: (-item[1]["count"], item[0]),
    )
    kept = dict(named[:limit])
    rest = [entry for _, entry in named[limit:]]
    if OTHER in operations:
        rest.append(operations[OTHER])
    if rest:
        kept[OTHER] = _summed(rest)
    return kept


def merge(stored: Mapping[str, Figures], new: Mapping[str, Figures]) -> dict[str, Figures]:
    """A window's stored figures plus a poll's (or another instance's), bounded again."""
    total: dict[str, Figures] = dict(stored)
    for name, entry in new.items():
        known = total.get(name)
        total[name] = dict(entry) if known is None else _summed((known, entry))
    return bounded(total)


def _summed(entries: Iterable[Figures]) -> Figures:
    count = errors = 0
    parts: list[float] = []
    longest = 0.0
    for entry in entries:
        count += int(entry["count"])
        errors += int(entry["errors"])
        parts.append(entry["total_ms"])
        longest = max(longest, entry["max_ms"])
    return {"count": count, "errors": errors, "total_ms": math.fsum(parts), "max_ms": longest}
