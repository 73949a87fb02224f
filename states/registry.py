"""Beat handlers by name, so sequences (data) can refer to code.

Handlers register with ``@beat("phase.verb")`` when their module is imported;
``states.handlers`` imports every phase so the registry is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from states.context import BeatContext, BeatResult

Handler: TypeAlias = "Callable[[BeatContext], BeatResult | None]"

_HANDLERS: dict[str, Handler] = {}


def beat(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler called ``name``."""

    def register(handler: Handler) -> Handler:
        if name in _HANDLERS and _HANDLERS[name] is not handler:
            raise ValueError(f"handler {name!r} is registered twice")
        _HANDLERS[name] = handler
        return handler

    return register


def handler(name: str) -> Handler:
    """The handler registered as ``name``."""
    return _HANDLERS[name]


def handler_names() -> frozenset[str]:
    """Every registered handler name."""
    return frozenset(_HANDLERS)
