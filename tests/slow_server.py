"""A server on 127.0.0.1 that answers as a misbehaving server or proxy does, over a real
socket: its headers, then a body a byte at a time, or one far larger than any answer.

with SlowServer(head, body_chunks) as server:   # server.url: http://127.0.0.1:PORT
    ...                                          # server.paths: the request lines' paths

`head` is the status line and headers (bytes, ending in a blank line); `body` yields the
body's pieces, each sent after `pause` seconds, or a number: seconds to wait before the
next. A client that hangs up ends the answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable


class SlowServer:
    def __init__(
        self, head: bytes, body: Callable[[], Iterable[bytes | float]], pause: float = 0.0
    ) -> None:
        self._head, self._body, self._pause = head, body, pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.paths: list[str] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    def __enter__(self) -> SlowServer:
        accepting = threading.Thread(target=self._accept, daemon=True)
        accepting.start()
        self._threads.append(accepting)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # a closed listener does not wake accept()
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            answering = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            answering.start()
            self._threads.append(answering)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536)
                self.paths.append(request.split(b" ", 2)[1].decode())
                conn.sendall(self._head)
                for piece in self._body():
                    if self._closed.is_set():
                        return
                    if isinstance(piece, float):
                        time.sleep(piece)
                        continue
                    time.sleep(self._pause)
                    conn.sendall(piece)
            except OSError:
                return  # the client hung up: what a bounded client does
