"""One run of a query for every audience of a plan that names it at the same database.

Audiences often differ only in how they read one query: one keys its members by userId,
another by email with a trait mapping over the other columns, and a warehouse query may
take minutes. Audiences whose query is the same text at the same database (the same URL
once its credentials are filled in: another user may see other rows) share one run: the
first to read it runs it, and the rows it reads are written, a chunk at a time, to a file
of reconciler's own; the others read that file instead of running the query again, each
with its own columns, rules and messages. Only a chunk is ever in memory, and the file is
removed once the last of them has read it.

A run is shared only between reads under the same memory guard (the Python engine holds
every row, the DuckDB engine a chunk at a time: the query sent differs), and only once it
was read to its end: a read that failed midway leaves the next audience to run the query
itself. Rows are kept as the driver gave them (pickled: exact Decimals, dates, UUIDs), in a
file with no name (in a directory only this user can open), read back through the handle
that wrote it: a file opened again by its path is whatever the temporary directory holds
under that name then, and whoever can rename entries there (a RECONCILER_DUCKDB_TEMP_DIR
another user can write to) could swap in a pickle of their own, which runs code as it is
read. What cannot be pickled is not shared.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reconciler.errors import SourceError
from reconciler.leftovers import private_directory
from reconciler.sources.snapshot import FileState, temp_dir_setting

# What a query's rows are handed to (sources.base.Consume, which imports this module).
Consume = Callable[[Sequence[str], Iterable[Sequence[Sequence[Any]]]], None]


@dataclass
class Recorded:
    """A complete run's rows in `file` (no name: module docstring): the column names and
    the driver's column types first, then the chunks; and the state of the SQLite file it
    read, if it read one. Audiences are read one after another, so one replay at a time
    reads it, each from the start."""

    file: IO[bytes]
    state: FileState | None


@dataclass
class SharedRun:
    """The run of one query shared by `readers` audiences, by the memory guard (`held`)
    of the reads that made it."""

    readers: int
    directory: Path | None = None
    recorded: dict[int | None, Recorded] = field(default_factory=dict)

    def replay(self, held: int | None) -> Recorded | None:
        """The run a read under `held` may take instead of running the query, if any."""
        return self.recorded.get(held)

    def recording(
        self,
        held: int | None,
        consume: Consume,
        types: Sequence[Any],
        state: FileState | None,
        check: Callable[[Sequence[str], Sequence[Any]], None],
    ) -> Consume:
        """`consume`, with each chunk it takes also written to this run's file, which
        becomes the run under `held` once the last chunk is written. `types` is filled by
        the read (the driver's column types) before `consume` is called, and `check`
        (this reader's refusal of its columns by their types) is called first. When this
        reader refuses the rows (a SourceError of its own: a column it names is missing,
        a value it cannot keep), the rest are still written for the others, who would
        otherwise run the query again; a failure of the read itself records nothing."""
        try:
            if self.directory is None:
                self.directory = private_directory("rows", temp_dir_setting())
            # No name (O_TMPFILE; elsewhere removed as it is made): nothing in the
            # directory can stand in for it, and a killed run leaves no rows behind. It
            # outlives this call: the recording keeps it, and close() closes it.
            handle = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115
        except OSError:  # no room to keep the rows: each reader runs the query, as before
            return _checked(consume, check, types)

        def tee(names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
            kept = _Writer(handle)
            kept.write((list(names), list(types)))
            passing = kept.through(chunks)
            try:
                check(names, types)
                consume(names, passing)
            except SourceError:
                for _chunk in passing:  # the rows the others will read
                    pass
                raise
            finally:
                if kept.complete and kept.flushed():
                    self.recorded[held] = Recorded(handle, state)
                else:
                    handle.close()

        return tee

    def read(self) -> None:
        """One audience has read the query: the file goes once every one has."""
        self.readers -= 1
        if self.readers <= 0:
            self.close()

    def close(self) -> None:
        for recorded in self.recorded.values():
            recorded.file.close()
        self.recorded.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _checked(
    consume: Consume, check: Callable[[Sequence[str], Sequence[Any]], None], types: Sequence[Any]
) -> Consume:
    def checked(names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
        check(names, types)
        consume(names, chunks)

    return checked


class _Writer:
    """Pickles what passes through it; gives up (removing nothing it passed on) on a value
    pickle cannot write, so that read is not shared."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.ok = True
        self.complete = False

    def flushed(self) -> bool:
        """Whether what was written is all in the file (a full disk may refuse the rest)."""
        try:
            self.handle.flush()
        except OSError:
            return False
        return True

    def write(self, value: object) -> None:
        if not self.ok:
            return
        try:
            pickle.dump(value, self.handle, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, OSError):
            # A value pickle cannot write (a driver's own type), or a full disk: this read
            # goes on, unshared.
            self.ok = False

    def through(
        self, chunks: Iterable[Sequence[Sequence[Any]]]
    ) -> Iterator[Sequence[Sequence[Any]]]:
        for chunk in chunks:
            # As tuples: a driver's row objects may not pickle, and are read by position.
            self.write([tuple(row) for row in chunk])
            yield chunk
        self.complete = self.ok


def replayed(recorded: Recorded) -> tuple[list[str], list[Any], Callable[[], Iterator[Any]]]:
    """A recorded run's column names and types, and its chunks (read as they are taken)."""
    # Only the file this process wrote, through the handle that wrote it, is unpickled.
    handle = recorded.file
    handle.seek(0)
    names, types = pickle.load(handle)
    start = handle.tell()

    def chunks() -> Iterator[Any]:
        handle.seek(start)
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return

    return names, types, chunks
