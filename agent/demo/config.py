"""The daemon configuration ``selfheal demo`` writes into its workspace.

The demo runs the agent's real daemon, so it needs a real ``config.toml``: the
documented keys with windows, polls and bakes turned down to demo length, one
component per service area with its source files, and a local fleet of four
targets on ports the kernel hands out. Tests that stage the demo themselves
write the same file, so the dials (``DemoOptions``) and the writer live here,
apart from the run that watches the daemon.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from agent.demo.workspace import DemoRepository

TARGETS = ("web-1", "web-2", "web-3", "web-4")
SLO_P95_MS = 20.0  # healthy shop requests take well under a millisecond


@dataclass(frozen=True)
class DemoOptions:
    """The demo's dials; tests shorten them."""

    scenario: str = "resolved"
    window_s: float = 1.0
    poll_interval_s: float = 0.5
    healthy_windows: int = 8
    rate_per_s: float = 30.0  # the regressed catalog costs ~40 ms CPU per request
    bake_s: float = 3.0
    timeout_s: float = 240.0  # a hang guard; a cycle takes 15-60 s
    benchmark_repeats: int = 3
    keep_fleet: bool = False
    """Leave the instances running on return, so a caller can still ask them what they run;
    the caller then stops them with ``stop_fleet(<workspace>/fleet)``."""


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (released for our instances)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def write_config(ws: Path, demo_repo: DemoRepository, ports: list[int], opts: DemoOptions) -> Path:
    """The workspace's config.toml: the same keys as the documented default, dials turned down."""
    targets = "\n".join(f'"{name}" = {port}' for name, port in zip(TARGETS, ports, strict=True))
    components = "\n".join(
        f"[components.{name}]\npaths = {json.dumps(paths)}\nslo_p95_ms = {SLO_P95_MS}\nslo_error_rate = 0.05\n"
        for name, paths in demo_repo.component_sources.items()
    )
    text = f"""# Written by `selfheal demo`: the documented configuration with short windows and bakes.
[agent]
data_dir = "data"
poll_interval_s = {opts.poll_interval_s}
autonomy = "auto"
cooldown_s = 30
pattern_confidence = 0.75

[telemetry]
window_s = {opts.window_s}
lateness_s = {opts.window_s / 2}

[[telemetry.sources]]
name = "shop"
paths = ["fleet/logs/*.jsonl"]
format = "json"

[detect]
persist_windows = 3
clear_windows = 2
min_baseline_windows = 4
deviation_factor = 2.5
min_samples = 5
default_slo_error_rate = 0.05

{components}
[repository]
path = "repo"
path_prefixes = ["{ws}/fleet/releases/"]

[diagnose]
min_confidence = 0.5

[validate]
test_command = ["{{python}}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
benchmark_command = ["{{python}}", "bench/bench_catalog.py"]
benchmark_repeats = {opts.benchmark_repeats}
min_improvement = 0.1
timeout_s = 120

[deploy]
kind = "local-fleet"
waves = [25, 50, 100]
bake_s = {opts.bake_s}
min_gate_samples = 8
max_bake_extensions = 4
deploy_timeout_s = 30

[deploy.local_fleet]
repository = "repo"
fleet_dir = "fleet"
argv = ["{{python}}", "-m", "shop.server", "--port", "{{port}}", "--log", "{{log}}", "--instance", "{{instance}}"]
env = {{ SHOP_DATA = "production" }}

[deploy.local_fleet.targets]
{targets}
"""
    path = ws / "config.toml"
    path.write_text(text)
    return path
