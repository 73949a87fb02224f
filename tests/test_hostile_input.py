"""Hostile text from telemetry, commands and targets never changes what the agent executes.

The service being healed writes the logs the agent reads, the deploy tooling
prints the versions it reports, and the fleet answers version probes. Any of
them may be broken or controlled by someone else. These tests push shell
metacharacters, option-like strings and ``..`` paths from a real log file
through ingest and windows into the git helpers diagnosis uses, with a real
``git`` on PATH behind a recording wrapper; check that unsafe patches are
refused; and feed garbage to the parsers of command and HTTP output.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from states.deploy.command import CommandDeployer
from states.deploy.local_fleet import ask_version
from states.deploy.settings import CommandDeployerSettings
from states.diagnose.commits import map_frame_file
from states.fix.patches import UnsafePatch, check_patch
from states.git import (
    GitError,
    added_lines,
    blame_commit,
    checked_revision,
    commits_between,
    commits_until,
    resolve,
    tracked_files,
)
from states.settings import Settings
from states.telemetry.ingest import poll_sources
from states.validate.sandbox import (
    BenchmarkOutputError,
    BenchmarkReading,
    parse_benchmark,
    run_command,
    scrubbed_env,
)
from storage import window_store
from storage.db import open_database

NOW = datetime(2026, 11, 24, 7, 31, tzinfo=UTC)
CHECKS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def payloads(marker: Path) -> list[str]:
    """Strings that would create ``marker`` if they ever reached a shell or became an option."""
    return [
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"| touch {marker}",
        f"&& touch {marker} &&",
        f"abc1234; touch {marker}",
        f"--output={marker}",
        f"--upload-pack=touch {marker}",
        f"-oProxyCommand=touch {marker}",
        f"--exec=touch {marker}",
        f"-c core.pager=touch {marker}",
        "../../../../../etc/passwd",
        "--",
        "-",
        "abcdef1\n",
        "HEAD\x00--output=x",
    ]


# --- a real repository behind a recording git ----------------------------------------------


@dataclass
class RecordingGit:
    """A ``git`` first on PATH that notes each argument list, then runs the real git."""

    log_dir: Path
    bin_dir: Path
    calls: list[list[str]] = field(default_factory=list)

    def read(self) -> list[list[str]]:
        calls = []
        for note in sorted(self.log_dir.iterdir()):
            calls.append(note.read_bytes().split(b"\0")[:-1])
            note.unlink()
        return [[arg.decode("utf-8", "surrogateescape") for arg in call] for call in calls]


@pytest.fixture(scope="module")
def recording_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingGit]:
    real = shutil.which("git")
    assert real is not None
    root = tmp_path_factory.mktemp("git-wrapper")
    recorder = RecordingGit(log_dir=root / "calls", bin_dir=root / "bin")
    recorder.log_dir.mkdir()
    recorder.bin_dir.mkdir()
    wrapper = recorder.bin_dir / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'note="{recorder.log_dir}/$(date +%s%N).$$"\n'
        'for arg in "$@"; do printf \'%s\\0\' "$arg" >> "$note"; done\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{recorder.bin_dir}{os.pathsep}{os.environ['PATH']}")
        yield recorder


def _git(repo_path: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2026-11-20T10:00:00Z",
        "GIT_COMMITTER_DATE": "2026-11-20T10:00:00Z",
    }
    return subprocess.run(
        ["git", "-C", str(repo_path), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture(scope="module")
def service_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A repository with three commits touching the catalog; returns it and the commit ids."""
    path = tmp_path_factory.mktemp("service")
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "dev@example.com")
    _git(path, "config", "user.name", "Dev")
    (path / "shop").mkdir()
    shas = []
    for n in range(3):
        (path / "shop" / "catalog.py").write_text("".join(f"line {i} of {n}\n" for i in range(5)))
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", f"catalog change {n}")
        shas.append(_git(path, "rev-parse", "HEAD"))
    return path, shas


def assert_resolved_after_end_of_options(
    calls: list[list[str]], repo_path: Path, texts: list[str]
) -> None:
    """Each call is the same command up to ``--end-of-options``; the text only follows it."""
    fixed = ["-C", str(repo_path), "rev-parse", "--verify", "--quiet", "--end-of-options"]
    assert calls == [[*fixed, f"{text}^{{commit}}"] for text in texts]


