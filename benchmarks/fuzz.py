"""Fuzzing every input the agent takes from outside, for a fixed time, counting crashes.

Log lines of every format, whole log files through ``poll_sources`` and a real
SQLite database, config files, sequence files, artifact files, benchmark
output, version commands, version probes over HTTP, revision names reaching
git, patches and stack-frame paths: each kind gets an equal share of the time,
and every input is random or a mutation of a good one. A crash is any
exception other than the documented error of that input, or a broken promise
(a record with a NaN duration, a count that does not add up, a payload that
ran, an unsafe patch let through). The run fails if there is any.

Run: ``python -m benchmarks.fuzz [--seconds 60] [--seed N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from agent.settings import ConfigError, load_settings
from sequences.loading import SequenceError, bundled_folder, load_sequences
from states.artifacts import ARTIFACT_MODELS, Candidate, DiagnosisArtifact, SuspectEntry
from states.deploy.command import CommandDeployer
from states.deploy.local_fleet import ask_version
from states.deploy.settings import CommandDeployerSettings
from states.diagnose.commits import map_frame_file
from states.fix.patches import UnsafePatch, check_patch
from states.git import GitError, checked_revision, resolve
from states.settings import Settings
from states.telemetry.fields import Rejection
from states.telemetry.formats import FormatKind, FormatSpec, LineParser, make_parser
from states.telemetry.ingest import poll_sources
from states.telemetry.records import Record
from states.validate.sandbox import BenchmarkOutputError, parse_benchmark
from storage import window_store
from storage.artifacts import write_atomically
from storage.db import open_database
from tests.support.log_samples import FORMAT_KINDS, GOOD_LINES, REGEX_PATTERN

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "fuzz.json"
NOW = datetime(2026, 11, 24, 7, 31, tzinfo=UTC)
SLICE_S = 0.25
KEPT_EXAMPLES = 5


class Broken(AssertionError):
    """An input was handled without an exception, but a promise about the result was broken."""


# --- random and mutated inputs -------------------------------------------------------------

TOKENS = [
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\r",
    b"\n",
    b"\t",
    b'"',
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"=",
    b"NaN",
    b"Infinity",
    b"-1",
    b"1e400",
    b"9" * 400,
    b"\xc2\xb2",
    b"\xed\xa0\x80",
    b"0001-01-01T00:00:00+01:00",
    b"9999-12-31T23:59:59-05:00",
    b"; touch /tmp/x",
    b"$(id)",
    b"`id`",
    b"--upload-pack=x",
    b"-oProxyCommand=x",
    b"../",
    b".git/",
    b"\\056git",
    b"\xe2\x80\xa8",
    b"\xc2\x85",
]


def random_bytes(rng: random.Random, size: int = 80) -> bytes:
    return rng.randbytes(rng.randrange(size + 1))


def random_text(rng: random.Random, size: int = 40) -> str:
    pools = [
        "abcxyz0129 -_./:=",
        "\x00\x01\x1b\x7f\x85\u2028\ufeff",
        "éü中😀\U0010fffd",
        "\"'\\{}[]$`;|&<>",
    ]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randrange(size + 1)))


def mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes] = ()) -> bytes:
    """A few cuts, insertions of hostile tokens, deletions, flips, duplications and splices."""
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        operation = rng.randrange(6)
        if operation == 0:
            data = data[:at]
        elif operation == 1:
            data = data[:at] + rng.choice(TOKENS) + data[at:]
        elif operation == 2:
            data = data[:at] + data[at + rng.randint(1, 16) :]
        elif operation == 3 and data:
            index = min(at, len(data) - 1)
            data = data[:index] + bytes([data[index] ^ rng.randint(1, 255)]) + data[index + 1 :]
        elif operation == 4:
            data = data[:at] + data[at : at + rng.randint(1, 32)] * rng.randint(2, 50) + data[at:]
        elif corpus:
            other = rng.choice(corpus)
            data = data[:at] + other[rng.randrange(len(other) + 1) :]
    return data


def random_json(rng: random.Random, depth: int = 0) -> object:
    roll = rng.randrange(10 if depth < 3 else 6)
    if roll == 0:
        return None
    if roll == 1:
        return rng.choice([True, False])
    if roll == 2:
        return rng.choice([0, -1, 2**63, -(2**70), rng.randrange(-1000, 1000)])
    if roll == 3:
        return rng.choice([0.5, -1e308, 1e-320, math.nan, math.inf, -math.inf])
    if roll in (4, 5):
        return random_text(rng, 20)
    if roll in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_text(rng, 8): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def json_bytes(value: object) -> bytes:
    return json.dumps(value).replace("\n", " ").encode()


# --- one target per kind of input ----------------------------------------------------------


@dataclass
class Target:
    """One kind of input: how to make one, and how to feed it and judge the outcome."""

    name: str
    make: Callable[[random.Random], object]
    feed: Callable[[object], str]
    inputs: int = 0
    crashes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)


def check_parse_result(result: object, kind: str) -> str:
    """The outcome's name; raises ``Broken`` for a result no parser may return."""
    if result is None:
        if kind != "conductor":
            raise Broken("only the conductor parser holds a line back")
        return "held"
    if isinstance(result, Rejection):
        return f"rejected:{result.reason}"
    if not isinstance(result, Record):
        raise Broken(f"parser returned {type(result).__name__}")
    duration_ok = result.duration_ms is None or (
        math.isfinite(result.duration_ms) and result.duration_ms >= 0
    )
    if not duration_ok or result.timestamp.utcoffset() != timedelta(0) or not result.component:
        raise Broken(f"unsound record {result!r:.300}")
    if result.status is not None and not 0 <= result.status <= 999:
        raise Broken(f"status {result.status}")
    return "record"


