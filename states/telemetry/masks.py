"""Masks: the variable parts of a log message (ids, numbers, addresses, paths, times) named.

Template mining must see only a message's constant words, so each message is
masked before Drain clusters it ("timed out after 3000 ms" and "after 250
ms" both become "after <NUM> ms"). The rules are data (``MaskRule``), so a
source can add its own in config.toml; the defaults are ordered from the
specific shapes to the generic number.

Masking runs on every message that no remembered answer covers, so it is
made cheap without changing a single result: each default rule names
substrings its pattern cannot match without (``requires``, and a digit for
most), checked with ``in`` on the current text before running the regular
expression over it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

_DIGIT = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class MaskRule:
    """Replace every match of ``pattern`` with ``<name>`` before clustering.

    ``requires`` and ``needs_digit`` are a promise about the pattern, used to
    skip it cheaply: it cannot match a text unless, for every group in
    ``requires``, one of the group's substrings occurs in the text, and
    (``needs_digit``) the text holds a decimal digit. ``digit_blind`` is a
    promise that neither the pattern nor the substitute tells the digits 1-9
    apart (no such digit as a literal or range end, no backreference inside
    the pattern; ``\\d``, ``\\w`` and classes with all of 1-9 are fine), so
    masking commutes with replacing those digits by 1 (``TemplateMiner._masked``).
    """

    name: str
    pattern: str
    substitute: str | None = None
    requires: tuple[tuple[str, ...], ...] = ()
    needs_digit: bool = False
    digit_blind: bool = False

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
        requires=(("-",), (":",)),
        needs_digit=True,
        digit_blind=True,
    ),
    MaskRule(
        "URL", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+", requires=(("://",),), digit_blind=True
    ),
    MaskRule(
        "TIME",
        r"(?<![\w.:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\b",
        requires=((":",),),
        needs_digit=True,
        digit_blind=True,
    ),
    MaskRule(
        "PATH",
        r"(?<![\w.:/<])(?:/[\w.~%@+-]+){2,}/?|\b[A-Za-z]:(?:\\[\w .~%@+-]+)+",
        requires=(("/", ":\\"),),
        digit_blind=True,
    ),
    MaskRule(
        "UUID",
        r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b",
        requires=(("-",),),
        digit_blind=True,
    ),
    MaskRule(
        "ADDR",
        r"(?<![\w.])(?:(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?"
        r"(?:,(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?)*"
        r"|(?:[A-Za-z0-9-]+\.)+[A-Za-z][\w-]*:\d{1,5})(?![\w.])",
        requires=((".",),),
        needs_digit=True,
        digit_blind=True,
    ),
    # "18846 bytes (18.4 KB)" restates the byte count; keep one spelling.
    MaskRule(
        "SIZE",
        r"\b(\d+ bytes) \(\d+(?:\.\d+)? ?[KMGT]i?B\)",
        substitute=r"\1",
        requires=((" bytes (",),),
        needs_digit=True,
        digit_blind=True,
    ),
    MaskRule(
        "DUR",
        r"(?<![\w.])<?\d+(?:\.\d+)? ?(?:ms|msec|secs?|seconds?|mins?|minutes?|hours?)\b",
        requires=(("ms", "sec", "min", "hour"),),
        needs_digit=True,
        digit_blind=True,
    ),
    MaskRule(
        "NUM",
        r"(?<![\w.])(?:[-+]?\d+(?:\.\d+)?(?:[kKmMgG]?[bB]|ms|s|us|%)?"
        r"|0[xX][0-9a-fA-F]+|(?=[a-fA-F]*\d)[0-9a-fA-F]{6,})(?![\w.])"
        r"|(?<=[A-Za-z][._=#-])\d+(?![\w.])",
        needs_digit=True,
        digit_blind=True,
    ),
)


# A hex or UUID word starting after a space (or at the start): its first character is matched
# before the lookbehind, so the search skips in C every character that cannot start one (a
# leading lookbehind would be tried at every position).
_HEX_WORD: Final = re.compile(
    r"[0-9a-fA-F](?<![^ ].)"
    r"(?:[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{5,})(?![^ ])"
)


def mask_hex_tokens(message: str) -> str | None:
    """The message with its hex and UUID words already masked as ``DEFAULT_MASKS`` mask them,
    or None when it has none (or a Windows path, see below).

    A hex word here is a space-delimited word of six or more hex digits with at
    least one digit and one letter (``3fa2b1c0d9e8``); a UUID word is a whole
    space-delimited UUID. Under the default rules such a word always ends up
    whole as ``<NUM>`` (``<UUID>``), and masking the rest of the message does
    not depend on it, so ``mask_message(mask_hex_tokens(m))`` equals
    ``mask_message(m)``: no rule before NUM (UUID) can match inside such a
    word (each needs a character it lacks: ``:``, ``/``, ``.``, a letter past
    ``f`` as in a unit or ``bytes``; a timestamp needs groups of other
    lengths than a UUID's), no rule's match reaches across the spaces around
    it, and NUM's (UUID's) pattern matches exactly the word between them. The
    one rule that reaches across spaces, a Windows path (``C:\\Program Files\\x``),
    could swallow it, so a message with ``:\\`` is left alone.

    Why: a hex value's letters make its message a digit shape of its own
    (``TemplateMiner._masked``), so each such message was masked in full;
    with the words masked first, the messages of one event share a shape.
    """
    if ":\\" in message:
        return None
    masked = _HEX_WORD.sub(_hex_word_mask, message)
    return None if masked == message else masked


def _hex_word_mask(word: re.Match[str]) -> str:
    """What the default rules make of a whole hex or UUID word (a word of digits or of letters
    only is left to them: it is no hex value to NUM)."""
    text = word.group()
    if "-" in text:
        return "<UUID>"
    return text if text.isdigit() or text.isalpha() else "<NUM>"


CompiledRule = tuple[re.Pattern[str], str, tuple[tuple[str, ...], ...], bool]


@dataclass(frozen=True, slots=True)
class CompiledMasks:
    """Mask rules compiled once, applied in order: (pattern, replacement, requires, needs_digit)."""

    rules: tuple[CompiledRule, ...] = field(default=())


def compile_masks(rules: Sequence[MaskRule]) -> CompiledMasks:
    """Compile mask rules; a broken pattern fails here, naming the rule."""
    compiled: list[CompiledRule] = []
    for rule in rules:
        try:
            pattern = re.compile(rule.pattern)
        except re.error as error:
            raise ValueError(f"mask rule {rule.name!r}: invalid pattern: {error}") from error
        compiled.append((pattern, rule.replacement, rule.requires, rule.needs_digit))
    return CompiledMasks(tuple(compiled))


def mask_message(message: str, masks: CompiledMasks) -> str:
    """Replace variable parts of a message with their mask names.

    A rule whose required substrings (or digit) are missing from the current
    text is skipped: its pattern could not match, so the result is the same.
    """
    has_digit: bool | None = None  # of the current text, found when first needed
    for pattern, replacement, requires, needs_digit in masks.rules:
        if needs_digit:
            if has_digit is None:
                has_digit = _DIGIT.search(message) is not None
            if not has_digit:
                continue
        if requires and not _has_all(message, requires):
            continue
        masked = pattern.sub(replacement, message)
        if masked is not message:  # sub returns the very same string when nothing matched
            message, has_digit = masked, None
    return message


def _has_all(text: str, requires: tuple[tuple[str, ...], ...]) -> bool:
    """Whether ``text`` holds one substring of every group (loops: no generator per call)."""
    for group in requires:
        for part in group:
            if part in text:
                break
        else:
            return False
    return True
