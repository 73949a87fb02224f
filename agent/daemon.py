"""``selfheal run``: the long-lived daemon.

An APScheduler interval job runs one tick at a time (``max_instances=1``,
coalesced), so ticks never overlap. SIGTERM or SIGINT sets a stop flag that
the engine checks between beats: the current beat finishes, its checkpoint
is written, and the process exits cleanly. The systemd watchdog is only fed
while the engine shows progress, so a wedged tick gets the unit restarted.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from agent import engine
from agent.lock import DataDirLock
from agent.notify import Notifier, watchdog_interval_s
from agent.reaping import reap
from states.detect.budget import coverage_warnings
from states.progression import Runtime
from states.settings import Settings
from storage import repository as repo

log = structlog.get_logger("selfheal.daemon")


class Heartbeat:
    """When the engine last showed progress (monotonic)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    def age_s(self) -> float:
        with self._lock:
            return time.monotonic() - self._last


def _run_tick(rt: Runtime, notifier: Notifier, heartbeat: Heartbeat) -> None:
    heartbeat.beat()
    try:
        report = engine.tick(rt)
    except Exception:
        log.exception("tick failed; the machine state is unchanged and the next tick retries")
        return
    finally:
        heartbeat.beat()
    state = rt.db.query(lambda s: repo.agent_state(s, rt.clock.now()))
    notifier.status(f"{state.state}" + (f" cycle {state.cycle_id}" if state.cycle_id else ""))
    if report.commands or report.polled or len(report.steps) > 1:
        log.info("tick", state=state.state, steps=len(report.steps), commands=report.commands)


def _longest_beat_s(rt: Runtime) -> float:
    return max(b.timeout_s for spec in rt.sequences.values() for b in spec.beats)


def run(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    stop = threading.Event()
    notifier = Notifier()
    heartbeat = Heartbeat()
    with DataDirLock(settings.agent.data_dir):
        for problem in coverage_warnings(settings):
            log.warning("configuration", problem=problem)
        rt = engine.open_runtime(settings, stop)
        reap(settings, rt.db)
        engine.prune_closed_cycles(rt)
        scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"max_instances": 1, "coalesce": True}
        )
        scheduler.add_job(
            _run_tick,
            "interval",
            args=[rt, notifier, heartbeat],
            seconds=settings.agent.poll_interval_s,
            id="tick",
            next_run_time=rt.clock.now(),
        )
        interval = watchdog_interval_s()
        if interval is not None:
            limit = _longest_beat_s(rt) + 2 * settings.agent.poll_interval_s

            def feed_watchdog() -> None:
                if heartbeat.age_s() < limit:
                    notifier.watchdog()

            scheduler.add_job(feed_watchdog, "interval", seconds=interval, id="watchdog")

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stop requested", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        scheduler.start()
        notifier.ready("running")
        log.info(
            "daemon started",
            data_dir=str(settings.agent.data_dir),
            poll_interval_s=settings.agent.poll_interval_s,
        )
        while not stop.wait(0.5):
            pass
        notifier.stopping()
        scheduler.shutdown(wait=True)
        engine.close_runtime(rt)
        log.info("daemon stopped cleanly")
    return 0