def line_target(kind: FormatKind) -> Target:
    spec = FormatSpec(kind=kind, pattern=REGEX_PATTERN if kind == "regex" else None)
    parser: LineParser = make_parser(spec, clock=lambda: NOW)
    corpus = GOOD_LINES[kind]

    def make(rng: random.Random) -> object:
        roll = rng.randrange(10)
        if roll == 0:
            return random_bytes(rng)
        if roll == 1 and kind in ("json", "conductor"):
            record = json.loads(corpus[0])
            record[rng.choice(list(record))] = random_json(rng)
            return json_bytes(record)
        if roll == 2:
            return rng.choice(corpus) + b" " * 70_000
        return mutate(rng, rng.choice(corpus), corpus)

    def feed(line: object) -> str:
        assert isinstance(line, bytes)
        return check_parse_result(parser.parse(line), kind)

    return Target(f"log line: {kind}", make, feed)


def _source_settings(folder: Path) -> Settings:
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(folder / "data")},
            "telemetry": {
                "max_line_bytes": 4096,
                "sources": [{"name": "app", "paths": [str(folder / "*.log")], "format": "json"}],
            },
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


def ingest_target() -> Target:
    good = GOOD_LINES["json"][0]

    def make(rng: random.Random) -> object:
        lines = []
        for _ in range(rng.randint(1, 30)):
            moment = NOW - timedelta(seconds=rng.randrange(7 * 86400))
            line = good.replace(b"2026-11-24T07:30:00Z", moment.isoformat().encode())
            lines.append(line if rng.random() < 0.5 else mutate(rng, line, [good]))
        return b"\n".join(lines) + rng.choice([b"\n", b"", b"\n\n"])

    def feed(data: object) -> str:
        assert isinstance(data, bytes)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "app.log").write_bytes(data)
            db = open_database(folder / "selfheal.db")
            try:
                settings = _source_settings(folder)
                first = poll_sources(settings, db, NOW)
                again = poll_sources(settings, db, NOW)
                counted = sum(
                    w.count for w in db.query(window_store.open_windows) if w.instance == ""
                )
            finally:
                db.dispose()
        complete = data.split(b"\n")[:-1]
        expected = sum(1 for line in complete if line.strip() or len(line) > 4096)
        if again.lines or counted + sum(first.rejected.values()) != expected:
            raise Broken(f"{expected} lines, {counted} counted, {dict(first.rejected)} rejected")
        if first.records and first.rejected:
            return "records and rejections"
        return "records only" if first.records else "rejections only"

    return Target("log file: poll_sources", make, feed)


BASE_CONFIG = """\
[agent]
data_dir = "data"
autonomy = "observe"
[[telemetry.sources]]
name = "app"
paths = ["logs/*.log"]
format = { kind = "regex", pattern = "(?P<timestamp>\\\\S+) (?P<component>\\\\S+)", timezone = "UTC" }
[components.catalog]
paths = ["shop/catalog.py"]
slo_p95_ms = 200
[deploy]
kind = "command"
waves = [50.0, 100.0]
[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["echo", "abc1234"]
"""


