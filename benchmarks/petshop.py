"""Measure component root-cause ranking on the PetShop data set against simple baselines.

Ranking quality only means something next to what naive methods reach on the
same incidents, so one run scores selfheal's ranking and three baselines —
random order (averaged over seeds), N-Sigma (largest z-score after the onset)
and graph traversal from the front to the deepest anomalous component — with
the same normal period, the same metrics and the same scoring: AC@1, AC@3 and
Avg@5 per traffic scenario and overall.  Prints the table and writes it as JSON.
Two more rows show what the ranking is worth to an agent that was given no
call graph: on the graph it learns from co-movement (``selfheal_learned``)
and on none at all (``selfheal_no_graph``).

Each issue holds five 5-minute rows; the alert fires between the second and
the third, so rows from the third on are the incident.  The normal period is
the scenario's ``noissue`` day followed by the issue's first two rows.  The two
temporal scenarios ship no ``noissue`` day; there the pre-incident rows of
all the scenario's other issues stand in for it (they are healthy by
construction and carry no label).  Labels are read only to score.

The ranking was built while looking at the test issues; the 20 ``train``
issues (all with a root cause, PetSearch, that no test issue has) were kept
out of sight until it was nearly done and serve as the held-out check
(``--split train``).

    .venv/bin/python -m benchmarks.petshop [--data PATH] [--out PATH] [--split test|train|all]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from states.diagnose.callgraph import Graph
from states.diagnose.components import RankingSettings, rank_components
from states.diagnose.deviations import ComponentWindow, DeviationSettings, FloatArray
from states.diagnose.localization import learned_graph
from states.settings import DiagnoseSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "petshop"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "petshop.json"
SCENARIOS = ("low_traffic", "high_traffic", "temporal_traffic1", "temporal_traffic2")
ONSET_ROW = 2
RANDOM_SEEDS = tuple(range(20))
NSIGMA_THRESHOLD = 3.0
SYMPTOMS: Mapping[str, float] = {
    "latency/Average": 1.0,
    "latency/p50": 1.0,
    "latency/p90": 1.0,
    "availability/Average": -1.0,
}
SELFHEAL = RankingSettings(deviation=DeviationSettings(directions=SYMPTOMS))
# The agent's defaults for learning who calls whom when no ``calls`` are configured.
COMOVEMENT_MIN_WINDOWS = DiagnoseSettings().comovement_min_windows
COMOVEMENT_MIN_CORRELATION = DiagnoseSettings().comovement_min_correlation

Table = dict[str, list[list[float]]]
Ranker = Callable[["Incident"], list[str]]


@dataclass(frozen=True)
class Frame:
    """One metrics.csv: its timestamps and component -> metric -> values."""

    timestamps: FloatArray
    series: dict[str, dict[str, FloatArray]]


@dataclass(frozen=True)
class Incident:
    """One injected issue, ready to rank: the window, the front, the graph, the answer."""

    scenario: str
    name: str
    window: ComponentWindow
    front: str
    graph: dict[str, list[str]]
    root_cause: str


def read_frame(path: Path) -> Frame:
    """Parse a PetShop metrics.csv (three header rows: component, metric, statistic)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    components, metrics, statistics = rows[0][1:], rows[1][1:], rows[2][1:]
    body = [row for row in rows[3:] if row and row[0] and row[0] != "unix_timestamp"]
    values = np.array([[float(x) if x else np.nan for x in row[1:]] for row in body])
    series: dict[str, dict[str, FloatArray]] = {}
    for column, (component, metric, statistic) in enumerate(
        zip(components, metrics, statistics, strict=True)
    ):
        series.setdefault(component, {})[f"{metric}/{statistic}"] = values[:, column]
    return Frame(np.array([float(row[0]) for row in body]), series)


def read_graph(path: Path) -> dict[str, list[str]]:
    """Parse graph.csv, an adjacency matrix whose rows call their non-zero columns."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    names = rows[0][1:]
    return {
        row[0]: [names[i] for i, cell in enumerate(row[1:]) if cell and float(cell) != 0.0]
        for row in rows[1:]
    }


def join_frames(frames: Sequence[Frame]) -> dict[str, dict[str, FloatArray]]:
    """Stack frames row-wise on the union of their columns, NaN where one lacks a column."""
    keys = sorted({(c, m) for f in frames for c, metrics in f.series.items() for m in metrics})
    joined: dict[str, dict[str, FloatArray]] = {}
    for component, metric in keys:
        parts = [
            f.series.get(component, {}).get(metric, np.full(len(f.timestamps), np.nan))
            for f in frames
        ]
        joined.setdefault(component, {})[metric] = np.concatenate(parts)
    return joined


def normal_frame(issues: Sequence[Frame], own: int, noissue: Frame | None) -> Frame:
    """The reference day, or else the pre-incident rows of the scenario's other issues."""
    if noissue is not None:
        return noissue
    others = [f for i, f in enumerate(issues) if i != own]
    pre = [Frame(f.timestamps[:ONSET_ROW], _head(f.series, ONSET_ROW)) for f in others]
    return Frame(np.concatenate([f.timestamps for f in pre]), join_frames(pre))


