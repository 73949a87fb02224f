"""What ingestion keeps in memory from one poll to the next, in this process only.

The daemon polls its sources every few seconds, and each poll used to start
from nothing: a JSON source's block decoders learned the lines' keys and
category values again (rebuilding the decoder 10-15 times a poll), and
closing a window read back from SQLite the latencies the poll had just
written. ``IngestMemory`` is held by the daemon (``Runtime``) and passed to
``poll_sources`` and ``close_due_windows``; a restarted daemon starts with
an empty one and does exactly what a first poll always did. Nothing here is
a fact: the database stays the only source of truth, and

- kept block shapes (``json_blocks.KeptShapes``) only decide which lines
  the typed decoder takes, never what a line folds to;
- remembered latencies (``StoredLatencies``) are used to close a window
  only while its stored count and errors are those they were remembered
  with. While a window is open its latencies change only with its count
  (a poll merges at least one record into it, and nothing else writes
  them), so equal counts mean equal latencies; a window changed in any
  other way, or forgotten, is read back from the database as before.

Both are bounded: ``MAX_SHAPES`` shapes a source (``json_blocks``), and
``MAX_WINDOWS`` windows holding at most ``MAX_VALUES`` latencies between
them (past that, the oldest are reduced to their three quantiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from states.telemetry.formats import FormatSpec
from states.telemetry.json_blocks import KeptShapes
from states.telemetry.sketches import window_quantiles

QUANTILES: Final = (0.5, 0.95, 0.99)  # a closed window's p50, p95, p99
MAX_WINDOWS: Final = 20_000  # open windows remembered; more: the oldest are read back
MAX_VALUES: Final = 1 << 18  # samples and sketch buckets held; more: the oldest reduced

WindowKey = tuple[str, str, datetime]  # component, instance, start
Quantiles = list[float | None]


@dataclass(frozen=True, slots=True)
class StoredWindow:
    """An open window's latencies as a committed poll stored them (``samples`` ascending, as
    ``sketches.merge_latencies`` returns them)."""

    key: WindowKey
    count: int
    errors: int
    samples: list[float]
    sketch: dict[str, Any]

    @property
    def size(self) -> int:
        """How many values it holds: samples and sketch buckets."""
        return len(self.samples) + len(self.sketch.get("counts", ()))


@dataclass(frozen=True, slots=True)
class _Reduced:
    """A remembered window reduced to what closing it needs."""

    count: int
    errors: int
    quantiles: Quantiles


class StoredLatencies:
    """The latencies of open windows as this process last stored them, by window."""

    def __init__(self, max_windows: int = MAX_WINDOWS, max_values: int = MAX_VALUES) -> None:
        self._windows: dict[WindowKey, StoredWindow | _Reduced] = {}
        self._held = 0  # values held by the StoredWindow entries
        self._max_windows, self._max_values = max_windows, max_values

    def __len__(self) -> int:
        return len(self._windows)

    @property
    def held(self) -> int:
        """Samples and sketch buckets held (windows not yet reduced to their quantiles)."""
        return self._held

    def remember(self, stored: Iterable[StoredWindow]) -> None:
        """Windows a poll has committed; each replaces what was remembered of it."""
        for window in stored:
            self._drop(window.key)
            self._windows[window.key] = window
            self._held += window.size
        while len(self._windows) > self._max_windows:
            self._drop(next(iter(self._windows)))
        if self._held > self._max_values:
            self._reduce_oldest(self._max_values // 2)

    def take(self, key: WindowKey, count: int, errors: int) -> Quantiles | None:
        """The quantiles of a window being closed, forgotten here; None unless it is
        remembered with exactly this count and these errors (then read it back)."""
        found = self._drop(key)
        if found is None or (found.count, found.errors) != (count, errors):
            return None
        if isinstance(found, _Reduced):
            return found.quantiles
        return quantiles_of(found.samples, found.sketch, ascending=True)

    def _drop(self, key: WindowKey) -> StoredWindow | _Reduced | None:
        found = self._windows.pop(key, None)
        if isinstance(found, StoredWindow):
            self._held -= found.size
        return found

    def _reduce_oldest(self, target: int) -> None:
        """Reduce the oldest windows holding values to their quantiles until ``target``."""
        for key, window in self._windows.items():
            if self._held <= target:
                return
            if isinstance(window, StoredWindow):
                quantiles = quantiles_of(window.samples, window.sketch, ascending=True)
                self._windows[key] = _Reduced(window.count, window.errors, quantiles)
                self._held -= window.size


def quantiles_of(
    samples: Sequence[float], sketch: dict[str, Any], *, ascending: bool = False
) -> Quantiles:
    """A window's p50, p95 and p99, from its samples or its sketch (``ascending``: the
    samples are known to be sorted, as a poll stores them)."""
    return window_quantiles(samples, sketch, QUANTILES, ascending=ascending)


class IngestMemory:
    """Everything ingestion keeps between polls: block shapes per source, open latencies."""

    def __init__(self) -> None:
        self._shapes: dict[str, tuple[tuple[FormatSpec, bool], KeptShapes]] = {}
        self.latencies = StoredLatencies()

    def shapes(self, source: str, spec: FormatSpec, *, mine_severe: bool) -> KeptShapes:
        """The block shapes of ``source`` read as ``spec`` says (new ones if it said
        otherwise before: a shape's vetted categories depend on both)."""
        made_for = (spec, mine_severe)
        found = self._shapes.get(source)
        if found is None or found[0] != made_for:
            found = self._shapes[source] = (made_for, KeptShapes())
        return found[1]
