"""The bundled demo: the shop service, its repository, its regression, and the load generator.

Everything runs for real: a git repository built in a temporary directory,
the shop served by subprocesses on free 127.0.0.1 ports, the service's own
pytest suite and benchmark run as the agent's sandbox would run them.
"""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.demo import history, workspace
from agent.demo.load import LoadGenerator, RequestMix

LOG_FIELDS = {"ts", "component", "operation", "duration_ms", "status", "level", "message"}
LOG_FIELDS |= {"version", "instance"}


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[workspace.DemoRepository, workspace.RegressionCommits]:
    repo = workspace.build_demo_repository(tmp_path_factory.mktemp("demo") / "shop")
    return repo, workspace.commit_regression(repo)


@pytest.fixture(scope="module")
def checkout(
    tmp_path_factory: pytest.TempPathFactory, demo: tuple[workspace.DemoRepository, object]
) -> Callable[[str], Path]:
    """Export a revision of the demo repository into its own directory (once per revision)."""
    exported: dict[str, Path] = {}

    def export(revision: str) -> Path:
        if revision not in exported:
            target = tmp_path_factory.mktemp("checkout")
            archive = io.BytesIO(git_archive(demo[0].path, revision))
            with tarfile.open(fileobj=archive, mode="r:") as tar:
                tar.extractall(target, filter="data")
            exported[revision] = target
        return exported[revision]

    return export


def git(repository: Path, *arguments: str) -> str:
    command = ["git", "-C", str(repository), *arguments]
    return subprocess.run(command, capture_output=True, check=True, text=True).stdout


def git_archive(repository: Path, revision: str) -> bytes:
    command = ["git", "-C", str(repository), "archive", "--format=tar", revision]
    return subprocess.run(command, capture_output=True, check=True).stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """One shop server subprocess, its port and its request log."""

    def __init__(self, release: Path, log: Path, version: str, data: str) -> None:
        self.port = free_port()
        self.log = log
        env = {"PATH": os.environ["PATH"], "SERVICE_VERSION": version, "SHOP_DATA": data}
        argv = [sys.executable, "-m", "shop.server", "--port", str(self.port)]
        argv += ["--log", str(log), "--instance", "test-1"]
        self.process = subprocess.Popen(argv, cwd=release, env=env, stderr=subprocess.PIPE)
        self._await_health()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def _await_health(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise AssertionError("the shop server did not become healthy")


@pytest.fixture
def serve(tmp_path: Path, checkout: Callable[[str], Path]) -> Iterator[Callable[..., Served]]:
    """Start shop servers from a revision; every one is stopped after the test."""
    started: list[Served] = []

    def start(revision: str, *, data: str = "sample") -> Served:
        log = tmp_path / f"requests-{len(started)}.jsonl"
        started.append(Served(checkout(revision), log, revision, data))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def run_in(directory: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *argv], cwd=directory, env=env, capture_output=True, text=True, check=False
    )


def benchmark(directory: Path) -> dict[str, Any]:
    result = run_in(directory, "bench/bench_catalog.py")
    assert result.returncode == 0, result.stderr
    metric: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return metric


# The service's endpoints and request log.


