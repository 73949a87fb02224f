"""Template mining measured against LogHub's ground truth, next to Drain's published figures.

The template miner decides which messages count as "the same event"; if it
splits or merges events wrongly, every per-template signal downstream is
wrong. LogHub's 2k-line samples of 16 systems carry hand-labelled event ids,
and Drain's grouping accuracy on them is the published yardstick.

Grouping accuracy (LogPAI): a message is parsed correctly when the set of
messages in its predicted group equals the set in its ground-truth group.

One configuration (``MiningSettings()``) is used for every system. Its masks
and thresholds were chosen while looking at these same samples (there is no
held-out set), so expect somewhat lower accuracy on systems not in LogHub.

Run: ``python -m benchmarks.loghub [--data DIR] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from states.telemetry import templates

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "loghub"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "loghub.json"

# Drain's grouping accuracy as published for the LogHub 2k samples.
PUBLISHED_DRAIN: dict[str, float] = {
    "HDFS": 0.998,
    "Hadoop": 0.948,
    "Spark": 0.920,
    "Zookeeper": 0.967,
    "OpenStack": 0.733,
    "BGL": 0.963,
    "HPC": 0.887,
    "Thunderbird": 0.955,
    "Windows": 0.997,
    "Linux": 0.690,
    "Mac": 0.787,
    "Android": 0.911,
    "HealthApp": 0.780,
    "Apache": 1.000,
    "OpenSSH": 0.788,
    "Proxifier": 0.527,
}


@dataclass(frozen=True, slots=True)
class SystemResult:
    """Accuracy of one configuration on one system."""

    system: str
    accuracy: float
    templates_found: int
    templates_true: int
    seconds: float


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Share of messages whose predicted group has exactly their true group's members."""
    if len(truth) != len(predicted):
        raise ValueError("truth and prediction must label the same messages")
    if not truth:
        return 0.0
    predicted_groups: dict[Hashable, list[int]] = defaultdict(list)
    truth_sizes: dict[Hashable, int] = defaultdict(int)
    for index, label in enumerate(predicted):
        predicted_groups[label].append(index)
    for label in truth:
        truth_sizes[label] += 1
    correct = 0
    for members in predicted_groups.values():
        true_labels = {truth[i] for i in members}
        if len(true_labels) == 1 and truth_sizes[next(iter(true_labels))] == len(members):
            correct += len(members)
    return correct / len(truth)


def read_structured(path: Path) -> tuple[list[str], list[str]]:
    """Messages (Content) and their true event ids (EventId) of one system."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["Content"] for row in rows], [row["EventId"] for row in rows]


def mine_groups(messages: Sequence[str], settings: templates.MiningSettings) -> list[int]:
    """The template id each message is assigned to, in order."""
    miner = templates.TemplateMiner(settings)
    return [miner.add(message).template_id for message in messages]


def evaluate_system(system: str, data: Path, settings: templates.MiningSettings) -> SystemResult:
    """Mine one system's sample and score it against the ground truth."""
    messages, truth = read_structured(data / system / f"{system}_2k.log_structured.csv")
    started = time.perf_counter()
    predicted = mine_groups(messages, settings)
    elapsed = time.perf_counter() - started
    return SystemResult(
        system=system,
        accuracy=grouping_accuracy(truth, predicted),
        templates_found=len(set(predicted)),
        templates_true=len(set(truth)),
        seconds=elapsed,
    )


def available_systems(data: Path) -> list[str]:
    """Systems of the published table whose sample is present under ``data``."""
    return [s for s in PUBLISHED_DRAIN if (data / s / f"{s}_2k.log_structured.csv").is_file()]


def run_default(data: Path, systems: Sequence[str]) -> list[SystemResult]:
    """Every system with the one default configuration (no per-system tuning)."""
    settings = templates.MiningSettings()
    return [evaluate_system(system, data, settings) for system in systems]


def format_table(results: Sequence[SystemResult]) -> str:
    """A plain-text table: system, accuracy, published Drain, templates found/true."""
    lines = [f"{'system':<12} {'selfheal':>8} {'Drain':>8} {'templates':>10}"]
    for result in results:
        lines.append(
            f"{result.system:<12} {result.accuracy:>8.3f} "
            f"{PUBLISHED_DRAIN[result.system]:>8.3f} "
            f"{result.templates_found:>5}/{result.templates_true:<4}"
        )
    lines.append(f"{'mean':<12} {mean_accuracy(results):>8.3f} {published_mean(results):>8.3f}")
    return "\n".join(lines)


def published_mean(results: Sequence[SystemResult]) -> float:
    """Drain's published mean over the same systems."""
    return statistics.fmean(PUBLISHED_DRAIN[r.system] for r in results) if results else 0.0


def mean_accuracy(results: Sequence[SystemResult]) -> float:
    """Unweighted mean over systems, as the published table reports it."""
    return statistics.fmean(r.accuracy for r in results) if results else 0.0


def report(results: Sequence[SystemResult]) -> dict[str, object]:
    """The JSON document written next to the printed table."""
    return {
        "metric": "grouping accuracy (LogPAI)",
        "configuration": "single default for every system (MiningSettings())",
        "note": "defaults were tuned on these samples; no held-out set",
        "mean": round(mean_accuracy(results), 4),
        "published_drain_mean": round(published_mean(results), 4),
        "systems": {
            r.system: {
                "accuracy": round(r.accuracy, 4),
                "published_drain": PUBLISHED_DRAIN[r.system],
                "templates_found": r.templates_found,
                "templates_true": r.templates_true,
                "seconds": round(r.seconds, 3),
            }
            for r in results
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LogHub 2k folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    systems = available_systems(args.data)
    if not systems:
        parser.error(f"no LogHub samples under {args.data}; pass --data")
    results = run_default(args.data, systems)
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report(results), indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