def config_target() -> Target:
    corpus = [BASE_CONFIG.encode()]

    def make(rng: random.Random) -> object:
        if rng.random() < 0.2:
            return random_text(rng, 200).encode()
        return mutate(rng, corpus[0], corpus)

    def feed(data: object) -> str:
        assert isinstance(data, bytes)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "selfheal.toml"
            path.write_bytes(data)
            try:
                load_settings(path)
            except ConfigError as error:
                if str(path) not in str(error):
                    raise Broken(f"error does not name the file: {error}") from error
                return "config error"
        return "settings"

    return Target("config file", make, feed)


BUNDLED = {p: p.read_bytes() for p in sorted(bundled_folder().glob("phase-*.json"))}
HANDLERS = frozenset(b["handler"] for raw in BUNDLED.values() for b in json.loads(raw)["beats"])
PHASES = frozenset(json.loads(raw)["phase"] for raw in BUNDLED.values())


def sequence_target() -> Target:
    corpus = list(BUNDLED.values())

    def make(rng: random.Random) -> object:
        if rng.random() < 0.2:
            return json_bytes(random_json(rng))
        return mutate(rng, rng.choice(corpus), corpus)

    def feed(data: object) -> str:
        assert isinstance(data, bytes)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "phase-1-custom.json"
            path.write_bytes(data)
            try:
                load_sequences(Path(tmp), handlers=HANDLERS, phases=PHASES)
            except SequenceError as error:
                if str(path) not in str(error):
                    raise Broken(f"error does not name the file: {error}") from error
                return "sequence error"
        return "sequences"

    return Target("sequence file", make, feed)


SAMPLE_DIAGNOSIS = (
    DiagnosisArtifact(
        cycle_id="c-1",
        component="catalog",
        category="latency",
        metric="p95",
        onset=NOW,
        healthy_version="0123456",
        unhealthy_version="abc1234",
        suspect_commit="abc1234",
        file="shop/catalog.py",
        line=42,
        confidence=0.9,
        conclusive=True,
        suspects=[
            SuspectEntry(
                commit="abc1234",
                author="Dev",
                committed_at=NOW,
                subject="Cache lookups",
                files=["shop/catalog.py"],
                score=0.8,
                confidence=0.9,
                features={"recency": 0.1},
            )
        ],
        candidates=[Candidate(strategy="revert_commit", commit="abc1234")],
        change_events=[{"kind": "commit", "at": NOW.isoformat()}],
        evidence=["p95 tripled"],
    )
    .model_dump_json(indent=2)
    .encode()
)


def artifact_target() -> Target:
    kinds = sorted(ARTIFACT_MODELS)

    def make(rng: random.Random) -> object:
        kind = rng.choice(kinds)
        data = SAMPLE_DIAGNOSIS if rng.random() < 0.7 else json_bytes(random_json(rng))
        cut = rng.random() < 0.3
        data = (
            data[: rng.randrange(len(data) + 1)] if cut else mutate(rng, data, [SAMPLE_DIAGNOSIS])
        )
        return kind, data, rng.random() < 0.1  # fsync is slow: write one in ten to disk

    def feed(item: object) -> str:
        assert isinstance(item, tuple)
        kind, data, to_disk = item
        if to_disk:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "cycles" / "c-1" / f"{kind}.json"
                digest = write_atomically(path, data)
                if path.read_bytes() != data or digest != hashlib.sha256(data).hexdigest():
                    raise Broken("the written artifact reads back different")
        try:
            ARTIFACT_MODELS[kind].model_validate_json(data)
        except ValidationError:
            return "validation error"
        return "model"

    return Target("artifact file", make, feed)


def benchmark_target() -> Target:
    good = b'noise\n{"metric": "p95_ms", "value": 12.5, "lower_is_better": true}\n'

    def make(rng: random.Random) -> object:
        if rng.random() < 0.3:
            return random_text(rng, 120)
        return mutate(rng, good, [good]).decode("utf-8", "replace")

    def feed(text: object) -> str:
        assert isinstance(text, str)
        try:
            reading = parse_benchmark(text)
        except BenchmarkOutputError:
            return "benchmark error"
        if not math.isfinite(reading.value):
            raise Broken(f"non-finite reading {reading.value}")
        return "reading"

    return Target("benchmark output", make, feed)