def test_the_server_answers_the_version_it_was_started_with(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    server = serve(demo[0].healthy_sha)
    assert server.get("/version") == (200, {"version": demo[0].healthy_sha})
    assert server.get("/health") == (200, {"status": "ok"})


def test_catalog_cart_and_auth_endpoints_answer(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    server = serve(demo[0].healthy_sha)
    status, search = server.get("/catalog/search?q=oak+chair")
    assert status == 200
    assert search["results"]
    assert all("oak chair" in result["name"] for result in search["results"])
    assert server.get("/catalog/item/SKU-00042")[1]["sku"] == "SKU-00042"
    assert server.get("/catalog/item/SKU-99999")[0] == 404
    assert server.get("/cart/add?user=ann&sku=SKU-00042&qty=3") == (200, {"lines": 1, "items": 3})
    token = server.get("/auth/login?user=ann")[1]["token"]
    assert server.get("/auth/check", {"Authorization": f"Bearer {token}"}) == (200, {"user": "ann"})


def test_each_request_appends_one_json_line_with_every_field(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    server = serve(demo[0].healthy_sha)
    server.get("/catalog/search?q=red")
    server.get("/cart/add?user=ann&sku=not-a-sku")
    lines = server.log_lines()[-2:]
    assert [set(line) for line in lines] == [LOG_FIELDS, LOG_FIELDS]
    search, bad_cart = lines
    assert datetime.fromisoformat(search["ts"]).utcoffset() is not None
    assert (search["component"], search["operation"], search["status"]) == (
        "catalog",
        "GET /catalog/search",
        200,
    )
    assert isinstance(search["duration_ms"], float)
    assert (search["version"], search["instance"]) == (demo[0].healthy_sha, "test-1")
    assert (bad_cart["component"], bad_cart["status"], bad_cart["level"]) == (
        "cart",
        400,
        "warning",
    )


def test_a_server_error_is_logged_as_an_error_with_its_traceback(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    server = serve(demo[0].healthy_sha, data="production")
    assert server.get("/catalog/item/BND-9001")[0] == 500
    error = server.log_lines()[-1]
    assert (error["component"], error["status"], error["level"]) == ("catalog", 500, "error")
    assert "KeyError" in error["message"]
    assert 'shop/catalog.py", line' in error["stack"]


def test_only_the_culprit_serves_legacy_bundles_of_the_production_data(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    _, regression = demo
    assert serve(regression.culprit_sha, data="production").get("/catalog/item/BND-9001")[0] == 200
    assert serve(regression.culprit_sha).get("/catalog/item/BND-9001")[0] == 404


# The repository's history and the regression release.


def test_the_history_has_several_authors_and_spaced_dates(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
) -> None:
    repo, _ = demo
    log = git(repo.path, "log", "--format=%an|%at|%ct", repo.healthy_sha)
    commits = [line.split("|") for line in log.splitlines()]
    assert len(commits) == len(history.HISTORY)
    assert len({author for author, _, _ in commits}) >= 4
    times = sorted(int(authored) for _, authored, _ in commits)
    assert all(later - earlier >= 86400 for earlier, later in itertools.pairwise(times))
    assert all(authored == committed for _, authored, committed in commits)


def test_the_healthy_head_is_the_shipped_template(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    checkout: Callable[[str], Path],
) -> None:
    template = Path(workspace.__file__).parent / "service"
    exported = checkout(demo[0].healthy_sha)
    files = [path.relative_to(template) for path in template.rglob("*") if path.is_file()]
    shipped = [path for path in files if not any(_is_cache(part) for part in path.parts)]
    assert Path("shop/catalog.py") in shipped and len(shipped) >= 12
    for name in shipped:
        assert (exported / name).read_text() == (template / name).read_text(), name


def _is_cache(part: str) -> bool:
    return part.startswith(".") or part == "__pycache__"


def test_the_release_hides_the_culprit_between_innocent_commits(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
) -> None:
    repo, regression = demo
    new = git(repo.path, "rev-list", "--reverse", f"{repo.healthy_sha}..{regression.head_sha}")
    assert tuple(new.split()) == regression.commits
    assert regression.commits.index(regression.culprit_sha) == 1
    touched = {
        sha: git(repo.path, "show", "--format=", "--name-only", sha).split()
        for sha in regression.commits
    }
    assert touched.pop(regression.culprit_sha) == [regression.culprit_file] == ["shop/catalog.py"]
    assert len(touched) == 2
    assert all("shop/catalog.py" not in files for files in touched.values())
    subject = git(repo.path, "log", "-1", "--format=%s", regression.culprit_sha).strip()
    assert subject == "catalog: support case-insensitive SKU lookup"


def test_building_into_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(workspace.WorkspaceError, match="not empty"):
        workspace.build_demo_repository(tmp_path)


# The service's own test suite and benchmark, as the validation sandbox runs them.


@pytest.mark.parametrize("release", ["healthy", "head"])
def test_the_service_test_suite_passes_before_and_after_the_culprit(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    checkout: Callable[[str], Path],
    release: str,
) -> None:
    repo, regression = demo
    revision = repo.healthy_sha if release == "healthy" else regression.head_sha
    result = run_in(checkout(revision), "-m", "pytest")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_the_benchmark_shows_the_regression_and_reverting_the_culprit_recovers(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    checkout: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    repo, regression = demo
    reverted = tmp_path / "reverted"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(reverted)], check=True)
    identity = ["-c", "user.name=Ops", "-c", "user.email=ops@shop.example"]
    git(reverted, *identity, "revert", "--no-edit", regression.culprit_sha)

    healthy = benchmark(checkout(repo.healthy_sha))
    regressed = benchmark(checkout(regression.head_sha))
    recovered = benchmark(reverted)

    assert healthy["metric"] == "catalog_search_ms" and healthy["lower_is_better"] is True
    assert regressed["value"] > 5 * healthy["value"]
    assert recovered["value"] < 0.5 * regressed["value"]


# The load generator.


def test_a_request_mix_interleaves_kinds_in_proportion_to_their_weights() -> None:
    schedule = RequestMix(search=2, item=1, cart=1, auth=0).schedule()
    assert sorted(schedule) == ["cart", "item", "search", "search"]
    assert schedule[0] == "search" and schedule[1] != "search"
    with pytest.raises(ValueError, match="weights"):
        RequestMix(search=0, item=0, cart=0, auth=0).schedule()


def test_load_reaches_every_target_with_every_component_at_the_set_rate(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    servers = [serve(demo[0].healthy_sha), serve(demo[0].healthy_sha)]
    load = LoadGenerator([server.port for server in servers], rate_per_s=60, threads=3)
    with load:
        time.sleep(1.5)
    stats = load.stats()
    assert 40 <= stats.sent <= 100
    assert stats.failed == 0
    for server in servers:
        components = {line["component"] for line in server.log_lines()}
        assert {"catalog", "cart", "auth"} <= components
        checks = [line for line in server.log_lines() if line["operation"] == "GET /auth/check"]
        assert checks and all(line["status"] == 200 for line in checks)


def test_legacy_bundle_requests_fail_on_the_healthy_release_with_production_data(
    demo: tuple[workspace.DemoRepository, workspace.RegressionCommits],
    serve: Callable[..., Served],
) -> None:
    healthy = serve(demo[0].healthy_sha, data="production")
    load = LoadGenerator([healthy.port], rate_per_s=50, threads=2, mix=RequestMix())
    load.set_mix(RequestMix(search=1, item=0, cart=0, auth=0, legacy_bundle=1))
    with load:
        time.sleep(0.6)
    stats = load.stats()
    assert stats.server_errors > 0
    assert stats.statuses[200] > 0
    assert stats.failed == stats.server_errors
