"""Folding one poll's records straight into per-window tallies, without keeping the records.

``windows.fold`` groups a list of records; ingestion instead feeds each
accepted record (or, on the JSON hot path, whole columns of the few values a
window needs) into a ``WindowFolder`` as it is parsed. The folder keeps one
small tally per (component, instance, window, version, operation): a count,
an error count and the durations (``Tally``). Counting versions and
operations through the key and deriving the all-instance window from its
instances at the end means one dictionary update per record instead of
six. Stack frames and template ids, which few records carry, are kept per
window in record order, as ``fold`` keeps them.

``partials`` returns exactly what ``windows.fold`` returns for the same
records (a window's samples in ascending order, whatever order its lines
were folded in, and operation totals as exact sums), with a window's
durations already sketched when there are more than
``sketches.EXACT_LIMIT`` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from states.telemetry.operations import OperationTally, figures_of, segment_sums
from states.telemetry.records import Record
from states.telemetry.sketches import EXACT_LIMIT, FloatArray, sketch_of
from states.telemetry.windows import MAX_FRAMES, PartialWindow, WindowKey

# component, instance ("" = none), window bucket (start / window_s), version ("" = none),
# operation ("" = none)
TallyKey = tuple[str, str, int, str, str]


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Records outside [oldest, latest] are rejected as too old or from the future."""

    oldest: datetime
    latest: datetime


@dataclass(frozen=True, slots=True)
class TemplateHit:
    """The template a record's message was mined into, as stored per window."""

    key: str
    is_new: bool


@dataclass
class _Extras:
    """The rare parts of a window, in record order: stack frames and templates new in it."""

    frames: list[list[object]] = field(default_factory=list)
    new_templates: list[str] = field(default_factory=list)


class Tally:
    """What one (component, instance, window, version, operation) saw in a poll."""

    __slots__ = ("count", "durations", "errors", "templates")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.durations: list[float] = []
        self.templates: dict[str, int] | None = None  # mined messages by template key


