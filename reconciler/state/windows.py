"""The synchronous user export read in date windows (issue 18): `GET /api/export/data.json`
with startDateTime/endDateTime over profileUpdatedAt, one window per request, because
Iterable closes an export connection that streams too long (Airbyte's source-iterable cuts
its `users` export into date windows for this, and halves a window whose stream dies).

How a read goes (read_export_windows; the rest of this module is pure):
- The project's past is cut into closed windows, the newest narrowest (profiles updated
  recently are the many: every event or field write moves a profile's profileUpdatedAt
  to now), and one open window from a little before the read began on.
- Closed windows are read several at a time within the export budget (4 a minute). A
  window whose stream dies is read again as two halves (only that window); one second
  wide (the parameters' precision), it is read again whole, a few times at most.
- The open window is read last, once no other window is pending or in flight. A profile
  updated during the read gets profileUpdatedAt = the time of the update, so it can only
  move forward, into the open window: read last, the open window holds every profile that
  moved, whenever it moved. No profile falls between windows.
- A profile that moved after its old window was read appears twice. Exactly one row of
  it is kept: the one from the window with the later start, which is the later read of
  the profile (it only moves forward). Keeping both would be wrong: in a hybrid project a
  userId set during the read would name one person twice (by email in one row, by userId
  in the other), the audience knows one of the two, and the plan would remove the other,
  which is the same person. Keeping the older row would plan from a state that no longer
  holds, e.g. an unsubscribe sent again for someone who left the list themselves. The
  later row is what a single export started a moment later would have shown.
Assumed, as Airbyte's users stream assumes it: every profile has a profileUpdatedAt (it is
a system field Iterable sets when a profile is created and on every change), so a
profile without one, which range=All would show, is not read.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler.errors import IterableError, LiveStateError
from reconciler.iterable.names import StreamCut
from reconciler.iterable.settings import ClientSettings
from reconciler.leftovers import private_directory
from reconciler.members.identity import ProjectType
from reconciler.sources.snapshot import temp_dir_setting
from reconciler.threads import reading_pool

if TYPE_CHECKING:
    from reconciler.iterable.client import IterableClient

# Iterable's parameters ("yyyy-MM-dd HH:mm:ss [ZZ]", UTC) have a precision of one second.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
# The open window starts this long before the read does: a profile updated just before
# the read may show in exports only a minute later (read lag), and our clock may run ahead
# of Iterable's. Every such profile then lands in the open window, read last.
OPEN_WINDOW_MARGIN = timedelta(minutes=10)
# Iterable's clock behind ours by this much or more is said (state/live.py's reads, and a
# note as the windows are planned); less is the Date header's second and the answer's way.
SAID_CLOCK_BEHIND = timedelta(minutes=1)
# The open window's end is sent this far past the moment it is read by Iterable's clock
# (the parameters take a date, not "open"): it holds every profile updated up to then.
OPEN_END_MARGIN = timedelta(days=1)
# A window that holds no more than this share of what one stream carries before Iterable
# closes it: how profiles spread over time is unknown, so windows get room to be uneven.
WINDOW_FILL = 0.5
# Reads of a one-second window that keeps dying (it cannot be split) before giving up.
UNSPLITTABLE_RETRIES = 2


@dataclass(frozen=True)
class Window:
    """[start, end) over profileUpdatedAt; start None: from the beginning; end None: the
    open window. `late`: it starts after the read's margin, so profiles that move during
    the read can land in it (only late windows' rows are remembered for the merge)."""

    start: datetime | None
    end: datetime | None
    late: bool = False

    @property
    def is_open(self) -> bool:
        return self.end is None

    def params(self, now: datetime) -> list[tuple[str, str]]:
        """startDateTime/endDateTime for this window, read at `now` (Iterable's, at the
        latest: the open window ends OPEN_END_MARGIN after it)."""
        start = self.start or BEGINNING
        end = self.end or (now + OPEN_END_MARGIN)
        return [
            ("startDateTime", start.strftime(DATETIME_FORMAT)),
            ("endDateTime", end.strftime(DATETIME_FORMAT)),
        ]

    def describe(self) -> str:
        start = self.start.strftime(DATETIME_FORMAT) if self.start else "the beginning"
        end = self.end.strftime(DATETIME_FORMAT) if self.end else "now"
        return f"{start} to {end}"


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def window_count(rows: int, settings: ClientSettings) -> int:
    """Closed windows for about `rows` profiles: each within WINDOW_FILL of one stream."""
    per_stream = rows_per_stream(settings)
    if per_stream == math.inf:
        return 1
    return max(1, math.ceil(rows / per_stream))


def rows_per_stream(settings: ClientSettings) -> float:
    """Rows one window is planned to hold: WINDOW_FILL of what one export stream carries
    before Iterable closes it (its first byte taken off); inf with no stream limit."""
    limit = settings.export_stream_limit
    if limit <= 0 or settings.export_rate <= 0:
        return math.inf
    return max(1.0, (limit - settings.bulk_read_first_byte) * settings.export_rate * WINDOW_FILL)


def plan_windows(now: datetime, closed: int, span: timedelta) -> list[Window]:
    """`closed` windows over the past, widths doubling going back from the open window's
    start (the newest narrowest, the oldest open towards the beginning; `span` is the
    time the windows after the oldest cover), then the open window."""
    open_start = _second(now - OPEN_WINDOW_MARGIN)
    closed = max(1, closed)
    unit = span / (2 ** (closed - 1) - 1) if closed > 1 else span
    bounds = [open_start]
    for k in range(closed - 1):
        bound = _second(open_start - unit * (2 ** (k + 1) - 1))
        if bound >= bounds[-1]:  # narrower than a second: fewer windows
            break
        bounds.append(bound)
    bounds.reverse()
    windows = [Window(None, bounds[0])]
    windows += [Window(a, b) for a, b in itertools.pairwise(bounds)]
    windows.append(Window(open_start, None, late=True))
    return windows


def split_window(window: Window, now: datetime) -> tuple[Window, Window] | None:
    """Two halves of `window` (by time), or None when it is one second wide. The open
    window is split between its start and `now`: its second half stays open (and is read
    last), and a split point in the past keeps every later update in the open half."""
    start = window.start or BEGINNING
    end = window.end or _second(now)
    middle = _second(start + (end - start) / 2)
    if middle <= start or middle >= end:
        return None
    first = Window(window.start, middle, window.late)
    return first, Window(middle, window.end, window.late)


def identity_keys(row: dict[str, Any], project_type: ProjectType) -> tuple[str, ...]:
    """What names the profile of an export row, for finding it twice: its email in email
    projects, its userId in userId projects (where profiles may share an email), either
    in hybrid projects (both are unique there)."""
    email = row.get("email")
    email = email.lower() if isinstance(email, str) and email else None
    user_id = row.get("userId")
    user_id = user_id if isinstance(user_id, str) and user_id else None
    if project_type == "email":
        return (f"e:{email}",) if email else ()
    if project_type == "userId":
        if user_id:
            return (f"u:{user_id}",)
        return (f"e:{email}",) if email else ()
    return tuple(k for k in (email and f"e:{email}", user_id and f"u:{user_id}") if k)


def merge_rows(
    windows: Sequence[tuple[Window, Iterable[dict[str, Any]]]], project_type: ProjectType
) -> Iterator[dict[str, Any]]:
    """Every profile once: windows newest first (by start), a row kept unless a row of
    the same profile was kept from a later window. Only late windows can hold a profile
    that moved, so only their rows are remembered (a few, not the project)."""
    seen: set[str] = set()
    for window, rows in sorted(windows, key=lambda pair: _start_key(pair[0]), reverse=True):
        for row in rows:
            keys = identity_keys(row, project_type)
            if any(key in seen for key in keys):
                continue
            if window.late:
                seen.update(keys)
            yield row


def _start_key(window: Window) -> datetime:
    return window.start or BEGINNING


def merge_window_files(
    windows: Sequence[tuple[Window, Path]], target: Path, project_type: ProjectType
) -> int:
    """merge_rows over windows read to files, into `target` (JSON lines); the lines
    written. A window that no later window could share a profile with is copied whole."""
    ordered = sorted(windows, key=lambda pair: _start_key(pair[0]), reverse=True)
    seen: set[str] = set()
    written = 0
    with target.open("wb") as out:
        for window, path in ordered:
            if not seen and not window.late:
                with path.open("rb") as source:
                    shutil.copyfileobj(source, out)
                    if source.tell() and (source.seek(-1, 2), source.read(1))[1] != b"\n":
                        out.write(b"\n")  # the next window's first line starts a line
                with path.open("rb") as source:
                    written += sum(1 for line in source if line.strip())
                continue
            with path.open("rb") as source:
                for line in source:
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
                        raise LiveStateError(
                            "the user export answered a line that is not JSON"
                        ) from None
                    keys = identity_keys(row, project_type) if isinstance(row, dict) else ()
                    if any(key in seen for key in keys):
                        continue
                    if window.late:
                        seen.update(keys)
                    out.write(line if line.endswith(b"\n") else line + b"\n")
                    written += 1
    return written


# -- reading (I/O) -------------------------------------------------------------------------


@dataclass
class WindowedRead:
    """What a windowed read did: the windows read (splits included), the streams that
    died and the rows merged."""

    windows: int = 0
    requests: int = 0
    cut: int = 0
    rows: int = 0


def read_export_windows(
    client: IterableClient,
    only_fields: Sequence[str],
    target: Path,
    project_type: ProjectType,
    expected_rows: int,
    on_lines: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> WindowedRead:
    """The user export, read in date windows into `target` (one line per profile);
    `on_note` is told of each window whose stream died and what is read instead."""
    settings = client.settings
    # Iterable's clock, not ours: the windows are over the times it stamps.
    now, latest = clock or client.iterable_now, clock or client.iterable_latest
    reader = _WindowReader(client, only_fields, target, (now, latest), on_lines, on_note)
    span = timedelta(days=settings.export_window_days)
    planned = plan_windows(reader.now(), window_count(expected_rows, settings), span)
    behind = clock_behind_note(client)
    if behind and on_note is not None:
        on_note(f"the user export's date windows are planned by {behind}")
    try:
        reader.read_all(
            [w for w in planned if not w.is_open],
            next(w for w in planned if w.is_open),
            max(1, int(settings.export_windows_in_flight)),
        )
        reader.report.windows = len(reader.done)
        reader.report.rows = merge_window_files(reader.done, target, project_type)
        client.counted_profiles(reader.report.rows)
    finally:
        reader.remove_files()
    return reader.report


class _WindowReader:
    """Reads windows of the user export to files beside `target`, a few at a time, and
    reads again in halves each window whose stream died."""

    def __init__(
        self,
        client: IterableClient,
        only_fields: Sequence[str],
        target: Path,
        clocks: tuple[Callable[[], datetime], Callable[[], datetime]],
        on_lines: Callable[[int], None] | None,
        on_note: Callable[[str], None] | None,
    ):
        self.client, self.only_fields, self.target = client, only_fields, target
        # Iterable's clock at its earliest (windows are planned and split by it) and at
        # its latest (the open window reaches past it): IterableClient.iterable_now/_latest.
        self.now, self.latest = clocks
        self.on_lines, self.on_note = on_lines, on_note
        self.report = WindowedRead()
        self.done: list[tuple[Window, Path]] = []
        self.attempts: dict[Window, int] = {}
        self.lock = threading.Lock()
        self.counter = itertools.count()
        # Set once the read has failed: the windows in flight end at their next chunk.
        self.stopped = threading.Event()

    def read_all(self, pending: list[Window], open_window: Window, workers: int) -> None:
        """Every closed window, `workers` at a time, then the open one, last (into done).
        A window that cannot be read stops the others: they streamed to their end (for
        minutes, against Iterable) before the failure was said or getUsers read instead,
        only to be thrown away."""
        with reading_pool(workers, "reconciler-window") as pool:
            try:
                self._read_all(pool, pending, open_window, workers)
            except BaseException:
                self.stopped.set()
                raise

    def _read_all(
        self, pool: ThreadPoolExecutor, pending: list[Window], open_window: Window, workers: int
    ) -> None:
        while True:
            self._read_closed(pool, pending, workers)
            # Nothing else pending or in flight: now the open window, last.
            try:
                self.done.append(self.read(open_window))
                return
            except StreamCut:
                halves = self.died(open_window)
                open_window = halves[-1]
                pending = halves[:-1]

    def _read_closed(self, pool: ThreadPoolExecutor, pending: list[Window], workers: int) -> None:
        """Read `pending` (a list taking the halves of windows that die) until none is left."""
        running: dict[Future[tuple[Window, Path]], Window] = {}
        while pending or running:
            while pending and len(running) < workers:
                window = pending.pop(0)
                running[pool.submit(self.read, window)] = window
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                window = running.pop(future)
                try:
                    self.done.append(future.result())
                except StreamCut:
                    pending[:0] = self.died(window)

    def read(self, window: Window) -> tuple[Window, Path]:
        with self.lock:
            path = self.target.parent / f"{self.target.stem}.window{next(self.counter)}.jsonl"
            self.report.requests += 1
        arrived = 0

        def count(n: int) -> None:
            nonlocal arrived
            if self.stopped.is_set():
                raise LiveStateError("the window's read was abandoned: another window failed")
            arrived += n
            if self.on_lines is not None:
                self.on_lines(n)

        try:
            self.client.download_export_window(
                self.only_fields, window.params(self.latest()), path, count
            )
        except StreamCut:
            # Read again in halves: progress counts its rows once, from them.
            if self.on_lines is not None and arrived:
                self.on_lines(-arrived)
            raise
        return window, path

    def died(self, window: Window) -> list[Window]:
        """What to read instead of a window whose stream died."""
        self.report.cut += 1
        halves = split_window(window, self.now())
        if halves is not None:
            if self.on_note is not None:
                self.on_note(
                    f"the user export's window {window.describe()} was cut off before its "
                    "end; reading it again as two windows"
                )
            return list(halves)
        self.attempts[window] = self.attempts.get(window, 0) + 1
        if self.attempts[window] > UNSPLITTABLE_RETRIES:
            raise LiveStateError(
                f"the user export's window {window.describe()} (one second) died "
                f"{self.attempts[window]} times; it cannot be cut smaller"
            )
        return [window]

    def remove_files(self) -> None:
        """The windows' files, read or left by a failed read."""
        for _window, path in self.done:
            path.unlink(missing_ok=True)
        for leftover in self.target.parent.glob(f"{self.target.stem}.window*.jsonl"):
            leftover.unlink(missing_ok=True)


def clock_behind_note(client: IterableClient) -> str:
    """ "Iterable's clock, which ... behind this machine's" when its answers' Date headers
    show it SAID_CLOCK_BEHIND or more behind; "" otherwise."""
    behind = client.clock_behind
    if behind < SAID_CLOCK_BEHIND.total_seconds():
        return ""
    return (
        f"Iterable's clock, which its answers' Date header shows {round(behind):,} s "
        "behind this machine's"
    )


def _cut_off(exc: IterableError) -> bool:
    """A whole-project export that failed in a way date windows can get past: no answer,
    a connection dropped midway, a 5xx or 429. A refusal (a key, a permission) would
    refuse the windows alike."""
    return exc.status is None or exc.status >= 500 or exc.status == 429


def cut_off_whole(client: IterableClient, exc: IterableError) -> bool:
    """Whether a whole-project user export's failure is one date windows get past
    (_cut_off); if so, the client's later whole exports of this run go to windows at once
    (IterableClient.whole_export_cut_off)."""
    if not _cut_off(exc):
        return False
    client.whole_export_cut_off = True
    return True


class WholeUsers(NamedTuple):
    """export_users_whole's users, the window requests it made (0: the one export did),
    and whether it asked one whole export (not where the project's was cut off earlier in
    the run: then it went to windows at once), for the plan to count and say."""

    rows: list[dict[str, Any]]
    windows: int
    whole: bool


def export_users_whole(
    client: IterableClient,
    only_fields: Sequence[str],
    keep: Callable[[dict[str, Any]], bool],
    project_type: ProjectType,
    marked: Sequence[bytes] = (),
) -> WholeUsers:
    """The project's users that `keep` accepts, from one user export; where Iterable cuts
    that export off every time (it closes long export connections, so a large project's
    may never finish), from the export in date windows. Both failing raises. `marked` as
    client.export_users takes it."""
    whole = not client.whole_export_cut_off
    if whole:
        try:
            return WholeUsers(
                list(client.export_users(only_fields, keep=keep, marked=marked)), 0, True
            )
        except IterableError as exc:
            if not cut_off_whole(client, exc):
                raise
    # The project's users, members' identities all: in a directory named for this process
    # under RECONCILER_DUCKDB_TEMP_DIR, so that a run killed during a read that can take
    # hours leaves it for the next run to remove (leftovers.py), not in /tmp for ever.
    scratch = private_directory("export", temp_dir_setting())
    try:
        target = scratch / "users.jsonl"
        windowed = read_export_windows(client, only_fields, target, project_type, 0)
        # Our own merge wrote these lines, each a JSON object: only marked ones can be kept.
        needles = (*marked, b"\\")
        with target.open("rb") as lines:
            kept = [
                row
                for line in lines
                if line.strip()
                and (not marked or any(n in line for n in needles))
                and keep(row := json.loads(line))
            ]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return WholeUsers(kept, windowed.requests, whole)


class WholeDownload:
    """client.download_export, going on in date windows where the one export is cut off
    every time (as export_users_whole); a callable as engine/field_tables.py's
    read_field_export takes it. `windows`: the window requests it made (0: the one export
    did), and `whole`: whether it asked one whole export, for the plan to count and say
    (FieldRead)."""

    def __init__(self, client: IterableClient, project_type: ProjectType) -> None:
        self.client = client
        self.project_type = project_type
        self.windows = 0
        self.whole = False

    def __call__(
        self, only_fields: Sequence[str], path: Path, on_lines: Callable[[int], None] | None
    ) -> int:
        if not self.client.whole_export_cut_off:
            self.whole = True
            try:
                return self.client.download_export(only_fields, path, on_lines)
            except IterableError as exc:
                if not cut_off_whole(self.client, exc):
                    raise
        windowed = read_export_windows(
            self.client, only_fields, path, self.project_type, 0, on_lines
        )
        self.windows = windowed.requests
        return windowed.rows


# For the other whole-project exports that fall back to windows (state/consent.py's events).
cut_off = _cut_off
