"""Servers that answer slowly or without end, over real sockets on 127.0.0.1: httpx's
timeouts are per read, so an answer trickling a byte at a time, or a body that never ends,
met none of them (answer_bounds)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.errors import IterableError
from reconciler.iterable import ClientSettings, IterableClient, answer_bounds
from tests.slow_server import SlowServer

JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
TEXT_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
# The list index as Iterable answers it, after leading spaces sent one at a time: whole,
# it is a good answer, 300 spaces at 0.05 s each (15 s) after it was asked for.
TRICKLED_LISTS = [b" "] * 300 + [b'{"lists": []}']


def _settings(**changes: object) -> ClientSettings:
    base = {"max_retries": 0, "bulk_read_retries": 0, "backoff_base": 0.001, "timeout": 5.0}
    return ClientSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_a_list_index_trickling_a_byte_at_a_time_is_ended_naming_the_limit(workspace, cli):
    """plan against a server answering GET /api/lists one byte a second never ended: each
    byte came within RECONCILER_TIMEOUT, httpx's only bound, which is per read."""
    with SlowServer(JSON_HEAD, lambda: TRICKLED_LISTS, pause=0.05) as server:
        workspace.destination(baseUrl=server.url)
        workspace.audience("vip", {"inline": ["a@example.com"]})
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RECONCILER_REQUEST_TIME_LIMIT", "0.5")
            env.setenv("RECONCILER_TIMEOUT", "0.5")  # the limit goes no lower than it
            env.setenv("RECONCILER_MAX_RETRIES", "1")
            result = cli("plan", workspace.manifests)
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    slow = "timed out: the answer was still arriving after 0.5 s (RECONCILER_REQUEST_TIME_LIMIT)"
    assert f"GET /api/lists: {slow}; retry 1 of 1 in" in said, said
    assert f"gave up after 2 attempts; last failure: {slow}" in said
    assert server.paths == ["/api/lists", "/api/lists"]


def test_an_answer_within_the_timeout_a_user_raised_is_not_cut():
    """With RECONCILER_TIMEOUT raised above RECONCILER_REQUEST_TIME_LIMIT (600 s for a slow
    proxy), an answer Iterable sent after one wait between the two was cut once the limit
    passed, thrown away and the request sent again (a write too); the wait the user
    allowed is now the least the limit is. Past it, the message names RECONCILER_TIMEOUT."""
    answered_late: list[bytes | float] = [1.0, b'{"lists": []}']
    settings = _settings(request_time_limit=0.3, timeout=3.0)
    with (
        SlowServer(JSON_HEAD, lambda: answered_late) as server,
        IterableClient(server.url, "k-secret", settings=settings) as client,
    ):
        assert client.get_lists() == []
        assert server.paths == ["/api/lists"]
    trickled: list[bytes | float] = [b" "] * 40 + [b'{"lists": []}']
    with (
        SlowServer(JSON_HEAD, lambda: trickled, pause=0.1) as server,
        IterableClient(server.url, "k-secret", settings=settings) as client,
        pytest.raises(IterableError) as raised,
    ):
        client.get_lists()
    assert (
        "last failure: timed out: the answer was still arriving after 3 s "
        "(RECONCILER_TIMEOUT, above RECONCILER_REQUEST_TIME_LIMIT)" in str(raised.value)
    )


def _endless_lists() -> Iterator[bytes]:
    """A list index whose spaces go on past the bound (2 MB of them, at the test's bound
    of 1 MB), then end as a good answer would."""
    yield b'{"lists": ['
    yield from [b" " * 65536] * 32
    yield b"]}"


def test_an_answer_past_its_size_is_refused_before_it_fills_memory(monkeypatch):
    """An endless 200 to GET /api/lists was read into memory until the machine ran out
    (2 GB in 12 s, plan never ending)."""
    monkeypatch.setattr(answer_bounds, "ANSWER_MAX_BYTES", 1_000_000)
    with (
        SlowServer(JSON_HEAD, _endless_lists) as server,
        IterableClient(server.url, "k-secret", settings=_settings()) as client,
        pytest.raises(IterableError) as raised,
    ):
        client.get_lists()
    assert "last failure: an answer of more than 1,000,000 bytes" in str(raised.value)


def test_a_bulk_read_s_endless_refusal_is_refused_before_it_fills_memory(monkeypatch):
    """A getUsers answered 500 with a body without end was read whole as the error's text
    (bulk reads have no bound on their answers' time or size, which are large by design)."""
    monkeypatch.setattr(answer_bounds, "ANSWER_MAX_BYTES", 1_000_000)
    head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\n\r\n"
    with (
        SlowServer(head, _endless_lists) as server,
        IterableClient(server.url, "k-secret", settings=_settings()) as client,
        pytest.raises(IterableError) as raised,
    ):
        list(client.iter_list_members(7, prefer_user_id=False))
    assert "last failure: an answer of more than 1,000,000 bytes" in str(raised.value)