class WindowFolder:
    """Per-window tallies of one poll; ``partials`` turns them into ``PartialWindow`` objects.

    ``tallies`` is public because the JSON hot paths (``json_ingest``,
    ``json_columns``) update it inline rather than through a method call per line.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.tallies: dict[TallyKey, Tally] = {}
        self.records = 0
        self._extras: dict[tuple[str, str, int], _Extras] = {}

    def add_record(self, record: Record, template: TemplateHit | None = None) -> None:
        """Count one accepted record in its window (and its instance's window)."""
        bucket = math.floor(record.timestamp.timestamp() / self.window_s)
        instance = record.instance or ""
        key = (record.component, instance, bucket, record.version or "", record.operation)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = Tally()
        tally.count += 1
        if record.is_error:
            tally.errors += 1
        if record.duration_ms is not None:
            tally.durations.append(record.duration_ms)
        self.records += 1
        if template is not None:
            counts = tally.templates
            if counts is None:
                counts = tally.templates = {}
            counts[template.key] = counts.get(template.key, 0) + 1
        if record.frames or (template is not None and template.is_new):
            self._add_extras(record, bucket, template)

    def _add_extras(self, record: Record, bucket: int, template: TemplateHit | None) -> None:
        new_key = template.key if template is not None and template.is_new else None
        keys = [(record.component, "", bucket)]
        if record.instance:
            keys.append((record.component, record.instance, bucket))
        for key in keys:
            extras = self._extras.get(key)
            if extras is None:
                extras = self._extras[key] = _Extras()
            for frame in record.frames:
                entry: list[object] = [frame.file, frame.line, frame.function]
                if len(extras.frames) < MAX_FRAMES and entry not in extras.frames:
                    extras.frames.append(entry)
            if new_key is not None and new_key not in extras.new_templates:
                extras.new_templates.append(new_key)

    def add_tally(self, key: TallyKey, count: int, errors: int, durations: list[float]) -> None:
        """Count ``count`` records at once, ``errors`` of them failed, with these durations."""
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = Tally()
        tally.count += count
        tally.errors += errors
        if tally.durations:
            tally.durations.extend(durations)
        else:
            tally.durations = durations
        self.records += count

    def partials(self) -> dict[WindowKey, PartialWindow]:
        """Every window this poll touched, per instance and for all instances."""
        starts: dict[int, datetime] = {}
        parts: dict[WindowKey, PartialWindow] = {}
        operations: dict[WindowKey, dict[str, OperationTally]] = {}
        runs: dict[WindowKey, list[tuple[int, list[OperationTally]]]] = {}
        for tally_key, tally in self.tallies.items():
            component, instance, bucket, version, operation = tally_key
            start = starts.get(bucket)
            if start is None:
                start = starts[bucket] = datetime.fromtimestamp(bucket * self.window_s, UTC)
            keys = [(component, "", start)]
            if instance:
                keys.append((component, instance, start))
            longest = _sorted_longest(tally.durations) if tally.durations else None
            entries: list[OperationTally] = []
            runs.setdefault(keys[0], []).append((len(tally.durations), entries))
            for key in keys:
                part = parts.get(key)
                if part is None:
                    part = parts[key] = PartialWindow()
                part.count += tally.count
                part.errors += tally.errors
                part.samples.extend(tally.durations)
                if version:
                    part.versions[version] += tally.count
                if tally.templates:
                    part.templates.update(tally.templates)
                if operation:
                    by_name = operations.setdefault(key, {})
                    entry = by_name.get(operation)
                    if entry is None:
                        entry = by_name[operation] = OperationTally()
                    entry.add(tally.count, tally.errors, tally.durations, longest)
                    entries.append(entry)
        arrays = _sum_large(parts, runs)
        for key, by_name in operations.items():
            parts[key].operations = figures_of(by_name)
        self._sketch_large(parts, arrays)
        for part in parts.values():
            part.samples.sort()  # canonical; merges the tallies' ascending runs
        for (component, instance, bucket), extras in self._extras.items():
            part = parts[(component, instance, starts[bucket])]
            part.frames = extras.frames
            part.new_templates = extras.new_templates
        return parts

    @staticmethod
    def _sketch_large(
        parts: dict[WindowKey, PartialWindow], arrays: dict[WindowKey, FloatArray]
    ) -> None:
        """Windows with many durations get a sketch of them, built in one pass per window
        (over the array ``_sum_large`` made of an all-instance window's durations)."""
        for key, part in parts.items():
            if len(part.samples) > EXACT_LIMIT:
                part.sketch, part.samples = sketch_of(part.samples, arrays.get(key)), []


def _sum_large(
    parts: dict[WindowKey, PartialWindow],
    runs: dict[WindowKey, list[tuple[int, list[OperationTally]]]],
) -> dict[WindowKey, FloatArray]:
    """Exact operation sums of the all-instance windows that will be sketched, from one array
    of each one's durations (the tallies' lists in a row, as its samples were extended): each
    list is summed once and its sum added to the operations of both windows it counts in.
    Returns the arrays, for the sketches."""
    arrays: dict[WindowKey, FloatArray] = {}
    for key, window_runs in runs.items():
        samples = parts[key].samples
        if len(samples) <= EXACT_LIMIT:
            continue
        array = arrays[key] = np.asarray(samples, dtype=np.float64)
        summed = segment_sums(array, [length for length, _ in window_runs])
        if summed is None:
            continue
        sums, scale = summed
        for (_, entries), total in zip(window_runs, sums, strict=True):
            for entry in entries:
                entry.exact += total
                entry.scale = scale
    return arrays


def _sorted_longest(durations: list[float]) -> float:
    """Sort a tally's durations in place and return their maximum, as ``max`` picks it.

    A window's samples are sorted in the end anyway: sorted one tally at a
    time, they are ascending runs that the window's sort merges in one pass,
    and each tally's maximum is its last value. The sort is stable, so equal
    values keep their order in every window, and ``min`` and ``max`` over a
    window's list (a sketch's extremes) still find the same one first. Only
    when the maximum is a zero may it be ``-0.0`` beside ``0.0``: then ``max``
    picks the first, as it always did. Durations are finite (``fields``
    refuses the rest).
    """
    durations.sort()
    longest = durations[-1]
    return longest if longest else max(durations)
