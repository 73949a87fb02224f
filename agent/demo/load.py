"""Steady synthetic shoppers for the demo fleet.

The agent learns baselines and judges rollout waves from request logs, so the
demo needs traffic that looks like a storefront's: a fixed total rate spread
round-robin over every instance, mixing catalog, cart and auth requests. The
requests are derived from a counter rather than drawn at random, so a run is
reproducible. Traffic goes to 127.0.0.1 only: targets are given as ports.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

PRODUCTS = 8000
"""How many products the shop's catalog has (SKU-00001 .. SKU-08000)."""

LEGACY_BUNDLES = tuple(f"BND-{number}" for number in range(9001, 9021))
"""Bundles only the production data set has; their parts use lower-case SKUs."""

SEARCH_QUERIES = (
    "red", "wool scarf", "navy", "oak chair", "cotton shirt", "green silk",
    "leather wallet", "linen", "ceramic mug", "amber glass", "denim jacket", "walnut tray",
)  # fmt: skip
SHOPPERS = 200
SIGNED_IN_SHOPPERS = 8


@dataclass(frozen=True)
class RequestMix:
    """Relative weights of each kind of request; zero leaves a kind out."""

    search: int = 4
    item: int = 4
    cart: int = 2
    auth: int = 2
    legacy_bundle: int = 0

    def schedule(self) -> tuple[str, ...]:
        """One cycle of request kinds, each kind spread evenly (smooth weighted round-robin)."""
        weights = {kind: weight for kind, weight in vars(self).items() if weight > 0}
        if not weights or any(weight < 0 for weight in vars(self).values()):
            raise ValueError(f"request mix needs non-negative weights, one positive: {self}")
        credit = dict.fromkeys(weights, 0)
        cycle = []
        for _ in range(sum(weights.values())):
            for kind, weight in weights.items():
                credit[kind] += weight
            chosen = max(credit, key=lambda kind: credit[kind])
            credit[chosen] -= sum(weights.values())
            cycle.append(chosen)
        return tuple(cycle)


@dataclass(frozen=True)
class LoadStats:
    """What the generator has done so far."""

    sent: int
    failed: int
    statuses: dict[int, int]

    @property
    def server_errors(self) -> int:
        """Requests the service answered with a 5xx status."""
        return sum(count for status, count in self.statuses.items() if status >= 500)


@dataclass(frozen=True)
class _Request:
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    shopper: str = ""


class LoadGenerator:
    """Sends GET requests to 127.0.0.1 ports at ``rate_per_s`` in total from ``threads`` threads."""

    def __init__(
        self,
        ports: Sequence[int],
        *,
        rate_per_s: float = 40.0,
        threads: int = 4,
        mix: RequestMix | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        if not ports or rate_per_s <= 0 or threads < 1:
            raise ValueError("load needs at least one port, a positive rate and one thread")
        self._ports = tuple(ports)
        self._interval_s = threads / rate_per_s
        self._thread_count = threads
        self._timeout_s = timeout_s
        self._schedule = (mix or RequestMix()).schedule()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sequence = 0
        self._sent = 0
        self._failed = 0
        self._statuses: Counter[int] = Counter()
        self._threads: list[threading.Thread] = []
        self._tokens: dict[str, str] = {}  # shared by the threads: one login per shopper

    def start(self) -> None:
        """Start the sending threads; they run until :meth:`stop`."""
        if self._threads:
            raise RuntimeError("load generator already started")
        for index in range(self._thread_count):
            thread = threading.Thread(
                target=self._run, args=(index,), name=f"load-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop sending and wait for every thread to finish its request in flight."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout_s + 1.0)

    def set_mix(self, mix: RequestMix) -> None:
        """Change the kinds of request sent from now on (e.g. add legacy bundle pages)."""
        self._schedule = mix.schedule()

    def stats(self) -> LoadStats:
        """A snapshot of the counters."""
        with self._lock:
            return LoadStats(self._sent, self._failed, dict(self._statuses))

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, index: int) -> None:
        next_at = time.monotonic() + self._interval_s * index / self._thread_count
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            number = self._next_number()
            port = self._ports[number % len(self._ports)]
            # Every port sees the whole schedule, whatever the two lengths.
            request = build_request(self._schedule, number // len(self._ports), self._tokens)
            status, body = self._send(port, request)
            token = body.get("token")
            if request.shopper and isinstance(token, str):
                self._tokens[request.shopper] = token
            self._count(status)
            next_at = max(next_at + self._interval_s, time.monotonic())

    def _next_number(self) -> int:
        with self._lock:
            self._sequence += 1
            return self._sequence

    def _send(self, port: int, request: _Request) -> tuple[int | None, dict[str, object]]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=self._timeout_s)
        try:
            connection.request("GET", request.path, headers=request.headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return None, {}
        finally:
            connection.close()
        return response.status, _json_object(body)

    def _count(self, status: int | None) -> None:
        with self._lock:
            self._sent += 1
            if status is None or status >= 400:
                self._failed += 1
            if status is not None:
                self._statuses[status] += 1


def build_request(schedule: Sequence[str], number: int, tokens: dict[str, str]) -> _Request:
    """The ``number``-th request: its kind from the schedule, its details from the number."""
    kind = schedule[number % len(schedule)]
    return _BUILDERS[kind](number, tokens)


def _search(number: int, tokens: dict[str, str]) -> _Request:
    query = SEARCH_QUERIES[number % len(SEARCH_QUERIES)].replace(" ", "+")
    return _Request(f"/catalog/search?q={query}")


def _item(number: int, tokens: dict[str, str]) -> _Request:
    return _Request(f"/catalog/item/{_sku(number * 7919)}")


def _cart(number: int, tokens: dict[str, str]) -> _Request:
    shopper = number % SHOPPERS
    if number % 4 == 0:
        return _Request(f"/cart/view?user=shopper{shopper}")
    sku = _sku(shopper * 37 + (number // SHOPPERS) % 5 * 11)
    return _Request(f"/cart/add?user=shopper{shopper}&sku={sku}&qty=1")


def _auth(number: int, tokens: dict[str, str]) -> _Request:
    shopper = f"shopper{number % SIGNED_IN_SHOPPERS}"
    token = tokens.get(shopper)
    if token:
        return _Request("/auth/check", {"Authorization": f"Bearer {token}"})
    return _Request(f"/auth/login?user={shopper}", shopper=shopper)


def _legacy_bundle(number: int, tokens: dict[str, str]) -> _Request:
    bundle = LEGACY_BUNDLES[number % len(LEGACY_BUNDLES)]
    return _Request(f"/catalog/item/{bundle}")


_BUILDERS: dict[str, Callable[[int, dict[str, str]], _Request]] = {
    "search": _search,
    "item": _item,
    "cart": _cart,
    "auth": _auth,
    "legacy_bundle": _legacy_bundle,
}


def _sku(number: int) -> str:
    return f"SKU-{number % PRODUCTS + 1:05d}"


def _json_object(body: bytes) -> dict[str, object]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
