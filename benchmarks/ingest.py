"""Ingestion throughput per log format, end to end, beside the floors it cannot beat.

For each format, a generated log of N lines (default 1,000,000) is ingested
the way the daemon does it: ``poll_sources`` over a real data directory
(SQLite, WAL, fsync) until the file is consumed (``max_bytes_per_poll`` at its
default, so several polls), then ``close_due_windows``, with one
``IngestMemory`` made for the run as a starting daemon makes it. That is
read → parse → normalize → fold → windows stored and closed. Formats:

- ``json``: JSON lines in the default shape (the hot path); the share of
  lines each route folds (the block decoder, the batch path, the general
  parser) is reported for them and for a realistic mix of the same size
  (``ingest_routes``);
- ``logfmt``: the same fields as ``key=value`` pairs;
- ``nginx``: combined access log lines with ``$request_time``;
- ``syslog``: RFC 3164 lines with an ISO timestamp and free-text messages,
  every one mined into a template (unstructured with templates).

For ``json`` the end-to-end run is repeated with the per-operation figures
switched off where the folder computes them (``folding.figures_of`` returns
none and ``folding.segment_sums`` sums nothing, so none are merged or stored
either; the finer tallies they are drawn from stay): the difference is what
the figures cost.

Beside them, on the same data in the same run:

- ``read``: reading the file alone, with the same cursor reader, poll size
  and blocks (the I/O floor);
- ``orjson``: ``orjson.loads`` of every JSON line already in memory (the
  floor of any JSON-lines parser in Python);
- ``drain3``: drain3's own ``TemplateMiner`` over the syslog messages already
  in memory (the text after ``app[pid]: ``), once with its default
  configuration (no masking at all) and once with the same nine mask patterns
  selfheal applies (drain3's ``MaskingInstruction``s, every pattern on every
  message). The end-to-end syslog run is compared with both.

Every figure is the median of several repeats (fresh data directory each
time). Each repeat runs the end-to-end ingest and then, back to back, each
floor it is compared with, so a pair of figures shares the machine's load of
the moment; each ratio is given as the ratio of the medians and as the median
of the pairs' ratios (``_pairwise``). The machine is shared and noisy, so CPU
time (``process_time``) is reported next to wall time, and "lines/s per
core" is lines per CPU-second: ingestion runs on one thread. Results go to
``benchmarks/results/ingest.json``.

Run: ``python -m benchmarks.ingest [--lines N] [--repeats N] [--formats json,syslog]``.
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
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from drain3 import TemplateMiner as Drain3Miner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig
from sqlmodel import select

from benchmarks.ingest_routes import route_shares, write_mixed_log
from benchmarks.json_logs import (
    COMPONENTS,
    EVENTS,
    INSTANCES,
    OPERATIONS,
    LineMaker,
    json_line,
    spread_lines,
    variables,
)
from states.settings import Settings
from states.telemetry import folding
from states.telemetry.ingest import close_due_windows, poll_sources
from states.telemetry.ingest_memory import IngestMemory
from states.telemetry.masks import DEFAULT_MASKS
from states.telemetry.tailing import FileCursor, NewLines
from storage.db import open_database
from storage.tables import CursorRow, TemplateStateRow, WindowRow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ingest.json"
FORMATS = ("json", "logfmt", "nginx", "syslog")
SPAN_S = 3600.0  # timestamps spread over the hour before "now"

PATHS = ("/catalog/items/{n}", "/checkout/orders/{n}", "/search?q=shoes", "/auth/login", "/cart")


# --- generated logs ------------------------------------------------------------------


def _logfmt_line(at: datetime, i: int, rng: random.Random) -> str:
    failed = rng.random() < 0.005
    return (
        f"ts={at.isoformat(timespec='milliseconds')} level={'error' if failed else 'info'} "
        f"component={COMPONENTS[i % len(COMPONENTS)]} "
        f'operation="{OPERATIONS[i % len(OPERATIONS)]}" '
        f"duration_ms={round(rng.lognormvariate(2.5, 0.4), 3)} "
        f"status={500 if failed else 200} version=abc1234 "
        f"instance={INSTANCES[(i // len(COMPONENTS)) % len(INSTANCES)]} "
        f'msg="{"request failed" if failed else "ok"}"'
    )


def _nginx_line(at: datetime, i: int, rng: random.Random) -> str:
    path = PATHS[i % len(PATHS)].format(n=rng.randint(1, 10_000))
    status = 500 if rng.random() < 0.005 else 200
    when = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'10.0.{i % 7}.{i % 250 + 1} - - [{when}] "GET {path} HTTP/1.1" {status} '
        f'{rng.randint(200, 9000)} "-" "curl/8.5.0" {rng.lognormvariate(-4.2, 0.4):.3f}'
    )


def _syslog_line(at: datetime, i: int, rng: random.Random) -> str:
    message = rng.choice(EVENTS).format(**variables(rng))
    pri = rng.choice((11, 12, 14, 14, 14, 14))
    return (
        f"<{pri}>{at.isoformat(timespec='microseconds')} "
        f"{INSTANCES[i % len(INSTANCES)]} {COMPONENTS[i % len(COMPONENTS)]}[{1000 + i % 50}]: "
        f"{message}"
    )


GENERATORS: dict[str, LineMaker] = {
    "json": json_line,
    "logfmt": _logfmt_line,
    "nginx": _nginx_line,
    "syslog": _syslog_line,
}


def log_lines(kind: str, n: int, end: datetime, seed: int = 7) -> Iterator[str]:
    """``n`` lines of ``kind``, timestamps evenly spread over the hour up to ``end``."""
    return spread_lines(GENERATORS[kind], n, end, SPAN_S, seed)


def write_log(path: Path, kind: str, n: int, end: datetime) -> int:
    """Write ``n`` lines to ``path`` in chunks; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as handle:
        chunk: list[str] = []
        for line in log_lines(kind, n, end):
            chunk.append(line)
            if len(chunk) == 50_000:
                size += handle.write(("\n".join(chunk) + "\n").encode())
                chunk = []
        if chunk:
            size += handle.write(("\n".join(chunk) + "\n").encode())
    return size


