"""Code-level diagnosis on generated incidents: the right commit, the right file, the right line.

``benchmarks.diagnosis_corpus`` builds real git repositories (Python, Java and
JavaScript services with a few dozen commits by several authors) and, on a
branch of one of them per incident, a release with one culprit among innocent
commits. Each incident is diagnosed by ``states.diagnose.culprits`` exactly as
the rank beat does it: the commit range from the healthy to the unhealthy
version (or a look-back window when the healthy version is unknown), the
stack frames as the agent's own parser reads them from the trace text, the
slow operation's name when telemetry has one, learned pattern files when an
earlier incident left one. The incidents name their slow operation directly:
the agent finds it by comparing each operation's figures in the windows
before and after the onset (``states.diagnose.slow_operations``), which the
corpus has no windows for, so that choice is not measured here (its own tests
are). The table has a row for the held-out half diagnosed with the operations
withheld: what they are worth, and what the agent does for a service whose
records name no operation.

Reported per slice: top-1 and top-3 commit accuracy, file accuracy (the
diagnosed file is the culprit's file) and line accuracy (the diagnosed line is
one the culprit changed in that file), and the expected calibration error
(ECE, 10 equal-width bins) of the top suspect's confidence, before calibration
(the softmax share) and after (the shipped Platt constants).

Incidents are split in two halves by a seeded shuffle: calibration is fitted
on the training half (``--fit`` prints the constants to ship in
``states/diagnose/calibration.py``) and judged on the held-out half; every
run also refits on the training half and reports what those constants would
give, so drift between the shipped and the refitted constants is visible.
The ranking's weights are set by hand, not fitted, so its accuracy over all
incidents is reported too (the features were shaped while reading failures of
the training half only). ``top1_without_feature`` in the JSON is an ablation:
each feature's contribution removed and the suspects ranked again.

    .venv/bin/python -m benchmarks.diagnosis [--incidents N] [--seed S] [--fit] [--out FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import dataclasses
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from benchmarks.diagnosis_corpus import LOOKBACK_S, Incident, generate
from states.diagnose import calibration
from states.diagnose.commits import FEATURE_WEIGHTS, TEMPERATURE
from states.diagnose.culprits import CodeEvidence, commit_range, diagnose_commits
from states.git import commit_changes

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "diagnosis.json"
PATH_PREFIXES = {"python": (), "java": (), "javascript": ("/app/",)}
CANDIDATES_FITTED = 3  # each incident's top three suspects are the calibration samples


@dataclass
class Outcome:
    """How the diagnosis of one incident went."""

    number: int
    kind: str
    language: str
    tags: dict[str, object]
    commits: int
    basis: str
    top1: bool
    top3: bool
    file: bool
    line: bool
    located_by: str
    shares: list[float] = field(default_factory=list)  # top suspects, best first
    hits: list[bool] = field(default_factory=list)
    confidence: float = 0.0
    seconds: float = 0.0
    suspects: list[tuple[bool, dict[str, float]]] = field(default_factory=list, repr=False)


def diagnose(incident: Incident) -> Outcome:
    """Run the agent's code-level diagnosis on one incident and score it."""
    started = time.perf_counter()
    considered = commit_range(
        incident.repo, incident.healthy, incident.head, incident.onset, 200, LOOKBACK_S
    )
    assert considered is not None
    commits, basis = considered
    evidence = CodeEvidence(
        commits=tuple(commits),
        running_revision=incident.head,
        component_paths=incident.component_paths,
        deployed_commits=frozenset(c.sha for c in commits)
        if basis == "version range"
        else frozenset(),
        frames=incident.frames,
        operations=incident.operations,
        pattern_files=incident.pattern_files,
        path_prefixes=PATH_PREFIXES[incident.language],
        category=incident.kind,
    )
    located = diagnose_commits(incident.repo, evidence)
    seconds = time.perf_counter() - started
    truth = {
        n
        for c in commit_changes(incident.repo, incident.culprit)
        if c.path == incident.culprit_file
        for n in c.lines
    }
    top = located[0]
    shas = [s.suspect.commit.sha for s in located]
    return Outcome(
        number=incident.number,
        kind=incident.kind,
        language=incident.language,
        tags=incident.tags,
        commits=len(commits),
        basis=basis,
        top1=shas[0] == incident.culprit,
        top3=incident.culprit in shas[:3],
        file=top.file == incident.culprit_file,
        line=top.suspect.commit.sha == incident.culprit
        and top.file == incident.culprit_file
        and top.line in truth,
        located_by=top.located_by,
        shares=[s.suspect.share for s in located[:CANDIDATES_FITTED]],
        hits=[sha == incident.culprit for sha in shas[:CANDIDATES_FITTED]],
        confidence=top.suspect.confidence,
        seconds=seconds,
        suspects=[
            (sha == incident.culprit, s.suspect.features)
            for sha, s in zip(shas, located, strict=True)
        ],
    )


