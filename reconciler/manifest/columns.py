"""The columns an audience's source offers, when they can be known cheaply at load time.

Trait mappings name source columns; a misspelt one is caught while loading (with the line
that names it) instead of at plan time. A CSV file's header and the keys of inline members
are read here; sources whose columns need a query (Parquet, SQL) are checked when they are
read. A file that cannot be read is left to the source reader, which reports it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from reconciler.manifest.manifests import Audience


def source_columns(audience: Audience) -> tuple[str, list[str]] | None:
    """(what the source is called in messages, its columns), or None when not known yet."""
    members = audience.spec.members
    if members.inline is not None:
        keys: dict[str, None] = {"email": None, "userId": None}
        for member in members.inline_members():
            keys.update(dict.fromkeys(member.traits))
        return "the keys of its inline members", list(keys)
    if members.csv is not None:
        path = Path(members.csv)
        if not path.is_absolute():
            path = audience.base_dir / path
        header = _csv_header(path)
        return (f"the header of {members.csv}", header) if header is not None else None
    return None


def _csv_header(path: Path) -> list[str] | None:
    try:
        # utf-8-sig and stripped names: as the CSV source reads the header.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if header is None:
        return None
    return [name.strip() for name in header]