def _head(series: dict[str, dict[str, FloatArray]], rows: int) -> dict[str, dict[str, FloatArray]]:
    return {c: {m: v[:rows] for m, v in metrics.items()} for c, metrics in series.items()}


def issue_dirs(scenario_dir: Path, split: str) -> list[Path]:
    """Issue folders of a split in numeric order."""
    found = [p for p in (scenario_dir / split).glob("issue_*") if p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def load_scenario(data: Path, scenario: str, splits: Sequence[str] = ("test",)) -> list[Incident]:
    """Every incident of the scenario's chosen splits with its normal period attached."""
    scenario_dir = data / "dataset" / scenario
    graph = read_graph(scenario_dir / "graph.csv")
    noissue_path = scenario_dir / "noissue" / "metrics.csv"
    noissue = read_frame(noissue_path) if noissue_path.exists() else None
    every = [d for split in ("train", "test") for d in issue_dirs(scenario_dir, split)]
    frames = [read_frame(d / "metrics.csv") for d in every]
    incidents = []
    for index, directory in enumerate(every):
        if directory.parent.name not in splits:
            continue
        target = json.loads((directory / "target.json").read_text())
        reference = normal_frame(frames, index, noissue)
        series = join_frames([reference, frames[index]])
        onset = len(reference.timestamps) + ONSET_ROW
        window = ComponentWindow(series=series, normal=tuple(range(onset)), onset=onset)
        incidents.append(
            Incident(
                scenario=scenario,
                name=f"{directory.parent.name}/{directory.name}",
                window=window,
                front=target["target"]["node"],
                graph=graph,
                root_cause=target["root_cause"]["node"],
            )
        )
    return incidents


# --- methods -------------------------------------------------------------------------------


def selfheal_ranking(incident: Incident) -> list[str]:
    """selfheal's ranking with the graph from configuration."""
    graph: Graph = incident.graph
    ranked = rank_components(incident.window, incident.front, SELFHEAL, graph)
    return [r.component for r in ranked]


def selfheal_without_graph(incident: Incident) -> list[str]:
    """selfheal's ranking as the agent runs it with no graph configured and none learned."""
    return [r.component for r in rank_components(incident.window, incident.front, SELFHEAL)]


def selfheal_learned_graph(incident: Incident) -> list[str]:
    """selfheal's ranking on the graph the agent learns from co-movement without ``calls``."""
    learned = learned_graph(incident.window, COMOVEMENT_MIN_WINDOWS, COMOVEMENT_MIN_CORRELATION)
    graph: Graph | None = learned.calls if learned.basis == "learned" else None
    ranked = rank_components(incident.window, incident.front, SELFHEAL, graph)
    return [r.component for r in ranked]


def random_ranking(incident: Incident, seed: int) -> list[str]:
    """Components in a seeded random order."""
    names = sorted(incident.window.series)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order]


def nsigma_scores(window: ComponentWindow, directions: Mapping[str, float]) -> dict[str, float]:
    """Largest |z| after the onset against the normal mean and deviation, per component."""
    scores: dict[str, float] = {}
    for component, metrics in window.series.items():
        best = 0.0
        for metric in directions:
            values = metrics.get(metric)
            if values is None:
                continue
            normal = values[list(window.normal)]
            normal = normal[np.isfinite(normal)]
            after = values[window.onset :]
            after = after[np.isfinite(after)]
            if normal.size < 2 or after.size == 0:
                continue
            spread = max(float(np.std(normal)), 1e-6)
            best = max(best, float(np.max(np.abs(after - np.mean(normal)))) / spread)
        scores[component] = best
    return scores


def by_score(scores: Mapping[str, float]) -> list[str]:
    """Names by descending score, ties alphabetical."""
    return sorted(scores, key=lambda name: (-scores[name], name))


def nsigma_ranking(incident: Incident) -> list[str]:
    """Rank by the largest z-score after the onset."""
    return by_score(nsigma_scores(incident.window, SYMPTOMS))


def traversal_ranking(
    scores: Mapping[str, float], front: str, graph: Mapping[str, Sequence[str]], threshold: float
) -> list[str]:
    """Walk from the front through anomalous callees; deepest anomalous ends first.

    Components reached whose callees are all healthy come first (deeper
    first, then by score), then the other reached components, then the rest
    by score.
    """
    anomalous = {name for name, score in scores.items() if score >= threshold}
    depth = {front: 0}
    frontier = [front]
    while frontier:
        following = []
        for caller in frontier:
            for callee in graph.get(caller, ()):
                if callee in anomalous and callee not in depth:
                    depth[callee] = depth[caller] + 1
                    following.append(callee)
        frontier = following

    def is_end(name: str) -> bool:
        return not any(c in anomalous for c in graph.get(name, ()) if c != name)

    reached = sorted(depth, key=lambda n: (not is_end(n), -depth[n], -scores.get(n, 0.0), n))
    rest = [n for n in by_score(scores) if n not in depth]
    return reached + rest


