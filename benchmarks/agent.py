"""The cost of running the agent: an idle tick, a tick over 100,000 new lines, memory over time.

Everything is real: a SQLite data directory in a temporary folder, JSON log
files on disk, and the engine as the daemon runs it (``engine.open_runtime``
then ``engine.tick``) with one json source and a command deployer.

1. Idle tick: no new telemetry. Median and p95 over many ticks, and proof that
   it reads nothing: Python-level ``open`` calls on paths under the log
   directory are counted with an audit hook, and beats run are counted from
   the tick reports and the ``beat_run`` table (both must stay at zero).
2. Ingest tick: one tick over N new lines in the default JSON shape (several
   components and instances, timestamps spread over a few minutes ending
   now): poll, read, fold, store, close windows, detect, back to idle. Fresh
   data directory per repetition; median, lines/s and a per-beat breakdown,
   then the read-sources beat's stages (read, parse, fold, store, close) timed
   one by one on the same kind of data, to show where the time goes.
3. Resident memory of a fresh process running many idle ticks, sampled along
   the way; growth is a least-squares slope over the samples after warm-up.
4. Steady ticks: a daemon that has read its log, then ticks every 10 simulated
   seconds over the lines written since (a small growth), windows closing as
   they fall due. Two data directories get the same lines, tick for tick:
   one runtime keeps its ``IngestMemory`` as the daemon does, the other is
   given a new one before every tick (what every poll started from before
   polls kept one); CPU per tick, medians, and their ratio.

Machines are shared and noisy: figures are medians (and p95) with their
repeat counts, and CPU time (``process_time``) is reported next to wall time:
on a busy machine the gap is time spent waiting for a CPU, not work. Nothing
here is a pass/fail threshold.

Run: ``python -m benchmarks.agent [--lines N] [--idle-ticks N] [--out FILE]``
(or ``python benchmarks/agent.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import functools
import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func
from sqlmodel import col, select

from agent import engine
from benchmarks.json_logs import JsonLogStyle, json_line, spread_lines
from states.progression import Runtime
from states.settings import Settings
from states.telemetry import ingest
from states.telemetry.formats import make_parser
from states.telemetry.ingest_memory import IngestMemory
from states.telemetry.line_folding import parse_lines
from states.telemetry.tailing import read_new_lines
from states.telemetry.windows import fold
from storage.tables import BeatRunRow, CursorRow, TransitionRow, WindowRow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "agent.json"

# four instances, durations to a tenth of a millisecond, failures without an event to mine
LOG_STYLE = JsonLogStyle(instances=4, duration_digits=1, event_messages=False)
RSS_SAMPLE_EVERY = 50
RSS_WARMUP_TICKS = 200  # allocator arenas and statement caches settle in the first ticks


# --- fixtures: settings and log lines --------------------------------------------


def make_settings(root: Path) -> Settings:
    """One json source over ``root/logs``, a command deployer, data in ``root/data``."""
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data")},
            "telemetry": {
                "sources": [
                    {"name": "app", "paths": [str(root / "logs" / "*.log")], "format": "json"}
                ]
            },
            "deploy": {
                "kind": "command",
                "command": {
                    "targets": ["t1"],
                    "deploy": ["true"],
                    "version": ["echo", "abc1234"],
                },
            },
        }
    )


def log_lines(n: int, end: datetime, span_s: float = 240.0, seed: int = 7) -> Iterator[str]:
    """``n`` JSON lines in the default shape, timestamps evenly spread over ``span_s`` up to ``end``."""
    make = functools.partial(json_line, style=LOG_STYLE)
    return spread_lines(make, n, end, span_s, seed)


def write_log(path: Path, n: int, end: datetime) -> int:
    """Append ``n`` lines to ``path``; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in log_lines(n, end)).encode()
    with path.open("ab") as handle:
        handle.write(data)
    return len(data)


# --- counting file opens ------------------------------------------------------------


@dataclass
class OpenCounter:
    """Counts Python-level ``open`` audit events while armed (audit hooks cannot be removed)."""

    watched: list[str] = field(default_factory=list)
    armed: bool = False
    under_watched: int = 0
    total: int = 0
    paths: list[str] = field(default_factory=list)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or event != "open" or not args:
            return
        target = args[0]
        if isinstance(target, int):  # os.fdopen / open(fd): no path to attribute
            return
        try:
            path = os.fsdecode(target)
        except TypeError:
            return
        self.total += 1
        if any(path.startswith(prefix) for prefix in self.watched):
            self.under_watched += 1
            if len(self.paths) < 10:
                self.paths.append(path)

    @contextmanager
    def watching(self, directory: Path) -> Iterator[OpenCounter]:
        self.watched = [str(directory), str(directory.resolve())]
        self.under_watched = self.total = 0
        self.paths = []
        self.armed = True
        try:
            yield self
        finally:
            self.armed = False


