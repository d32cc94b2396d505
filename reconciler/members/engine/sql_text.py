"""Text put into DuckDB's SQL: a file's path as a string literal."""

from __future__ import annotations

from pathlib import Path


def sql_string(text: str | Path) -> str:
    """`text` as an SQL string literal, its quotes doubled. Paths need it too: the
    temporary directory they are in is the user's own on Windows
    (C:\\Users\\O'Brien\\AppData\\Local\\Temp), and TMPDIR or RECONCILER_DUCKDB_TEMP_DIR can
    name any directory."""
    return "'" + str(text).replace("'", "''") + "'"
