"""The client's parse of a user export for the consent guard: every line parsed
(`_parse_json_lines`) against only the lines holding `unsubscribedChannelIds`
(`_parse_marked_lines`), on the same body of N profiles (1 in 1,000 channel-unsubscribed).

    python bench/consent_parse.py [N]     (default 10,000,000)

The body is made once in memory and handed to each parser in 64 KiB chunks, as httpx
hands a streamed answer; no network. Not a test: nothing is asserted about time; exits 1
when the two parsers keep different rows.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import httpx

from reconciler.iterable.client import _parse_json_lines, _parse_marked_lines

FIELD = "unsubscribedChannelIds"
CHUNK = 65536


def body(n: int) -> bytes:
    lines = []
    for i in range(n):
        if i % 1000 == 7:
            lines.append(f'{{"email":"user{i}@example.com","{FIELD}":[1,2]}}\n')
        else:
            lines.append(f'{{"email":"user{i}@example.com"}}\n')
    return "".join(lines).encode("utf-8")


def response(data: bytes) -> httpx.Response:
    def chunks() -> Iterator[bytes]:
        for at in range(0, len(data), CHUNK):
            yield data[at : at + CHUNK]

    return httpx.Response(
        200, headers={"Content-Type": "application/x-json-stream"}, content=chunks()
    )


def keep(row: dict) -> bool:
    return bool(row.get(FIELD))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    data = body(n)
    print(f"{n:,} lines, {len(data) / 1e6:,.0f} MB")
    started = time.perf_counter()
    marked = _parse_marked_lines(response(data), keep, (FIELD.encode(),))
    marked_s = time.perf_counter() - started
    print(f"marked lines only   {marked_s:7.2f} s  {len(marked):,} rows kept")
    started = time.perf_counter()
    every = _parse_json_lines(response(data), keep)
    every_s = time.perf_counter() - started
    print(f"every line parsed   {every_s:7.2f} s  {len(every):,} rows kept")
    print(f"{every_s / marked_s:.0f}x faster")
    if marked != every:
        print("the two parsers disagree")
        sys.exit(1)


if __name__ == "__main__":
    main()
