"""The project's users as the export that read a plan's list members wrote them, kept for
the plan's later reads of the same profiles.

When one user export (or an export job, or the export in date windows) reads every
managed list's members, it reads every profile of the project. It also asks for the
fields the destination's trait mappings write (engine/prefetch.py), so the mapped fields'
current values (state/fields.py) and whether updateExistingUsersOnly members exist
(state/unsendable.py) are read from its file rather than asked of Iterable again: a second
export of the whole project (minutes to hours for a large one, from a budget of 4 a
minute) or one per-user read per member (1,000 members: 10 s at 100 a second).

Where destinations naming one project read their lists by getUsers, the first of them
whose plan reads profiles by a user export (mapped fields' values, the consent guard's
channel unsubscribes, hybrid userIds' emails, users' existence) makes one for them all,
with every field any of them may ask (SharedUsers), and each reads it as this file.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import IterableError, LiveStateError
from reconciler.iterable.names import CHANNELS_FIELD
from reconciler.iterable.settings import ClientSettings
from reconciler.leftovers import private_directory
from reconciler.members.identity import ProjectType
from reconciler.plan.model import FieldRead, windows_reason
from reconciler.state.windows import cut_off_whole, read_export_windows

if TYPE_CHECKING:
    from reconciler.iterable.client import IterableClient

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
    # When (uptime.uptime()) the export was started: how old its profiles may be, for
    # an apply run right after the plan (apply/channel_profiles.py). None: not known.
    started: float | None = None

    def field_read(self, users: int, fields: Sequence[str]) -> FieldRead:
        """What the plan says of a read of `fields` of `users` members from the file: no
        request of its own, the export that read the members made it."""
        return FieldRead("export", users, 0, tuple(fields))

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

    def read_rows(self, _what: str = "", marked: bytes = b"") -> Iterator[dict[str, Any]]:
        """The file's users, one at a time (`_what`, `marked`: as UsersShare.read_rows
        takes them)."""
        return export_rows(self.path, None, "the user export holds", marked)

    def download(
        self,
        _only: Sequence[str],
        path: Path,
        on_lines: Callable[[int], None] | None,
        _what: str = "",
    ) -> int:
        """As client.download_export writes a file, for readers that take a download
        callable (engine/field_tables.py read_field_export): this file at `path` (`_what`:
        as UsersShare.download takes it)."""
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
    path: Path, channels: list[dict[str, Any]] | None, holder: str, marked: bytes = b""
) -> Iterator[dict[str, Any]]:
    """An export file's users (JSON lines), one at a time, those with channel unsubscribes
    also kept in `channels`; a line that is not a JSON object fails the read (`holder`:
    what the message says held it). `marked`: only lines holding this text, or a
    backslash (an escape could spell it), are parsed and given."""
    needles = (marked.decode(), "\\") if marked else ()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            if needles and not any(needle in line for needle in needles):
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


@dataclass(frozen=True)
class SharedRead:
    """A project's user export kept in SharedUsers: the file; the date-window requests its
    read made (0: one export); whether one whole export was asked (cut off where windows
    followed; not where the project's had been cut off earlier in the run, and the windows
    came at once); the destination that read it; and whether that was its member read
    (UsersShare.offer), whose requests its member read counts."""

    file: UsersFile
    windows: int
    whole: bool
    reader: str
    members: bool = False

    @property
    def requests(self) -> int:
        return int(self.whole) + self.windows


@dataclass
class SharedUsers:
    """One plan's user exports of projects several destinations name, by project (its
    client's project_id and project type), each a SharedRead. A destination whose mapped fields'
    values, consent guard's channel unsubscribes or hybrid userIds' emails are read by an
    export takes the project's, made once for them all, rather than one each from
    Iterable's 4 a minute. The files go under `temp_dir` (RECONCILER_DUCKDB_TEMP_DIR, as
    the workspace's: a large project's export is gigabytes)."""

    temp_dir: Path | None = None
    reads: dict[str, SharedRead] = field(default_factory=dict)
    directory: Path | None = None
    unusable: bool = False  # no directory could be made: each destination reads alone
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Numbers the files: a count of `reads` would give a name twice once a destination
    # alone in its project has removed its entry (UsersShare.remove).
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def usable(self) -> bool:
        """Whether the files have a directory (made now if not yet)."""
        if self.directory is None and not self.unusable:
            try:
                self.directory = private_directory("shared", self.temp_dir)
            except OSError:
                # The reads are made as without sharing, which need no directory here.
                self.unusable = True
        return self.directory is not None

    def close(self) -> None:
        """Removes the files, once the plan has read them."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        self.reads.clear()