def settings_for(root: Path, kind: str, log: Path) -> Settings:
    """One source reading ``log`` in ``kind``, data in a fresh directory under ``root``."""
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root)},
            "telemetry": {"sources": [{"name": "app", "paths": [str(log)], "format": kind}]},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


# --- measurements ----------------------------------------------------------------------


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of ``work()``, with the collector run before."""
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - started, time.process_time() - cpu_started, result


def end_to_end(kind: str, log: Path, now: datetime) -> tuple[float, float, dict[str, Any]]:
    """Ingest ``log`` into a fresh data directory until it is consumed, then close every window."""
    with tempfile.TemporaryDirectory(prefix="selfheal-ingest-") as tmp:
        settings = settings_for(Path(tmp), kind, log)
        db = open_database(Path(tmp) / "selfheal.db")
        later = now + timedelta(hours=2)

        def ingest() -> dict[str, Any]:
            polls = lines = records = 0
            memory = IngestMemory()  # a daemon's, started with the run
            while (report := poll_sources(settings, db, now, memory)).files_read:
                polls, lines, records = polls + 1, lines + report.lines, records + report.records
            latencies = memory.latencies
            closed = db.transact(lambda s: close_due_windows(s, settings, later, latencies))
            return {"polls": polls, "lines": lines, "records": records, "closed": closed}

        try:
            wall, cpu, counts = timed(ingest)
            counts.update(db.query(_stored))
        finally:
            db.dispose()
    return wall, cpu, counts


def _stored(session: Any) -> dict[str, Any]:
    rows = list(session.exec(select(WindowRow)))
    cursor = session.exec(select(CursorRow)).one()
    state = session.get(TemplateStateRow, "app")
    return {
        "windows": len(rows),
        "counted": sum(r.count for r in rows if r.instance == ""),
        "rejected": dict(cursor.rejected),
        "templates": 0 if state is None else state.templates,
        "template_keys_in_windows": len({k for r in rows for k in r.templates}),
    }


@contextmanager
def operation_figures_off() -> Iterator[None]:
    """Ingestion without per-operation figures: the folder computes none for any window."""
    names = vars(folding)  # the names folding calls, bound where it imported them
    real = names["figures_of"], names["segment_sums"]
    names["figures_of"] = lambda tallies: {}
    names["segment_sums"] = lambda values, lengths: None  # the figures' exact sums
    try:
        yield
    finally:
        names["figures_of"], names["segment_sums"] = real


def read_floor(log: Path, max_bytes: int, max_line: int) -> int:
    """Read the whole file with the ingestion reader, poll by poll, block by block; the lines."""
    cursor: FileCursor | None = None
    lines = 0
    while True:
        reading = NewLines(log, cursor, max_bytes=max_bytes, max_line=max_line)
        read = sum(len(block) for block in reading)
        if not read and not reading.result.too_long:
            return lines
        lines += read
        cursor = reading.result.cursor


def orjson_floor(lines: Sequence[bytes]) -> int:
    """Decode every line with orjson and nothing else."""
    loads = orjson.loads
    for raw in lines:
        loads(raw)
    return len(lines)


def drain3_miner(masked: bool) -> Drain3Miner:
    """drain3's TemplateMiner, default configuration, optionally with selfheal's mask patterns."""
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    if masked:
        config.masking_instructions = [
            MaskingInstruction(rule.pattern, rule.name) for rule in DEFAULT_MASKS
        ]
    return Drain3Miner(config=config)


def drain3_floor(messages: Sequence[str], masked: bool) -> int:
    """Mine every message with drain3 alone."""
    miner = drain3_miner(masked)
    for message in messages:
        miner.add_log_message(message)
    return len(miner.drain.clusters)


def syslog_messages(log: Path) -> list[str]:
    """The free-text part of every generated syslog line."""
    with log.open("rb") as handle:
        return [line.decode().split("]: ", 1)[1] for line in handle.read().splitlines()]


# --- the run ---------------------------------------------------------------------------------


def _median_row(
    name: str, lines: int, runs: list[tuple[float, float]], **extra: Any
) -> dict[str, Any]:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return {
        "name": name,
        "lines": lines,
        "repeats": len(runs),
        "wall_s": round(wall, 6),
        "cpu_s": round(cpu, 6),
        "wall_all_s": [round(r[0], 3) for r in runs],
        "cpu_all_s": [round(r[1], 6) for r in runs],
        "lines_per_s": round(lines / wall) if wall else None,
        "lines_per_cpu_s": round(lines / cpu) if cpu else None,
        "us_per_line_cpu": round(cpu / lines * 1e6, 3) if lines else None,
        **extra,
    }


def measure_format(kind: str, n: int, repeats: int, workdir: Path) -> list[dict[str, Any]]:
    """The end-to-end row of one format and the floors that apply to it.

    Each repeat runs the end-to-end ingest and then each floor that is
    compared with it, so a pair of figures shares the machine's load of the
    moment (``ratios`` also gives the median of the pairs' ratios).
    """
    now = datetime.now(UTC).replace(microsecond=0)
    log = workdir / f"{kind}.log"
    size = write_log(log, kind, n, now)
    defaults = settings_for(workdir, kind, log).telemetry
    paired = _paired_work(kind, log, now)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in paired}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, work in paired.items():
            wall, cpu, results[name] = work()
            runs[name].append((wall, cpu))
    counts = results.pop(f"{kind}: end to end")
    rows = [
        _median_row(
            f"{kind}: end to end", n, runs.pop(f"{kind}: end to end"), bytes=size, stored=counts
        )
    ]
    read_runs = [
        timed(lambda: read_floor(log, defaults.max_bytes_per_poll, defaults.max_line_bytes))[:2]
        for _ in range(repeats)
    ]
    rows.append(_median_row(f"{kind}: read file alone", n, read_runs))
    for name, name_runs in runs.items():
        extra = {"templates": results[name]} if "drain3" in name else {}
        rows.append(_median_row(name, n, name_runs, **extra))
    if kind == "json":
        rows[0]["routes"] = route_shares(log, now)
        mixed = workdir / "json-mixed.log"
        write_mixed_log(mixed, n, now)
        rows[0]["routes_mixed"] = route_shares(mixed, now)
        mixed.unlink()
    log.unlink()
    return rows


Timed = tuple[float, float, Any]  # wall and CPU seconds, and what the work returned


def _paired_work(kind: str, log: Path, now: datetime) -> dict[str, Callable[[], Timed]]:
    """What one repeat runs, in order: the end-to-end ingest, then what it is compared with."""

    def without_figures() -> Timed:
        with operation_figures_off():
            return end_to_end(kind, log, now)

    work: dict[str, Callable[[], Timed]] = {
        f"{kind}: end to end": functools.partial(end_to_end, kind, log, now)
    }
    if kind == "json":
        lines = log.read_bytes().splitlines()
        work["json: end to end, operation figures off"] = without_figures
        work["json: orjson.loads alone"] = functools.partial(
            timed, functools.partial(orjson_floor, lines)
        )
    if kind == "syslog":
        messages = syslog_messages(log)
        for masked, label in ((False, "default config"), (True, "with selfheal's masks")):
            work[f"syslog: drain3 alone, {label}"] = functools.partial(
                timed, functools.partial(drain3_floor, messages, masked)
            )
    return work


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """End-to-end CPU cost over the floors' (how many times slower than the floor): the
    ratio of the medians, and (``_pairwise``) the median of each repeat's ratio."""
    by_name = {r["name"]: r for r in rows}
    found: dict[str, float] = {}
    pairs = {
        "json_end_to_end_over_orjson": ("json: end to end", "json: orjson.loads alone"),
        "json_end_to_end_over_operation_figures_off": (
            "json: end to end",
            "json: end to end, operation figures off",
        ),
        "syslog_end_to_end_over_drain3_default": (
            "syslog: end to end",
            "syslog: drain3 alone, default config",
        ),
        "syslog_end_to_end_over_drain3_masked": (
            "syslog: end to end",
            "syslog: drain3 alone, with selfheal's masks",
        ),
    }
    for label, (top, floor) in pairs.items():
        if top in by_name and floor in by_name and by_name[floor]["cpu_s"]:
            found[label] = round(by_name[top]["cpu_s"] / by_name[floor]["cpu_s"], 2)
            pairwise = [
                t / f
                for t, f in zip(by_name[top]["cpu_all_s"], by_name[floor]["cpu_all_s"], strict=True)
                if f
            ]
            if pairwise:  # the repeats ran each pair back to back (measure_format)
                found[f"{label}_pairwise"] = round(statistics.median(pairwise), 2)
    return found


def run(lines: int, repeats: int, formats: Sequence[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="selfheal-logs-") as tmp:
        for kind in formats:
            rows.extend(measure_format(kind, lines, repeats, Path(tmp)))
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "lines": lines,
        "repeats": repeats,
        "rows": rows,
        "cpu_ratios": ratios(rows),
    }


def render(results: dict[str, Any]) -> str:
    header = ("", "lines/s (wall)", "lines/CPU-s", "wall s", "CPU s", "µs/line CPU")
    table = [header] + [
        (
            r["name"],
            f"{r['lines_per_s']:,}",
            f"{r['lines_per_cpu_s']:,}",
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{r['us_per_line_cpu']:.2f}",
        )
        for r in results["rows"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    lines.append("")
    lines.append(f"medians of {results['repeats']} runs, {results['lines']:,} lines per format")
    for row in results["rows"]:
        for label in ("routes", "routes_mixed"):
            if label in row:
                shares = ", ".join(f"{k} {v:.2%}" for k, v in row[label].items())
                lines.append(f"{row['name']}, {label.replace('_', ' ')}: {shares}")
    lines += [f"{name}: {value}x (CPU)" for name, value in results["cpu_ratios"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per format")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown format(s) {unknown}; known: {list(FORMATS)}")
    results = run(args.lines, args.repeats, formats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