def test_bulk_and_streamed_reads_are_not_held_to_the_request_time_limit():
    """getUsers and the event export are large and slow by design: a read still streaming
    past RECONCILER_REQUEST_TIME_LIMIT is read to its end."""
    members = [b"a@example.com\n", b"b@example.com\n"] * 10
    settings = _settings(request_time_limit=0.2)
    with (
        SlowServer(TEXT_HEAD, lambda: members, pause=0.05) as server,
        IterableClient(server.url, "k-secret", settings=settings) as client,
    ):
        assert len(list(client.iter_list_members(7, prefer_user_id=False))) == 20
    events = [b'{"email": "a@example.com", "createdAt": "2026-01-01"}\n'] * 10
    with (
        SlowServer(JSON_HEAD, lambda: events, pause=0.05) as server,
        IterableClient(server.url, "k-secret", settings=settings) as client,
    ):
        assert len(list(client.export_events("emailUnSubscribe", ["email"]))) == 10


# A bulk read's floor at test scale: 1,000 bytes in each 0.5 s from the first byte on.
PACED = {"bulk_read_timeout": 0.5, "bulk_read_min_bytes": 1000}
SLOW = "fewer than RECONCILER_BULK_READ_MIN_BYTES (1,000) in RECONCILER_BULK_READ_TIMEOUT (0.5 s)"


def _trickled_members() -> list[bytes | float]:
    """A getUsers answer of one member, then the next one's letters a piece at a time:
    60 of them 0.05 s apart, each within the byte timeout, 3 s in all."""
    return [b"a@example.com\n", *[b"b"] * 60, b"@example.com\n"]


def test_a_bulk_read_trickling_below_its_floor_is_cut():
    """plan reading a list whose getUsers answer came a byte every few seconds never
    ended: each byte came within RECONCILER_BULK_READ_TIMEOUT, 30 minutes, and a bulk read
    has no bound on its whole time (a million members take 80+ minutes)."""
    with SlowServer(TEXT_HEAD, _trickled_members, pause=0.05) as server:
        settings = _settings(**PACED)
        with (
            IterableClient(server.url, "k-secret", settings=settings) as client,
            pytest.raises(IterableError) as raised,
        ):
            list(client.iter_list_members(7, prefer_user_id=False))
    said = str(raised.value)
    assert "GET /api/lists/getUsers: gave up after 1 attempt; last failure: too slow: " in said
    assert SLOW in said


def test_an_export_trickling_below_its_floor_is_cut(tmp_path: Path):
    """The event export the consent guard reads and an export job's files are held to the
    same floor: their answers trickled as getUsers's did."""
    line = b'{"email": "a@example.com", "createdAt": "2026-01-01"}\n'
    trickled: list[bytes | float] = [line, *[b" "] * 60, line]
    with (
        SlowServer(JSON_HEAD, lambda: trickled, pause=0.05) as server,
        IterableClient(server.url, "k-secret", settings=_settings(**PACED)) as client,
    ):
        with pytest.raises(IterableError) as raised:
            list(client.export_events("emailUnSubscribe", ["email"]))
        assert SLOW in str(raised.value)
        with pytest.raises(IterableError) as raised:
            client._fetch_file(3, "part-0", f"{server.url}/file", tmp_path / "f", None)
        assert "GET export job 3 file part-0: gave up after 1 attempt" in str(raised.value)
        assert SLOW in str(raised.value)


def test_a_bulk_read_slow_to_start_or_fast_is_read_whole():
    """The floor counts from the first byte (a getUsers may wait minutes for it), and a
    read that brings enough in each window is never cut, however long it runs."""
    # Its first byte 0.8 s after its headers, its last 0.5 s after that: 1.3 s in all,
    # past a window of 1 s counted from the headers, within one counted from that byte.
    late: list[bytes | float] = [0.8, b"a@example.com\n", 0.25, b"b@exa", 0.25, b"mple.com\n"]
    steady: list[bytes | float] = [b"x" * 600 + b"\n"] * 12  # 3,000 bytes each 0.5 s
    starting = _settings(bulk_read_timeout=1.0, bulk_read_min_bytes=1000)
    with (
        SlowServer(TEXT_HEAD, lambda: late) as slow_start,
        SlowServer(TEXT_HEAD, lambda: steady, pause=0.1) as fast,
        IterableClient(slow_start.url, "k", settings=starting) as a,
        IterableClient(fast.url, "k", settings=_settings(**PACED)) as b,
    ):
        assert list(a.iter_list_members(7, prefer_user_id=False)) == [
            "a@example.com",
            "b@example.com",
        ]
        assert len(list(b.iter_list_members(7, prefer_user_id=False))) == 12