_COUNTER: OpenCounter | None = None


def open_counter() -> OpenCounter:
    """The process's one counter, installed on first use."""
    global _COUNTER  # noqa: PLW0603
    if _COUNTER is None:
        _COUNTER = OpenCounter()
        sys.addaudithook(_COUNTER.hook)
    return _COUNTER


# --- small helpers ---------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (a value that was actually measured)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 0.95), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def quiet_logs() -> None:
    """Warnings and errors only, to stderr, so the table stays readable."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def rss_kib() -> int:
    """Resident set size of this process (VmRSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    import resource  # noqa: PLC0415  (not Linux: fall back to the peak)

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def slope_per(xs: Sequence[float], ys: Sequence[float], per: float) -> float:
    """Least-squares slope of ys over xs, scaled to ``per`` units of x."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx * per if sxx else 0.0


def beat_runs_stored(rt: Runtime) -> int:
    return int(rt.db.query(lambda s: s.exec(select(func.count()).select_from(BeatRunRow)).one()))


def transitions_stored(rt: Runtime) -> int:
    return int(rt.db.query(lambda s: s.exec(select(func.count()).select_from(TransitionRow)).one()))


@dataclass
class SteppedClock:
    """Wall time moved by hand: a steady daemon's ticks, without waiting for them."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


@contextmanager
def runtime(root: Path, clock: SteppedClock | None = None) -> Iterator[Runtime]:
    """A runtime over ``root`` (data and logs), closed afterwards."""
    rt = engine.open_runtime(make_settings(root), threading.Event(), clock)
    try:
        yield rt
    finally:
        engine.close_runtime(rt)


# --- 1. the idle tick -------------------------------------------------------------


def idle_ticks(ticks: int, lines: int = 1000) -> dict[str, Any]:
    """Ingest ``lines`` once, then time ``ticks`` ticks with nothing new."""
    counter = open_counter()
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        write_log(logs / "app.log", lines, datetime.now(UTC))
        with runtime(root) as rt:
            first = engine.tick(rt)  # consume the file; the machine returns to idle
            beats_before, transitions_before = beat_runs_stored(rt), transitions_stored(rt)
            durations: list[float] = []
            cpu: list[float] = []
            ran = polled = non_idle = 0
            with counter.watching(logs):
                for _ in range(ticks):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    report = engine.tick(rt)
                    durations.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - cpu_started)
                    ran += sum(step.kind == "ran" for step in report.steps)
                    polled += report.polled
                    non_idle += report.final_state != "idle"
            return {
                "ticks": ticks,
                "setup_lines": lines,
                "setup_tick_final_state": first.final_state,
                **summary_ms(durations),
                "cpu_median_ms": round(statistics.median(cpu) * 1000, 3),
                "cpu_p95_ms": round(percentile(cpu, 0.95) * 1000, 3),
                "log_file_opens": counter.under_watched,
                "log_file_opened": counter.paths,
                "python_opens_any_path": counter.total,
                "beats_run": ran,
                "beat_runs_stored_delta": beat_runs_stored(rt) - beats_before,
                "transitions_stored_delta": transitions_stored(rt) - transitions_before,
                "ticks_that_polled": polled,
                "ticks_not_ending_idle": non_idle,
            }


# --- 2. the tick over new lines ------------------------------------------------------


def _window_totals(rt: Runtime) -> dict[str, int]:
    def read(session: Any) -> dict[str, int]:
        rows = list(session.exec(select(WindowRow)))
        cursor_rows = list(session.exec(select(CursorRow)))
        return {
            "windows": len(rows),
            "windows_closed": sum(r.closed for r in rows),
            "count_all_instances": sum(r.count for r in rows if r.instance == ""),
            "count_per_instance": sum(r.count for r in rows if r.instance != ""),
            "cursor_lines": sum(c.lines for c in cursor_rows),
            "rejected": sum(sum(c.rejected.values()) for c in cursor_rows),
        }

    return dict(rt.db.query(read))


