"""What the answer bounds (reconciler/iterable/answer_bounds.py) cost on large bulk reads.

    python bench/answer_bounds.py [--members 1000000] [--repeats 3]

Seeds one list of `--members` users into an in-process emulator (no limits, no faults;
straight through its Python API), then reads it over real HTTP on 127.0.0.1 with the
client, each read `--repeats` times with the bounds as they are and with bound_answer
made a no-op, turn about (so drift on a shared machine falls on both alike):

- getUsers parsed in memory (iter_list_members: the Python engine's read),
- getUsers streamed to a file (download_list_members: DuckDB's),
- the user export streamed to a file (download_export).

Then the bounds alone, in memory (no HTTP): 1 GB in httpcore's 64 KB pieces through
PacedStream and through BoundedStream, against the pieces iterated bare. Then the decoding
of a gzip answer, in memory: the getUsers body gzipped, read by
httpx's own decoding (iter_bytes, as before) and by answer_bounds.decode (16 KB pieces, one
coding at a time). Prints the fastest and the median of each, and the bounds' overhead.
Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import plan_apply

import reconciler.iterable.client as client_module
from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.iterable import ClientSettings, IterableClient, answer_bounds


def timed(read: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    got = read()
    return time.perf_counter() - started, got


def compare(name: str, read: Callable[[], int], repeats: int) -> None:
    """`read` with the bounds and without, turn about; the figures."""
    bounded, unbounded = [], []
    real = client_module.bound_answer
    for _ in range(repeats):
        seconds, got = timed(read)
        bounded.append(seconds)
        client_module.bound_answer = lambda *args, **kwargs: None  # type: ignore[assignment]
        try:
            seconds, got_without = timed(read)
        finally:
            client_module.bound_answer = real
        unbounded.append(seconds)
        if got != got_without:
            raise SystemExit(f"{name}: {got:,} with the bounds, {got_without:,} without")
    say(name, got, bounded, unbounded, "with the bounds", "without")


def say(name: str, got: int, new: list[float], old: list[float], new_as: str, old_as: str):
    fast_new, fast_old = min(new), min(old)
    mid_new, mid_old = statistics.median(new), statistics.median(old)
    print(
        f"{name} ({got:,}): {new_as} {fast_new:.2f} s (median {mid_new:.2f}), "
        f"{old_as} {fast_old:.2f} s (median {mid_old:.2f}); overhead "
        f"{100 * (fast_new / fast_old - 1):+.1f}% of the fastest, "
        f"{100 * (mid_new / mid_old - 1):+.1f}% of the medians"
    )


def streams(repeats: int) -> None:
    """1 GB of 64 KB pieces through each bound, against the pieces iterated bare."""
    pieces = [bytes(65_536)] * 16_384

    def bare() -> int:
        return sum(len(piece) for piece in _Pieces(pieces))

    def through(bound: Callable[[httpx.SyncByteStream], httpx.SyncByteStream]) -> int:
        return sum(len(piece) for piece in bound(_Pieces(pieces)))

    paced = lambda inner: answer_bounds.PacedStream(  # noqa: E731
        inner, clock=time.monotonic, window=1800.0, least=1_000_000
    )
    bounded = lambda inner: answer_bounds.BoundedStream(  # noqa: E731
        inner, clock=time.monotonic, deadline=time.monotonic() + 3600, limit=3600, most=2**40
    )
    for name, bound in (("PacedStream", paced), ("BoundedStream", bounded)):
        new, old = [], []
        for _ in range(repeats):
            seconds, got = timed(lambda: through(bound))  # noqa: B023
            new.append(seconds)
            seconds, _ = timed(bare)
            old.append(seconds)
        extra = statistics.median(new) - statistics.median(old)
        print(
            f"{name}, {got:,} bytes in 64 KB pieces: {1000 * extra:.1f} ms more than bare "
            f"(medians {statistics.median(new):.3f} s and {statistics.median(old):.3f} s: "
            f"{1e6 * extra / len(pieces):.2f} µs a piece)"
        )


class _Pieces(httpx.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces


def decoding(body: bytes, repeats: int) -> None:
    """A gzip answer decoded by httpx alone and by answer_bounds.decode, in memory."""
    sent = gzip.compress(body, 6)

    def by_httpx() -> int:
        response = httpx.Response(
            200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(sent)
        )
        return sum(len(piece) for piece in response.iter_bytes())

    def by_bounds() -> int:
        response = httpx.Response(
            200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(sent)
        )
        response.stream = answer_bounds.decode(response, httpx.ByteStream(sent))
        return sum(len(piece) for piece in response.iter_bytes())

    new, old = [], []
    for _ in range(repeats):
        seconds, got = timed(by_bounds)
        new.append(seconds)
        seconds, got_before = timed(by_httpx)
        old.append(seconds)
        if got != got_before or got != len(body):
            raise SystemExit(f"decoding: {got:,} bytes, httpx {got_before:,}, sent {len(body):,}")
    name = f"gzip decoding of {len(sent):,} bytes into {len(body):,}"
    say(name, len(body), new, old, "answer_bounds.decode", "httpx alone")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    project = emulator.project(plan_apply.PROJECT)
    list_id = project.add_list("big")
    gc.disable()  # a million profiles are millions of containers
    try:
        for member in range(args.members):
            project.subscribe_direct(list_id, email=f"m{member}@example.com")
    finally:
        gc.enable()
    gc.freeze()
    root = Path(tempfile.mkdtemp(prefix="reconciler-answer-bounds-"))
    # Unpaced: the emulator has no limits, and the client's own pacing (5 getUsers a minute)
    # would be most of the time measured.
    settings = ClientSettings(
        max_retries=0, bulk_read_retries=0, list_reads_per_minute=0, exports_per_minute=0
    )
    with (
        EmulatorServer(emulator) as server,
        IterableClient(server.base_url, plan_apply.API_KEY, settings=settings) as client,
    ):
        print(f"{args.members:,} members, {args.repeats} reads each, over HTTP on 127.0.0.1")
        compare(
            "getUsers in memory",
            lambda: sum(1 for _ in client.iter_list_members(list_id, prefer_user_id=False)),
            args.repeats,
        )
        saved = root / "members.txt"
        compare(
            "getUsers to a file",
            lambda: client.download_list_members(list_id, False, saved),
            args.repeats,
        )
        body = saved.read_bytes()
        compare(
            "user export to a file",
            lambda: client.download_export(["email"], root / "export.json"),
            args.repeats,
        )
    streams(args.repeats)
    decoding(body, args.repeats)
    for path in root.iterdir():
        path.unlink()
    root.rmdir()


if __name__ == "__main__":
    main()
