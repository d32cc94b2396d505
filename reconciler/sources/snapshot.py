"""A file-backed source is read once, into a private copy, and refused if it changed meanwhile.

A CSV rewritten in place while it was read gave a reader half of the old file and none of
the new: the plan then unsubscribed everyone in the missing half, and the apply exited 0.
So a source file is copied once into a private directory (mode 0700: it holds members);
its size, modification and change times and identity are recorded
before and after, and a file changed just before the read began (whose times cannot tell
a second change in the same clock tick) is hashed again after. Any difference refuses the run
(SourceChangedError, exit 3) before anything is planned or written. Everything after that
(the header, the row count, the rows, the digest a saved plan records) reads the copy, so
one run plans from one version of the file.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from reconciler.errors import ConfigError, SourceChangedError, SourceError
from reconciler.leftovers import TEMP_DIR_VARIABLE, private_directory, shown_temp
from reconciler.manifest.stand_in import stand_in

CHUNK_BYTES = 8 << 20
# Where the copies go (TEMP_DIR_VARIABLE): beside the DuckDB workspace.


def temp_dir_setting(environ: Mapping[str, str] | None = None) -> str | None:
    """RECONCILER_DUCKDB_TEMP_DIR, or None (the system's temporary directory) when unset
    or empty. Blank is refused: " " made a directory named " " in the working directory,
    the repository, where the copies of member files went and the directory stayed."""
    raw = (os.environ if environ is None else environ).get(TEMP_DIR_VARIABLE) or None
    if raw is not None and not raw.strip():
        raise ConfigError(
            f"{TEMP_DIR_VARIABLE} is blank ({raw!r}); name a directory, or unset it for "
            "the system's temporary directory"
        )
    return raw


# A file changed less than this before its read began is hashed again after it: its times
# alone cannot prove it unchanged (clock ticks, a little skew on a network file system).
RACY_NS = 5 * 10**9

# Every snapshot directory this process made and has not removed yet, for
# `remove_snapshots` (os._exit skips finalizers).
_OPEN: set[Path] = set()


def _after_chunk(path: Path) -> None:
    """Called after each chunk read from a source file (tests rewrite the file here, to
    change it while it is read)."""


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A source file as this run read it: `copy` is what the run plans from."""

    path: Path  # the source file, as messages show it
    copy: Path
    size: int

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the content as read (of the copy, which nothing changes), made when
        first asked for: only a saved plan needs it."""
        return file_digest(self.copy)

    def shown(self, text: str) -> str:
        """`text` with the copy's path (in a message from DuckDB, say) as the file's. Its
        masking's marks are kept: a query's error reaches here marked (query_error)."""
        for made in ("as_python_reads", "one_line_end"):
            if made in vars(self):
                text = text.replace(str(vars(self)[made]), str(self.path))
        return text.replace(str(self.copy), str(self.path))

    @cached_property
    def as_python_reads(self) -> Path:
        """The CSV file the DuckDB engine reads: `one_line_end`, unless a space or tab
        stands beside a quote. There the readers part: Python's csv module (the Python
        engine's) takes a quote after a space for text (`, "u2"` is the cell ` "u2"`, and
        `, "a,b"` two cells) and refuses text after a closing quote, where DuckDB's drops
        one space before a quote and any after one (`u2`, one cell `a,b`). Such a file is
        written again as the csv module reads it, in plain RFC 4180 that DuckDB reads
        cell for cell alike, each row a record of its own as before (a quoted cell keeps
        its line ends), so rows keep their numbers. Raises UnreadableCsv where the csv
        module stops, and UnicodeDecodeError for bytes that are not UTF-8."""
        if not _spaces_beside_quotes(self.copy):
            return self.one_line_end
        rewritten = self.copy.parent / "csv" / self.copy.name
        rewritten.parent.mkdir(mode=0o700)
        with (
            self.copy.open(newline="", encoding="utf-8-sig") as source,
            rewritten.open("x", newline="", encoding="utf-8") as target,
        ):
            # strict, as the Python engine reads: a quote left open is an error.
            reader = csv.reader(source, strict=True)
            # Each row ends in \r\n: the csv module quotes a cell holding a character of
            # its line end only, and a lone \r left bare would end a line for DuckDB.
            writer = csv.writer(target, lineterminator="\r\n")
            start = 1  # the line the next row starts on
            try:
                for row in reader:
                    writer.writerow(row)
                    start = reader.line_num + 1
            except csv.Error as exc:
                raise UnreadableCsv(start, str(exc)) from None
        return rewritten

    @cached_property
    def one_line_end(self) -> Path:
        """The copy with every line ending in \\n when its lines end in more than one way
        (\\r\\n, \\n, or a lone \\r as classic Mac OS and some exporters write: rows a
        Windows tool wrote, others appended on Linux or merged in from a checkout that
        converts line ends), else the copy itself. DuckDB's CSV reader stops at the first
        line that ends otherwise than the first ("The CSV Parser state machine reached an
        invalid state", no line named), where Python's reads any mix: the DuckDB engine
        reads this, so both engines read such a file alike. Line ends inside a quoted cell
        are the cell's, and stay as they are (the Python engine keeps them so). Lines keep
        their numbers."""
        if not _mixed_line_ends(self.copy):
            return self.copy
        converted = self.copy.parent / "lf" / self.copy.name
        converted.parent.mkdir(mode=0o700)
        with self.copy.open("rb") as source, converted.open("xb") as target:
            _write_one_line_end(source, target)
        return converted


class UnreadableCsv(Exception):
    """Python's csv module cannot read a row of the file: `line`, the line it starts on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _spaces_beside_quotes(path: Path) -> bool:
    """Whether a space or tab stands right before or after a quote anywhere in `path`
    (inside a quoted cell too: a file rewritten without need reads the same)."""
    last = b""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            # Most files have no quote at all, and this runs on every CSV the DuckDB
            # engine reads (the 10M path): a regex over each byte cost 2.5 s of CPU for
            # a 240 MB file of emails, the byte searches 0.1 s.
            if last == b'"' or b'"' in chunk:
                text = last + chunk
                if any(pair in text for pair in _SPACED_QUOTES):
                    return True
            last = chunk[-1:]
    return False


_SPACED_QUOTES = (b' "', b'\t"', b'" ', b'"\t')


def _write_one_line_end(source: BinaryIO, target: BinaryIO) -> None:
    """`source` with every line end outside quoted cells as \\n. A quote opens or closes
    a cell (a doubled one inside a cell does both), so the text between two quotes is
    inside one when an odd number of quotes came before it."""
    inside = False
    held = b""
    while chunk := source.read(CHUNK_BYTES):
        chunk = held + chunk
        # A \r that ends the chunk may begin a \r\n that the next one ends.
        held = b"\r" if chunk.endswith(b"\r") else b""
        parts = chunk[: len(chunk) - len(held)].split(b'"')
        for n, part in enumerate(parts):
            if n:
                target.write(b'"')
                inside = not inside
            if not inside:
                part = part.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            target.write(part)
    target.write(held if inside else held.replace(b"\r", b"\n"))


def take_snapshot(path: Path, audience: str, declared_at: str) -> Snapshot:
    """Copy `path` into a private directory and check it did not change while it was read.

    Raises OSError as opening `path` does (each source words a missing file its own way),
    SourceChangedError naming the audience, the file and what changed, and SourceError
    for a file that stands in for content the checkout lacks (manifest/stand_in.py)."""
    began = file_system_clock()
    before = os.stat(path)
    with path.open("rb") as source:
        opened = os.fstat(source.fileno())
        parent = temp_dir_setting()
        try:
            directory = private_directory("source", parent)
        except OSError as exc:
            raise _cannot_copy(declared_at, path, parent, exc) from None
        _OPEN.add(directory)
        copy = directory / (path.name or "source")
        try:
            try:
                with copy.open("xb") as target:
                    size = _copy(source, target, path)
            except OSError as exc:
                raise _cannot_copy(declared_at, path, parent, exc) from None
            snapshot = Snapshot(path, copy, size)
        except BaseException:
            _remove(directory)
            raise
    try:
        # A file last changed just before the read began may have been changed again
        # within the same tick of the file system's clock, which its times cannot show:
        # only then is it read a second time, to compare digests (as git treats a
        # "racily clean" index entry). A file at rest is judged by its size and times.
        racy = max(before.st_mtime_ns, before.st_ctime_ns) >= began - RACY_NS
        changes = _changes(path, before, opened, size, snapshot if racy else None)
        if changes:
            raise SourceChangedError(
                f"{declared_at}: audience {audience!r}: guard source_changed: {path} changed "
                f"while it was read ({changes}); nothing was planned or changed. Run again "
                "once whatever writes it has finished (no override: no plan is made from a "
                "file that was half rewritten). Writers should write a new file under "
                "another name and rename it into place, so readers see the old file or the "
                "new one, never a mix"
            )
        # Read from the copy, so this is judged on what the run plans from.
        stands_in = stand_in(path, copy)
        if stands_in is not None:
            raise SourceError(f"{declared_at}: {path} {stands_in}")
    except BaseException:
        _remove(directory)
        raise
    weakref.finalize(snapshot, _remove, directory)
    return snapshot


def _cannot_copy(declared_at: str, path: Path, parent: str | None, exc: OSError) -> SourceError:
    where = shown_temp(parent)
    return SourceError(
        f"{declared_at}: cannot copy {path} into {where} to read it (a run reads each source "
        f"file once, from a private copy): {exc.strerror}; {TEMP_DIR_VARIABLE} chooses "
        "another directory"
    )


def _copy(source: BinaryIO, target: BinaryIO, path: Path) -> int:
    """Copy `source` to `target` in chunks (in the kernel where it can), returning the
    bytes copied."""
    size = 0
    # Linux's alone: macOS's and the BSDs' Python have no os.copy_file_range at all.
    in_kernel = hasattr(os, "copy_file_range")
    while True:
        copied = 0
        if in_kernel:
            try:
                copied = os.copy_file_range(source.fileno(), target.fileno(), CHUNK_BYTES)
            except OSError:
                in_kernel = False  # not between these file systems: through memory
        if not in_kernel:
            chunk = source.read(CHUNK_BYTES)
            copied = target.write(chunk)
        if not copied:
            return size
        size += copied
        _after_chunk(path)


def _changes(
    path: Path, before: os.stat_result, opened: os.stat_result, size: int, read: Snapshot | None
) -> str:
    """What differs between the file before, during and after the read, in words."""
    try:
        after = os.stat(path)
    except FileNotFoundError:
        return "it was deleted"
    if {(s.st_dev, s.st_ino) for s in (before, opened, after)} != {(before.st_dev, before.st_ino)}:
        return "it was replaced by another file"
    if not before.st_size == size == after.st_size:
        return f"{before.st_size:,} bytes before, {size:,} read, {after.st_size:,} after"
    if (before.st_mtime_ns, before.st_ctime_ns) != (after.st_mtime_ns, after.st_ctime_ns):
        return "it was written to"
    if read is not None and file_digest(path) != read.digest:
        return "its content differs from what was read"
    return ""


def _mixed_line_ends(path: Path) -> bool:
    """Whether the lines of `path` end in more than one of \\r\\n, \\n alone and \\r
    alone (quoted cells included: a file converted without need reads the same). Only a
    chunk holding a \\r is counted: one without any, as all of a file written on Linux, is
    judged by a search for a \\n, at the speed of the read."""
    kinds: set[bytes] = set()
    pending_cr = False  # the last chunk ended in a \r, which the next may make a \r\n
    with path.open("rb") as handle:
        while len(kinds) < 2 and (chunk := handle.read(CHUNK_BYTES)):
            if pending_cr:
                kinds.add(b"\r\n" if chunk.startswith(b"\n") else b"\r")
                chunk = chunk[1:] if chunk.startswith(b"\n") else chunk
            pending_cr = chunk.endswith(b"\r")
            chunk = chunk[:-1] if pending_cr else chunk
            if b"\r" in chunk:
                pairs = chunk.count(b"\r\n")
                if pairs:
                    kinds.add(b"\r\n")
                if chunk.count(b"\r") > pairs:
                    kinds.add(b"\r")
                if chunk.count(b"\n") > pairs:
                    kinds.add(b"\n")
            elif b"\n" in chunk:
                kinds.add(b"\n")
    if pending_cr:
        kinds.add(b"\r")
    return len(kinds) > 1


def file_system_clock() -> int:
    """Now, as the file system stamps files (its clock runs up to a tick behind
    time.time_ns), from a file made for the purpose where the copies go
    (RECONCILER_DUCKDB_TEMP_DIR): the system's temporary directory may be read-only (a
    container's read-only root file system, the variable naming its writable volume),
    where the marker's FileNotFoundError said every source file was "not found". Where
    no marker can be made, the clock itself: a moment later, so only more files count as
    racily changed and are read a second time."""
    try:
        with tempfile.NamedTemporaryFile(
            prefix="reconciler-clock-", dir=temp_dir_setting()
        ) as marker:
            return os.fstat(marker.fileno()).st_mtime_ns
    except OSError:
        return time.time_ns()


# A file's inode, size, modification and change times: any write changes the last.
FileState = tuple[int, int, int, int]


def file_state(path: Path | str) -> FileState | None:
    try:
        s = os.stat(path)
    except OSError:
        return None
    return s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    _OPEN.discard(directory)


def remove_snapshots() -> None:
    """Remove the snapshot copies now: for a process about to end with os._exit (a second
    Ctrl-C), which would leave members' data behind."""
    for directory in list(_OPEN):
        _remove(directory)
