"""HTTP front of the shop: routes requests to components and logs each one.

Every request produces exactly one JSON line in the request log (``--log``),
with the component that served it and how long it took, so operators can see
latency and errors per component and per version.

Run: ``python -m shop.server --port 8080 --log requests.jsonl --instance web-1``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shop import auth, cart, catalog, inventory


class ClientError(Exception):
    """The request is wrong; answered with ``status`` and logged as a warning."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """What a route handler needs to know about a request."""

    path_args: tuple[str, ...]
    query: dict[str, str]
    headers: Any


class RequestLog:
    """Appends one JSON line per request; lines from several threads never interleave."""

    def __init__(self, path: str, version: str, instance: str) -> None:
        self._file = open(path, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self._version = version
        self._instance = instance

    def write(self, **fields: object) -> None:
        line = {"ts": datetime.now(timezone.utc).isoformat(), **fields}
        line.update(version=self._version, instance=self._instance)
        with self._lock:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class Shop:
    """The components one instance serves, with their state."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.catalog = catalog.Catalog(inventory.load_items())
        self.carts = cart.Carts()


def _query(request: Request, name: str) -> str:
    value = request.query.get(name)
    if value is None:
        raise ClientError(400, f"missing query parameter {name!r}")
    return value


def _integer(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise ClientError(400, f"{name} must be an integer") from None


def health(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    return {"status": "ok"}, "healthy"


def version(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    return {"version": shop.version}, f"version {shop.version}"


def catalog_search(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    query = _query(request, "q")
    try:
        results = shop.catalog.search(query, _integer(request, "limit", catalog.DEFAULT_LIMIT))
    except ValueError as error:
        raise ClientError(400, str(error)) from None
    return {"query": query, "results": results}, f"search {query!r}: {len(results)} results"


def catalog_item(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    sku = request.path_args[0]
    try:
        page = shop.catalog.page(sku)
    except catalog.UnknownSku:
        raise ClientError(404, f"no item {sku}") from None
    return page, f"item {sku}"


def cart_add(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    user, sku = _query(request, "user"), _query(request, "sku")
    try:
        contents = shop.carts.add(user, sku, _integer(request, "qty", 1))
    except cart.CartError as error:
        raise ClientError(400, str(error)) from None
    return contents, f"cart of {user}: added {sku}"


def cart_view(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    user = _query(request, "user")
    return shop.carts.view(user), f"cart of {user}"


def auth_login(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    user = _query(request, "user")
    try:
        return {"token": auth.issue(user)}, f"token issued to {user}"
    except auth.AuthError as error:
        raise ClientError(400, str(error)) from None


def auth_check(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    try:
        user = auth.check(auth.bearer_token(request.headers.get("Authorization")))
    except auth.AuthError as error:
        raise ClientError(401, str(error)) from None
    return {"user": user}, f"token of {user} valid"


Handler = Callable[[Shop, Request], tuple[dict[str, object], str]]

# (path pattern, component, operation, handler); operations name the route, not the URL,
# so that requests for different items aggregate together.
ROUTES: list[tuple[re.Pattern[str], str, str, Handler]] = [
    (re.compile(r"^/health$"), "server", "GET /health", health),
    (re.compile(r"^/version$"), "server", "GET /version", version),
    (re.compile(r"^/catalog/search$"), "catalog", "GET /catalog/search", catalog_search),
    (re.compile(r"^/catalog/item/([^/]+)$"), "catalog", "GET /catalog/item", catalog_item),
    (re.compile(r"^/cart/add$"), "cart", "GET /cart/add", cart_add),
    (re.compile(r"^/cart/view$"), "cart", "GET /cart/view", cart_view),
    (re.compile(r"^/auth/login$"), "auth", "GET /auth/login", auth_login),
    (re.compile(r"^/auth/check$"), "auth", "GET /auth/check", auth_check),
]


def _route(path: str) -> tuple[str, str, Handler, tuple[str, ...]]:
    for pattern, component, operation, handler in ROUTES:
        match = pattern.match(path)
        if match:
            return component, operation, handler, match.groups()
    return "server", "GET <unrouted>", _not_found, ()


def _not_found(shop: Shop, request: Request) -> tuple[dict[str, object], str]:
    raise ClientError(404, "no such route")


class ShopRequestHandler(BaseHTTPRequestHandler):
    """Serves one HTTP request against the server's Shop and logs it."""

    server: ShopServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        component, operation, handler, path_args = _route(url.path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        request = Request(path_args, query, self.headers)
        started = time.perf_counter()
        fields: dict[str, object] = {"level": "info"}
        try:
            body, message = handler(self.server.shop, request)
            status = 200
        except ClientError as error:
            status, body, message = error.status, {"error": str(error)}, str(error)
            fields["level"] = "warning"
        except Exception as error:  # a bug: answer 500 and keep serving
            status, body = 500, {"error": "internal error"}
            message = f"{type(error).__name__}: {error}"
            fields.update(level="error", stack=traceback.format_exc())
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        # Logged before answering, so a client that got its answer finds the line.
        self.server.log.write(
            component=component,
            operation=operation,
            duration_ms=duration_ms,
            status=status,
            message=message,
            **fields,
        )
        self._answer(status, body)

    def _answer(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the JSON request log replaces the default access log."""


class ShopServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the shop and its request log."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], shop: Shop, log: RequestLog) -> None:
        super().__init__(address, ShopRequestHandler)
        self.shop = shop
        self.log = log


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shop.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True, help="request log file (JSON lines, appended)")
    parser.add_argument("--instance", default=os.uname().nodename)
    return parser.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    service_version = os.environ.get("SERVICE_VERSION", "dev")
    log = RequestLog(arguments.log, service_version, arguments.instance)
    server = ShopServer((arguments.host, arguments.port), Shop(service_version), log)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        log.close()


if __name__ == "__main__":
    main()
