"""Telling a UTF-16 file from the UTF-8 every file reconciler reads must be.

Windows saves UTF-16 where a user asked for "text": Excel's "Unicode Text", Notepad's
"Unicode", and Windows PowerShell's `>`. Read as UTF-8 such a file is "byte 0xff" (its
byte-order mark) or text spelt with a NUL byte between letters, neither saying what the
file is; both the CSV source and the manifest reader name it instead.
"""

from __future__ import annotations

import codecs

# The bytes looked at to tell a UTF-16 file.
UTF16_SAMPLE_BYTES = 64


def looks_utf16(start: bytes) -> bool:
    """Whether a file's first bytes are UTF-16 text: its byte-order mark, or (without one)
    a NUL byte beside each ASCII one. Read as UTF-8, the first is "byte 0xff" and the
    second a header of NUL-spelt names (and a hint to name `e\\0m\\0...`)."""
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    start = start[:UTF16_SAMPLE_BYTES]
    start = start[: len(start) // 2 * 2]
    if len(start) < 4:
        return False
    low, high = start[0::2], start[1::2]
    return (not high.strip(b"\0") and b"\0" not in low) or (
        not low.strip(b"\0") and b"\0" not in high
    )
