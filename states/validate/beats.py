"""Phase 5 beats: prove the candidate in worktrees, then decide and publish.

Both the unpatched and the patched tree are built from the running version in
worktrees under the data directory; the live checkout is never touched. When
the candidate passes, it is committed on the branch ``selfheal/<cycle-id>``
so deployers get an ordinary version to roll out.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from states.artifacts import CommandRun, PatchArtifact, ValidationArtifact
from states.context import BeatContext, BeatResult
from states.git import add_worktree, git, remove_worktree, resolve
from states.registry import beat
from states.validate.sandbox import (
    BenchmarkOutputError,
    CommandResult,
    improvement,
    parse_benchmark,
    run_command,
    scrubbed_env,
)
from storage import repository as repo

IDENTITY = ("-c", "user.name=selfheal", "-c", "user.email=selfheal@localhost")


def read_patch(ctx: BeatContext, cycle_id: str) -> PatchArtifact:
    """The current candidate as written by phase 4."""
    return PatchArtifact.model_validate_json(
        (ctx.artifacts.cycle_dir(cycle_id) / "patch.json").read_bytes()
    )


def _run(
    ctx: BeatContext, argv: list[str], tree: Path, label: str, runs: list[CommandRun]
) -> CommandResult:
    settings = ctx.settings.validate_
    result = run_command(
        argv,
        tree,
        min(settings.timeout_s, max(1.0, ctx.remaining_s())),
        scrubbed_env(settings.env),
        children_dir=ctx.data_dir / "children",
    )
    runs.append(
        CommandRun(
            argv=result.argv,
            tree=label,
            exit_code=result.exit_code,
            duration_s=round(result.duration_s, 3),
            timed_out=result.timed_out,
            output_tail=result.tail(),
        )
    )
    return result


def _benchmark(ctx: BeatContext, tree: Path, label: str, runs: list[CommandRun]) -> dict[str, Any]:
    command = ctx.settings.validate_.benchmark_command
    if command is None:
        return {}
    values: list[float] = []
    metric, lower = "benchmark", True
    for _ in range(ctx.settings.validate_.benchmark_repeats):
        result = _run(ctx, command, tree, label, runs)
        if not result.ok:
            return {"error": f"benchmark failed on the {label} tree (exit {result.exit_code})"}
        try:
            reading = parse_benchmark(result.stdout)
        except BenchmarkOutputError as exc:
            return {"error": f"benchmark on the {label} tree: {exc}"}
        values.append(reading.value)
        metric, lower = reading.metric, reading.lower_is_better
    return {
        "metric": metric,
        "median": statistics.median(values),
        "values": values,
        "lower_is_better": lower,
    }


def _prepare(ctx: BeatContext, patch: PatchArtifact, root: Path) -> tuple[Path, Path, bool, str]:
    repo_path = ctx.settings.repository.path
    unpatched, patched = root / "unpatched", root / "patched"
    add_worktree(repo_path, unpatched, patch.base_version)
    if patch.strategy == "redeploy_version" and patch.target_version:
        add_worktree(repo_path, patched, patch.target_version)
        return unpatched, patched, True, ""
    add_worktree(repo_path, patched, patch.base_version)
    fix = ctx.artifacts.cycle_dir(ctx.require_cycle()) / "fix.patch"
    probe = run_command(["git", "apply", "--check", str(fix)], patched, 60, scrubbed_env({}))
    if not probe.ok:
        return unpatched, patched, False, probe.stderr.strip()[:500]
    git(patched, "apply", str(fix))
    return unpatched, patched, True, ""


@beat("validate.sandbox_checks")
def sandbox_checks(ctx: BeatContext) -> BeatResult:
    """Apply the candidate, run tests and benchmark on both trees, publish a passing version."""
    cycle_id = ctx.require_cycle()
    patch = read_patch(ctx, cycle_id)
    root = ctx.data_dir / "sandboxes" / f"{cycle_id}-validate-{patch.candidate_index}"
    runs: list[CommandRun] = []
    repo_path = ctx.settings.repository.path
    try:
        unpatched, patched, applies, apply_error = _prepare(ctx, patch, root)
        if not applies:
            return BeatResult(
                output={"apply_check": False, "apply_error": apply_error, "runs": _dump(runs)}
            )
        tests_before = _run(
            ctx, ctx.settings.validate_.test_command, unpatched, "unpatched", runs
        ).ok
        tests_after = _run(ctx, ctx.settings.validate_.test_command, patched, "patched", runs).ok
        bench_before = _benchmark(ctx, unpatched, "unpatched", runs) if tests_after else {}
        bench_after = _benchmark(ctx, patched, "patched", runs) if tests_after else {}
        version = _publish(repo_path, patched, patch, cycle_id) if tests_after else None
    finally:
        remove_worktree(repo_path, root / "unpatched")
        remove_worktree(repo_path, root / "patched")
        shutil.rmtree(root, ignore_errors=True)  # else the next start reaps it as a crash's
    return BeatResult(
        output={
            "apply_check": True,
            "tests_unpatched": tests_before,
            "tests_patched": tests_after,
            "bench_unpatched": bench_before,
            "bench_patched": bench_after,
            "version": version,
            "runs": _dump(runs),
        }
    )


def _dump(runs: list[CommandRun]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in runs]


def _publish(repo_path: Path, tree: Path, patch: PatchArtifact, cycle_id: str) -> str | None:
    if patch.strategy == "redeploy_version":
        return patch.target_version
    git(
        tree,
        *IDENTITY,
        "commit",
        "--quiet",
        "--all",
        "--no-verify",
        "-m",
        patch.title,
        "-m",
        patch.description,
    )
    sha = resolve(tree, "HEAD")
    if sha:
        git(repo_path, "branch", "--force", f"selfheal/{cycle_id}", sha)
    return sha


def judge_validation(
    checks: dict[str, Any], required: float, benchmark_configured: bool
) -> tuple[bool, float | None, list[str]]:
    """The verdict from the checks: tests must pass and the benchmark must improve enough."""
    reasons: list[str] = []
    if not checks.get("apply_check"):
        return False, None, [f"patch does not apply: {checks.get('apply_error', '')}"]
    if not checks.get("tests_patched"):
        reasons.append("tests fail on the patched tree")
    gain = None
    if benchmark_configured:
        before, after = checks.get("bench_unpatched") or {}, checks.get("bench_patched") or {}
        if "median" in before and "median" in after:
            gain = improvement(
                before["median"], after["median"], bool(after.get("lower_is_better", True))
            )
            if gain < required:
                reasons.append(
                    f"benchmark improved {gain:.1%}, less than the required {required:.0%}"
                )
        else:
            reasons.append(after.get("error") or before.get("error") or "benchmark did not run")
    return not reasons, gain, reasons


@beat("validate.verdict")
def verdict(ctx: BeatContext) -> BeatResult:
    """Write validation.json and set the facts the machine branches on."""
    cycle_id = ctx.require_cycle()
    patch = read_patch(ctx, cycle_id)
    checks = ctx.outputs["sandbox-checks"]
    settings = ctx.settings.validate_
    passed, gain, reasons = judge_validation(
        checks, settings.min_improvement, settings.benchmark_command is not None
    )
    before, after = checks.get("bench_unpatched") or {}, checks.get("bench_patched") or {}
    artifact = ValidationArtifact(
        cycle_id=cycle_id,
        candidate_index=patch.candidate_index,
        base_version=patch.base_version,
        version=checks.get("version") if passed else None,
        apply_check=bool(checks.get("apply_check")),
        tests_unpatched=checks.get("tests_unpatched"),
        tests_patched=bool(checks.get("tests_patched")),
        benchmark_metric=after.get("metric"),
        benchmark_unpatched=before.get("median"),
        benchmark_patched=after.get("median"),
        improvement=gain,
        required_improvement=settings.min_improvement,
        passed=passed,
        reasons=reasons,
        runs=[CommandRun.model_validate(r) for r in checks.get("runs", [])],
    )
    ctx.artifacts.write_model(cycle_id, "validation", artifact)
    if passed:
        updates: dict[str, Any] = {"validation_passed": True, "validated_version": artifact.version}
    else:
        cycle = ctx.db.query(lambda s: repo.cycle(s, cycle_id))
        updates = {
            "validation_passed": False,
            "candidate_ready": False,
            "candidate_index": cycle.candidate_index + 1,
        }
    updates["summary"] = {"validation": {"passed": passed, "improvement": gain, "reasons": reasons}}
    return BeatResult(
        output={"passed": passed, "improvement": gain, "reasons": reasons}, cycle_updates=updates
    )