def _poll_hostile_log(folder: Path, texts: list[str]) -> Settings:
    lines = []
    for n, text in enumerate(texts):
        stack = f'Traceback (most recent call last):\n  File "{text}", line {n + 1}, in handler'
        record = {
            "ts": (NOW - timedelta(minutes=1)).isoformat(),
            "component": "catalog",
            "level": "error",
            "status": 500,
            "duration_ms": 12,
            "version": text,
            "message": text,
            "instance": text,
            "stack": stack,
        }
        lines.append(json.dumps(record))
    (folder / "app.log").write_text("\n".join(lines) + "\n")
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(folder / "data")},
            "telemetry": {"sources": [{"name": "app", "paths": [str(folder / "*.log")]}]},
            "repository": {"path_prefixes": ["/srv/app/"]},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


def test_hostile_versions_and_frames_from_a_log_never_reach_git_as_options(
    tmp_path: Path, service_repo: tuple[Path, list[str]], recording_git: RecordingGit
) -> None:
    repo_path, shas = service_repo
    marker = tmp_path / "pwned"
    hostile = [p for p in payloads(marker) if "\x00" not in p]
    settings_ = _poll_hostile_log(tmp_path, hostile)
    db = open_database(tmp_path / "selfheal.db")
    report = poll_sources(settings_, db, NOW)
    windows = db.query(window_store.open_windows)
    db.dispose()
    assert report.records == len(hostile), report.as_dict()
    versions = {v for w in windows for v in w.versions}
    frames = {str(f[0]) for w in windows for f in w.frames}
    instances = {w.instance for w in windows} - {""}
    assert versions == instances == set(hostile), "the log's text reached the windows unchanged"
    assert frames == {h for h in hostile if "\n" not in h}
    files = tracked_files(repo_path, shas[-1])
    recording_git.read()

    for text in sorted(versions):
        assert resolve(repo_path, text) is None
        for helper in (
            lambda: checked_revision(text),
            lambda: commits_between(repo_path, text, shas[-1], 10),
            lambda: commits_between(repo_path, shas[0], text, 10),
            lambda: commits_until(repo_path, text, NOW - timedelta(days=30), 10),
            lambda: added_lines(repo_path, text, "shop/catalog.py"),
            lambda: blame_commit(repo_path, text, "shop/catalog.py", 1),
            lambda: tracked_files(repo_path, text),
        ):
            with pytest.raises(GitError, match="refusing revision"):
                helper()
    for frame_file in sorted(frames):
        mapped = map_frame_file(frame_file, settings_.repository.path_prefixes, files)
        assert mapped is None
    calls = recording_git.read()

    assert not marker.exists()
    for folder in (tmp_path, repo_path, Path.cwd()):
        assert not list(folder.rglob("pwned*")), "a payload ran"
    # Only resolve() ran git; every other helper refused the text before running anything.
    assert_resolved_after_end_of_options(calls, repo_path, sorted(versions))


HOSTILE_REVISIONS = st.one_of(
    st.sampled_from(
        ["; touch {m}", "$(touch {m})", "`touch {m}`", "--output={m}", "-oProxyCommand=touch {m}"]
    ),
    st.text(max_size=30),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["-", "--", "../", "HEAD", "@{", ":/", "abcdef1"]),
        st.text(max_size=20),
    ),
)


@CHECKS
@given(template=HOSTILE_REVISIONS)
@example(template="HEAD\x00--output={m}")
@example(template="-" * 300_000)
@example(template="abcdef1\n")
def test_any_revision_text_resolves_to_a_commit_or_nothing_and_runs_nothing(
    template: str, tmp_path: Path, service_repo: tuple[Path, list[str]], recording_git: RecordingGit
) -> None:
    repo_path, shas = service_repo
    marker = tmp_path / f"pwned-{hashlib.sha256(template.encode()).hexdigest()[:12]}"
    text = template.replace("{m}", str(marker))
    recording_git.read()

    found = resolve(repo_path, text)

    calls = recording_git.read()
    assert found is None or found in shas
    assert not marker.exists()
    refused_before_git = "\x00" in text or len(text) > 4096
    assert_resolved_after_end_of_options(calls, repo_path, [] if refused_before_git else [text])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=70) | st.from_regex(r"[0-9a-f]{1,70}\n?", fullmatch=True))
@example(text="abcdef1\n")
@example(text="ABCDEF1")
def test_checked_revision_accepts_exactly_lower_case_hex_object_names(text: str) -> None:
    if re.fullmatch(r"[0-9a-f]{7,64}", text):
        assert checked_revision(text) == text
    else:
        with pytest.raises(GitError, match="refusing revision"):
            checked_revision(text)


