"""reconciler/sources/not_text.py: telling a compressed file, a workbook or a Parquet file
from CSV text by its first bytes."""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest

from reconciler.sources.not_text import NOT_TEXT_SAMPLE_BYTES, not_text

ROWS = b"email,userId\na@x.com,u1\n"


@pytest.mark.parametrize(
    ("start", "called"),
    [
        (gzip.compress(ROWS, mtime=0), "gzip-compressed"),
        (bz2.compress(ROWS), "bzip2-compressed"),
        (lzma.compress(ROWS), "xz-compressed"),
        (b"\x28\xb5\x2f\xfd\x04\x00", "zstd-compressed"),
        (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP file (an Excel .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "an Excel 97-2003 workbook (.xls)"),
        (b"PAR1\x15\x04\x15\x10", "a Parquet file"),
    ],
    ids=["gzip", "bzip2", "xz", "zstd", "zip", "xls", "parquet"],
)
def test_a_file_that_is_no_text_is_named_for_what_it_is(start: bytes, called: str) -> None:
    words = not_text(start[:NOT_TEXT_SAMPLE_BYTES])
    assert words is not None and words.startswith(called)


@pytest.mark.parametrize(
    "start",
    [ROWS, b"PAR1,email\nx,a@x.com\n", b"BZh,email\n", b"PK,email\n", b"", "\ufeffemail".encode()],
    ids=["csv", "par1-header", "bzh-header", "pk-header", "empty", "bom"],
)
def test_csv_text_is_not_taken_for_another_format(start: bytes) -> None:
    # `BZh` and `PAR1` are text a header may start with: only beside a control character,
    # which no CSV holds so early, are they taken for their formats.
    assert not_text(start) is None
