"""HTTP access to metric endpoints, and the client of a Prometheus server's query API.

Everything here treats the other side as untrusted: each request has a
deadline for the whole exchange (connect to last byte) and a size cap, and a
response that is not what the API documents (HTTP error, invalid JSON, a
wrong shape, a value that is not a number) becomes a ``SourceError`` with a
short reason key and a readable message, never an exception of another kind.
Requests go straight to the configured address (proxy variables are not used).
Which windows a query source asks for, and what its answers become, is
``query_windows``'s; this module knows nothing of configuration.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

USER_AGENT = "selfheal"
CHUNK = 64 * 1024
GRACE_S = 0.5  # beyond a request's own timeout before the poll stops waiting for it
MAX_WORKERS = 64
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SourceError(Exception):
    """A metric source could not be read; ``reason`` keys the counts shown in status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class HttpResponse:
    """A complete response: status and body (at most the size cap)."""

    status: int
    body: bytes


def _short(data: bytes | str, limit: int = 200) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _read_body(response: Any, deadline: float, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise SourceError("timeout", "response not complete before the timeout")
        chunk = response.read1(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise SourceError("too_large", f"response larger than {max_bytes} bytes")
        chunks.append(chunk)


def http_request(
    url: str,
    *,
    timeout_s: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> HttpResponse:
    """GET ``url`` (POST when ``form`` is given); any failure raises ``SourceError``."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SourceError("bad_url", f"not an http(s) URL: {url}")
    deadline = time.monotonic() + timeout_s
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=data, headers={"User-Agent": USER_AGENT, **(headers or {})}
    )
    try:
        try:
            response: Any = _OPENER.open(request, timeout=timeout_s)
        except urllib.error.HTTPError as exc:  # a status >= 400 still has a body worth reading
            if exc.fp is None:
                return HttpResponse(exc.code, b"")
            response = exc
        with response:
            status = int(response.status if hasattr(response, "status") else response.code)
            return HttpResponse(status, _read_body(response, deadline, max_bytes))
    except SourceError:
        raise
    except TimeoutError as exc:
        raise SourceError("timeout", f"no answer within {timeout_s:g}s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise SourceError("timeout", f"no answer within {timeout_s:g}s") from exc
        raise SourceError("unreachable", f"cannot connect: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise SourceError("unreachable", f"{type(exc).__name__}: {exc}") from exc


# --- the query API -------------------------------------------------------------------


@dataclass(frozen=True)
class QueryPoint:
    """One value of one result series at one time (possibly NaN or infinite)."""

    labels: Mapping[str, str]
    timestamp: float
    value: float


def _number(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise SourceError("bad_shape", f"a value is not a number: {_short(repr(raw))}")
    try:
        return float(raw)
    except ValueError:
        raise SourceError("bad_shape", f"a value is not a number: {_short(repr(raw))}") from None


def _pair(raw: object) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise SourceError("bad_shape", f"expected [time, value], got {_short(repr(raw))}")
    return _number(raw[0]), _number(raw[1])


def _labels(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise SourceError("bad_shape", "a result's 'metric' is not a map of strings")
    return raw


def _points(result_type: object, result: object) -> list[QueryPoint]:
    if result_type == "scalar":
        t, v = _pair(result)
        return [QueryPoint({}, t, v)]
    if result_type not in ("vector", "matrix") or not isinstance(result, list):
        raise SourceError("bad_shape", f"unexpected result type {_short(repr(result_type))}")
    points: list[QueryPoint] = []
    for series in result:
        if not isinstance(series, dict):
            raise SourceError("bad_shape", "a result series is not an object")
        labels = _labels(series.get("metric", {}))
        pairs: object = [series.get("value")] if result_type == "vector" else series.get("values")
        if not isinstance(pairs, list):
            raise SourceError("bad_shape", "a matrix series has no 'values' list")
        for pair in pairs:
            t, v = _pair(pair)
            points.append(QueryPoint(labels, t, v))
    return points


def parse_query_response(response: HttpResponse) -> list[QueryPoint]:
    """The points of a ``/api/v1/query`` or ``/api/v1/query_range`` answer, or ``SourceError``."""
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        if response.status != 200:
            raise SourceError(
                "http_error", f"HTTP {response.status}: {_short(response.body)}"
            ) from None
        raise SourceError("invalid_json", f"not JSON: {_short(response.body)}") from None
    if not isinstance(document, dict):
        raise SourceError("bad_shape", "the answer is not a JSON object")
    if document.get("status") == "error" or response.status != 200:
        kind, error = document.get("errorType", ""), document.get("error", "")
        detail = f"{kind}: {error}" if kind or error else _short(response.body)
        raise SourceError("query_error", f"HTTP {response.status}: {_short(str(detail))}")
    if document.get("status") != "success":
        raise SourceError("bad_shape", "the answer has no 'status': 'success'")
    data = document.get("data")
    if not isinstance(data, dict):
        raise SourceError("bad_shape", "the answer has no 'data' object")
    return _points(data.get("resultType"), data.get("result"))


def duration(seconds: float) -> str:
    """A PromQL duration for ``seconds`` (``60s``, ``1500ms``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def query_range(
    base_url: str,
    promql: str,
    *,
    start: float,
    end: float,
    step: float,
    timeout_s: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> list[QueryPoint]:
    """Evaluate ``promql`` at ``start``, ``start + step``, ... ``end`` (Unix seconds)."""
    response = http_request(
        base_url.rstrip("/") + "/api/v1/query_range",
        timeout_s=timeout_s,
        max_bytes=max_bytes,
        headers=headers,
        form={
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
            "timeout": duration(max(timeout_s, 0.001)),
        },
    )
    return parse_query_response(response)


# --- every request of a poll at once ---------------------------------------------------

Job = tuple[tuple[str, str], float, Callable[[], Any]]


def run_all(jobs: list[Job]) -> dict[tuple[str, str], Any]:
    """Run every job in its own thread; each result is its value or a ``SourceError``.

    The poll waits for a job at most its timeout (plus a grace); a job still
    running then is reported as a timeout and left to end on its own deadline.
    """
    if not jobs:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(len(jobs), MAX_WORKERS), thread_name_prefix="metrics")
    started = time.monotonic()
    futures = [(key, timeout, pool.submit(work)) for key, timeout, work in jobs]
    results: dict[tuple[str, str], Any] = {}
    try:
        for key, timeout, future in futures:
            left = started + timeout + GRACE_S - time.monotonic()
            try:
                results[key] = future.result(timeout=max(0.0, left))
            except FutureTimeout:
                results[key] = SourceError("timeout", f"no answer within {timeout:g}s")
            except SourceError as exc:
                results[key] = exc
            except Exception as exc:  # a source must never stop the poll
                results[key] = SourceError("failed", f"{type(exc).__name__}: {exc}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results
