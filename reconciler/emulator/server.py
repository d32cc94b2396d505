"""The emulator over real HTTP/1.1 on loopback, for integration tests and `emulator serve`.

Keep-alive matters: httpx pools connections, and a server that closed after every
response would hide bugs in how a client reuses them (and make a dropped response look
like every other close).
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from reconciler.emulator.emulator import Emulator
from reconciler.emulator.replies import EmulatorResponse, Pacing
from reconciler.render.masking import mask_emails

# Far above the 4 MB batch cap, so an oversized batch still reaches the emulator and gets
# Iterable's BatchTooLarge answer; beyond this the server refuses without reading.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_WRITE_CHUNK = 256 * 1024
# HTTP/1.1's chunk-size and Content-Length: digits alone. Python's int() also takes a sign,
# underscores and spaces, and a size of -5 made read() wait for the client to close.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_LENGTH = re.compile(r"[0-9]{1,19}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "IterableEmulator/1.0"
    sys_version = ""
    # An idle keep-alive connection is closed after this long, so a long-running `serve`
    # does not collect threads for clients that went away without closing.
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm on, the body
        # then waits for the client's delayed ACK (about 40 ms per response on Linux).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header by the emulator's Iterable clock (Faults.clock_offset_seconds).
        if timestamp is None:
            timestamp = self.server.emulator.wall_clock()
        return super().date_time_string(timestamp)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_GET
    do_DELETE = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        # Silent: tests read the emulator's request log instead of stderr.
        pass

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
        try:
            request = httpx.Request(
                self.command, f"http://emulator.invalid{self.path}", headers=headers, content=body
            )
        except (httpx.InvalidURL, ValueError):
            self._send_plain(400, b"Bad request target\n")
            return
        try:
            answer = self.server.emulator.handle(request)
        except Exception:
            # The emulator's log may be a CI log: emails in the error (a request's) masked.
            sys.stderr.write(mask_emails(traceback.format_exc()))
            payload = {"msg": "Emulator error", "code": "GenericError", "params": None}
            self._send_plain(500, json.dumps(payload).encode(), "application/json")
            return
        if answer.latency_seconds > 0:
            time.sleep(answer.latency_seconds)
        try:
            if answer.pacing is not None and not answer.drop:
                self._send_paced(answer, answer.pacing)
                return
            if answer.drop and not answer.body:
                # An empty body cannot be cut short: close before any byte of the response.
                self.close_connection = True
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if answer.drop:
                # The headers promise the whole body; half of it arrives, then the socket
                # closes, so the client cannot tell whether the request took effect.
                self._write(answer.body[: len(answer.body) // 2])
                self.close_connection = True
            else:
                self._write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout, usually); nothing left to tell it.
            self.close_connection = True

    def _send_paced(self, answer: EmulatorResponse, pacing: Pacing) -> None:
        """Send a line-per-member body in chunks as its lines fall due, perhaps cut short."""
        if pacing.first_byte_seconds > 0:
            time.sleep(pacing.first_byte_seconds)
        if pacing.cut_after_lines is not None and pacing.cut_after_lines < 0:
            # The connection died before the answer began.
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        started = time.monotonic()
        for due, piece in pacing.pieces(answer.body):
            delay = started + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._write_chunk(piece)
        if pacing.cut_after_lines is not None:
            # No terminating chunk: the client sees a body that never ended.
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        if not data:
            return
        self.wfile.write(b"%x\r\n" % len(data))
        self._write(data)
        self.wfile.write(b"\r\n")
        self.wfile.flush()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), _WRITE_CHUNK):
            self.wfile.write(view[start : start + _WRITE_CHUNK])
        self.wfile.flush()

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not _LENGTH.fullmatch(length_text.strip()):
            self._send_plain(400, b"Bad Content-Length\n")
            return None
        length = int(length_text)
        if length > MAX_REQUEST_BYTES:
            self._send_plain(413, b"Request body too large\n")
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            # The client closed before sending the whole body (it gave up, or was killed).
            # No HTTP server acts on such a request, and what did arrive may still parse
            # (JSON followed by padding), so it is dropped, unanswered.
            self.close_connection = True
            return None
        return body

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            written = line.split(b";", 1)[0].strip(b" \t\r\n")
            if not _CHUNK_SIZE.fullmatch(written):
                self._send_plain(400, b"Bad chunk size\n")
                return None
            size = int(written, 16)
            if size == 0:
                # Trailers, then the empty line that ends the message.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_REQUEST_BYTES:
                self._send_plain(413, b"Request body too large\n")
                return None
            # Cut short, the next chunk line is empty and refused: a body with no end.
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send_plain(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator):
        self.emulator = emulator
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="emulator-connection",
            daemon=True,
        )
        with self._open_lock:
            self._open[request] = thread
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (killed, or timed out) is not the server's
        # error; anything else still prints its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)

    def serve_until_woken(self) -> None:
        """Accept connections until wake() is called.

        socketserver's serve_forever only notices shutdown() at its poll interval; a
        wake-up socket makes stop() immediate, which keeps a test suite that starts a
        server per test fast.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = selector.select()
                if any(key.fileobj is self._wake_reader for key, _ in ready):
                    return
                try:
                    request, client_address = self.get_request()
                except OSError:
                    continue
                if self.verify_request(request, client_address):
                    self.process_request(request, client_address)
                else:
                    self.shutdown_request(request)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def close_connections(self, timeout: float) -> None:
        """End idle keep-alive connections so their threads exit now, not at the timeout."""
        with self._open_lock:
            open_now = list(self._open.items())
        for sock, _ in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in open_now:
            thread.join(max(0.0, deadline - time.monotonic()))


class EmulatorServer:
    """`with EmulatorServer(emulator) as server: httpx.get(server.base_url + ...)`."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0):
        self.emulator = emulator
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        if self._server is not None:
            raise RuntimeError("the emulator server is already running")
        server = _Server((self._host, self._port), self.emulator)
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_until_woken,
            name="emulator-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close open connections, wait for every thread to end, and save
        what the requests left unsaved (when the emulator has a state file)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.wake()
        thread.join(timeout)
        server.close_connections(timeout)
        server.server_close()
        self._server = None
        self._thread = None
        # A slow save defers the next ones (Emulator._persist_if_dirty): what the last
        # requests changed may be unsaved still, and a restart from the file would lose it.
        self.emulator.flush()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one once started with port 0)."""
        return self._port

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator server is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
