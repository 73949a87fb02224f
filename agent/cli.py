"""The ``selfheal`` command line: parse arguments, call one function, print its result.

Exit codes: 0 success, 1 the operation failed (see the message), 2 the
configuration, data directory or arguments are unusable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent import daemon, engine, logs, reports
from agent.demo import run as demo_run
from agent.lock import AlreadyRunning, DataDirLock
from agent.settings import ConfigError, config_path, load_settings
from sequences.loading import SequenceError, sequence_json_schema
from states.artifacts import ARTIFACT_MODELS
from states.clock import SystemClock
from states.detect.budget import coverage_warnings
from states.machine import STATES
from states.settings import Settings
from storage import repository as repo
from storage.db import StorageError

VERBS = ("pause", "resume", "approve", "reject", "abort", "rollback", "set-state")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(args.config), data_dir=args.data_dir)


def _print(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text(data))


def cmd_run(args: argparse.Namespace) -> int:
    logs.configure(json=True, level=args.log_level)
    return daemon.run(_settings(args))


def cmd_tick(args: argparse.Namespace) -> int:
    logs.configure(json=args.json, level=args.log_level)
    settings = _settings(args)
    with DataDirLock(settings.agent.data_dir):
        rt = engine.open_runtime(settings, threading.Event())
        try:
            report = engine.tick(rt)
        finally:
            engine.close_runtime(rt)
    data = {
        "state": report.final_state,
        "polled": report.polled,
        "commands": report.commands,
        "steps": [
            {"kind": s.kind, "state": s.state, "beat": s.beat, "detail": s.detail}
            for s in report.steps
        ],
    }
    _print(
        args,
        data,
        lambda d: "\n".join(
            f"{s['kind']:<12} {s['state']:<18} {s['beat']} {s['detail']}" for s in d["steps"]
        ),
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = engine.open_readonly(settings)
    try:
        _print(args, reports.status(db, settings, SystemClock().now()), reports.render_status)
    finally:
        db.dispose()
    return 0


def cmd_override(args: argparse.Namespace) -> int:
    if args.verb == "set-state" and args.state not in STATES:
        print(f"set-state needs a state: one of {', '.join(STATES)}", file=sys.stderr)
        return 2
    if args.verb != "set-state" and args.state is not None:
        print(f"'{args.verb}' takes no state argument", file=sys.stderr)
        return 2
    if args.verb == "set-state" and not args.force:
        print("set-state bypasses the machine's rules; repeat it with --force", file=sys.stderr)
        return 2
    db = engine.open_readonly(_settings(args))
    try:
        now = SystemClock().now()
        row = db.transact(
            lambda s: repo.queue_command(
                s,
                verb=args.verb,
                reason=args.reason,
                target_state=args.state,
                force=args.force,
                requested_by=args.by,
                now=now,
            )
        )
    finally:
        db.dispose()
    data = {"queued": row.id, "verb": row.verb, "state": row.target_state}
    _print(
        args,
        data,
        lambda d: (
            f"queued command #{d['queued']} ({d['verb']}); the daemon applies it at its next tick"
        ),
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    db = engine.open_readonly(_settings(args))
    try:
        _print(args, reports.history(db, args.limit), reports.render_history)
    finally:
        db.dispose()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    db = engine.open_readonly(_settings(args))
    try:
        data = reports.show(db, args.cycle)
    finally:
        db.dispose()
    if data is None:
        print(f"no cycle matches {args.cycle!r} (see `selfheal history`)", file=sys.stderr)
        return 1
    _print(args, data, lambda d: json.dumps(d, indent=2, default=str))
    return 0


def cmd_patterns(args: argparse.Namespace) -> int:
    db = engine.open_readonly(_settings(args))
    try:
        _print(args, reports.patterns(db), reports.render_patterns)
    finally:
        db.dispose()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    settings = load_settings(path, data_dir=args.data_dir)
    sequences = engine.load_phase_sequences(settings)
    data = {
        "config": str(path),
        "ok": True,
        "data_dir": str(settings.agent.data_dir),
        "autonomy": settings.agent.autonomy,
        "deployer": settings.deploy.kind,
        "phases": {phase: [b.id for b in spec.beats] for phase, spec in sequences.items()},
        "warnings": coverage_warnings(settings),
    }
    _print(
        args,
        data,
        lambda d: "\n".join(
            [
                f"{d['config']}: OK ({len(d['phases'])} phases, deployer {d['deployer']}, autonomy {d['autonomy']})",
                *(f"warning: {w}" for w in d["warnings"]),
            ]
        ),
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    schemas: dict[str, Any] = {
        kind: model.model_json_schema() for kind, model in ARTIFACT_MODELS.items()
    }
    schemas["sequence"] = sequence_json_schema()
    schemas["config"] = Settings.model_json_schema()
    chosen = {args.kind: schemas[args.kind]} if args.kind else schemas
    print(json.dumps(chosen, indent=2))
    return 0


def _unit_quote(word: str) -> str:
    """Quote one ExecStart argument the way systemd reads it."""
    if word and not any(c in word for c in " \t\"'\\"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(config: Path, executable: str, user: str | None) -> str:
    """A unit file that runs the daemon with the notify protocol and a watchdog."""
    user_line = f"User={user}\n" if user else ""
    return f"""[Unit]
