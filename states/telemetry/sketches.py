"""Latency quantiles in bounded memory: exact while a window is small, a log-bucket sketch after.

A window keeps its duration samples as a plain list while it has at most
``EXACT_LIMIT`` (1,024) of them, so its quantiles are exact nearest-rank values
(a latency that was actually observed). Past that, the samples move into a
``LatencySketch``, a DDSketch-style histogram (Masson, Rim and Lee, "DDSketch:
a fast and fully-mergeable quantile sketch with relative-error guarantees",
VLDB 2019) with relative accuracy ``ALPHA`` = 1%:

- a sample ``x`` >= 1 ns (``MIN_INDEXABLE_MS``) is counted in bucket
  ``i = ceil(log_gamma(x))`` with ``gamma = (1 + ALPHA) / (1 - ALPHA)``, which
  holds the values in ``(gamma**(i-1), gamma**i]``; samples under 1 ns (zero
  included) share one bucket;
- a quantile walks the buckets to the nearest rank ``ceil(q * n)`` (the same
  rank the exact path uses) and returns ``2 * gamma**i / (gamma + 1)``, clamped
  to the observed minimum and maximum. That value is within 1% of the exact
  nearest-rank sample (``|estimate - exact| <= ALPHA * exact``) for samples of
  1 ns or more, and within 1 ns of it below that. The lowest and highest
  ranks return the observed minimum and maximum exactly;
- buckets are one dense array from the lowest to the highest index, at most
  ``MAX_BUCKETS`` (2,048) long: 1 ns to the longest duration a record may
  carry (366 days) spans about 1,900 buckets, so no legal duration is ever
  folded away; a wider range (possible only through a hand-edited state)
  merges the lowest buckets into one, losing accuracy for the lowest
  quantiles only, never memory.

A sketch's memory is therefore at most 2,048 counters whatever the number of
samples (a log-normal latency distribution typically fills 100 to 400), and it
is stored as JSON (``to_state``) in the window row. Sketches with the same
``ALPHA`` merge exactly (bucket counts add), so polls, restarts and instances
combine without loss beyond the bound above.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

ALPHA: Final = 0.01
MAX_BUCKETS: Final = 2048
MIN_INDEXABLE_MS: Final = 1e-6
EXACT_LIMIT: Final = 1024
STATE_VERSION: Final = 1
VECTOR_FROM: Final = 256  # values indexed at once by numpy from here; fewer by ``map``
# numpy's log may differ from ``math.log`` in the last bits (by 2e-13 of an index, measured):
# an index this close to a bucket edge is recomputed with ``math.log``.
_EDGE: Final = 1e-9


class LatencySketch:
    """Counts of samples per logarithmic bucket, with the exact minimum and maximum."""

    __slots__ = ("_gamma", "_inv_log_gamma", "_log_gamma", "counts", "max", "min", "offset", "zero")

    def __init__(self) -> None:
        self._gamma = (1 + ALPHA) / (1 - ALPHA)
        self._log_gamma = math.log(self._gamma)
        self._inv_log_gamma = 1.0 / self._log_gamma
        self.offset = 0  # bucket index of counts[0]
        self.counts: list[int] = []
        self.zero = 0  # samples under MIN_INDEXABLE_MS
        self.min = math.inf
        self.max = -math.inf

    @property
    def count(self) -> int:
        """Samples added so far."""
        return self.zero + sum(self.counts)

    def index(self, value: float) -> int:
        """The bucket holding ``value`` (>= ``MIN_INDEXABLE_MS``)."""
        return math.ceil(math.log(value) * self._inv_log_gamma)

    def add_many(self, values: Iterable[float], array: FloatArray | None = None) -> None:
        """Count every value; the buckets are computed over a numpy array (a few values: by
        chained ``map`` calls), with the same result as ``index`` of each value. ``array``,
        when given, holds the same values in the same order (made by the caller already)."""
        values = values if isinstance(values, list) else list(values)
        if len(values) >= VECTOR_FROM:
            self._add_array(values, array)
            return
        if not values:
            return
        low, high = min(values), max(values)
        self.min, self.max = min(self.min, low), max(self.max, high)
        if low < MIN_INDEXABLE_MS:
            indexable = [v for v in values if v >= MIN_INDEXABLE_MS]
            self.zero += len(values) - len(indexable)
            values = indexable
        logs = map(math.log, values)
        scaled = map(operator.mul, logs, itertools.repeat(self._inv_log_gamma))
        self._add_indexed(Counter(map(math.ceil, scaled)))

    def _add_array(self, values: list[float], array: FloatArray | None) -> None:
        """``add_many`` over an array: the extremes too (Python's ``min`` and ``max`` over a
        list cost as much as the rest of the sketching), those of the list itself when
        they are zero or NaN, where ``min`` and ``max`` pick by order among equal values."""
        if array is None:
            array = np.asarray(values, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        if low == 0.0 or high == 0.0 or math.isnan(low):  # -0.0 == 0.0; nan: first found
            low, high = min(values), max(values)
        self.min, self.max = min(self.min, low), max(self.max, high)
        if low < MIN_INDEXABLE_MS:
            indexable = np.flatnonzero(array >= MIN_INDEXABLE_MS)
            self.zero += len(values) - len(indexable)
            array = array[indexable]
        if len(array):
            self._add_indexed(self._indexed(array))

    def _indexed(self, values: FloatArray) -> dict[int, int]:
        """How many values fall in each bucket, computed over an array: the same buckets as
        ``index`` gives one by one, since indices near an edge are recomputed by ``index``."""
        scaled = np.log(values)
        scaled *= self._inv_log_gamma
        indices = np.ceil(scaled).astype(np.int64)
        edges = np.flatnonzero(np.abs(scaled - np.rint(scaled)) < _EDGE)
        if len(edges):
            indices[edges] = [self.index(value) for value in values[edges].tolist()]
        low = int(indices.min())
        counts = np.bincount(indices - low)
        present = np.flatnonzero(counts)
        return dict(zip((present + low).tolist(), counts[present].tolist(), strict=True))

    def copy(self) -> LatencySketch:
        """An independent sketch with the same counts."""
        twin = LatencySketch()
        twin.offset, twin.counts, twin.zero = self.offset, list(self.counts), self.zero
        twin.min, twin.max = self.min, self.max
        return twin

    def merge(self, other: LatencySketch) -> None:
        """Add another sketch's counts to this one (bucket by bucket, as slices)."""
        self.zero += other.zero
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if not other.counts:
            return
        self._cover(other.offset, other.offset + len(other.counts) - 1)
        start = other.offset - self.offset
        if start < 0:  # part of the other range lies below what is kept: fold it in
            self._add_indexed({other.offset + k: c for k, c in enumerate(other.counts) if c})
            return
        end = start + len(other.counts)
        self.counts[start:end] = map(operator.add, self.counts[start:end], other.counts)

    def _add_indexed(self, by_index: Mapping[int, int]) -> None:
        if not by_index:
            return
        self._cover(min(by_index), max(by_index))
        counts, offset = self.counts, self.offset
        if min(by_index) >= offset:
            for i, c in by_index.items():
                counts[i - offset] += c
        else:
            for i, c in by_index.items():
                counts[max(i, offset) - offset] += c  # below the kept range: into its lowest

    def _cover(self, low: int, high: int) -> None:
        """Grow the dense array to span [low, high], at most ``MAX_BUCKETS`` from the top."""
        if not self.counts:
            low = max(low, high - MAX_BUCKETS + 1)
            self.offset, self.counts = low, [0] * (high - low + 1)
            return
        old_low, old_high = self.offset, self.offset + len(self.counts) - 1
        low, high = min(low, old_low), max(high, old_high)
        low = max(low, high - MAX_BUCKETS + 1)  # collapse what falls below the kept range
        counts = self.counts
        if low > old_low:
            cut = low - old_low
            counts = [sum(counts[: cut + 1]), *counts[cut + 1 :]]
            old_low, old_high = low, max(old_high, low)
        self.counts = [0] * (old_low - low) + counts + [0] * (high - old_high)
        self.offset = low

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Nearest-rank quantiles, each within ``ALPHA`` of the exact sample (see the module).

        One walk over the buckets serves every quantile, lowest rank first.
        """
        n = self.count
        if n == 0:
            return [None for _ in qs]
        ranks = [max(1, math.ceil(q * n)) for q in qs]
        found: list[float | None] = [None] * len(qs)
        seen, k, counts = self.zero, 0, self.counts
        for j in sorted(range(len(qs)), key=ranks.__getitem__):
            rank = ranks[j]
            if rank >= n:
                found[j] = self.max
            elif rank <= 1 or rank <= self.zero:
                found[j] = self.min
            else:
                while seen < rank:
                    seen += counts[k]
                    k += 1
                found[j] = self._value_of(self.offset + k - 1)
        return found

    def _value_of(self, index: int) -> float:
        """Bucket ``index``'s representative, clamped to what was observed."""
        value = 2.0 * math.exp(index * self._log_gamma) / (self._gamma + 1)
        return min(self.max, max(self.min, value))

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state: the dense bucket array and its offset, the zero bucket, min, max."""
        return {
            "version": STATE_VERSION,
            "alpha": ALPHA,
            "offset": self.offset,
            "counts": list(self.counts),
            "zero": self.zero,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LatencySketch:
        """Rebuild a sketch from ``to_state``; another accuracy or version is refused."""
        if state.get("version") != STATE_VERSION or state.get("alpha") != ALPHA:
            raise ValueError(
                f"latency sketch version {state.get('version')!r} alpha {state.get('alpha')!r} "
                f"is not version {STATE_VERSION} alpha {ALPHA}; the window cannot be merged"
            )
        sketch = cls()
        sketch.zero = int(state["zero"])
        sketch.min, sketch.max = float(state["min"]), float(state["max"])
        counts = [int(c) for c in state["counts"]]
        if len(counts) <= MAX_BUCKETS:
            sketch.offset, sketch.counts = int(state["offset"]), counts
        else:  # not written by this code: collapse it into the bound
            sketch._add_indexed({int(state["offset"]) + k: c for k, c in enumerate(counts) if c})
        return sketch


def sketch_of(values: Iterable[float], array: FloatArray | None = None) -> LatencySketch:
    """A new sketch holding ``values`` (also held by ``array``, when given)."""
    sketch = LatencySketch()
    sketch.add_many(values, array)
    return sketch


def merge_latencies(
    samples: list[float],
    sketch_state: Mapping[str, Any],
    new_samples: Sequence[float],
    new_sketch: LatencySketch | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """A window's stored latencies plus new ones: exact up to ``EXACT_LIMIT``, a sketch past it.

    Returns the samples (in ascending order) and sketch state to store;
    exactly one of them is non-empty once there is any sample.
    """
    exact = not sketch_state and new_sketch is None
    if exact and len(samples) + len(new_samples) <= EXACT_LIMIT:
        return sorted([*samples, *new_samples]), {}  # two ascending runs: merged in one pass
    if sketch_state:
        sketch = LatencySketch.from_state(sketch_state)
        if new_sketch is not None:
            sketch.merge(new_sketch)
    else:  # a copy: a retried transaction merges the same partial again
        sketch = LatencySketch() if new_sketch is None else new_sketch.copy()
    sketch.add_many(samples)
    sketch.add_many(new_samples)
    return [], sketch.to_state()


def window_quantiles(
    samples: Sequence[float],
    sketch_state: Mapping[str, Any],
    qs: Sequence[float],
    *,
    ascending: bool = False,
) -> list[float | None]:
    """Quantiles of a window's latencies: exact from samples, or from its sketch
    (``ascending``: the samples are known to be sorted, as ``merge_latencies`` returns them)."""
    if sketch_state:
        sketch = LatencySketch.from_state(sketch_state)
        sketch.add_many(samples)
        return sketch.quantiles(qs)
    return exact_quantiles(samples, qs, ascending=ascending)


def exact_quantiles(
    samples: Sequence[float], qs: Sequence[float], *, ascending: bool = False
) -> list[float | None]:
    """Several nearest-rank quantiles from one sort (none when ``samples`` are ``ascending``:
    sorting them again would only copy them, equal values staying where they are)."""
    if not samples:
        return [None for _ in qs]
    ordered = samples if ascending else sorted(samples)
    return [ordered[max(1, math.ceil(q * len(ordered))) - 1] for q in qs]
