"""A webhook receiver on 127.0.0.1 for the alert tests: real HTTP, recording what it is sent.

with Receiver() as hook:            # hook.url: http://127.0.0.1:PORT/services/T0/B0/<secret>
    ...                             # hook.posts: the JSON bodies received, in order
Receiver(status=500)                # answers 500 to every POST
Receiver(delay=10)                  # takes this long to answer (a webhook that hangs)
Receiver(first=[503, (429, {"Retry-After": "1"}), DROP])
                                    # answers these to the first POSTs, in order (DROP:
                                    # closes the connection without an answer), then `status`
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = "drop"  # an answer of `first`: the connection is closed without one
Answer = int | tuple[int, dict[str, str]] | str


class _Server(ThreadingHTTPServer):
    # Not daemon threads: server_close() then waits for every answer, so whatever an
    # answer prints lands in the test that caused it, not in a later one's output.
    daemon_threads = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The sender gave up (its timeout) before the answer: not the receiver's error.
        # Anything else, a bug here, still prints its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Receiver:
    def __init__(
        self, status: int = 200, delay: float = 0.0, first: list[Answer] | None = None
    ) -> None:
        self.status = status
        self.delay = delay
        self.first = list(first or [])
        self.times: list[float] = []  # time.monotonic() of each POST to the path
        # The secret path, as in a Slack incoming webhook URL.
        self.secret = secrets.token_hex(12)
        self.path = f"/services/T0ALERTS/B0ALERTS/{self.secret}"
        self.posts: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # A connection left open without a request ends here, so server_close()'s
            # wait for the answers is bounded.
            timeout = 10

            def do_POST(self) -> None:  # http.server calls it by this name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(("POST", self.path, dict(self.headers)))
                status, headers = receiver.status, {}
                if self.path == receiver.path:
                    receiver.posts.append(json.loads(body))
                    receiver.times.append(time.monotonic())
                    if receiver.first:
                        answer = receiver.first.pop(0)
                        if answer == DROP:
                            self.close_connection = True
                            return  # http.server closes the socket: no answer at all
                        status, headers = answer if isinstance(answer, tuple) else (answer, {})
                else:
                    status = 404
                if receiver.delay:
                    receiver._released.wait(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no_service")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads what was received

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()  # a delayed answer ends now
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The posts once there are `n` (sending is synchronous, so this rarely waits)."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.posts


def alert_text(post: dict[str, Any]) -> str:
    """Everything a person would read in a posted alert, its text and every block's text, as
    Slack shows it (its three escapes undone)."""
    text = json.dumps(post, ensure_ascii=False)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
