"""reconciler/utf16.py: telling UTF-16 text (Excel's "Unicode Text", PowerShell's `>`) from
the UTF-8 every file must be, with or without a byte-order mark."""

from __future__ import annotations

import pytest

from reconciler.utf16 import UTF16_SAMPLE_BYTES, looks_utf16

HEADER = "email,userId\na@example.com,u-1\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_is_told_with_or_without_its_byte_order_mark(encoding: str) -> None:
    assert looks_utf16(HEADER.encode(encoding)[:UTF16_SAMPLE_BYTES])


@pytest.mark.parametrize(
    "start",
    [
        HEADER.encode("utf-8"),
        HEADER.encode("utf-8-sig"),
        "émail,ñame\n".encode(),  # non-ASCII UTF-8 has no NUL bytes either
        b"a\0",  # too short to tell: not called UTF-16
        b"",
    ],
)
def test_utf8_and_too_short_starts_are_not_utf16(start: bytes) -> None:
    assert not looks_utf16(start)


def test_a_nul_byte_in_utf8_text_is_not_taken_for_utf16() -> None:
    # One stray NUL among ASCII letters: both halves hold text, so not UTF-16.
    assert not looks_utf16(b"email,\0userId\nabc,def\n")