def _beat_seconds(rt: Runtime) -> dict[str, float]:
    rows = rt.db.query(lambda s: list(s.exec(select(BeatRunRow).order_by(col(BeatRunRow.id)))))
    return {
        f"{r.phase}/{r.beat_id}": round((r.finished_at - r.started_at).total_seconds(), 4)
        for r in rows
        if r.started_at is not None and r.finished_at is not None
    }


def ingest_once(lines: int) -> dict[str, Any]:
    """One tick over ``lines`` new lines, in a fresh data directory."""
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        root = Path(tmp)
        size = write_log(root / "logs" / "app.log", lines, datetime.now(UTC))
        with runtime(root) as rt:
            started, cpu_started = time.perf_counter(), time.process_time()
            report = engine.tick(rt)
            seconds = time.perf_counter() - started
            return {
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu_started,
                "bytes": size,
                "polled": report.polled,
                "steps": [f"{s.kind}:{s.state}:{s.beat}".rstrip(":") for s in report.steps],
                "final_state": report.final_state,
                "beats_run": sum(step.kind == "ran" for step in report.steps),
                "beat_seconds": _beat_seconds(rt),
                **_window_totals(rt),
            }


def ingest_ticks(lines: int, repeats: int) -> dict[str, Any]:
    runs = [ingest_once(lines) for _ in range(repeats)]
    seconds = [r["seconds"] for r in runs]
    median = statistics.median(seconds)
    last = runs[-1]
    beats = {
        name: round(statistics.median(r["beat_seconds"].get(name, 0.0) for r in runs), 4)
        for name in last["beat_seconds"]
    }
    return {
        "lines": lines,
        "bytes": last["bytes"],
        "repeats": repeats,
        "median_s": round(median, 4),
        "min_s": round(min(seconds), 4),
        "max_s": round(max(seconds), 4),
        "all_s": [round(s, 4) for s in seconds],
        "cpu_median_s": round(statistics.median(r["cpu_seconds"] for r in runs), 4),
        "lines_per_s": round(lines / median),
        "mib_per_s": round(last["bytes"] / median / 2**20, 2),
        "beat_median_s": beats,
        "steps": last["steps"],
        "final_state": last["final_state"],
        "beats_run": last["beats_run"],
        "windows": last["windows"],
        "windows_closed": last["windows_closed"],
        "count_all_instances": last["count_all_instances"],
        "count_per_instance": last["count_per_instance"],
        "cursor_lines": last["cursor_lines"],
        "rejected": last["rejected"],
    }


def _stages_once(lines: int) -> dict[str, float]:
    """The read-sources beat's steps, one by one, then closing every window it made."""
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        root = Path(tmp)
        path = root / "logs" / "app.log"
        write_log(path, lines, datetime.now(UTC))
        with runtime(root) as rt:
            settings, now = rt.settings, datetime.now(UTC)
            spec, window_s = settings.telemetry.sources[0].format, settings.telemetry.window_s
            parser = make_parser(spec)
            marks = [time.perf_counter()]
            result = read_new_lines(
                path,
                None,
                max_bytes=settings.telemetry.max_bytes_per_poll,
                max_line=settings.telemetry.max_line_bytes,
            )
            marks.append(time.perf_counter())
            oldest = now - timedelta(seconds=settings.telemetry.retention_s)
            latest = now + ingest.FUTURE_TOLERANCE
            records, rejected = parse_lines(spec, parser, result.lines, latest, oldest)
            marks.append(time.perf_counter())
            partials = fold(records, window_s)
            marks.append(time.perf_counter())
            rt.db.transact(
                functools.partial(
                    ingest.store_poll,
                    key=f"app:{path}",
                    source="app",
                    cursor=result.cursor,
                    partials=partials,
                    lines=len(result.lines),
                    rejected=rejected,
                    window_s=window_s,
                    now=now,
                )
            )
            marks.append(time.perf_counter())
            later = now + timedelta(hours=1)  # every window is due
            rt.db.transact(lambda s: ingest.close_due_windows(s, settings, later))
            marks.append(time.perf_counter())
    names = ("read_file", "parse", "fold", "store_windows", "close_windows")
    return {name: b - a for name, a, b in zip(names, marks, marks[1:], strict=False)}


