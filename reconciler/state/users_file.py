"""The project's users as the export that read a plan's list members wrote them, kept for
the plan's later reads of the same profiles.

When one user export (or an export job, or the export in date windows) reads every
managed list's members, it reads every profile of the project. It also asks for the
fields the destination's trait mappings write (engine/prefetch.py), so the mapped fields'
current values (state/fields.py) and whether updateExistingUsersOnly members exist
(state/unsendable.py) are read from its file rather than asked of Iterable again: a second
export of the whole project (minutes to hours for a large one, from a budget of 4 a
minute) or one per-user read per member (1,000 members: 10 s at 100 a second).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import LiveStateError
from reconciler.iterable import CHANNELS_FIELD, ClientSettings

# Rows of the file parsed a second, taken low (a short JSON line parses in a few
# microseconds): a few per-user reads of a large project's members stay cheaper than
# reading its whole file.
ROWS_PER_SECOND = 100_000.0


@dataclass(frozen=True)
class UsersFile:
    """Every profile of the project, one JSON object a line, with these fields."""

    path: Path
    fields: frozenset[str]
    rows: int

    def serves(
        self, fields: Collection[str], users: int, settings: ClientSettings, chosen: str
    ) -> bool:
        """Whether reading `fields` of `users` members from this file costs less than
        asking Iterable by the read `chosen` (live.py choose_field_read): always when it
        holds the fields and an export would be read (the same rows, without the
        download); otherwise when parsing the file is quicker than one per-user read per
        member at Iterable's rate."""
        if not set(fields) <= self.fields:
            return False
        if chosen == "export":
            return True
        rate = settings.user_reads_per_second
        per_user = users / rate if rate else 0.0
        return self.rows / ROWS_PER_SECOND < per_user

    def read_rows(self) -> Iterator[dict[str, Any]]:
        """The file's users, one at a time."""
        return export_rows(self.path, None, "the user export holds")

    def download(
        self, _only: Sequence[str], path: Path, on_lines: Callable[[int], None] | None
    ) -> int:
        """As client.download_export writes a file, for readers that take a download
        callable (engine/field_tables.py read_field_export): this file at `path`."""
        link_or_copy(self.path, path)
        if on_lines is not None:
            on_lines(self.rows)
        return self.rows

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def link_or_copy(source: Path, target: Path) -> None:
    """`source`'s content at `target` as well: a hard link (no copy of what may be
    gigabytes), or a copy where the file system has none."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def export_rows(
    path: Path, channels: list[dict[str, Any]] | None, holder: str
) -> Iterator[dict[str, Any]]:
    """An export file's users (JSON lines), one at a time, those with channel unsubscribes
    also kept in `channels`; a line that is not a JSON object fails the read (`holder`:
    what the message says held it)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                row = None
            if not isinstance(row, dict):
                raise LiveStateError(f"{holder} a line that is not JSON")
            if channels is not None and row.get(CHANNELS_FIELD):
                channels.append({k: row.get(k) for k in ("email", "userId", CHANNELS_FIELD)})
            yield row