def version_command_target(folder: Path) -> Target:
    out = folder / "version.out"
    deployer = CommandDeployer(
        CommandDeployerSettings(
            targets=["t1"], deploy=["true"], version=["cat", str(out)], timeout_s=5
        )
    )

    def make(rng: random.Random) -> object:
        if rng.random() < 0.05:
            return random_bytes(rng, 1 << 20)
        return rng.choice([random_bytes(rng, 200), mutate(rng, b"abc1234\n")])

    def feed(data: object) -> str:
        assert isinstance(data, bytes)
        out.write_bytes(data)
        found = deployer.running_versions()["t1"]
        if found is not None and (not isinstance(found, str) or not found.strip()):
            raise Broken(f"version {found!r:.80}")
        return "none" if found is None else "string"

    return Target("version command output", make, feed)


class _Answering(http.server.BaseHTTPRequestHandler):
    raw = b""

    def do_GET(self) -> None:
        with contextlib.suppress(OSError):  # the prober gave up first
            self.wfile.write(type(self).raw)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def answering_server() -> Iterator[tuple[int, type[_Answering]]]:
    handler = type("Answering", (_Answering,), {"raw": b""})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def version_probe_target(port: int, handler: type[_Answering]) -> Target:
    good = b'HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n{"version": "abc1234"}'

    def make(rng: random.Random) -> object:
        roll = rng.randrange(4)
        if roll == 0:
            return random_bytes(rng, 200)
        if roll == 1:
            body = json_bytes(random_json(rng))
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        return mutate(rng, good, [good])

    def feed(raw: object) -> str:
        assert isinstance(raw, bytes)
        handler.raw = raw
        found = ask_version(port, "/version", 0.5)
        if found is not None and not isinstance(found, str):
            raise Broken(f"version {found!r:.80}")
        return "none" if found is None else "version"

    return Target("version probe (HTTP)", make, feed)


def _git_repo(folder: Path) -> list[str]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "Dev")
    shas = []
    for n in range(2):
        (folder / "catalog.py").write_text(f"version {n}\n")
        git("add", "-A")
        git("commit", "-q", "-m", f"change {n}")
        shas.append(git("rev-parse", "HEAD"))
    return shas


def revision_target(folder: Path) -> Target:
    repo_path = folder / "repo"
    repo_path.mkdir()
    shas = _git_repo(repo_path)
    marker = folder / "pwned"
    payloads = [
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"--output={marker}",
        f"--upload-pack=touch {marker}",
        f"-oProxyCommand=touch {marker}",
        "HEAD",
        "HEAD~1",
        shas[0][:7],
        "../../etc/passwd",
    ]

    def make(rng: random.Random) -> object:
        roll = rng.randrange(3)
        if roll == 0:
            return random_text(rng, 30)
        base = rng.choice(payloads).encode()
        return mutate(rng, base).decode("utf-8", "replace")

    def feed(text: object) -> str:
        assert isinstance(text, str)
        found = resolve(repo_path, text)
        try:
            checked_revision(text)
            hex_ok = True
        except GitError:
            hex_ok = False
        if marker.exists() or list(Path.cwd().glob("pwned*")):
            raise Broken(f"a payload ran: {text!r}")
        if found is not None and found not in shas:
            raise Broken(f"resolved to {found!r}")
        if hex_ok and not all(c in "0123456789abcdef" for c in text):
            raise Broken(f"checked_revision let {text!r} through")
        return "resolved" if found else "unknown"

    return Target("revision name -> git", make, feed)


UNSAFE_NAMES = ["/etc/passwd", "../outside", "a/../../x", ".git/config", "sub/.GIT/hooks/x"]


def _diff(path: str, quoted: bool) -> str:
    if quoted:
        path = '"' + "".join(f"\\{b:03o}" for b in path.encode()) + '"'
        old, new = path.replace('"', '"a/', 1), path.replace('"', '"b/', 1)
    else:
        old, new = f"a/{path}", f"b/{path}"
    return f"diff --git {old} {new}\n--- {old}\n+++ {new}\n@@ -1 +1 @@\n-x\n+y\n"


def patch_target() -> Target:
    def make(rng: random.Random) -> object:
        unsafe = rng.choice(UNSAFE_NAMES)
        diff = _diff("shop/catalog.py", False) + _diff(unsafe, rng.random() < 0.5)
        if rng.random() < 0.5:
            return diff, True
        return mutate(rng, diff.encode()).decode("utf-8", "replace"), False

    def feed(item: object) -> str:
        assert isinstance(item, tuple)
        diff, must_refuse = item
        try:
            files = check_patch(diff, max_bytes=64 * 1024)
        except UnsafePatch:
            return "refused"
        if must_refuse:
            raise Broken(f"unsafe patch accepted: {files}")
        for name in files:
            parts = Path(name).parts
            if name.startswith("/") or ".." in parts or ".git" in [p.lower() for p in parts]:
                raise Broken(f"accepted {name!r}")
        return "accepted"

    return Target("patch", make, feed)


