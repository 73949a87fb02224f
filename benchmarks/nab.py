"""Run selfheal's default metric detector over the Numenta Anomaly Benchmark and score it.

The detector is what pages people about metric anomalies, so it is measured on
the public corpus that published detectors are ranked on, with NAB's own
scoring (``benchmarks.nab_scoring``).  Writes the detector's output in NAB's
results layout, prints its three normalised scores next to the published
scoreboard with the time taken, and saves the figures as JSON.

    .venv/bin/python -m benchmarks.nab [--data PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import nab_scoring
from states.detect.streaming import DetectorSettings, MetricDetector

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "nab"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "nab"
DETECTOR_NAME = "selfheal"

# Normalised scores (standard, reward_low_FP_rate, reward_low_FN_rate) from NAB's scoreboard.
PUBLISHED: dict[str, tuple[float, float, float]] = {
    "ARTime": (74.9, 65.1, 80.4),
    "Numenta HTM": (70.5, 62.6, 75.2),
    "CAD OSE": (69.9, 67.0, 73.2),
    "earthgecko Skyline": (58.2, 46.2, 63.9),
    "KNN CAD": (58.0, 43.4, 64.8),
    "Relative Entropy": (54.6, 47.6, 58.8),
    "Random Cut Forest": (51.7, 38.4, 59.7),
    "Twitter ADVec": (47.1, 33.6, 53.5),
    "Windowed Gaussian": (39.6, 20.9, 47.4),
    "Etsy Skyline": (35.7, 27.1, 44.5),
    "Bayesian Changepoint": (17.7, 3.2, 32.2),
    "null": (0.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class DataFile:
    """One NAB series with its label windows as row ranges."""

    category: str
    name: str
    timestamps: list[datetime]
    values: list[float]
    windows: list[tuple[int, int]]


def parse_timestamp(text: str) -> datetime:
    """NAB timestamps are naive UTC; make them aware so epoch seconds do not depend on TZ."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def load_corpus(data: Path) -> list[DataFile]:
    """Read every ``data/<category>/*.csv`` and its windows from ``labels/``."""
    labels = json.loads((data / "labels" / "combined_windows.json").read_text())
    files: list[DataFile] = []
    for relative in sorted(labels):
        timestamps: list[datetime] = []
        values: list[float] = []
        with (data / "data" / relative).open(newline="") as handle:
            for row in csv.DictReader(handle):
                timestamps.append(parse_timestamp(row["timestamp"]))
                values.append(float(row["value"]))
        limits = [(parse_timestamp(a), parse_timestamp(b)) for a, b in labels[relative]]
        category, file_name = relative.split("/")
        windows = nab_scoring.window_rows(timestamps, limits)
        files.append(DataFile(category, file_name, timestamps, values, windows))
    return files


def detect(data_file: DataFile, detector: MetricDetector) -> list[float]:
    """Stream one file through ``detector``, one point at a time."""
    return [
        detector.update(t.timestamp(), v)
        for t, v in zip(data_file.timestamps, data_file.values, strict=True)
    ]


@dataclass(frozen=True)
class Timing:
    """Wall and CPU seconds the detector took (CPU time is what a shared machine keeps honest),
    and the largest detector state, as the agent would persist it, in bytes of JSON."""

    wall: float
    cpu: float
    state_bytes: int


def detect_corpus(
    corpus: Sequence[DataFile], settings: DetectorSettings
) -> tuple[list[list[float]], Timing]:
    """Scores for every file, the time the detector took and its largest state."""
    detectors = [MetricDetector(settings) for _ in corpus]
    wall, cpu = time.perf_counter(), time.process_time()
    scores = [detect(f, d) for f, d in zip(corpus, detectors, strict=True)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    state_bytes = max(len(json.dumps(d.to_state())) for d in detectors)
    return scores, Timing(wall, cpu, state_bytes)


def labelled(
    corpus: Sequence[DataFile], scores: Sequence[list[float]]
) -> list[nab_scoring.LabelledSeries]:
    """Pair each file's scores with its windows for the scorer."""
    return [
        nab_scoring.LabelledSeries(f"{f.category}/{f.name}", s, f.windows)
        for f, s in zip(corpus, scores, strict=True)
    ]


def write_results(out: Path, corpus: Sequence[DataFile], scores: Sequence[list[float]]) -> None:
    """NAB's results layout: ``<out>/<detector>/<category>/<detector>_<file>.csv``."""
    for data_file, file_scores in zip(corpus, scores, strict=True):
        folder = out / DETECTOR_NAME / data_file.category
        folder.mkdir(parents=True, exist_ok=True)
        in_window = [False] * len(file_scores)
        for first, last in data_file.windows:
            in_window[first : last + 1] = [True] * (last - first + 1)
        with (folder / f"{DETECTOR_NAME}_{data_file.name}").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            for t, v, s, w in zip(
                data_file.timestamps, data_file.values, file_scores, in_window, strict=True
            ):
                writer.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), v, s, int(w)])


def scoreboard(results: Sequence[nab_scoring.ProfileResult]) -> str:
    """Our normalised scores ranked among the published ones."""
    ours = (DETECTOR_NAME + " (this run)", tuple(r.normalized for r in results))
    rows = sorted([*PUBLISHED.items(), ours], key=lambda row: -row[1][0])
    lines = [f"{'detector':<28}{'standard':>10}{'low FP':>10}{'low FN':>10}"]
    lines += [f"{name:<28}{a:>10.1f}{b:>10.1f}{c:>10.1f}" for name, (a, b, c) in rows]
    return "\n".join(lines)


def run(data: Path, out: Path) -> dict[str, object]:
    """Detect, write, score and report; returns the figures written to JSON."""
    corpus = load_corpus(data)
    scores, timing = detect_corpus(corpus, DetectorSettings())
    write_results(out, corpus, scores)
    results = nab_scoring.score_corpus(labelled(corpus, scores))
    points = sum(len(f.values) for f in corpus)
    print(scoreboard(results))
    rate = points / timing.cpu
    print(
        f"\n{len(corpus)} files, {points} points in {timing.cpu:.1f} s CPU "
        f"({timing.wall:.1f} s wall): {rate:,.0f} points/s on one core; "
        f"largest detector state {timing.state_bytes:,} bytes of JSON"
    )
    figures: dict[str, object] = {
        "detector": DETECTOR_NAME,
        "files": len(corpus),
        "points": points,
        "detect_seconds": round(timing.wall, 3),
        "detect_cpu_seconds": round(timing.cpu, 3),
        "points_per_second": round(rate),
        "max_state_bytes": timing.state_bytes,
        "profiles": {
            r.profile: {
                "normalized": round(r.normalized, 2),
                "threshold": r.threshold,
                "raw": round(r.raw, 4),
                "null": round(r.null, 4),
                "perfect": r.perfect,
            }
            for r in results
        },
        "published": {name: list(v) for name, v in PUBLISHED.items()},
    }
    summary = out.parent / "nab.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``--data`` and ``--out`` and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="NAB checkout (data/, labels/)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    args = parser.parse_args(argv)
    run(args.data, args.out)


if __name__ == "__main__":
    main()
