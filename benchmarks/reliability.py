"""Never act twice, never lose state: every kill point, a long soak, and storage under stress.

1. Kill points. Every point the loaded sequences define (each beat of each
   phase x started/returned/checkpointed, and each deploy and rollback
   intent/effect per target; ``tests/support/faults.py``) gets its own
   shortened demo cycle whose daemon kills itself there with SIGKILL; a new
   daemon finishes it. Two more runs are SIGKILLed from outside while awaiting
   approval and while paused (resolved and rolled-back endings). Each run is
   compared with an uninterrupted reference run of its scenario: outcome,
   transition path, waves, versions each target was started with (from the
   instances' own records) and runs (over HTTP), artifacts, pattern counts;
   duplicate deploys, lost artifacts, transition gaps and leftovers are
   counted. Results are appended to a progress file as they come, so an
   interrupted benchmark resumes with ``--resume``.
2. Soak: ``tests/support/soak.py`` for ``--soak-ticks`` ticks; peak RSS and
   the database's size at start and end.
3. Storage stress: ``tests/support/stress.py`` for ``--stress-seconds``.
4. Bad input: ``benchmarks/fuzz.py`` over every input kind for
   ``--fuzz-seconds``; inputs tried and crashes per kind.

Run: ``python -m benchmarks.reliability [--jobs N] [--max-points N] [--seconds S]
[--resume] [--soak-ticks N] [--stress-seconds S] [--fuzz-seconds S] [--out FILE]``. A full run
takes about an hour on two cores; ``--seconds`` bounds the kill-point part and
the table says how many points were tried.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Any

import structlog

from benchmarks.fuzz import run_fuzz
from tests.support.faults import KillPoint, bundled_sequences, kill_points, run_trial
from tests.support.soak import SoakPlan, run_soak
from tests.support.stress import run_stress
from tests.support.trial_results import TrialResult, expected_signature

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "reliability.json"
DEFAULT_PROGRESS = Path(tempfile.gettempdir()) / "selfheal-reliability-progress.jsonl"
OUTSIDE = "outside:awaiting_approval+paused"  # a run SIGKILLed from outside, not a failpoint


@dataclass(frozen=True)
class Run:
    """One planned run: a scenario, its kill points (one here), and whether an operator approves."""

    key: str
    scenario: str
    points: tuple[str, ...]
    approval: bool = False


def planned_runs() -> list[Run]:
    """References first, then every kill point, then the runs killed while waiting on people."""
    runs = [Run(f"reference:{s}", s, ()) for s in ("resolved", "bad-fix")]
    points: list[KillPoint] = kill_points(bundled_sequences())
    runs += [Run(p.name, p.scenario, (p.name,)) for p in points]
    runs += [Run(f"{OUTSIDE}:{s}", s, (), approval=True) for s in ("resolved", "bad-fix")]
    return runs


def execute(run: Run, scratch: str) -> dict[str, Any]:
    """Run one trial in a fresh workspace (in a worker process); a summary, never an exception."""
    workspace = Path(tempfile.mkdtemp(prefix="reliability-", dir=scratch))
    started = time.monotonic()
    try:
        result = run_trial(workspace, run.scenario, run.points, approval=run.approval)
    except Exception as exc:  # a trial that timed out is a finding, not a crash of the benchmark
        return {
            "key": run.key,
            "scenario": run.scenario,
            "approval": run.approval,
            "error": f"{type(exc).__name__}: {str(exc)[-2000:]}",
            "seconds": round(time.monotonic() - started, 1),
            "workspace": str(workspace),
        }
    summary = summarize(run, result)
    if summary["problems"]:
        summary["workspace"] = str(workspace)  # kept for a look
    else:
        shutil.rmtree(workspace, ignore_errors=True)
    return summary


def summarize(run: Run, result: TrialResult) -> dict[str, Any]:
    expected = expected_signature(run.scenario, run.approval)
    reports = [k.reaper_report or {} for k in result.kills]
    named = [(i["action"], i["target"]) for r in reports for i in r.get("unconfirmed_deploys", [])]
    return {
        "key": run.key,
        "scenario": run.scenario,
        "approval": run.approval,
        "points": list(run.points),
        "kills": [asdict(k) | {"reaper_report": None} for k in result.kills],
        "reached": all(k.reached for k in result.kills),
        "signature": result.signature(),
        "problems": result.problems(expected),
        "duplicate_deploys": result.duplicate_deploys(expected["starts"]),
        "lost_artifacts": result.lost_artifacts(),
        "transition_gaps": len(result.chain_gaps),
        "leftovers": len(result.worktrees)
        + len(result.sandbox_entries)
        + len(result.child_notes)
        + len(result.leftovers),
        "unconfirmed_named": named,
        "seconds": result.seconds,
    }


def _side_effect_named(entry: dict[str, Any]) -> bool | None:
    """For a deploy/rollback kill point: did the next start name that target's intent?"""
    point = entry["points"][0] if entry.get("points") else ""
    if not point.startswith("deploy:"):
        return None
    _, action, target, _ = point.split(":")
    return [action, target] in [list(n) for n in entry.get("unconfirmed_named", [])]