def frame_target() -> Target:
    files = frozenset({"shop/catalog.py", "shop/cart.py", "README.md"})

    def make(rng: random.Random) -> object:
        base = rng.choice(["/srv/app/shop/catalog.py", "../shop/cart.py", "shop/catalog.py"])
        return mutate(rng, base.encode()).decode("utf-8", "replace")

    def feed(frame_file: object) -> str:
        assert isinstance(frame_file, str)
        mapped = map_frame_file(frame_file, ["/srv/app/", ""], files)
        if mapped is not None and mapped not in files:
            raise Broken(f"mapped to {mapped!r}")
        return "mapped" if mapped else "unmapped"

    return Target("stack frame path", make, feed)


# --- the run -------------------------------------------------------------------------------


def run_once(target: Target, rng: random.Random) -> None:
    item = target.make(rng)
    target.inputs += 1
    try:
        target.outcomes[target.feed(item)] += 1
    except Exception as error:  # every other exception is exactly what is being counted
        target.crashes += 1
        if len(target.examples) < KEPT_EXAMPLES:
            target.examples.append(
                {
                    "error": f"{type(error).__name__}: {error}"[:500],
                    "input": repr(item)[:500],
                    "where": "".join(traceback.format_tb(error.__traceback__)[-2:])[-800:],
                }
            )


def fuzz(targets: Sequence[Target], seconds: float, seed: int) -> float:
    """Give every target equal slices of ``seconds``; returns the time actually spent."""
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        for target in targets:
            slice_end = min(time.monotonic() + SLICE_S, deadline)
            while time.monotonic() < slice_end:
                run_once(target, rng)
    return time.monotonic() - started


def format_table(targets: Sequence[Target], elapsed: float) -> str:
    lines = [f"{'input kind':<26} {'inputs':>8} {'per s':>8} {'crashes':>8}  outcomes"]
    share = elapsed / max(len(targets), 1)
    for t in targets:
        top = ", ".join(f"{name} {n}" for name, n in t.outcomes.most_common(3))
        lines.append(f"{t.name:<26} {t.inputs:>8} {t.inputs / share:>8.0f} {t.crashes:>8}  {top}")
    total = sum(t.inputs for t in targets)
    lines.append(
        f"{'total':<26} {total:>8} {total / elapsed:>8.0f} {sum(t.crashes for t in targets):>8}"
    )
    return "\n".join(lines)


def report(targets: Sequence[Target], elapsed: float, seed: int) -> dict[str, object]:
    return {
        "seconds": round(elapsed, 1),
        "seed": seed,
        "total_inputs": sum(t.inputs for t in targets),
        "total_crashes": sum(t.crashes for t in targets),
        "kinds": {
            t.name: {
                "inputs": t.inputs,
                "crashes": t.crashes,
                "outcomes": dict(t.outcomes.most_common()),
                "crash_examples": t.examples,
            }
            for t in targets
        },
    }


def run_fuzz(seconds: float, seed: int) -> tuple[list[Target], float]:
    """Fuzz every input kind for ``seconds`` in all; the targets (with counts) and time spent."""
    with tempfile.TemporaryDirectory() as tmp, answering_server() as (port, handler):
        folder = Path(tmp)
        targets = [
            *(line_target(kind) for kind in FORMAT_KINDS),
            ingest_target(),
            config_target(),
            sequence_target(),
            artifact_target(),
            benchmark_target(),
            version_command_target(folder),
            version_probe_target(port, handler),
            revision_target(folder),
            patch_target(),
            frame_target(),
        ]
        elapsed = fuzz(targets, seconds, seed)
    return targets, elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total fuzzing time")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    if shutil.which("git") is None:
        parser.error("git is needed on PATH")
    targets, elapsed = run_fuzz(args.seconds, seed)
    print(format_table(targets, elapsed))
    for target in targets:
        for example in target.examples:
            print(f"\n{target.name}: {example['error']}\n  input: {example['input'][:200]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(report(targets, elapsed, seed), indent=2) + "\n", encoding="utf-8"
    )
    print(f"seed {seed}; written {args.out}")
    return 1 if any(t.crashes for t in targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
