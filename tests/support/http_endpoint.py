"""A small HTTP server on 127.0.0.1 in a thread, answering what a test says.

Metric sources are tested against real HTTP: an exposition endpoint whose
page a test rewrites between scrapes, or a server that misbehaves on purpose.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # every query of every source arrives at once


class Endpoint:
    """A small HTTP server in a thread; ``respond(path, form)`` gives (status, body, delay)."""

    def __init__(self, respond: Callable[[str, dict[str, str]], tuple[int, str, float]]) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, form: dict[str, str]) -> None:
                status, body, delay = endpoint.respond(self.path, form)
                endpoint.hits += 1
                if delay:
                    time.sleep(delay)
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                self._answer(dict(urllib.parse.parse_qsl(raw)))

            def log_message(self, *args: object) -> None:
                pass

        self.respond = respond
        self.hits = 0
        self.page = {"text": ""}  # what a test's respond may serve
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serving_page() -> Endpoint:
    """An endpoint answering 200 with whatever ``page["text"]`` holds at the time."""
    served = Endpoint(lambda path, form: (200, served.page["text"], 0.0))
    return served
