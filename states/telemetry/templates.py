"""Template mining: group unstructured log messages into templates with Drain.

Free-text messages ("Connection to 10.0.0.7:5432 timed out after 3000 ms") are
useless for detection one by one; counted per template and window they become a
signal ("this template appeared for the first time", "that one tripled"). The
messages are masked first (ids, numbers, addresses, paths, timestamps), so that
the Drain tree sees the constant words only, then clustered by ``drain3``.

State survives restarts as plain JSON data (templates, sizes, counters), not as
a pickle of drain3 objects: the prefix tree is rebuilt from the templates on
load, so the stored state stays readable and independent of drain3 internals.

Speed, without changing a single assignment:

- ``assign`` remembers which template a message (and a masked message) went
  to. Drain's answer for a message depends only on the tree, and the tree
  changes only when a template is created or changes; so the remembered
  answers are dropped whenever that happens, and a message is remembered only
  when drain matched it without changing anything. A repeated message then
  skips masking and the tree search, and gets the answer drain would give.
  (Not with ``max_templates``: drain's least-recently-used eviction depends on
  every lookup, so that setting always searches.)
- The masked text is remembered by the message's digit shape (``_masked``);
  with the default masks, a message whose shape is new has its hex and UUID
  words masked first (``masks.mask_hex_tokens``), so an event that logs a
  new id each time still has one shape.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from drain3.drain import Drain, LogCluster

from states.telemetry.masks import (
    DEFAULT_MASKS,
    MaskRule,
    compile_masks,
    mask_hex_tokens,
    mask_message,
)

STATE_VERSION: Final = 1
WILDCARD: Final = "<*>"
CACHE_LIMIT: Final = 4096  # remembered messages per cache; a full cache starts over
CACHED_LENGTH: Final = 1024  # longer messages are not remembered (bounds each cache at 4 Mi chars)
_NONZERO_DIGIT = re.compile(r"[1-9]")
_DIGIT_SHAPE: Final = bytes.maketrans(b"23456789", b"11111111")


def digit_shape(text: str) -> bytes:
    """The text's UTF-8 bytes with the digits 2-9 read as 1 (see ``TemplateMiner._masked``)."""
    return text.encode("utf-8", "surrogatepass").translate(_DIGIT_SHAPE)


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
        self._remember = self.settings.max_templates is None
        self._by_message: dict[str, LogCluster] = {}
        self._by_masked: dict[str, LogCluster] = {}
        self._by_shape: dict[bytes, str] = {}  # masked text by digit shape (see _masked)
        self._by_shape_on = all(rule.digit_blind for rule in self.settings.masks)
        self._hex_words_on = self.settings.masks == DEFAULT_MASKS  # see mask_hex_tokens

    def add(self, message: str) -> TemplateMatch:
        """Mask and cluster one message, counting it in the current window."""
        cluster, change = self._learn(message)
        self._window[cluster.cluster_id] += 1
        return TemplateMatch(
            template_id=cluster.cluster_id,
            template=cluster.get_template(),
            is_new=change == "cluster_created",
            changed=change == "cluster_template_changed",
            size=cluster.size,
        )

    def assign(self, message: str) -> tuple[int, bool]:
        """The template id of one message and whether the message created it.

        The same learning as ``add``, without the per-window count or the
        template text: the caller counts per window itself.
        """
        cluster = None  # _learn's remembered answers, without a call; the shape first (it
        if self._by_shape_on:  # answers most messages; digit_shape inline), then the message
            masked = self._by_shape.get(
                message.encode("utf-8", "surrogatepass").translate(_DIGIT_SHAPE)
            )
            cluster = None if masked is None else self._by_masked.get(masked)
        if cluster is None:
            cluster = self._by_message.get(message)
        if cluster is not None:
            cluster.size += 1
            return cluster.cluster_id, False
        cluster, change = self._learn(message)
        return int(cluster.cluster_id), change == "cluster_created"

    def _learn(self, message: str) -> tuple[LogCluster, str]:
        cluster = self._by_message.get(message)
        if cluster is not None:
            cluster.size += 1  # what drain does for a match that changes nothing
            return cluster, "none"
        masked = self._masked(message)
        cluster = self._by_masked.get(masked)
        if cluster is not None:
            cluster.size += 1
            if not self._by_shape_on:  # else the shape answers a repeat nearly as fast
                self._keep(self._by_message, message, cluster)
            return cluster, "none"
        cluster, change = self._drain.add_log_message(masked)
        if change != "none":
            self._by_message.clear()  # the tree changed: remembered answers may not hold
            self._by_masked.clear()
        elif self._remember:
            self._keep(self._by_masked, masked, cluster)
            self._keep(self._by_message, message, cluster)
        return cluster, change

    def _masked(self, message: str) -> str:
        """``mask_message(message)``, remembered by the message's digit shape when that is exact.

        The shape replaces the digits 1-9 with 1 (bytes.translate, in C). Mask
        rules that are ``digit_blind`` treat those digits alike, so masking
        commutes with the shape: shape(mask(m)) = mask(shape(m)). When mask(m)
        holds no digit 1-9, every message of the same shape masks to exactly
        mask(m) (its own mask has the same shape, which holds no 1-9 digit, so
        is itself), and the answer can be remembered for the shape.

        A hex or UUID value's letters give its message a shape of its own; so
        a message whose shape is not remembered has those words masked first
        (``mask_hex_tokens``, exact for the default rules) and is looked up
        again by the shape of what remains.
        """
        if not self._by_shape_on:
            return mask_message(message, self._masks)
        shape = digit_shape(message)
        masked = self._by_shape.get(shape)
        if masked is None and self._hex_words_on and (words := mask_hex_tokens(message)):
            message = words  # masks to the same text, and its shape is shared by more messages
            shape = digit_shape(message)
            masked = self._by_shape.get(shape)
        if masked is None:
            masked = mask_message(message, self._masks)
            if _NONZERO_DIGIT.search(masked) is None and len(shape) <= CACHED_LENGTH:
                if len(self._by_shape) >= CACHE_LIMIT:
                    self._by_shape.clear()
                self._by_shape[shape] = masked
        return masked

    def _keep(self, cache: dict[str, LogCluster], text: str, cluster: LogCluster) -> None:
        if not self._remember or len(text) > CACHED_LENGTH:
            return
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[text] = cluster

    def template_count(self) -> int:
        """How many templates are known."""
        return len(self._drain.clusters)

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
