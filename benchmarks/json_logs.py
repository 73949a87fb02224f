"""Generated log lines in the default JSON shape, one generator for every benchmark that ingests.

``benchmarks.ingest`` (throughput per format) and ``benchmarks.agent`` (ticks,
stages, memory) both feed the agent JSON lines of a small shop: five
components, four operations, a log-normal duration, one line in 200 failed
(status 500, level error). They differ only where their figures need it,
which ``JsonLogStyle`` names: how many instances write, how many decimals
a duration has, and whether a failure's message is a free-text event with
variable parts (mined into templates) or one fixed word. The random draws
are the same in the same order for every style, so a style's lines do not
change when another is added.

The free-text ``EVENTS`` and their ``variables`` also make the syslog
messages of ``benchmarks.ingest``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

COMPONENTS = ("catalog", "checkout", "search", "auth", "cart")
INSTANCES = ("web-1", "web-2", "web-3", "web-4", "web-5")
OPERATIONS = ("GET /x", "GET /items", "POST /cart", "GET /search")
FAILED_SHARE = 0.005
# Free-text events with variable parts, as services write them.
EVENTS = (
    "Connection to {ip}:{port} timed out after {n} ms",
    "Accepted connection from {ip}:{port}",
    "User {user} logged in from {ip}",
    "Session {hex} expired after {n} seconds",
    "Fetched {n} rows from table orders in {n} ms",
    "Cache miss for key item:{n}",
    "Payment {uuid} declined: insufficient funds",
    "Retrying request {n} (attempt {k} of 5)",
    "GC pause of {n} ms, heap {n} MB",
    "Opened file /var/lib/app/{n}/part-{k}.parquet",
    "Worker {k} started",
    "Worker {k} stopped",
    "Slow query on shard {k}: {n} ms",
    "Health check passed",
    "Reloading configuration",
    "Disk usage at {k}% on /dev/sda{k}",
    "Sent {n} bytes to {ip}:{port}",
    "Request {uuid} failed with status {status}",
    "Queue depth {n} exceeds threshold {n}",
    "Upstream {host}:{port} marked unhealthy",
)

LineMaker = Callable[[datetime, int, random.Random], str]


@dataclass(frozen=True)
class JsonLogStyle:
    """Where the JSON logs of two benchmarks differ (see the module)."""

    instances: int = len(INSTANCES)
    duration_digits: int = 3
    event_messages: bool = True  # a failure's message: an event (mined) or "failed"


def variables(rng: random.Random) -> dict[str, object]:
    """Values for the placeholders of ``EVENTS``."""
    return {
        "ip": f"10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}",
        "port": rng.choice((443, 5432, 6379, 8080)),
        "n": rng.randint(1, 50_000),
        "k": rng.randint(1, 16),
        "user": rng.choice(("alice", "bob", "carol", "dave")),
        "hex": f"{rng.getrandbits(48):012x}",
        "uuid": f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4abc-8def-"
        f"{rng.getrandbits(48):012x}",
        "status": rng.choice((500, 502, 503)),
        "host": rng.choice(("db-1.internal", "cache-2.internal")),
    }


def json_line(
    at: datetime, i: int, rng: random.Random, style: JsonLogStyle = JsonLogStyle()
) -> str:
    """Line ``i`` of a JSON log, written at ``at``."""
    failed = rng.random() < FAILED_SHARE
    duration = round(rng.lognormvariate(2.5, 0.4), style.duration_digits)
    if not failed:
        message = "ok"
    elif style.event_messages:
        message = EVENTS[i % len(EVENTS)].format(**variables(rng))
    else:
        message = "failed"
    return json.dumps(
        {
            "ts": at.isoformat(timespec="milliseconds"),
            "component": COMPONENTS[i % len(COMPONENTS)],
            "operation": OPERATIONS[i % len(OPERATIONS)],
            "duration_ms": duration,
            "status": 500 if failed else 200,
            "level": "error" if failed else "info",
            "message": message,
            "version": "abc1234",
            "instance": INSTANCES[(i // len(COMPONENTS)) % style.instances],
        }
    )


def spread_lines(
    make: LineMaker, n: int, end: datetime, span_s: float, seed: int = 7
) -> Iterator[str]:
    """``n`` lines from ``make``, timestamps evenly spread over ``span_s`` seconds up to ``end``."""
    rng = random.Random(seed)
    start = end - timedelta(seconds=span_s)
    step = span_s / max(n, 1)
    for i in range(n):
        yield make(start + timedelta(seconds=i * step), i, rng)
