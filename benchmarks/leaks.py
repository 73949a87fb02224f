"""The leak detector with its default settings, on generated gauges: false alarms, delay, onset.

No public data set holds labelled resource leaks (NAB's series are not
gauges running towards a limit), so the series are generated: a process's
RSS at 400 MiB with Gaussian noise, one value per one-minute window, and a
limit of 1 GiB.

- Flat series (no leak) at 1 %, 2 % and 5 % noise, 240 windows each: how
  many windows the detector flags and how many series would open an
  actionable anomaly (three flagged windows before two clean ones close it,
  as ``detect.persist_windows`` and ``clear_windows`` default).
- Leaks at 2 % noise that start after 60 flat windows and would reach the
  limit 2, 6, 12, 20 and 48 hours later: how many become actionable within
  240 windows, after how many windows, how far the estimated onset is from
  the true one, and the estimated slope against the true one.

Every window is judged as the agent judges it (``leaks.judge_gauge`` on the
look-back so far), and the CPU time of each call is measured.

Run: ``python -m benchmarks.leaks [--seeds N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from states.detect import leaks
from states.detect.policies import GaugeWatch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "leaks.json"
MIB = 1024.0 * 1024.0
BASE, LIMIT = 400 * MIB, 1024 * MIB
WATCH = GaugeWatch(name="rss_bytes", selector="process_resident_memory_bytes", limit=LIMIT)
WINDOWS, FLAT, PERSIST, CLEAR = 240, 60, 3, 2


@dataclass
class Run:
    """What streaming one series through the detector gave."""

    flagged: int = 0
    actionable_at: int | None = None
    onset: float | None = None
    slope_per_hour: float | None = None
    cpu_s: list[float] = field(default_factory=list)


def stream(values: np.ndarray) -> Run:
    """Judge every window in turn, with the anomaly lifecycle's persistence and hysteresis."""
    points = [(i * 60.0, float(v)) for i, v in enumerate(values)]
    run, consecutive, healthy, open_ = Run(), 0, 0, False
    for end in range(1, len(points) + 1):
        started = time.process_time()
        verdict = leaks.judge_gauge(
            "svc", WATCH, points[max(0, end - WATCH.lookback_windows) : end]
        )
        run.cpu_s.append(time.process_time() - started)
        finding = verdict.finding if verdict else None
        if finding is not None:
            run.flagged += 1
            open_, consecutive, healthy = True, consecutive + 1, 0
            if consecutive >= PERSIST and run.actionable_at is None:
                run.actionable_at = end - 1
                run.onset = finding.onset.timestamp() / 60.0 if finding.onset else None
                run.slope_per_hour = float(finding.evidence["slope_per_hour"])
        elif open_ and verdict is not None:
            healthy += 1
            if healthy >= CLEAR:
                open_, consecutive = False, 0
    return run


def flat_series(noise: float, seed: int) -> np.ndarray:
    return BASE * (1.0 + np.random.default_rng(seed).normal(0.0, noise, WINDOWS))


def leak_series(hours_to_limit: float, seed: int, noise: float = 0.02) -> np.ndarray:
    per_window = (LIMIT - BASE) / (hours_to_limit * 60.0)
    rise = np.maximum(0, np.arange(FLAT + WINDOWS) - FLAT) * per_window
    noisy = np.random.default_rng(seed).normal(0.0, noise * BASE, FLAT + WINDOWS)
    return BASE + rise + noisy


def flat_rows(seeds: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for noise in (0.01, 0.02, 0.05):
        runs = [stream(flat_series(noise, seed)) for seed in range(seeds)]
        judged = sum(len(r.cpu_s) for r in runs)
        rows.append(
            {
                "noise": noise,
                "series": seeds,
                "windows_flagged": sum(r.flagged for r in runs),
                "windows_judged": judged,
                "series_actionable": sum(r.actionable_at is not None for r in runs),
                "cpu_ms_median": round(
                    1000 * statistics.median(t for r in runs for t in r.cpu_s), 3
                ),
            }
        )
    return rows


def leak_rows(seeds: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for hours in (2.0, 6.0, 12.0, 20.0, 48.0):
        true_slope = (LIMIT - BASE) / hours
        runs = [stream(leak_series(hours, seed)) for seed in range(seeds)]
        found = [r for r in runs if r.actionable_at is not None]
        rows.append(
            {
                "hours_to_limit": hours,
                "series": seeds,
                "actionable": len(found),
                "delay_windows_median": _median(
                    [r.actionable_at - FLAT for r in found if r.actionable_at is not None]
                ),
                "onset_error_windows_median": _median(
                    [abs(r.onset - FLAT) for r in found if r.onset is not None]
                ),
                "slope_ratio_median": _median(
                    [r.slope_per_hour / true_slope for r in found if r.slope_per_hour]
                ),
                "false_before_leak": sum(
                    r.actionable_at is not None and r.actionable_at < FLAT for r in runs
                ),
            }
        )
    return rows


def _median(values: Sequence[float]) -> float | None:
    return round(float(statistics.median(values)), 3) if values else None


def format_table(flat: list[dict[str, object]], leaking: list[dict[str, object]]) -> str:
    lines = ["flat RSS (no leak), 240 one-minute windows per series", ""]
    lines.append(f"{'noise':>6} {'series':>7} {'flagged':>14} {'actionable':>11} {'cpu ms':>7}")
    for r in flat:
        flagged = f"{r['windows_flagged']}/{r['windows_judged']}"
        lines.append(
            f"{r['noise']:>6.0%} {r['series']:>7} {flagged:>14} {r['series_actionable']:>11} "
            f"{r['cpu_ms_median']:>7}"
        )
    lines += ["", "leaks at 2 % noise after 60 flat windows", ""]
    lines.append(
        f"{'h to limit':>10} {'found':>7} {'delay (win)':>12} {'onset err':>10} {'slope ratio':>12}"
    )
    for r in leaking:
        lines.append(
            f"{r['hours_to_limit']:>10} {str(r['actionable']) + '/' + str(r['series']):>7} "
            f"{r['delay_windows_median']!s:>12} {r['onset_error_windows_median']!s:>10} "
            f"{r['slope_ratio_median']!s:>12}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="series per row")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    flat, leaking = flat_rows(args.seeds), leak_rows(args.seeds)
    print(format_table(flat, leaking))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "detector": "leaks.judge_gauge with GaugeWatch defaults (limit 1 GiB, base 400 MiB)",
        "horizon_s": WATCH.horizon_s,
        "flat": flat,
        "leaks": leaking,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