Description=selfheal: self-healing agent
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={executable} run --config {_unit_quote(str(config))}
{user_line}Restart=on-failure
RestartSec=5
WatchdogSec=120
TimeoutStopSec=900
KillMode=mixed
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=multi-user.target
"""


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    executable = shutil.which("selfheal") or f"{sys.executable} -m agent.cli"
    print(systemd_unit(config_path(args.config).resolve(), executable, args.user), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return demo_run.main(scenario=args.scenario, as_json=args.json, workspace=args.workspace)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfheal", description="A self-healing agent for a service you run."
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="configuration file (default: $SELFHEAL_CONFIG or ./config.toml)",
    )
    parser.add_argument("--data-dir", type=Path, help="override agent.data_dir")
    parser.add_argument("--log-level", default=os.environ.get("SELFHEAL_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        return p

    add("run", cmd_run, "run the daemon", json_flag=False)
    add("tick", cmd_tick, "run exactly one tick")
    add("status", cmd_status, "show state, cycle, beat, health and recent transitions")
    override = add("override", cmd_override, "queue an operator command for the daemon's next tick")
    override.add_argument("verb", choices=VERBS)
    override.add_argument("state", nargs="?", help="the state for set-state")
    override.add_argument("--reason", required=True, help="why (stored with the transition)")
    override.add_argument("--force", action="store_true", help="required by set-state")
    override.add_argument(
        "--by",
        "--actor",
        dest="by",
        default=os.environ.get("USER", ""),
        help="who is asking (default $USER); transitions record the actor as 'operator'",
    )
    hist = add("history", cmd_history, "list cycles, newest first")
    hist.add_argument("--limit", type=int, default=20)
    show = add("show", cmd_show, "everything about one cycle")
    show.add_argument("cycle", help="cycle id or a unique prefix")
    add("patterns", cmd_patterns, "list learned patterns")
    add("check", cmd_check, "validate the configuration and the sequences")
    schema = add(
        "schema",
        cmd_schema,
        "print the JSON Schemas of artifacts, sequences and config",
        json_flag=False,
    )
    schema.add_argument("kind", nargs="?", choices=[*ARTIFACT_MODELS, "sequence", "config"])
    unit = add(
        "systemd-unit", cmd_systemd_unit, "print a systemd unit for the daemon", json_flag=False
    )
    unit.add_argument("--user", help="run the service as this user")
    demo = add("demo", cmd_demo, "run the bundled demo end to end")
    demo.add_argument("--scenario", choices=["resolved", "bad-fix"], default="resolved")
    demo.add_argument(
        "--workspace",
        type=Path,
        help="where to build the demo (default: a new temporary directory, kept)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``selfheal`` console script."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, SequenceError, StorageError) as exc:
        print(f"selfheal: {exc}", file=sys.stderr)
        return 2
    except AlreadyRunning as exc:
        print(f"selfheal: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