@settings(max_examples=200, deadline=None)
@given(
    frame_file=st.text(max_size=40)
    | st.sampled_from(["../shop/catalog.py", "/srv/app/../shop/catalog.py", "shop/catalog.py/.."]),
    prefixes=st.lists(st.text(max_size=8) | st.just("/srv/app/"), max_size=3),
)
def test_a_frame_file_maps_to_a_tracked_file_or_to_nothing(
    frame_file: str, prefixes: list[str]
) -> None:
    files = frozenset({"shop/catalog.py", "shop/cart.py", "README.md"})
    assert map_frame_file(frame_file, prefixes, files) in files | {None}


def test_a_log_that_git_writes_in_latin1_does_not_break_reading_commits(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "dev@example.com")
    _git(tmp_path, "config", "user.name", "Dev")
    _git(tmp_path, "config", "i18n.logOutputEncoding", "ISO-8859-1")  # a legacy repository's choice
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "café in latin-1")
    head = _git(tmp_path, "rev-parse", "HEAD")

    (commit,) = commits_until(tmp_path, head, NOW - timedelta(days=3650), 10)

    assert commit.subject == "caf\ufffd in latin-1"
    assert commit.files == ("a.py",)


# --- unsafe patches are refused before validation ------------------------------------------

SAFE_SEGMENT = st.text(alphabet="abcxyz019_-.é", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..") and s.lower() != ".git"
)
SAFE_PATH = st.lists(SAFE_SEGMENT, min_size=1, max_size=4).map("/".join)
ODD_SEPARATORS = ["", "\x85", "\u2028", "\x1c", "\r"]


@st.composite
def unsafe_paths(draw: st.DrawFn) -> str:
    """A path that leaves the repository, is absolute, or is inside a ``.git`` directory."""
    parts = draw(st.lists(SAFE_SEGMENT, min_size=0, max_size=3))
    odd = draw(st.sampled_from(ODD_SEPARATORS))
    if odd and parts:
        parts[0] += odd
    kind = draw(st.sampled_from(["absolute", "parent", "git"]))
    at = draw(st.integers(0, len(parts)))
    if kind == "absolute":
        return "/" + "/".join(parts or ["etc"])
    if kind == "parent":
        return "/".join([*parts[:at], "..", *parts[at:]])
    dot_git = draw(st.sampled_from([".git", ".GIT", ".Git"]))
    return "/".join([*parts[:at], dot_git, *parts[at:], draw(SAFE_SEGMENT)])


def c_quoted(path: str, escape_all: bool) -> str:
    """The path as git quotes it (octal bytes); ``escape_all`` also hides plain ASCII."""
    out = []
    for byte in path.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif escape_all or byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def diff_naming(path: str, shape: str, quoted: bool, escape_all: bool = False) -> str:
    """A diff that touches ``path`` in one of the shapes git writes or applies."""
    old, new = (c_quoted(f"{s}/{path}", escape_all) if quoted else f"{s}/{path}" for s in "ab")
    hunk = "@@ -1 +1 @@\n-x\n+y\n"
    if shape == "git":
        return (
            f"diff --git {old} {new}\nindex 1111111..2222222 100644\n--- {old}\n+++ {new}\n{hunk}"
        )
    if shape == "new-empty":
        return f"diff --git {old} {new}\nnew file mode 100644\nindex 0000000..e69de29\n"
    if shape == "plain":
        return f"--- {old}\n+++ {new}\n{hunk}"
    if shape == "created":
        return f"--- /dev/null\n+++ {new}\n@@ -0,0 +1 @@\n+y\n"
    name = c_quoted(path, escape_all) if quoted else path
    verb = "rename" if shape == "rename" else "copy"
    return f"diff --git a/old-name b/old-name\nsimilarity index 100%\n{verb} from old-name\n{verb} to {name}\n"


SHAPES = st.sampled_from(["git", "new-empty", "plain", "created", "rename", "copy"])


@settings(max_examples=300, deadline=None)
@given(
    unsafe=unsafe_paths(),
    shape=SHAPES,
    quoted=st.booleans(),
    escape_all=st.booleans(),
    safe_before=st.lists(SAFE_PATH, max_size=2),
)
def test_a_patch_touching_anything_outside_the_working_tree_is_refused(
    unsafe: str, shape: str, quoted: bool, escape_all: bool, safe_before: list[str]
) -> None:
    diff = "".join(diff_naming(p, "git", quoted=False) for p in safe_before)
    diff += diff_naming(unsafe, shape, quoted, escape_all)
    with pytest.raises(UnsafePatch, match=r"outside the repository|inside \.git"):
        check_patch(diff, max_bytes=1 << 20)