def split(outcomes: Sequence[Outcome], seed: int) -> tuple[list[Outcome], list[Outcome]]:
    """Training and held-out halves, by a seeded shuffle of incident numbers."""
    numbers = sorted(o.number for o in outcomes)
    # Not the generator's own stream: a split drawn from it would correlate with the incidents.
    random.Random(f"split-{seed}").shuffle(numbers)
    train = set(numbers[: len(numbers) // 2])
    return [o for o in outcomes if o.number in train], [
        o for o in outcomes if o.number not in train
    ]


def fit(train: Sequence[Outcome]) -> tuple[float, float]:
    """Platt constants from the training half's top candidates."""
    shares = [p for o in train for p in o.shares]
    hits = [h for o in train for h in o.hits]
    return calibration.fit_platt(shares, hits)


def row(
    outcomes: Sequence[Outcome], constants: tuple[float, float] | None = None
) -> dict[str, float]:
    """Accuracies and calibration errors of a slice."""
    if not outcomes:
        return {"n": 0}
    n = len(outcomes)
    top1 = [o.top1 for o in outcomes]
    shares = [o.shares[0] for o in outcomes]
    result = {
        "n": n,
        "top1": round(sum(top1) / n, 3),
        "top3": round(sum(o.top3 for o in outcomes) / n, 3),
        "file": round(sum(o.file for o in outcomes) / n, 3),
        "line": round(sum(o.line for o in outcomes) / n, 3),
        "mean_confidence": round(statistics.fmean(o.confidence for o in outcomes), 3),
        "ece_softmax": round(calibration.expected_calibration_error(shares, top1), 3),
        "ece_calibrated": round(
            calibration.expected_calibration_error([o.confidence for o in outcomes], top1), 3
        ),
    }
    if constants is not None:
        refitted = [calibration.confidence(p, *constants) for p in shares]
        result["ece_refitted"] = round(calibration.expected_calibration_error(refitted, top1), 3)
    return result


def slices(outcomes: Sequence[Outcome]) -> dict[str, Callable[[Outcome], bool]]:
    tags: dict[str, Callable[[Outcome], bool]] = {
        "all": lambda o: True,
        "kind: latency": lambda o: o.kind == "latency",
        "kind: errors": lambda o: o.kind == "errors",
        "kind: memory": lambda o: o.kind == "memory",
        "with stack traces": lambda o: bool(o.tags["traced"]),
        "without stack traces": lambda o: not o.tags["traced"],
        "slow operation named": lambda o: bool(o.tags["operations"]),
        "no trace, no operation": lambda o: not o.tags["traced"] and not o.tags["operations"],
        "culprit in shared code": lambda o: o.tags["scope"] == "shared",
        "innocents in same component": lambda o: int(str(o.tags["same_component_innocents"])) > 0,
        "healthy version unknown": lambda o: not o.tags["versions_known"],
        "release of 9+ commits": lambda o: int(str(o.tags["release_commits"])) >= 9,
        "python": lambda o: o.language == "python",
        "java": lambda o: o.language == "java",
        "javascript": lambda o: o.language == "javascript",
    }
    return tags


def ablation(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Top-1 accuracy with each feature left out (its contribution subtracted, ranks redone)."""
    result = {}
    for name in FEATURE_WEIGHTS:
        hits = 0
        for o in outcomes:
            scores = [sum(v for k, v in f.items() if k != name) for _, f in o.suspects]
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # ties: original order
            hits += o.suspects[best][0]
        result[name] = round(hits / len(outcomes), 3)
    return result


def reliability(
    outcomes: Sequence[Outcome], bins: int = calibration.ECE_BINS
) -> list[dict[str, object]]:
    """Per confidence bin: how many, mean confidence, accuracy (held-out reliability diagram)."""
    table: list[dict[str, object]] = []
    for b in range(bins):
        inside = [o for o in outcomes if min(bins - 1, int(o.confidence * bins)) == b]
        if inside:
            table.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "n": len(inside),
                    "confidence": round(statistics.fmean(o.confidence for o in inside), 3),
                    "accuracy": round(sum(o.top1 for o in inside) / len(inside), 3),
                }
            )
    return table


def render(results: dict[str, object]) -> str:
    names = ("n", "top1", "top3", "file", "line", "ECE raw", "ECE cal")
    header = f"{'slice (held-out half unless noted)':34} " + " ".join(f"{n:>7}" for n in names)
    lines = [header, "-" * len(header)]
    table = results["table"]
    assert isinstance(table, dict)
    for name, r in table.items():
        if r["n"]:
            lines.append(
                f"{name:34} {r['n']:>7} "
                + " ".join(
                    f"{r[k]:>7.3f}"
                    for k in ("top1", "top3", "file", "line", "ece_softmax", "ece_calibrated")
                )
            )
    return "\n".join(lines)


def run(incidents: int, seed: int, workdir: Path) -> dict[str, object]:
    started = time.perf_counter()
    corpus = generate(workdir, incidents, seed)
    generated = time.perf_counter() - started
    outcomes = [diagnose(i) for i in corpus]
    diagnosed = time.perf_counter() - started - generated
    train, held_out = split(outcomes, seed)
    constants = fit(train)
    table: dict[str, dict[str, float]] = {
        "all incidents (train + held-out)": row(outcomes, constants),
        "train half": row(train, constants),
    }
    for name, keep in slices(held_out).items():
        table[f"held-out: {name}" if name == "all" else name] = row(
            [o for o in held_out if keep(o)], constants
        )
    # What slow operations are worth: the held-out half again, without them.
    kept = {o.number for o in held_out}
    blind = [diagnose(dataclasses.replace(i, operations=())) for i in corpus if i.number in kept]
    table["held-out, operations withheld"] = row(blind, constants)
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "corpus": {
            "incidents": incidents,
            "seed": seed,
            "train": len(train),
            "held_out": len(held_out),
        },
        "seconds": {
            "generate": round(generated, 1),
            "diagnose": round(diagnosed, 1),
            "diagnose_median_per_incident": round(
                statistics.median(o.seconds for o in outcomes), 3
            ),
            "total": round(time.perf_counter() - started, 1),  # with the operations-withheld run
        },
        "features": FEATURE_WEIGHTS,
        "temperature": TEMPERATURE,
        "calibration": {
            "shipped": {"slope": calibration.SLOPE, "intercept": calibration.INTERCEPT},
            "refitted_on_train": {
                "slope": round(constants[0], 4),
                "intercept": round(constants[1], 4),
            },
            "samples": f"top {CANDIDATES_FITTED} suspects of each training incident",
        },
        "table": table,
        "reliability_held_out": reliability(held_out),
        "top1_without_feature": {"train": ablation(train), "held_out": ablation(held_out)},
        "located_by": {
            way: sum(o.located_by == way for o in held_out if o.top1)
            for way in sorted({o.located_by for o in held_out})
        },
        "incidents": [{k: v for k, v in asdict(o).items() if k != "suspects"} for o in outcomes],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=600)
    parser.add_argument("--seed", type=int, default=20260302)
    parser.add_argument("--fit", action="store_true", help="print the constants to ship")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="selfheal-diagnosis-") as tmp:
        results = run(args.incidents, args.seed, Path(tmp))
    print(render(results))
    print(f"\nreliability (held-out): {results['reliability_held_out']}")
    print(f"top-1 without each feature: {results['top1_without_feature']}")
    print(f"calibration: {results['calibration']}")
    print(f"seconds: {results['seconds']}")
    if args.fit:
        fitted = results["calibration"]
        assert isinstance(fitted, dict)
        print(f"\nship in states/diagnose/calibration.py: {fitted['refitted_on_train']}")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
