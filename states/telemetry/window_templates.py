"""Which messages are mined into templates, and how a window keeps their counts.

Mining every message of every source would cost more than parsing it and
tell little: a JSON request log says "ok" a million times. So a source mines:

- every record's message when its format carries free text (``syslog``,
  ``serilog``, ``regex``): the message is the event;
- the messages of warning, error and critical records (and 5xx responses)
  of the structured formats (``json``, ``logfmt``, ``conductor``), where a
  new or surging error text is the signal;
- nothing of access logs (``nginx``, ``apache``): their "message" is the
  request line, already counted as the operation.

Templates are keyed ``<source>:<id>`` in windows, because each source has its
own miner and ids. A window keeps at most ``TOP_TEMPLATES`` keys with their
counts (the rest summed under ``OTHER``, so counts still add up to the mined
messages) and lists, in order, up to ``MAX_NEW_TEMPLATES`` keys whose
template was created by a message in that window.

The level of the record that created a template is stored with the source's
miner (``levels``, by template id), so detection can tell a new error text
from a new warning without guessing from words. It is noted only when a
template is created, which is rare, so mining a known message costs nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from states.telemetry.folding import TemplateHit
from states.telemetry.records import Record
from states.telemetry.templates import TemplateMiner

FREE_TEXT_KINDS: Final = frozenset({"syslog", "serilog", "regex"})
UNMINED_KINDS: Final = frozenset({"nginx", "apache"})
SEVERE_LEVELS: Final = frozenset({"warning", "error", "critical", "fatal"})
TOP_TEMPLATES: Final = 50
MAX_NEW_TEMPLATES: Final = 50
OTHER: Final = "other"


def mines_any(kind: str) -> bool:
    """Whether a source of this format mines any message at all."""
    return kind not in UNMINED_KINDS


def mines_every_record(kind: str) -> bool:
    """Whether every record of this format is mined, not only the severe ones."""
    return kind in FREE_TEXT_KINDS


class SourceTemplates:
    """One source's miner, and the rule for which of its records it mines."""

    def __init__(
        self,
        source: str,
        kind: str,
        miner: TemplateMiner,
        levels: Mapping[int, str] | None = None,
    ) -> None:
        self.source = source
        self.miner = miner
        self.levels: dict[int, str] = dict(levels or {})  # of the record that created each
        self._every = mines_every_record(kind)
        self._known: dict[int, TemplateHit] = {}  # one hit object per template, once not new

    @classmethod
    def restored(cls, source: str, kind: str, state: Mapping[str, Any] | None) -> SourceTemplates:
        """The source's miner as stored after its last poll, or a new one."""
        miner = TemplateMiner.from_state(state) if state else TemplateMiner()
        return cls(source, kind, miner, stored_levels(state))

    def restore(self, state: Mapping[str, Any] | None) -> None:
        """Go back to a stored state (or a new miner): what a poll learned is not kept."""
        self.miner = TemplateMiner.from_state(state) if state else TemplateMiner()
        self._known.clear()

    def wants(self, record: Record) -> bool:
        """Whether this record's message is mined."""
        if not record.message:
            return False
        return self._every or record.level in SEVERE_LEVELS or record.is_error

    def hit(self, record: Record) -> TemplateHit | None:
        """The template of the record's message, if it is mined."""
        if not self.wants(record):
            return None
        return self.hit_message(record.message, "error" if record.is_error else record.level)

    def hit_message(self, message: str, level: str) -> TemplateHit:
        """The template of a message this source mines (see ``wants``), logged at ``level``.

        The level is kept only for a new template: the level of the record that created it.
        """
        template_id, is_new = self.miner.assign(message)
        if is_new:
            self.levels[template_id] = level
            return TemplateHit(f"{self.source}:{template_id}", True)
        known = self._known.get(template_id)
        if known is None:
            known = self._known[template_id] = TemplateHit(f"{self.source}:{template_id}", False)
        return known

    def state(self) -> dict[str, Any]:
        """What to store with the poll's cursor: the miner and the creating levels."""
        return {**self.miner.to_state(), "levels": {str(k): v for k, v in self.levels.items()}}


def stored_levels(state: Mapping[str, Any] | None) -> dict[int, str]:
    """The creating record's level by template id, from a stored state (none before levels)."""
    levels = (state or {}).get("levels")
    if not isinstance(levels, dict):
        return {}
    return {int(k): str(v) for k, v in levels.items() if str(k).isdigit()}


def stored_templates(state: Mapping[str, Any] | None) -> dict[int, str]:
    """Each template's text by id, from a stored state (tokens joined as drain3 shows them)."""
    entries = (state or {}).get("templates")
    if not isinstance(entries, list):
        return {}
    return {
        int(e["id"]): " ".join(str(t) for t in e["tokens"])
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("id"), int)
        and isinstance(e.get("tokens"), list)
    }


def merge_counts(
    stored: Mapping[str, int], new: Mapping[str, int], limit: int = TOP_TEMPLATES
) -> dict[str, int]:
    """Stored plus new counts, the ``limit`` largest kept by key and the rest under ``OTHER``."""
    total: dict[str, int] = dict(stored)
    for key, count in new.items():
        total[key] = total.get(key, 0) + count
    other = total.pop(OTHER, 0)
    ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:limit])
    other += sum(count for _, count in ranked[limit:])
    if other:
        kept[OTHER] = other
    return kept


def merge_new(
    stored: Sequence[str], new: Sequence[str], limit: int = MAX_NEW_TEMPLATES
) -> list[str]:
    """Keys of templates new in the window, first seen first, without repeats."""
    merged = list(stored)
    merged.extend(key for key in new if key not in merged)
    return merged[:limit]