def ingest_stages(lines: int, repeats: int) -> dict[str, Any]:
    """Where an ingest tick's time goes, stage by stage (median seconds over ``repeats``)."""
    runs = [_stages_once(lines) for _ in range(repeats)]
    return {
        "lines": lines,
        "repeats": repeats,
        "median_s": {name: round(statistics.median(r[name] for r in runs), 4) for name in runs[0]},
    }


# --- 4. steady ticks, with and without what polls keep in memory -------------------------------


STEADY_STEP_S = 10.0  # simulated seconds between two steady ticks


def steady_ticks(ticks: int, lines: int, warmup_lines: int = 20_000) -> dict[str, Any]:
    """CPU per tick over ``lines`` new lines a tick, kept memory against a new one each tick."""
    cpu: dict[str, list[float]] = {"kept": [], "new": []}
    closed: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        clock = SteppedClock(datetime.now(UTC).replace(microsecond=0))
        roots = {name: Path(tmp) / name for name in cpu}
        with runtime(roots["kept"], clock) as kept, runtime(roots["new"], clock) as new:
            runtimes = {"kept": kept, "new": new}
            for root in roots.values():
                write_log(root / "logs" / "app.log", warmup_lines, clock.at)
            for rt in runtimes.values():
                engine.tick(rt)
            for i in range(ticks):
                clock.at += timedelta(seconds=STEADY_STEP_S)
                data = _steady_lines(lines, clock.at, seed=i)
                order = ("kept", "new") if i % 2 == 0 else ("new", "kept")
                for name in order:
                    with (roots[name] / "logs" / "app.log").open("ab") as handle:
                        handle.write(data)
                    if name == "new":
                        new.telemetry = IngestMemory()
                    gc.collect()
                    cpu_started = time.process_time()
                    engine.tick(runtimes[name])
                    cpu[name].append(time.process_time() - cpu_started)
            for name, rt in runtimes.items():
                closed[name] = _window_totals(rt)["windows_closed"]
    kept_ms, new_ms = (statistics.median(cpu[n]) * 1000 for n in ("kept", "new"))
    return {
        "ticks": ticks,
        "lines_per_tick": lines,
        "step_s": STEADY_STEP_S,
        "cpu_median_ms_kept": round(kept_ms, 3),
        "cpu_median_ms_new": round(new_ms, 3),
        "kept_over_new": round(kept_ms / new_ms, 3),
        "pairwise_median_ratio": round(
            statistics.median(a / b for a, b in zip(cpu["kept"], cpu["new"], strict=True)), 3
        ),
        "windows_closed": closed,
    }


def _steady_lines(n: int, end: datetime, seed: int) -> bytes:
    make = functools.partial(json_line, style=LOG_STYLE)
    lines = spread_lines(make, n, end, STEADY_STEP_S, seed)
    return "".join(line + "\n" for line in lines).encode()


# --- 3. memory over many idle ticks (run in a fresh process) ------------------------------


def rss_over_ticks(ticks: int, every: int = RSS_SAMPLE_EVERY) -> dict[str, Any]:
    """Sample VmRSS and live objects while running ``ticks`` idle ticks in this process."""
    marks = sorted({0, ticks, *range(0, ticks + 1, every), *(m for m in (100, 500) if m < ticks)})
    samples: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        root = Path(tmp)
        write_log(root / "logs" / "app.log", 1000, datetime.now(UTC))
        with runtime(root) as rt:
            engine.tick(rt)  # ingest once, back to idle
            done = 0
            for mark in marks:
                while done < mark:
                    engine.tick(rt)
                    done += 1
                samples.append(
                    {"tick": done, "rss_kib": rss_kib(), "gc_objects": len(gc.get_objects())}
                )
    after = [s for s in samples if s["tick"] >= RSS_WARMUP_TICKS]
    xs, rss = [s["tick"] for s in after], [s["rss_kib"] for s in after]
    return {
        "ticks": ticks,
        "warmup_ticks": RSS_WARMUP_TICKS,
        "samples": samples,
        "growth_kib_per_100_ticks": round(slope_per(xs, rss, 100), 2),
        "range_kib_after_warmup": max(rss) - min(rss) if rss else 0,
        "gc_objects_per_100_ticks": round(slope_per(xs, [s["gc_objects"] for s in after], 100), 2),
        "rss_kib_at": {
            str(s["tick"]): s["rss_kib"] for s in samples if s["tick"] in (0, 100, 500, ticks)
        },
    }