@settings(max_examples=200, deadline=None)
@given(
    paths=st.lists(SAFE_PATH, min_size=1, max_size=4, unique=True),
    shape=SHAPES,
    quoted=st.booleans(),
)
def test_a_patch_inside_the_working_tree_names_its_files(
    paths: list[str], shape: str, quoted: bool
) -> None:
    diff = "".join(diff_naming(p, shape, quoted) for p in paths)
    files = check_patch(diff, max_bytes=1 << 20)
    assert [f for f in files if f in paths] == paths
    assert set(files) <= {*paths, "old-name"}


@settings(max_examples=100, deadline=None)
@given(path=SAFE_PATH, limit=st.integers(1, 4096), extra=st.integers(1, 4096))
def test_a_patch_over_the_size_limit_is_refused(path: str, limit: int, extra: int) -> None:
    diff = diff_naming(path, "git", quoted=False)
    diff += "+" + "y" * max(0, limit + extra - len(diff.encode())) + "\n"
    with pytest.raises(UnsafePatch, match="over the limit"):
        check_patch(diff, max_bytes=limit)


def _git_applies(repo_path: Path, diff: str) -> bool:
    checked = subprocess.run(
        ["git", "-C", str(repo_path), "apply", "--check", "-"],
        input=diff,
        check=False,
        capture_output=True,
        text=True,
    )
    return checked.returncode == 0


def test_what_is_refused_git_apply_refuses_too_and_what_is_kept_it_applies(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "old-name").write_text("x\n")
    for path, shape in [
        (".git/hooks/post-checkout", "created"),
        ("sub/.git/config", "created"),
        ("../outside", "rename"),
    ]:
        diff = diff_naming(path, shape, quoted=True, escape_all=True)
        with pytest.raises(UnsafePatch):
            check_patch(diff, max_bytes=1 << 20)
        assert not _git_applies(tmp_path, diff), f"git would apply {path!r}"
    for path, shape in [("shop/café.py", "created"), ("shop/new.py", "rename")]:
        diff = diff_naming(path, shape, quoted=True, escape_all=True)
        assert check_patch(diff, max_bytes=1 << 20)[-1] == path
        assert _git_applies(tmp_path, diff), f"git would not apply {path!r}"


# --- output of external commands -----------------------------------------------------------

JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
BENCHMARK_LAST_LINES = st.one_of(
    st.text(),
    JSON_ANY.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["value", "metric", "lower_is_better"]), JSON_ANY, max_size=3
    ).map(json.dumps),
    st.sampled_from(
        [
            '{"value": NaN}',
            '{"value": Infinity}',
            '{"value": -Infinity}',
            '{"value": 1' + "0" * 400 + "}",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(before=st.text(), last=BENCHMARK_LAST_LINES)
@example(before="", last='{"value": 1' + "0" * 5000 + "}")
@example(before="", last="[" * 100_000)
def test_benchmark_output_gives_a_finite_reading_or_a_benchmark_error(
    before: str, last: str
) -> None:
    try:
        reading = parse_benchmark(before + "\n" + last)
    except BenchmarkOutputError as error:
        assert str(error)
    else:
        assert isinstance(reading, BenchmarkReading) and math.isfinite(reading.value)


def _deployer(
    folder: Path, timeout_s: float = 5.0, command: list[str] | None = None
) -> CommandDeployer:
    version = command or ["cat", str(folder / "{target}.out")]
    return CommandDeployer(
        CommandDeployerSettings(
            targets=["web-1", "web-2"], deploy=["true"], version=version, timeout_s=timeout_s
        )
    )


@CHECKS
@given(outputs=st.tuples(st.binary(max_size=200), st.binary(max_size=200)))
@example(outputs=(b"\xff\xfe\x00garbage\n", b""))
@example(outputs=(b"\n\n \t\n", b"abc1234\n\x1b[31m"))
def test_a_version_command_printing_anything_yields_a_string_or_none(
    tmp_path: Path, outputs: tuple[bytes, bytes]
) -> None:
    for target, output in zip(["web-1", "web-2"], outputs, strict=True):
        (tmp_path / f"{target}.out").write_bytes(output)
    versions = _deployer(tmp_path).running_versions()
    assert set(versions) == {"web-1", "web-2"}
    for target, output in zip(["web-1", "web-2"], outputs, strict=True):
        found = versions[target]
        assert found is None or (isinstance(found, str) and found and found == found.strip())
        if re.search(rb"[!-~]", output):
            assert found is not None
        if not output.strip():
            assert found is None


def test_a_version_command_printing_megabytes_yields_its_last_line(tmp_path: Path) -> None:
    (tmp_path / "web-1.out").write_bytes(os.urandom(4 << 20) + b"\nabc1234\n")
    (tmp_path / "web-2.out").write_bytes(b"x" * (4 << 20))
    versions = _deployer(tmp_path).running_versions()
    assert versions["web-1"] == "abc1234"
    assert versions["web-2"] == "x" * (4 << 20)


@pytest.mark.parametrize(
    "command",
    [["/no/such/command"], ["false"], [sys.executable, "-c", "import time; time.sleep(10)"]],
    ids=["missing", "failing", "hanging"],
)
def test_a_version_command_that_fails_or_hangs_yields_none(
    tmp_path: Path, command: list[str]
) -> None:
    started = time.monotonic()
    assert _deployer(tmp_path, timeout_s=0.5, command=command).running_versions() == {
        "web-1": None,
        "web-2": None,
    }
    assert time.monotonic() - started < 5


def test_a_sandbox_command_printing_binary_output_is_recorded_not_raised(tmp_path: Path) -> None:
    (tmp_path / "out.bin").write_bytes(b"\xff\xfe\x00 tests \xc3( passed\n")
    result = run_command(["cat", "out.bin"], tmp_path, 5.0, scrubbed_env({}))
    assert result.ok and "passed" in result.stdout and "\ufffd" in result.stdout


# --- version probes against a real HTTP server ---------------------------------------------


@dataclass
class Answer:
    """What the probed target sends for the next request, and how long it then stays silent."""

    raw: bytes = b""
    hold_s: float = 0.0


class _Target(http.server.BaseHTTPRequestHandler):
    answer = Answer()
    release = threading.Event()

    def do_GET(self) -> None:
        answer = type(self).answer
        try:
            self.wfile.write(answer.raw)
            self.wfile.flush()
        except OSError:
            return
        if answer.hold_s:
            self.release.wait(answer.hold_s)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[int, type[_Target]]]:
    handler: type[_Target] = type(
        "Target", (_Target,), {"answer": Answer(), "release": threading.Event()}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    handler.release.set()
    server.shutdown()
    server.server_close()


def http_response(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n"
    return head.encode() + body


def probe(target: tuple[int, type[_Target]], answer: Answer, timeout_s: float = 0.5) -> str | None:
    port, handler = target
    handler.answer = answer
    return ask_version(port, "/version", timeout_s)


def test_a_target_answering_its_version_is_read(target: tuple[int, type[_Target]]) -> None:
    assert probe(target, Answer(http_response(b'{"version": "abc1234"}'))) == "abc1234"
    assert probe(target, Answer(http_response(b"abc1234\n"))) == "abc1234"


@CHECKS
@given(raw=st.binary(max_size=300))
@example(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
@example(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
@example(raw=b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n")
@example(raw=b"HTTP/1.1 999999999999999999999 OK\r\n\r\n")
def test_a_target_answering_garbage_is_no_version(
    target: tuple[int, type[_Target]], raw: bytes
) -> None:
    assert probe(target, Answer(raw)) is None


@CHECKS
@given(body=st.one_of(JSON_ANY.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
@example(body=b"[" * 100_000)
@example(body=b'{"version": 5}')
@example(body=b'{"version": "abc; touch /tmp/pwned"}')
@example(body=b'"abc1234"')
def test_a_target_answering_anything_but_a_version_name_is_no_version(
    target: tuple[int, type[_Target]], body: bytes
) -> None:
    found = probe(target, Answer(http_response(body)))
    assert found is None or VERSION_NAME.fullmatch(found)


@pytest.mark.parametrize(
    "body",
    [b"a" * (16 << 20), json.dumps({"version": "a" * (1 << 20)}).encode()],
    ids=["text", "json"],
)
def test_a_target_answering_a_huge_body_is_no_version(
    target: tuple[int, type[_Target]], body: bytes
) -> None:
    assert probe(target, Answer(http_response(body))) is None


@pytest.mark.parametrize(
    "raw",
    [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
    ids=["silent", "in-headers", "in-body"],
)
def test_a_target_that_stops_answering_is_no_version_within_the_probe_timeout(
    target: tuple[int, type[_Target]], raw: bytes
) -> None:
    started = time.monotonic()
    assert probe(target, Answer(raw, hold_s=10.0), timeout_s=0.3) is None
    assert time.monotonic() - started < 2
