"""The loopback HTTP server: keep-alive, big bodies, chunked uploads, clean stops."""

from __future__ import annotations

import http.client
import socket
import struct
import threading

import httpx
import pytest

from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from tests.emulator.support import client_for


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("emulator-")]


def test_connections_are_kept_alive(emulator_server: EmulatorServer) -> None:
    connection = http.client.HTTPConnection(emulator_server.host, emulator_server.port)
    try:
        for _ in range(3):
            connection.request("GET", "/api/lists", headers={"Api-Key": "test-key"})
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            assert connection.sock is not None  # not closed by the server
        # Errors keep the connection too.
        connection.request("GET", "/api/nothing")
        response = connection.getresponse()
        response.read()
        assert response.status == 404 and connection.sock is not None
    finally:
        connection.close()


def test_a_hundred_thousand_members_stream(
    emulator_server: EmulatorServer, client: httpx.Client
) -> None:
    project = emulator_server.emulator.project("default")
    list_id = project.add_list("big")
    record = project.lists[list_id]
    for i in range(100_000):
        user = project.create_user(f"member{i}@example.com", None)
        record.members[user.key] = None
        user.list_ids.add(list_id)
    count = 0
    with client.stream("GET", "/api/lists/getUsers", params={"listId": list_id}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            count += 1
            assert line.endswith("@example.com")
    assert count == 100_000


def test_chunked_request_bodies_are_read(client: httpx.Client) -> None:
    def body() -> object:
        yield b'{"name": '
        yield b'"chunked"}'

    response = client.post("/api/lists", content=body())  # type: ignore[arg-type]
    assert response.status_code == 200
    assert "listId" in response.json()


def _raw_answer(server: EmulatorServer, request: bytes) -> bytes:
    """The answer to `request`, sent as it is, the connection left open for it (a client
    that waits for the answer, as one that sent a bad size would); the server closes it."""
    with socket.create_connection((server.host, server.port), timeout=60) as sock:
        sock.sendall(request)
        return sock.makefile("rb").read()


@pytest.mark.parametrize(
    ("header", "body"),
    [
        ("Transfer-Encoding: chunked", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked", b"0_5\r\nhello\r\n0\r\n\r\n"),
        ("Content-Length: -5", b"hello"),
        ("Content-Length: +5", b"hello"),
    ],
)
def test_a_negative_or_signed_body_size_is_refused_not_read_until_the_client_closes(
    emulator_server: EmulatorServer, header: str, body: bytes
) -> None:
    """A chunk size of -5 made the server read until the client closed the connection
    (read(-5) reads everything), so a client waiting for its answer waited for ever; a
    Content-Length of -5 was answered 413 'Request body too large'. Both are refused as
    bad sizes, as HTTP writes a size in digits alone."""
    request = (
        f"POST /api/lists HTTP/1.1\r\nHost: x\r\nApi-Key: test-key\r\n{header}\r\n\r\n"
    ).encode() + body
    answer = _raw_answer(emulator_server, request)
    what = b"Bad chunk size" if b"chunked" in request else b"Bad Content-Length"
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(what + b"\n"), answer


def test_stop_ends_every_thread_even_with_idle_connections() -> None:
    # Another test's server in this worker (an integration module's) keeps its own threads:
    # only those this server started count.
    before = set(emulator_threads())
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project("default", "hybrid", "k")
    server = EmulatorServer(emulator).start()
    idle = client_for(server, "k")
    assert idle.get("/api/lists").status_code == 200  # leaves a pooled keep-alive connection
    assert set(emulator_threads()) - before
    server.stop()
    assert set(emulator_threads()) - before == set()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        idle.get("/api/lists")
    idle.close()
    server.stop()  # stopping twice is harmless


def test_base_url_needs_a_running_server(emulator: Emulator) -> None:
    server = EmulatorServer(emulator)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.port != 0


def test_control_endpoints_over_http(emulator_server: EmulatorServer, client: httpx.Client) -> None:
    created = client.post(
        "/_emulator/projects", json={"name": "e", "projectType": "email", "apiKey": "e-key"}
    )
    assert created.json() == {"name": "e", "projectType": "email"}
    assert emulator_server.emulator.project("e").project_type == "email"
    assert client.post("/_emulator/projects", json={"name": "e"}).status_code == 400
    client.get("/api/lists")
    requests = client.get("/_emulator/requests").json()["requests"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [("GET", "/api/lists", 200)]
    client.delete("/_emulator/requests")
    assert emulator_server.emulator.request_log == []
    assert client.get("/_emulator/nothing").status_code == 404


def test_unknown_control_endpoints_and_lists_are_named_in_a_404(client: httpx.Client) -> None:
    nothing = client.get("/_emulator/nothing")
    assert (nothing.status_code, nothing.json()["msg"]) == (
        404,
        "No emulator control endpoint GET /_emulator/nothing",
    )
    # The method matters: GET of a POST-only route is no endpoint either.
    assert client.get("/_emulator/forget").json()["msg"] == (
        "No emulator control endpoint GET /_emulator/forget"
    )
    in_use = client.post("/_emulator/lists/999/in-use", json={"inUse": False})
    assert (in_use.status_code, in_use.json()["msg"]) == (404, "No list 999")


def test_request_log_records_queries_and_clears(
    emulator_server: EmulatorServer, client: httpx.Client
) -> None:
    client.get("/api/lists/getUsers", params={"listId": 5, "preferUserId": "true"})
    entry = emulator_server.emulator.request_log[-1]
    assert (entry.method, entry.path, entry.query) == (
        "GET",
        "/api/lists/getUsers",
        "listId=5&preferUserId=true",
    )
    assert (entry.status, entry.project, entry.body) == (400, "default", None)
    emulator_server.emulator.clear_log()
    assert emulator_server.emulator.request_log == []


def test_concurrent_writers_lose_nothing(emulator_server: EmulatorServer) -> None:
    project = emulator_server.emulator.project("default")
    list_id = project.add_list("busy")
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            with client_for(emulator_server) as client:
                for batch in range(5):
                    members = [{"email": f"w{worker}-b{batch}-{i}@example.com"} for i in range(20)]
                    response = client.post(
                        "/api/lists/subscribe", json={"listId": list_id, "subscribers": members}
                    )
                    assert response.json()["successCount"] == 20
        except BaseException as error:  # surfaced below: a thread's assert is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(project.members(list_id)) == 8 * 5 * 20
    assert len(emulator_server.emulator.request_log) == 8 * 5


def test_an_emulator_error_logs_its_traceback_with_emails_masked(
    emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    def broken(request: httpx.Request) -> None:
        # A bug handling a request, whose message quotes the request's member.
        raise ValueError(f"cannot handle {request.url.params['email']}")

    monkeypatch.setattr(emulator_server.emulator, "handle", broken)
    with httpx.Client(base_url=emulator_server.base_url) as http:
        answer = http.get("/api/users/getByEmail", params={"email": "jane.doe@example.com"})
    assert answer.status_code == 500
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: cannot handle j***@***" in err
    assert "jane.doe" not in err


def _create_list_request(name: str, padding: int = 0) -> bytes:
    """POST /api/lists creating `name`, its body followed by `padding` spaces."""
    body = b'{"name": "%s"}' % name.encode() + b" " * padding
    return (
        b"POST /api/lists HTTP/1.1\r\nHost: emulator\r\nApi-Key: test-key\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def _reset(sock: socket.socket) -> None:
    """Close with a reset (RST), as a killed client's socket may be."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_request_whose_client_closes_mid_body_is_not_handled(
    emulator_server: EmulatorServer, client: httpx.Client
) -> None:
    # The body parses without its last bytes (JSON, then padding): only a server that
    # counts them can tell the request was never finished.
    request = _create_list_request("cut short", padding=10)
    with socket.create_connection((emulator_server.host, emulator_server.port)) as sender:
        sender.settimeout(10)
        sender.sendall(request[:-10])
        sender.shutdown(socket.SHUT_WR)
        assert sender.recv(1024) == b""  # closed unanswered
    names = [entry["name"] for entry in client.get("/api/lists").json()["lists"]]
    assert "cut short" not in names


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
@pytest.mark.parametrize(
    "sent",
    ["nothing", "half the request line", "half the headers", "half the body", "all of it"],
)
def test_a_client_that_gives_up_mid_request_prints_nothing(
    emulator: Emulator, capfd: pytest.CaptureFixture[str], sent: str, reset: bool
) -> None:
    request = _create_list_request("given up on")
    cut = {
        "nothing": 0,
        "half the request line": 8,
        "half the headers": request.index(b"Api-Key"),
        "half the body": len(request) - 5,
        "all of it": len(request),
    }[sent]
    # A slow answer, so that when the whole request was sent the answer meets a closed socket.
    emulator.faults = Faults(latency_seconds=0.2)
    with EmulatorServer(emulator) as server:
        sender = socket.create_connection((server.host, server.port))
        sender.sendall(request[:cut])
        if reset:
            _reset(sender)
        else:
            sender.close()
        # Proof the server still answers; leaving `with` waits for the dropped connection.
        with client_for(server) as http:
            assert http.get("/api/lists").status_code == 200
    err = capfd.readouterr().err
    assert "Exception occurred" not in err and "Traceback" not in err