def _gzip_head(codings: str, kind: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + kind
        + b"\r\nContent-Encoding: "
        + codings.encode()
        + b"\r\nConnection: close\r\n\r\n"
    )


def test_a_gzip_answer_past_its_size_once_decompressed_is_refused(monkeypatch):
    """The bound on an answer read whole counted its bytes as sent: a list index gzipped
    (Content-Encoding, which httpx decodes whether asked for or not) from 2 MB to 2 KB
    was read whole into memory, as one of 20 GB sent as 20 MB would have been."""
    monkeypatch.setattr(answer_bounds, "ANSWER_MAX_BYTES", 1_000_000)
    body = gzip.compress(b"".join(_endless_lists()))
    assert len(body) < 10_000
    with (
        SlowServer(_gzip_head("gzip"), lambda: [body]) as server,
        IterableClient(server.url, "k-secret", settings=_settings()) as client,
        pytest.raises(IterableError) as raised,
    ):
        client.get_lists()
    said = str(raised.value)
    assert "last failure: an answer of more than 1,000,000 bytes once decompressed" in said


def test_compressed_answers_are_read_as_before(tmp_path: Path):
    """Answers decoded here, one coding at a time, read as httpx read them: gzip, deflate,
    a coding over another, and one httpx cannot decode (passed on as sent, as it was)."""
    lists = b'{"lists": [{"id": 7, "name": "vip", "listType": "Standard"}]}'
    members = b"".join(f"m{n}@example.com\n".encode() for n in range(50_000))
    cases = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "gzip, gzip": lambda data: gzip.compress(gzip.compress(data)),
        "identity, gzip": gzip.compress,
    }
    for codings, encode in cases.items():
        with (
            SlowServer(_gzip_head(codings), lambda x=encode(lists): [x]) as a,
            SlowServer(_gzip_head(codings, b"text/plain"), lambda x=encode(members): [x]) as b,
            IterableClient(a.url, "k", settings=_settings()) as for_lists,
            IterableClient(b.url, "k", settings=_settings()) as for_members,
        ):
            assert [x.name for x in for_lists.get_lists()] == ["vip"], codings
            read = list(for_members.iter_list_members(7, prefer_user_id=False))
            assert read == members.decode().split(), codings
            saved = tmp_path / "f"
            assert for_members._fetch_file(3, "part-0", f"{b.url}/f", saved, None) == 50_000
            assert saved.read_bytes() == members, codings
    head = _gzip_head("x-unknown")
    with (
        SlowServer(head, lambda: [lists]) as server,
        IterableClient(server.url, "k", settings=_settings()) as client,
    ):
        assert [x.name for x in client.get_lists()] == ["vip"]


def test_no_piece_of_an_answer_decodes_past_what_a_small_piece_can_make():
    """httpx decoded each piece as it arrived whole: a 64 KB piece of gzip over gzip made
    up to 64 GB at once, before any bound could count it. Each coding is now decoded from
    pieces of DECODE_PIECE bytes, so no piece passed on is larger than deflate's most
    (1,032 to 1) of one."""
    bomb = gzip.compress(gzip.compress(bytes(50_000_000)))
    response = httpx.Response(
        200, headers={"content-encoding": "gzip, gzip"}, stream=httpx.ByteStream(bomb)
    )
    stream = answer_bounds.decode(response, httpx.ByteStream(bomb))
    assert "content-encoding" not in response.headers  # httpx does not decode it again
    most, total = 0, 0
    for piece in stream:
        most, total = max(most, len(piece)), total + len(piece)
    assert total == 50_000_000
    assert most <= answer_bounds.DECODE_PIECE * 1032


def test_an_export_file_whose_gzip_is_damaged_is_retried_and_named(tmp_path: Path):
    """An export job's file sent as gzip it is not (cut short, or damaged by a proxy) ended
    plan with httpx's DecodingError (zlib's "incorrect header check") where every other
    read retries it and says so."""
    head = _gzip_head("gzip", b"text/plain")
    with (
        SlowServer(head, lambda: [b"not gzip at all\n" * 100]) as server,
        IterableClient(server.url, "k", settings=_settings(bulk_read_retries=1)) as client,
        pytest.raises(IterableError) as raised,
    ):
        client._fetch_file(3, "part-0", f"{server.url}/file", tmp_path / "f", None)
    said = str(raised.value)
    assert "GET export job 3 file part-0: gave up after 2 attempts" in said
    assert "last failure: DecodingError" in said
    assert server.paths == ["/file", "/file"]