def load_progress(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            done[entry["key"]] = entry
    return done


def run_kill_points(
    runs: list[Run], *, jobs: int, seconds: float, progress: Path, done: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Run what is not done yet, ``jobs`` at a time, until ``seconds`` have passed."""
    todo = [r for r in runs if r.key not in done]
    deadline = time.monotonic() + seconds
    scratch = tempfile.mkdtemp(prefix="selfheal-reliability-")
    total = len(runs)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        pending: dict[Future[dict[str, Any]], Run] = {}
        while todo or pending:
            while todo and len(pending) < jobs and time.monotonic() < deadline:
                run = todo.pop(0)
                pending[pool.submit(execute, run, scratch)] = run
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                run = pending.pop(future)
                entry = future.result()
                done[run.key] = entry
                with progress.open("a") as log:
                    log.write(json.dumps(entry, default=str) + "\n")
                verdict = (
                    "ok" if not entry.get("problems") and not entry.get("error") else "PROBLEM"
                )
                detail = entry.get("error") or entry.get("problems") or ""
                print(
                    f"[{len(done):3d}/{total}] {verdict:7s} {run.key} ({entry['seconds']} s)"
                    + (f"\n          {detail}" if detail else ""),
                    flush=True,
                )
    shutil.rmtree(scratch, ignore_errors=True)
    return done


def kill_point_figures(runs: list[Run], done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The table's kill-point rows from every finished run."""
    references = {r.scenario: done.get(r.key) for r in runs if r.key.startswith("reference:")}
    tried = [done[r.key] for r in runs if r.key in done and not r.key.startswith("reference:")]
    mismatch_with_reference = []
    for entry in tried:
        ref = references.get(entry["scenario"])
        if ref and "signature" in entry and not entry["approval"]:
            mine, theirs = entry["signature"], ref.get("signature", {})
            if mine != theirs:
                mismatch_with_reference.append(entry["key"])
    named = [_side_effect_named(e) for e in tried]
    point_count = sum(1 for r in runs if r.points)
    return {
        "kill_points_enumerated": point_count,
        "outside_kill_runs_planned": sum(1 for r in runs if r.approval),
        "runs_tried": len(tried),
        "kill_points_tried": sum(1 for e in tried if e.get("points")),
        "kills_reached": sum(1 for e in tried if e.get("reached")),
        "runs_resumed_correctly": sum(
            1 for e in tried if not e.get("error") and not e.get("problems")
        ),
        "runs_with_problems": [e["key"] for e in tried if e.get("error") or e.get("problems")],
        "differ_from_reference_run": mismatch_with_reference,
        "duplicate_deploys": sum(e.get("duplicate_deploys", 0) for e in tried),
        "lost_artifacts": sum(e.get("lost_artifacts", 0) for e in tried),
        "transition_gaps": sum(e.get("transition_gaps", 0) for e in tried),
        "leftovers": sum(e.get("leftovers", 0) for e in tried),
        "side_effect_kills_named_at_restart": f"{sum(1 for n in named if n)}/{sum(1 for n in named if n is not None)}",
        "references_as_expected": {
            s: bool(ref and not ref.get("problems") and not ref.get("error"))
            for s, ref in references.items()
        },
        "trial_seconds_median": _median([e["seconds"] for e in tried]),
    }


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def soak_figures(ticks: int) -> dict[str, Any]:
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="reliability-soak-", dir=shm if shm.is_dir() else None))
    try:
        report = run_soak(root, SoakPlan(ticks=ticks, sample_every=max(50, ticks // 200)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = report.as_dict()
    half = report.at(ticks // 2)
    figures["rss_growth_second_half_kb"] = report.samples[-1].rss_kb - half.rss_kb
    figures["db_growth_second_half_bytes"] = report.samples[-1].db_bytes - half.db_bytes
    return figures


def stress_figures(seconds: float, workers: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="reliability-stress-"))
    try:
        report = run_stress(root / "stress", seconds=seconds, workers=workers)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report.as_dict()


def fuzz_figures(seconds: float, seed: int) -> dict[str, Any]:
    targets, elapsed = run_fuzz(seconds, seed)
    return {
        "seconds": round(elapsed, 1),
        "seed": seed,
        "inputs": {t.name: t.inputs for t in targets},
        "crashes": {t.name: t.crashes for t in targets},
        "crash_examples": {t.name: t.examples for t in targets if t.examples},
    }


def render(results: dict[str, Any]) -> str:
    k, soak, stress = results["kill_points"], results["soak"], results["stress"]
    bad = results["bad_input"]
    mib = 1024 * 1024
    rows = [
        (
            "kill points enumerated (beats x 3, deploy/rollback x 2 per target)",
            k["kill_points_enumerated"],
        ),
        ("kill points tried", k["kill_points_tried"]),
        (
            "  + runs SIGKILLed while awaiting approval and while paused",
            k["runs_tried"] - k["kill_points_tried"],
        ),
        ("kills that landed (daemon died by SIGKILL at the point)", k["kills_reached"]),
        (
            "runs resumed correctly (same outcome as uninterrupted, nothing left)",
            k["runs_resumed_correctly"],
        ),
        ("duplicate deploys (target starts beyond the reference run's)", k["duplicate_deploys"]),
        ("lost artifacts (missing, torn or unparseable)", k["lost_artifacts"]),
        ("transition log gaps", k["transition_gaps"]),
        ("leftover worktrees, sandboxes, children, processes", k["leftovers"]),
        (
            "deploy/rollback kills named as unconfirmed at restart",
            k["side_effect_kills_named_at_restart"],
        ),
        ("soak ticks (simulated hours)", f"{soak['ticks']} ({soak['simulated_hours']} h)"),
        ("soak cycles opened / pruned", f"{soak['cycles_opened']} / {soak['cycles_pruned']}"),
        (
            "RSS start / peak / end (MiB)",
            "{:.1f} / {:.1f} / {:.1f}".format(
                *(soak["rss_kb"][x] / 1024 for x in ("start", "peak", "end"))
            ),
        ),
        (
            "DB size start / peak / end (KiB)",
            "{:.0f} / {:.0f} / {:.0f}".format(
                *(soak["db_bytes"][x] / 1024 for x in ("start", "peak", "end"))
            ),
        ),
        ("DB growth over the soak's second half (bytes)", soak["db_growth_second_half_bytes"]),
        ("WAL peak (MiB)", f"{soak['wal_bytes_peak'] / mib:.1f}"),
        ("stress: seconds x CLI workers", f"{stress['seconds']:.0f} x {stress['workers']}"),
        ("stress: CLI calls (failed)", f"{stress['cli_calls']} ({stress['failed_calls']})"),
        ("stress: lock errors seen by users", stress["lock_errors_seen_by_users"]),
        (
            "stress: commands queued / applied / refused",
            f"{stress['commands_queued']} / {stress['commands_applied']} / {stress['commands_refused']}",
        ),
        ("stress: commands not applied exactly once", stress["commands_not_applied_once"]),
        ("stress: daemon ticks failed", stress["daemon_ticks_failed"]),
        ("bad inputs tried (all kinds)", sum(bad["inputs"].values())),
        ("crashes on bad input (all kinds)", sum(bad["crashes"].values())),
        *(
            (f"  {kind}: inputs (crashes)", f"{n} ({bad['crashes'][kind]})")
            for kind, n in bad["inputs"].items()
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if k["runs_with_problems"]:
        lines.append("runs with problems: " + ", ".join(k["runs_with_problems"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1, help="trials at once (each needs ~1 core)")
    parser.add_argument("--max-points", type=int, default=None, help="kill-point runs at most")
    parser.add_argument(
        "--seconds", type=float, default=4 * 3600, help="stop starting trials after"
    )
    parser.add_argument("--resume", action="store_true", help="skip runs in the progress file")
    parser.add_argument("--progress", type=Path, default=DEFAULT_PROGRESS)
    parser.add_argument("--soak-ticks", type=int, default=20_000)
    parser.add_argument("--stress-seconds", type=float, default=60.0)
    parser.add_argument("--stress-workers", type=int, default=6)
    parser.add_argument("--fuzz-seconds", type=float, default=120.0)
    parser.add_argument("--fuzz-seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    args.progress.parent.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        args.progress.unlink(missing_ok=True)
    runs = planned_runs()
    if args.max_points is not None:
        runs = runs[: 2 + args.max_points]  # the two references always run first
    started = time.monotonic()
    done = run_kill_points(
        runs,
        jobs=args.jobs,
        seconds=args.seconds,
        progress=args.progress,
        done=load_progress(args.progress) if args.resume else {},
    )
    kill = kill_point_figures(planned_runs(), done) | {"jobs": args.jobs}
    print(f"soak: {args.soak_ticks} ticks ...", flush=True)
    soak = soak_figures(args.soak_ticks)
    print(f"stress: {args.stress_seconds:.0f} s x {args.stress_workers} workers ...", flush=True)
    stress = stress_figures(args.stress_seconds, args.stress_workers)
    print(f"bad input: {args.fuzz_seconds:.0f} s of fuzzing ...", flush=True)
    bad_input = fuzz_figures(args.fuzz_seconds, args.fuzz_seed)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.monotonic() - started, 1),
        "kill_points": kill,
        "soak": soak,
        "stress": stress,
        "bad_input": bad_input,
        "runs": [done[r.key] for r in planned_runs() if r.key in done],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    print(f"\nwritten to {args.out}")
    return 0 if promises_kept(results) else 1


def promises_kept(results: dict[str, Any]) -> bool:
    """The figures that must be zero are zero, and every run tried resumed correctly."""
    k, stress, bad = results["kill_points"], results["stress"], results["bad_input"]
    return (
        not k["runs_with_problems"]
        and k["duplicate_deploys"] == k["lost_artifacts"] == k["transition_gaps"] == 0
        and k["leftovers"] == 0
        and stress["lock_errors_seen_by_users"] == stress["commands_not_applied_once"] == 0
        and sum(bad["crashes"].values()) == 0
    )


if __name__ == "__main__":
    raise SystemExit(main())