def rss_in_subprocess(ticks: int) -> dict[str, Any]:
    """Run ``rss_over_ticks`` in a fresh interpreter so nothing else here inflates it."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.agent", "--rss-child", str(ticks)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- report ---------------------------------------------------------------------------


def run(
    *,
    lines: int,
    ingest_repeats: int,
    idle: int,
    rss_ticks: int,
    rss: bool = True,
    steady: int = 40,
    steady_lines: int = 2000,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "idle_tick": idle_ticks(idle),
        "ingest_tick": ingest_ticks(lines, ingest_repeats),
        "ingest_stages": ingest_stages(lines, ingest_repeats),
        "steady_ticks": steady_ticks(steady, steady_lines),
    }
    if rss:
        results["rss"] = rss_in_subprocess(rss_ticks)
    return results


def render(results: dict[str, Any]) -> str:
    idle, ingest = results["idle_tick"], results["ingest_tick"]
    rows = [
        (
            "idle tick: median / p95",
            f"{idle['median_ms']:.2f} ms / {idle['p95_ms']:.2f} ms",
            f"{idle['ticks']} ticks; CPU {idle['cpu_median_ms']:.2f} / {idle['cpu_p95_ms']:.2f} ms",
        ),
        (
            "idle tick: log files opened",
            str(idle["log_file_opens"]),
            f"{idle['python_opens_any_path']} opens of any path",
        ),
        (
            "idle tick: beats run",
            str(idle["beats_run"]),
            f"{idle['ticks_that_polled']} ticks polled",
        ),
        (
            f"tick over {ingest['lines']:,} lines: median",
            f"{ingest['median_s']:.2f} s",
            f"{ingest['repeats']} runs, {ingest['min_s']:.2f}-{ingest['max_s']:.2f} s; "
            f"CPU {ingest['cpu_median_s']:.2f} s",
        ),
        ("  throughput", f"{ingest['lines_per_s']:,} lines/s", f"{ingest['mib_per_s']} MiB/s"),
        (
            "  windows stored",
            str(ingest["windows"]),
            f"counts add to {ingest['count_all_instances']:,}; ended {ingest['final_state']}",
        ),
    ]
    rows += [
        (f"    beat {name}", f"{s:.3f} s", "median") for name, s in ingest["beat_median_s"].items()
    ]
    stages = results["ingest_stages"]
    rows += [
        (f"    stage {name}", f"{s:.3f} s", f"median of {stages['repeats']}, run apart")
        for name, s in stages["median_s"].items()
    ]
    steady = results["steady_ticks"]
    rows.append(
        (
            f"steady tick over {steady['lines_per_tick']:,} new lines: CPU median",
            f"{steady['cpu_median_ms_kept']:.2f} ms",
            f"{steady['ticks']} ticks, every {steady['step_s']:.0f} s simulated; "
            f"{steady['cpu_median_ms_new']:.2f} ms with a new IngestMemory each tick "
            f"({steady['kept_over_new']}x, pair by pair {steady['pairwise_median_ratio']}x)",
        )
    )
    if "rss" in results:
        rss = results["rss"]
        at = ", ".join(f"{t}: {v / 1024:.1f}" for t, v in rss["rss_kib_at"].items())
        rows += [
            ("RSS (MiB) at tick", at, f"{rss['ticks']} idle ticks, fresh process"),
            (
                "RSS growth",
                f"{rss['growth_kib_per_100_ticks']:+.1f} KiB / 100 ticks",
                f"fit over ticks >= {rss['warmup_ticks']}; range {rss['range_kib_after_warmup']} KiB",
            ),
        ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>{value_width}}  {c}" for a, b, c in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=100_000, help="new lines for the ingest tick")
    parser.add_argument("--ingest-repeats", type=int, default=5)
    parser.add_argument("--idle-ticks", type=int, default=200)
    parser.add_argument("--rss-ticks", type=int, default=1000)
    parser.add_argument("--steady-ticks", type=int, default=40)
    parser.add_argument("--steady-lines", type=int, default=2000, help="new lines per tick")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_logs()
    if args.rss_child:
        print(json.dumps(rss_over_ticks(args.rss_child)))
        return 0
    results = run(
        lines=args.lines,
        ingest_repeats=args.ingest_repeats,
        idle=args.idle_ticks,
        rss_ticks=args.rss_ticks,
        steady=args.steady_ticks,
        steady_lines=args.steady_lines,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