def graph_ranking(incident: Incident) -> list[str]:
    """Graph traversal over N-Sigma anomalies."""
    scores = nsigma_scores(incident.window, SYMPTOMS)
    return traversal_ranking(scores, incident.front, incident.graph, NSIGMA_THRESHOLD)


# --- scoring ----------------------------------------------------------------------------------


def hits_at(ranking: Sequence[str], truth: str, k: int) -> float:
    """1 when the true cause is among the first k, else 0."""
    return 1.0 if truth in ranking[:k] else 0.0


def accuracy_at(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    """AC@k: share of incidents whose true cause is among the first k."""
    if not rankings:
        return float("nan")
    return float(np.mean([hits_at(r, t, k) for r, t in zip(rankings, truths, strict=True)]))


def average_at(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    """Avg@k: mean of AC@1 .. AC@k."""
    return float(np.mean([accuracy_at(rankings, truths, j) for j in range(1, k + 1)]))


def scores_of(rankings: Sequence[Sequence[str]], truths: Sequence[str]) -> dict[str, float]:
    """AC@1, AC@3 and Avg@5 of one method on one set of incidents."""
    return {
        "AC@1": accuracy_at(rankings, truths, 1),
        "AC@3": accuracy_at(rankings, truths, 3),
        "Avg@5": average_at(rankings, truths, 5),
    }


def evaluate(incidents: Sequence[Incident], ranker: Ranker) -> dict[str, dict[str, float]]:
    """One method's scores per scenario and overall."""
    groups = {s: [i for i in incidents if i.scenario == s] for s in SCENARIOS}
    groups["overall"] = list(incidents)
    rankings = {i.name + i.scenario: ranker(i) for i in incidents}
    return {
        group: scores_of(
            [rankings[i.name + i.scenario] for i in members], [i.root_cause for i in members]
        )
        for group, members in groups.items()
        if members
    }


def evaluate_random(incidents: Sequence[Incident]) -> dict[str, dict[str, float]]:
    """Random ranking's scores averaged over the seeds."""
    runs = [evaluate(incidents, functools.partial(random_ranking, seed=s)) for s in RANDOM_SEEDS]
    return {
        group: {m: float(np.mean([r[group][m] for r in runs])) for m in runs[0][group]}
        for group in runs[0]
    }


METHODS: dict[str, Ranker] = {
    "selfheal": selfheal_ranking,
    "selfheal_learned": selfheal_learned_graph,
    "selfheal_no_graph": selfheal_without_graph,
    "nsigma": nsigma_ranking,
    "graph_traversal": graph_ranking,
}


def run(data: Path, splits: Sequence[str] = ("test",)) -> dict[str, object]:
    """Load every issue of the splits, score every method, return the results document."""
    started = time.perf_counter()
    incidents = [i for s in SCENARIOS for i in load_scenario(data, s, splits)]
    loaded = time.perf_counter()
    results = {"random": evaluate_random(incidents)}
    timings = {}
    for name, ranker in METHODS.items():
        began = time.perf_counter()
        results[name] = evaluate(incidents, ranker)
        timings[name] = time.perf_counter() - began
    return {
        "data": str(data),
        "splits": list(splits),
        "incidents": {s: sum(i.scenario == s for i in incidents) for s in SCENARIOS},
        "load_seconds": loaded - started,
        "rank_seconds": timings,
        "results": results,
    }


def format_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Methods as rows, scenario x score as columns."""
    groups = [*SCENARIOS, "overall"]
    header = f"{'method':18s}" + "".join(f"{g[:17]:>19s}" for g in groups)
    sub = f"{'':18s}" + "".join(f"{'AC@1  AC@3 Avg@5':>19s}" for _ in groups)
    lines = [header, sub]
    for method, per_group in results.items():
        cells = "".join(
            "   " + " ".join(f"{per_group[g][m]:5.2f}" for m in ("AC@1", "AC@3", "Avg@5"))
            for g in groups
        )
        lines.append(f"{method:18s}{cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PetShop folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--split",
        choices=("test", "train", "all"),
        default="test",
        help="issues to score; 'train' holds issues never looked at while building the ranking",
    )
    args = parser.parse_args(argv)
    document = run(args.data, ("train", "test") if args.split == "all" else (args.split,))
    print(format_table(document["results"]))  # type: ignore[arg-type]
    print(f"incidents {document['incidents']}  load {document['load_seconds']:.1f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
