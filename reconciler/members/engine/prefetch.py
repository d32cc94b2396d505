"""Member reads started while the sources are being read.

Reading a ten-million-row source and downloading a ten-million-line list each take
seconds (against Iterable, the download far longer), and neither needs the other: the
only thing a getUsers download needs from the source is `preferUserId`, which the project
type settles for email- and userID-based projects. Hybrid projects wait for the source.

When the lists are to be read by one export instead (issue 18: at Iterable's speeds,
minutes in a job's queue, or an export streaming for minutes), that export is started here
too, and read_live takes its file: an asynchronous export job, the synchronous user export,
or the user export in date windows. None of them depends on the sources at all, and the
route choice needs only which lists exist (GET /api/lists) and their expected sizes (the
sources' row counts, had without parsing them).

A prefetch is only ever a head start: whatever it could not do, or did differently from
what the plan turns out to need, read_live does itself. A plan that fails or is
interrupted abandons it (`Prefetch.abandon`): its reads stop, a job is cancelled.

Several destinations may name one Iterable project (one per team, each with its own
audiences and policy). An export reads every profile of the project whichever
destination asks, so destinations of one project (`SharedExports`: the same host and key,
and the same project type) that choose the same export route take one export between
them, not one each: Iterable starts 4 exports a minute per project, and a second export
of a large project is minutes to hours more. Each destination still reads its own lists
from the file, as it would from its own export.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import IterableError
from reconciler.iterable.names import CHANNELS_FIELD
from reconciler.manifest import Audience, Destination
from reconciler.members.engine.workspace import Engine
from reconciler.progress import NULL_PROGRESS, Heartbeat, Progress, heartbeat
from reconciler.state.routes import (
    MemberRoute,
    choose_route,
    expected_size_checks,
    size_empty_lists,
    with_sized,
)
from reconciler.state.users_file import link_or_copy
from reconciler.state.windows import cut_off_whole, read_export_windows
from reconciler.threads import start_thread
from reconciler.uptime import uptime

if TYPE_CHECKING:
    from reconciler.iterable.client import IterableClient, ListInfo

# How long abandon() waits for the background reads to end. A read waiting for its first
# byte cannot be woken; its thread is a daemon, and ends when the client is closed.
ABANDON_SECONDS = 10.0
# The routes that read every list with one export, started here when chosen.
EXPORT_ROUTES = ("asyncExport", "export", "windowedExport")
# What each says in progress.
EXPORT_READS = {
    "asyncExport": "one asynchronous export job",
    "export": "one user export",
    "windowedExport": "the user export in date windows",
}


@dataclass
class Download:
    list_id: int
    prefer_user_id: bool
    path: Path
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    # Why it failed after the client's retries: read_live leaves the audience out with it
    # rather than spending the list's rate budget on the same retries again.
    error: Exception | None = None


@dataclass
class ExportDownload:
    """The destination's export (`route.name`: an asynchronous export job, the user
    export, or the user export in date windows), started before the sources were read:
    its users as JSON lines at `path` once `done`, unless it failed (`error`)."""

    route: MemberRoute
    fields: tuple[str, ...]
    path: Path
    # The members the lists are expected to hold: how the date windows are cut.
    expected_rows: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None
    lines: int = 0
    # For the export in date windows: the windows read, and the requests they took.
    windows: int = 0
    requests: int = 1
    # When (uptime()) the read started, and the client's calls then: the plan's member
    # read counts its time and calls from there.
    started: float = 0.0
    calls_before: dict[str, int] = field(default_factory=dict)


@dataclass
class Prefetch:
    downloads: dict[str, Download] = field(default_factory=dict)  # by list name
    registered: threading.Event = field(default_factory=threading.Event)
    export: ExportDownload | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    # When (uptime()) the getUsers downloads were registered, and the client's calls then:
    # the plan's member read counts its time and calls from there, as for an early export
    # (counted from read_live's start, their getUsers calls went unsaid).
    started: float = 0.0
    calls_before: dict[str, int] = field(default_factory=dict)
    # The list index (GET /api/lists) the route was chosen from, once read: read_live
    # plans from it rather than asking Iterable for the same index again.
    lists: list[ListInfo] | None = None
    # The sizes (lists/{id}/size) of the empty audiences' lists, asked to choose the
    # route, by list id: read_live takes them rather than ask again.
    sized: dict[int, int] = field(default_factory=dict)
    # The requests those sizes took (per endpoint, retries too): made before the member
    # read's calls are counted from, read_live counts them among its own.
    size_calls: dict[str, int] = field(default_factory=dict)

    def take_lists(self) -> list[ListInfo] | None:
        """The list index read to choose the route; None when it could not be read (the
        plan then reads it, and reports why it failed)."""
        self.registered.wait()
        return self.lists

    def take_export(self) -> ExportDownload | None:
        """The export started for this destination, if one was (read_live then reads by
        it, waiting for it with `wait_export`)."""
        self.registered.wait()
        return self.export

    def wait_export(
        self, export: ExportDownload, on_lines: Callable[[int], None] | None = None
    ) -> Path:
        """The export's file once it is complete (its lines then told to `on_lines`); its
        failure raised as it was."""
        export.done.wait()
        if export.error is not None:
            raise export.error
        if on_lines is not None:
            on_lines(export.lines)
        return export.path

    def abandon(self, deadline: float | None = None) -> None:
        """Stop what is still being read in the background, and wait for it to end (until
        `deadline`, a time.monotonic(); by default ABANDON_SECONDS from now): for a plan
        that failed or was interrupted, and for reads the plan did not take. A job is
        cancelled (it holds one of Iterable's 4 places); files not taken are removed."""
        self.stop.set()
        if deadline is None:
            deadline = time.monotonic() + ABANDON_SECONDS
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        paths = [d.path for d in self.downloads.values() if d.done.is_set()]
        if self.export is not None and self.export.done.is_set():
            paths.append(self.export.path)
        for path in paths:
            path.unlink(missing_ok=True)

    def take(self, list_name: str, list_id: int, prefer_user_id: bool) -> Path | Exception | None:
        """The downloaded body of this list, if it was fetched as the plan needs it; the
        failure, if its download failed; None when read_live must read it itself."""
        self.registered.wait()
        download = self.downloads.get(list_name)
        if download is None:
            return None
        download.done.wait()
        if (download.list_id, download.prefer_user_id) != (list_id, prefer_user_id):
            download.path.unlink(missing_ok=True)
            return None
        if download.ok:
            return download.path
        if download.error is not None:
            return download.error
        download.path.unlink(missing_ok=True)
        return None


def abandon_all(prefetches: Iterable[Prefetch]) -> None:
    """Abandon every one of `prefetches`, all told to stop at once and waited for together
    for ABANDON_SECONDS at most: one after the other, a plan of several destinations held
    Ctrl-C (or its failure) that long for each."""
    prefetches = list(prefetches)
    for prefetch in prefetches:
        prefetch.stop.set()
    deadline = time.monotonic() + ABANDON_SECONDS
    for prefetch in prefetches:
        prefetch.abandon(deadline)


@dataclass
class SharedExports:
    """One plan's exports of projects several destinations name: each destination's
    prefetch of such a project joins its group (`join`), and the first of the group (in
    the plan's order) to choose an export route reads it, into a file of its own (the
    `master`) that every destination of the group choosing the same route then takes a
    link of. The masters are removed once the plan is made (`close`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # The prefetches of each group (project and project type), in the order they joined.
    groups: dict[str, list[Prefetch]] = field(default_factory=dict)
    # Each group's exports read so far, by route name: the master and the destination
    # whose prefetch reads it.
    masters: dict[tuple[str, str], tuple[ExportDownload, str]] = field(default_factory=dict)

    def join(self, group: str, prefetch: Prefetch) -> list[Prefetch]:
        """Add `prefetch` to `group`; the group's prefetches that joined before it."""
        with self.lock:
            members = self.groups.setdefault(group, [])
            earlier = list(members)
            members.append(prefetch)
        return earlier

    def close(self) -> None:
        """Remove the masters' files (each destination took a link of its own)."""
        with self.lock:
            masters = [master for master, _name in self.masters.values()]
        for master in masters:
            master.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Share:
    """A destination's place in its group of SharedExports."""

    exports: SharedExports
    group: str
    earlier: list[Prefetch]


@dataclass(frozen=True)
class _Reads:
    """What every early read of one destination shares."""

    engine: Engine
    client: IterableClient
    destination: Destination
    progress: Progress
    prefetch: Prefetch
    # The fields the destination's trait mappings write: an export asks for them too, so
    # the plan reads their current values from it (state/users_file.py). With a shared
    # export, those of every destination of the group.
    mapped_fields: tuple[str, ...] = ()
    share: _Share | None = None

    @property
    def membership(self) -> str:
        return "emailListIds" if self.destination.spec.projectType == "email" else "userListIds"

    def stoppable(self, advance: Callable[[int], None]) -> Callable[[int], None]:
        """Progress that ends the read once the prefetch is abandoned."""

        def on_lines(n: int) -> None:
            if self.prefetch.stop.is_set():
                raise RuntimeError("the read was abandoned")
            advance(n)

        return on_lines


def start_prefetch(
    engine: Engine,
    client: IterableClient,
    destination: Destination,
    large: list[Audience],
    declared: set[str],
    progress: Progress = NULL_PROGRESS,
    *,
    sizes: Mapping[str, int | None] | None = None,
    member_reads: str | None = None,
    mapped_fields: Sequence[str] = (),
    shared: tuple[SharedExports, str] | None = None,
) -> Prefetch:
    """Start reading in a daemon thread (a plan that fails meanwhile abandons it): the
    route is chosen as read_live chooses it, from the lists that exist among `declared`
    (every list the plan reads in this destination) and `sizes`, their audiences' expected
    sizes by list name (None: unknown). An export route's export is started; for
    getUsers, the lists of the `large` audiences are downloaded. Without `sizes`, a large
    audience is taken to hold the engine's threshold and the others none (getUsers is
    favoured; read_live decides again with the real sizes). `member_reads` is read_live's
    ("export": a saved plan's stale check, one read for every list). An export also
    asks for `mapped_fields`, the fields the destination's trait mappings write.
    `shared`: the plan's SharedExports and the group of this destination's project, when
    other destinations name the same project (`mapped_fields` then those of them all)."""
    prefetch = Prefetch()
    share = None
    if shared is not None:
        exports, group = shared
        # Joined here, in the plan's order, not in the thread: which destination reads a
        # shared export does not depend on which thread runs first.
        share = _Share(exports, group, exports.join(group, prefetch))
    reads = _Reads(engine, client, destination, progress, prefetch, tuple(mapped_fields), share)

    def run() -> None:
        shared: _Shared | None = None
        try:
            try:
                shared = _register(reads, large, declared, sizes, member_reads)
            finally:
                reads.prefetch.registered.set()
            export = reads.prefetch.export
            if export is not None and shared is None:
                _read_export(reads, export)
            elif export is not None and shared is not None:
                if shared.reads:
                    _read_export(reads, shared.master)
                _take_shared(reads, shared.master, export)
            elif reads.prefetch.downloads and not reads.prefetch.stop.is_set():
                _read_lists(reads)
        except Exception as exc:
            # Raised here, it was printed as a thread's traceback (a workspace the
            # temporary directory could not hold, a thread the system would not start),
            # and the reads it had registered were never done: read_live waited for them
            # for ever. They fail with it instead; read_live reports it, as it would its own.
            _fail_unfinished(reads.prefetch, shared, exc)

    thread = threading.Thread(target=run, name="reconciler-prefetch", daemon=True)
    reads.prefetch.threads.append(thread)
    start_thread(thread)
    return reads.prefetch


def _fail_unfinished(prefetch: Prefetch, shared: _Shared | None, exc: Exception) -> None:
    """Every read of `prefetch` not done yet (and the shared export it was to read for its
    group) done, failed with `exc`."""
    reads: list[Download | ExportDownload] = list(prefetch.downloads.values())
    reads += [x for x in (prefetch.export,) if x is not None]
    if shared is not None and shared.reads:
        reads.append(shared.master)
    for read in reads:
        if read.done.is_set():
            continue
        read.error = exc
        read.done.set()


def _register(
    reads: _Reads,
    large: list[Audience],
    declared: set[str],
    sizes: Mapping[str, int | None] | None,
    member_reads: str | None,
) -> _Shared | None:
    """Choose the route, and say in reads.prefetch what is to be read by it: the export,
    or the getUsers downloads of large lists; nothing when read_live had better decide.
    The shared export the destination takes, if it takes one (_register_export)."""
    try:
        all_lists = reads.client.get_lists()
    except Exception:  # read_live asks again and reports it
        return None
    reads.prefetch.lists = all_lists
    by_name: dict[str, list[ListInfo]] = {}
    for info in all_lists:
        by_name.setdefault(info.name, []).append(info)
    found = [name for name in declared if name in by_name]
    if not found:
        return None  # nothing to read yet: new lists
    large_names = {a.list_name for a in large}
    threshold = reads.engine.settings.threshold
    expected = [
        sizes.get(name) if sizes is not None else (threshold if name in large_names else 0)
        for name in found
    ]
    # Without sizes, 0 stands for a small list, not an empty one: no size check counted.
    checks = None if sizes is not None else 0
    if sizes is not None:
        # An empty audience's list is sized, as read_live sizes it (state/routes.py
        # size_empty_lists): a failure here is read_live's to ask again and report.
        ids = [_standard_id(by_name[name]) for name in found]
        pairs = [(i, size) for i, size in zip(ids, expected, strict=True) if i is not None]
        before_sizes = dict(reads.client.stats.calls)
        reads.prefetch.sized = size_empty_lists(reads.client, pairs, member_reads, _any)
        reads.prefetch.size_calls = reads.client.stats.calls_since(before_sizes)
        checks = expected_size_checks(expected)
        expected = [
            reads.prefetch.sized.get(i, size) if i is not None else size
            for i, size in zip(ids, expected, strict=True)
        ]
    route = choose_route(expected, reads.client.settings, member_reads, checks)
    if reads.prefetch.sized:
        route = with_sized(route, len(reads.prefetch.sized))
    unknown = any(size is None for size in expected)
    if route.name in EXPORT_ROUTES:
        # On sizes partly unknown, read_live chooses again once it knows them.
        if not (unknown and reads.client.settings.member_reads == "auto"):
            return _register_export(reads, route, sum(size or 0 for size in expected))
    elif route.name == "getUsers" and member_reads is None:
        _register_downloads(reads, large, by_name)
    return None


def _standard_id(lists: Sequence[ListInfo]) -> int | None:
    """The id of the one Standard list of these (of one name); None when there is not one
    (read_live reports it)."""
    standard = [x.id for x in lists if x.list_type == "Standard"]
    return standard[0] if len(standard) == 1 else None


def _any(_exc: Exception) -> bool:
    return True


@dataclass(frozen=True)
class _Shared:
    """The master of a group's export a destination takes, and whether it reads it."""

    master: ExportDownload
    reads: bool


def _register_export(reads: _Reads, route: MemberRoute, expected_rows: int) -> _Shared | None:
    """The export of every user, by `route`. The consent guard's channel unsubscribes
    ride on it, whichever export it is (one read of the project, not two:
    state/consent.py). So do the mapped fields' values (state/users_file.py). With
    destinations of the same project, the group's export by this route (read by this
    destination when no destination before it chose the route), else None."""
    fields = tuple(
        dict.fromkeys(("email", "userId", reads.membership, CHANNELS_FIELD, *reads.mapped_fields))
    )
    engine = reads.engine
    export = ExportDownload(
        route,
        fields,
        engine.directory / f"{engine.name('prefetch')}.jsonl",
        expected_rows=expected_rows,
        started=uptime(),
        calls_before=dict(reads.client.stats.calls),
    )
    reads.prefetch.export = export
    share = reads.share
    if share is None:
        return None
    # The destinations before this one in the group have chosen their routes: the first
    # to choose this one reads it, whatever order the threads run in.
    for earlier in share.earlier:
        earlier.registered.wait()
    key = (share.group, route.name)
    with share.exports.lock:
        taken = share.exports.masters.get(key)
        if taken is None:
            master = ExportDownload(
                route,
                fields,
                engine.directory / f"{engine.name('shared')}.jsonl",
                expected_rows=expected_rows,
                started=export.started,
                calls_before=export.calls_before,
            )
            share.exports.masters[key] = (master, reads.destination.name)
            return _Shared(master, True)
    master, reader = taken
    export.fields = master.fields  # the same: the group's mapped fields
    # Read by another destination's client: this one's calls are not the read's, and its
    # time runs from when that read began.
    export.started, export.calls_before = master.started, dict(reads.client.stats.calls)
    export.route = MemberRoute(
        route.name,
        "; ".join(
            x
            for x in (
                route.reason,
                f"taken from the export of destination {reader!r}, which names the same Iterable "
                "project (its calls are counted there)",
            )
            if x
        ),
        route.seconds,
    )
    return _Shared(master, False)


def _take_shared(reads: _Reads, master: ExportDownload, export: ExportDownload) -> None:
    """The group's export, once read, as this destination's own (a link of the master's
    file at export.path), or its failure; nothing once the prefetch is abandoned."""
    try:
        while not master.done.wait(0.1):
            if reads.prefetch.stop.is_set():
                export.error = RuntimeError("the read was abandoned")
                return
        if master.error is not None:
            export.error = master.error
            return
        link_or_copy(master.path, export.path)
        export.lines, export.windows, export.requests = (
            master.lines,
            master.windows,
            master.requests,
        )
    except Exception as exc:  # read_live reports it, or falls back as it would
        export.error = exc
    finally:
        export.done.set()


def _register_downloads(
    reads: _Reads, large: list[Audience], by_name: Mapping[str, list[ListInfo]]
) -> None:
    """getUsers downloads of the large audiences' lists: not in hybrid projects, where
    preferUserId depends on the source."""
    project_type = reads.destination.spec.projectType
    if project_type == "hybrid":
        return
    reads.prefetch.started = uptime()
    reads.prefetch.calls_before = dict(reads.client.stats.calls)
    for audience in large:
        candidates = [x for x in by_name.get(audience.list_name, []) if x.list_type == "Standard"]
        if len(candidates) != 1:
            continue  # a new list, or an ambiguity read_live reports
        path = reads.engine.directory / f"{reads.engine.name('prefetch')}.txt"
        reads.prefetch.downloads[audience.list_name] = Download(
            candidates[0].id, project_type == "userId", path
        )


def _read_export(reads: _Reads, export: ExportDownload) -> None:
    """The export, by its route, into export.path; its failure kept for read_live (which
    reports it, or falls back as it would)."""
    task = reads.progress.task(
        f"reading the project's users ({EXPORT_READS[export.route.name]}, started before "
        "the sources were read)"
    )
    read = {
        "asyncExport": _read_export_job,
        "export": _read_user_export,
        "windowedExport": _read_export_windows,
    }[export.route.name]
    try:
        with heartbeat(task):
            read(reads, export, task.advance)
    except Exception as exc:
        export.error = exc
    finally:
        task.finish()
        export.done.set()


def _read_export_job(
    reads: _Reads, export: ExportDownload, on_lines: Callable[[int], None]
) -> None:
    """One asynchronous export job: the client stops and cancels it once abandoned."""
    export.lines = reads.client.download_export_job(
        list(export.fields), export.path, on_lines, stop=reads.prefetch.stop
    )


def _read_user_export(
    reads: _Reads, export: ExportDownload, on_lines: Callable[[int], None]
) -> None:
    """One synchronous user export (data.json, range=All). Cut off on every try, the
    project is marked so at once (the plan's other reads of it go to date windows, or
    getUsers, rather than try it whole again), not only once the plan comes to this
    destination's read: destinations before it in the plan read meanwhile."""
    try:
        export.lines = reads.client.download_export(
            list(export.fields), export.path, reads.stoppable(on_lines)
        )
    except IterableError as exc:
        cut_off_whole(reads.client, exc)
        raise


def _read_export_windows(
    reads: _Reads, export: ExportDownload, on_lines: Callable[[int], None]
) -> None:
    """The user export in date windows (state/windows.py), merged into one file."""
    report = read_export_windows(
        reads.client,
        list(export.fields),
        export.path,
        reads.destination.spec.projectType,
        export.expected_rows,
        reads.stoppable(on_lines),
        on_note=reads.progress.note,
    )
    export.lines, export.windows, export.requests = report.rows, report.windows, report.requests


def _read_lists(reads: _Reads) -> None:
    """The getUsers downloads, several in flight at once, as read_live reads: Iterable
    limits the starts. As many threads as reads may be in flight (not one per list: a
    thousand large audiences were a thousand threads), each reading the next list not
    yet taken. Plain daemon threads, not a pool: the interpreter waits for a pool's
    threads at exit, and a getUsers waiting for its first byte cannot be stopped.
    Once the prefetch is abandoned they are not waited for either: such a read held
    Ctrl-C, or the error of a plan that failed, for ABANDON_SECONDS (per destination);
    a stream that starts later ends at its first chunk (`stoppable`)."""
    pending = deque(reads.prefetch.downloads.items())
    workers = max(1, min(len(pending), reads.client.settings.list_read_concurrency))
    with heartbeat() as beat:
        readers = [
            threading.Thread(
                target=_read_pending,
                args=(reads, pending, beat),
                name="reconciler-prefetch-list",
                daemon=True,
            )
            for _ in range(workers)
        ]
        for reader in readers:
            start_thread(reader)
        for reader in readers:
            while reader.is_alive() and not reads.prefetch.stop.is_set():
                reader.join(_STOP_LOOK_SECONDS)


# How often the getUsers downloads' thread looks whether the prefetch was abandoned.
_STOP_LOOK_SECONDS = 0.05


def _read_pending(reads: _Reads, pending: deque[tuple[str, Download]], beat: Heartbeat) -> None:
    """Read the lists of `pending` one after the other until none is left (each taken by
    one thread alone: deque.popleft is atomic)."""
    while True:
        try:
            name, download = pending.popleft()
        except IndexError:
            return
        _read_list(reads, name, download, beat)


def _read_list(reads: _Reads, name: str, download: Download, beat: Heartbeat) -> None:
    """One list's getUsers body into download.path; its failure kept for read_live."""
    try:
        if reads.prefetch.stop.is_set():
            return
        task = reads.progress.task(f"reading list {name!r}")
        beat.add(task)
        try:
            reads.client.download_list_members(
                download.list_id,
                download.prefer_user_id,
                download.path,
                reads.stoppable(task.advance),
            )
            download.ok = True
        finally:
            beat.discard(task)
            task.finish()
    except Exception as exc:  # read_live reports it
        download.ok = False
        download.error = exc
    finally:
        download.done.set()
