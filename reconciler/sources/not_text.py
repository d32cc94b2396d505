"""Telling a file that is no text at all (compressed, a workbook) from a CSV source.

A CSV source named for what it was meant to be is often something else: an export kept
compressed (`bq extract --compression GZIP`, Snowflake's `COPY INTO` default, a `.csv.gz`
named in the manifest), or a workbook saved under a `.csv` name. Read as CSV, the first
is "not UTF-8 text (byte 0x8b)" at line 1, column 2, and a workbook a header of binary
noise with the question whether the file lacks a header row; neither says what the file
is. They are told by their first bytes, which no UTF-8 text starts with.
"""

from __future__ import annotations

_SAVE_AS_CSV = 'open it in the spreadsheet and save it as "CSV UTF-8 (Comma delimited)"'
_DECOMPRESS = "decompress it (`{tool}`) and commit the CSV itself: a CSV source is read as text"

# (first bytes, what the file is and what to do), for the formats an export or a
# spreadsheet writes.
_KINDS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed, not CSV text: " + _DECOMPRESS.format(tool="gzip -d")),
    (b"BZh", "bzip2-compressed, not CSV text: " + _DECOMPRESS.format(tool="bzip2 -d")),
    (b"\xfd7zXZ\x00", "xz-compressed, not CSV text: " + _DECOMPRESS.format(tool="xz -d")),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed, not CSV text: " + _DECOMPRESS.format(tool="zstd -d")),
    (
        b"PK\x03\x04",
        "a ZIP file (an Excel .xlsx, Numbers or OpenDocument workbook, or a .zip archive), "
        f"not CSV text: {_SAVE_AS_CSV}, or unzip it",
    ),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        f"an Excel 97-2003 workbook (.xls), not CSV text: {_SAVE_AS_CSV}",
    ),
    (b"PAR1", "a Parquet file, not CSV text: name it with `parquet:` in place of `csv:`"),
)

# The bytes looked at. Two signatures are text (`BZh`, `PAR1`, which a header could
# start with): they count only beside a control character no CSV holds so early.
NOT_TEXT_SAMPLE_BYTES = 16
_CONTROL = frozenset(range(0x09)) | frozenset(range(0x0E, 0x20))


def not_text(start: bytes) -> str | None:
    """What a file starting with `start` is, and what to do, when it is a compressed file,
    a workbook or a Parquet file rather than text; None for anything else."""
    start = start[:NOT_TEXT_SAMPLE_BYTES]
    if not _CONTROL.intersection(start):
        return None
    return next((words for magic, words in _KINDS if start.startswith(magic)), None)
