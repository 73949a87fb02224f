"""Template mining: group unstructured log messages into templates with Drain.

Free-text messages ("Connection to 10.0.0.7:5432 timed out after 3000 ms") are
useless for detection one by one; counted per template and window they become a
signal ("this template appeared for the first time", "that one tripled"). The
messages are masked first (ids, numbers, addresses, paths, timestamps), so that
the Drain tree sees the constant words only, then clustered by ``drain3``.

State survives restarts as plain JSON data (templates, sizes, counters), not as
a pickle of drain3 objects: the prefix tree is rebuilt from the templates on
load, so the stored state stays readable and independent of drain3 internals.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from drain3.drain import Drain, LogCluster

STATE_VERSION: Final = 1
WILDCARD: Final = "<*>"


@dataclass(frozen=True, slots=True)
class MaskRule:
    """Replace every match of ``pattern`` with ``<name>`` before clustering."""

    name: str
    pattern: str
    substitute: str | None = None

    @property
    def replacement(self) -> str:
        """What a match becomes: ``<name>`` unless the rule says otherwise."""
        return f"<{self.name}>" if self.substitute is None else self.substitute


# Order matters: the specific shapes (timestamps, UUIDs, addresses) must be
# masked before the generic number rule eats their digits.
DEFAULT_MASKS: Final[tuple[MaskRule, ...]] = (
    MaskRule(
        "TS",
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
    ),
    MaskRule("URL", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+"),
    MaskRule("TIME", r"(?<![\w.:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\b"),
    MaskRule("PATH", r"(?<![\w.:/<])(?:/[\w.~%@+-]+){2,}/?|\b[A-Za-z]:(?:\\[\w .~%@+-]+)+"),
    MaskRule("UUID", r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"),
    MaskRule(
        "ADDR",
        r"(?<![\w.])(?:(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?"
        r"(?:,(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?)*"
        r"|(?:[A-Za-z0-9-]+\.)+[A-Za-z][\w-]*:\d{1,5})(?![\w.])",
    ),
    # "18846 bytes (18.4 KB)" restates the byte count; keep one spelling.
    MaskRule("SIZE", r"\b(\d+ bytes) \(\d+(?:\.\d+)? ?[KMGT]i?B\)", substitute=r"\1"),
    MaskRule(
        "DUR",
        r"(?<![\w.])<?\d+(?:\.\d+)? ?(?:ms|msec|secs?|seconds?|mins?|minutes?|hours?)\b",
    ),
    MaskRule(
        "NUM",
        r"(?<![\w.])(?:[-+]?\d+(?:\.\d+)?(?:[kKmMgG]?[bB]|ms|s|us|%)?"
        r"|0[xX][0-9a-fA-F]+|(?=[a-fA-F]*\d)[0-9a-fA-F]{6,})(?![\w.])"
        r"|(?<=[A-Za-z][._=#-])\d+(?![\w.])",
    ),
)


@dataclass(frozen=True, slots=True)
class MiningSettings:
    """How messages are masked and how eagerly Drain merges them.

    ``similarity`` is Drain's threshold: the share of constant tokens two
    messages must share to land in one template. ``depth`` counts the root and
    the token-count layer, so ``depth - 2`` leading tokens route the tree.
    """

    similarity: float = 0.7
    depth: int = 5
    max_children: int = 100
    max_templates: int | None = None
    masks: tuple[MaskRule, ...] = DEFAULT_MASKS
    extra_delimiters: tuple[str, ...] = ()
    parametrize_numeric_tokens: bool = True


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """Where one message landed: its template, and whether it is new."""

    template_id: int
    template: str
    is_new: bool
    changed: bool
    size: int


@dataclass(frozen=True, slots=True)
class CompiledMasks:
    """Mask rules compiled once, applied in order."""

    rules: tuple[tuple[re.Pattern[str], str], ...] = field(default=())


def compile_masks(rules: Sequence[MaskRule]) -> CompiledMasks:
    """Compile mask rules; a broken pattern fails here, naming the rule."""
    compiled: list[tuple[re.Pattern[str], str]] = []
    for rule in rules:
        try:
            compiled.append((re.compile(rule.pattern), rule.replacement))
        except re.error as error:
            raise ValueError(f"mask rule {rule.name!r}: invalid pattern: {error}") from error
    return CompiledMasks(tuple(compiled))


def mask_message(message: str, masks: CompiledMasks) -> str:
    """Replace variable parts of a message with their mask names."""
    for pattern, replacement in masks.rules:
        message = pattern.sub(replacement, message)
    return message


def new_drain(settings: MiningSettings) -> Drain:
    """A drain3 tree configured from ``settings``."""
    return Drain(
        depth=settings.depth,
        sim_th=settings.similarity,
        max_children=settings.max_children,
        max_clusters=settings.max_templates,
        extra_delimiters=settings.extra_delimiters,
        param_str=WILDCARD,
        parametrize_numeric_tokens=settings.parametrize_numeric_tokens,
    )


class TemplateMiner:
    """Assigns messages to templates and counts them per window.

    ``close_window`` hands back the counts since the previous call and starts
    a new window; the templates themselves live on across windows and restarts.
    """

    def __init__(self, settings: MiningSettings | None = None) -> None:
        self.settings = settings or MiningSettings()
        self._masks = compile_masks(self.settings.masks)
        self._drain = new_drain(self.settings)
        self._window: Counter[int] = Counter()

    def add(self, message: str) -> TemplateMatch:
        """Mask and cluster one message, counting it in the current window."""
        cluster, change = self._drain.add_log_message(mask_message(message, self._masks))
        self._window[cluster.cluster_id] += 1
        return TemplateMatch(
            template_id=cluster.cluster_id,
            template=cluster.get_template(),
            is_new=change == "cluster_created",
            changed=change == "cluster_template_changed",
            size=cluster.size,
        )

    def match(self, message: str) -> int | None:
        """The template id a message fits exactly, without learning from it."""
        cluster = self._drain.match(mask_message(message, self._masks), "fallback")
        return None if cluster is None else int(cluster.cluster_id)

    def templates(self) -> dict[int, str]:
        """Every known template by id."""
        return {int(c.cluster_id): c.get_template() for c in self._drain.clusters}

    def window_counts(self) -> dict[int, int]:
        """Messages per template id since the window opened."""
        return dict(self._window)

    def close_window(self) -> dict[int, int]:
        """Return the current window's counts and open an empty window."""
        counts = dict(self._window)
        self._window.clear()
        return counts

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state: templates, their sizes and the id counter."""
        clusters = sorted(self._drain.clusters, key=lambda c: int(c.cluster_id))
        return {
            "version": STATE_VERSION,
            "next_id": int(self._drain.clusters_counter),
            "templates": [
                {"id": int(c.cluster_id), "tokens": list(c.log_template_tokens), "size": c.size}
                for c in clusters
            ],
            "window": {str(k): v for k, v in self._window.items()},
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], settings: MiningSettings | None = None
    ) -> TemplateMiner:
        """Rebuild a miner from ``to_state`` output; unknown versions are refused."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"template state version {state.get('version')!r} is not {STATE_VERSION}; "
                "delete the stored state to start mining afresh"
            )
        miner = cls(settings)
        drain = miner._drain
        for entry in state["templates"]:
            cluster = LogCluster(list(entry["tokens"]), int(entry["id"]))
            cluster.size = int(entry["size"])
            drain.id_to_cluster[cluster.cluster_id] = cluster
            drain.add_seq_to_prefix_tree(drain.root_node, cluster)
        drain.clusters_counter = int(state["next_id"])
        miner._window.update({int(k): int(v) for k, v in state.get("window", {}).items()})
        return miner
