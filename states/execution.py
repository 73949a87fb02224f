"""Running one attempt of a beat and classifying what happened.

No handler error escapes: it becomes an ``Outcome`` the progression can
checkpoint (finished, waiting, retry later, or failed for good). Interrupts
(KeyboardInterrupt, SystemExit) are never swallowed.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sequences.schema import BeatSpec
from states.context import BeatContext, BeatResult, PermanentError, TemporaryError
from states.registry import Handler


class Status(StrEnum):
    """What one attempt came to."""

    FINISHED = "finished"
    WAITING = "waiting"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """The classified result of one attempt."""

    status: Status
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    not_before: datetime | None = None
    cycle_updates: dict[str, Any] = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _retry_or_fail(spec: BeatSpec, ctx: BeatContext, error: str, delay_s: float) -> Outcome:
    if ctx.attempt <= spec.retries:
        return Outcome(
            Status.RETRY, error=error, not_before=ctx.clock.now() + timedelta(seconds=delay_s)
        )
    return Outcome(Status.FAILED, error=f"{error} (after {ctx.attempt} attempts)")


def execute_beat_once(spec: BeatSpec, handler: Handler, ctx: BeatContext) -> Outcome:
    """Run ``handler`` once and classify the result; never raises for handler errors."""
    started = ctx.clock.monotonic()
    try:
        result = handler(ctx) or BeatResult()
    except PermanentError as exc:
        return Outcome(Status.FAILED, error=_error_text(exc))
    except TemporaryError as exc:
        return _retry_or_fail(spec, ctx, _error_text(exc), exc.delay_s)
    except Exception as exc:
        return _retry_or_fail(spec, ctx, _error_text(exc), spec.retry_delay_s)
    elapsed = ctx.clock.monotonic() - started
    if elapsed > spec.timeout_s:
        return _retry_or_fail(
            spec,
            ctx,
            f"timed out: took {elapsed:.1f}s of a {spec.timeout_s:.0f}s budget",
            spec.retry_delay_s,
        )
    if result.wait_until is not None:
        return Outcome(
            Status.WAITING,
            output={**result.output, "wait_reason": result.wait_reason},
            not_before=result.wait_until,
            cycle_updates=result.cycle_updates,
        )
    return Outcome(Status.FINISHED, output=result.output, cycle_updates=result.cycle_updates)