@dataclass
class UsersShare:
    """How a destination takes part in SharedUsers: its client, project (key) and name,
    and every field the project's destinations in the plan may ask of the export (the
    first to need it asks for them all). Read as a UsersFile is, where an export would
    be made (`serves`); `taken` names the reads that took another destination's file,
    `own` those that took the file this destination's reads made. A destination naming its
    project alone has a group of its own: its reads share one export all the same."""

    shared: SharedUsers
    client: IterableClient
    project: str
    project_type: ProjectType
    destination: str
    fields: frozenset[str]
    taken: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)
    # No other destination of the plan names the project: its file goes once this
    # destination is planned (a large project's export is gigabytes), not with the plan.
    alone: bool = False

    def field_read(self, users: int, fields: Sequence[str]) -> FieldRead:
        """What the plan says of a read of `fields` of `users` members from the file, and
        counts: the requests its export made where this destination's reads made it;
        none where another destination's did (its plan counts them: once in all, as
        Iterable was asked once), the line naming that destination and what it cost.
        Asked once the file is read (it would be read now otherwise)."""
        read = self._read()
        taken = read.reader != self.destination
        return FieldRead(
            "export",
            users,
            0 if taken or read.members else read.requests,
            tuple(fields),
            read.windows,
            read.whole,
            read.reader if taken else "",
            read.members,
        )

    def taken_text(self) -> str:
        """Where the file is another read's (another destination's export: whose, and what
        it cost there; or the export that read this destination's members), that read as a
        FieldRead says it; "" where this destination's reads made it for themselves."""
        read = self._read()
        if read.reader == self.destination and not read.members:
            return ""
        return self.field_read(0, ()).describe(users=False)

    def export_text(self) -> str:
        """How this destination's reads made the file for themselves (taken_text says the
        others), as the consent guard's line says
        its profiles' read: " in 20 date windows, one whole export being cut off", or ""
        (one export)."""
        read = self._read()
        return (
            f" in {read.windows:,} date windows, {windows_reason(read.whole)}"
            if read.windows
            else ""
        )

    def serves(
        self, fields: Collection[str], _users: int, _settings: ClientSettings, chosen: str
    ) -> bool:
        """Only where an export would be read: per-user reads chosen stay per-user reads,
        as alone."""
        return chosen == "export" and set(fields) <= self.fields and self.shared.usable()

    def read_rows(self, what: str = "", marked: bytes = b"") -> Iterator[dict[str, Any]]:
        """The project's users, from the export made for the plan's destinations of the
        project (made now when none is); `what`: the read taking them, named in the plan
        when another destination made it; `marked`: only lines holding this text (or an
        escape, which could spell it) are parsed, as client.export_users takes it."""
        read = self._read()
        self._took(what, read.reader)
        return read.file.read_rows(marked=marked)

    def download(
        self,
        only: Sequence[str],
        path: Path,
        on_lines: Callable[[int], None] | None,
        what: str = "mapped fields' values",
    ) -> int:
        """As UsersFile.download, of the project's export (`what`: the read taking it)."""
        read = self._read()
        self._took(what, read.reader)
        return read.file.download(only, path, on_lines)

    def _took(self, what: str, reader: str) -> None:
        """Notes that the read `what` took the export `reader` made."""
        taking = self.taken if reader != self.destination else self.own
        if what and what not in taking:
            taking.append(what)

    def note(self) -> str | None:
        """What the plan says of the reads taken from another destination's export, or
        of this destination's reads that took one export of its own between them (each
        read's line says that export and its cost: it is one, not one each)."""
        if self.taken:
            reader = self.shared.reads[self.project].reader
            return (
                f"{_and(self.taken)} taken from the user export of destination "
                f"{reader!r}, which names the same Iterable project"
            )
        if len(self.own) < 2:
            return None
        read = self.shared.reads.get(self.project)
        windows = read.windows if read is not None else 0
        how = f" (in {windows:,} date window{'s' if windows != 1 else ''})" if windows else ""
        return f"{_and(self.own)} read from one user export of the project{how}, not one each"

    def offer(self, users: UsersFile, windows: int) -> None:
        """The file this destination's member read made of every profile, with every field
        the group asks (the members' date windows, `windows` requests), for the other
        destinations of the project, where none has read it yet: a second name for it, kept
        with the plan's files (the destination removes its own once planned)."""
        if self.alone or not set(self.fields) <= users.fields:
            return
        with self.shared.lock:
            if self.project in self.shared.reads or self.shared.directory is None:
                return
            path = self.shared.directory / f"users-{next(self.shared.numbers)}-{users.path.name}"
            try:
                os.link(users.path, path)
            except OSError:
                return  # no hard links: a copy could be gigabytes; each reads as before
            self.shared.reads[self.project] = SharedRead(
                UsersFile(path, users.fields, users.rows),
                windows,
                not windows,  # the members' one export, or their windows chosen for the size
                self.destination,
                members=True,
            )

    def remove(self) -> None:
        """The plan removes the files (SharedUsers.close), once every destination is read;
        a destination alone in its project removes its own once it is planned."""
        if not self.alone:
            return
        with self.shared.lock:
            read = self.shared.reads.pop(self.project, None)
        if read is not None:
            read.file.remove()

    def _read(self) -> SharedRead:
        with self.shared.lock:
            read = self.shared.reads.get(self.project)
            if read is None:
                read = self._export()
                self.shared.reads[self.project] = read
            return read

    def _export(self) -> SharedRead:
        """The project's user export of every field the group asks, to a file: one
        export, or where Iterable cuts that off every time, the export in date windows
        (as export_users_whole reads it). A failed read is not kept: the next
        destination to need it tries again, as alone."""
        assert self.shared.directory is not None  # serves() made it
        path = self.shared.directory / f"users-{next(self.shared.numbers)}.jsonl"
        names = ["email", "userId", *sorted(self.fields - {"email", "userId"})]
        windows = 0
        rows: int | None = None
        whole = not self.client.whole_export_cut_off
        try:
            if whole:
                try:
                    rows = self.client.download_export(names, path)
                except IterableError as exc:
                    if not cut_off_whole(self.client, exc):
                        raise
                    path.unlink(missing_ok=True)
            if rows is None:
                windowed = read_export_windows(self.client, names, path, self.project_type, 0)
                rows, windows = windowed.rows, windowed.requests
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return SharedRead(UsersFile(path, frozenset(names), rows), windows, whole, self.destination)


def _and(names: Sequence[str]) -> str:
    *rest, last = names
    return f"{', '.join(rest)} and {last}" if rest else last


# What the plan's later reads of a project's profiles take, where an export would be made.
ProfilesFile = UsersFile | UsersShare
