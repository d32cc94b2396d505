"""getUsers bodies of large lists, downloaded while the sources are being read.

Reading a ten-million-row source and downloading a ten-million-line list each take
seconds (against Iterable, the download far longer), and neither needs the other: the
only thing the download needs from the source is `preferUserId`, which the project type
settles for email- and userID-based projects. Hybrid projects wait for the source.

When the lists are to be read with one asynchronous export job instead (issue 18: at
Iterable's speeds, minutes in its queue and at its rate), the job is started here too, and
read_live takes its file: the job does not depend on the sources at all, and the route
choice needs only which lists exist (GET /api/lists) and their expected sizes (the
sources' row counts, had without parsing them).

A prefetch is only ever a head start: whatever it could not do, or did differently from
what the plan turns out to need, read_live does itself. A plan that fails or is
interrupted abandons it (`Prefetch.abandon`): its downloads stop, its job is cancelled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.iterable import IterableClient, ListInfo
from reconciler.manifest import Audience, Destination
from reconciler.members.engine.workspace import Engine
from reconciler.progress import NULL_PROGRESS, Heartbeat, Progress, heartbeat
from reconciler.state.routes import MemberRoute, choose_route

# Asked of the export job beside the members: what state/consent.py reads profiles for.
CHANNELS_FIELD = "unsubscribedChannelIds"
# How long abandon() waits for the background reads to end. A read waiting for its first
# byte cannot be woken; its thread is a daemon, and ends when the client is closed.
ABANDON_SECONDS = 10.0


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
    """The destination's asynchronous export job, started before the sources were read:
    its users as JSON lines at `path` once `done`, unless it failed (`error`)."""

    route: MemberRoute
    fields: tuple[str, ...]
    path: Path
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None
    lines: int = 0
    # When the job started, and the client's calls then: the plan's member read counts
    # its time and calls from there.
    started: float = 0.0
    calls_before: dict[str, int] = field(default_factory=dict)


@dataclass
class Prefetch:
    downloads: dict[str, Download] = field(default_factory=dict)  # by list name
    registered: threading.Event = field(default_factory=threading.Event)
    export: ExportDownload | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def take_export(self) -> ExportDownload | None:
        """The export job started for this destination, if one was (read_live then reads
        by it, waiting for it with `wait_export`)."""
        self.registered.wait()
        return self.export

    def wait_export(
        self, export: ExportDownload, on_lines: Callable[[int], None] | None = None
    ) -> Path:
        """The job's file once it is complete (its lines then told to `on_lines`); its
        failure raised as it was."""
        export.done.wait()
        if export.error is not None:
            raise export.error
        if on_lines is not None:
            on_lines(export.lines)
        return export.path

    def abandon(self) -> None:
        """Stop what is still being read in the background, and wait for it to end: for a
        plan that failed or was interrupted, and for reads the plan did not take. The job
        is cancelled (it holds one of Iterable's 4 places); files not taken are removed."""
        self.stop.set()
        for thread in self.threads:
            thread.join(ABANDON_SECONDS)
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
) -> Prefetch:
    """Start reading in a daemon thread (a plan that fails meanwhile abandons it): the
    route is chosen as read_live chooses it, from the lists that exist among `declared`
    (every list the plan reads in this destination) and `sizes`, their audiences' expected
    sizes by list name (None: unknown). An asynchronous export job is started; for
    getUsers, the lists of the `large` audiences are downloaded. Without `sizes`, a large
    audience is taken to hold the engine's threshold and the others none (getUsers is
    favoured; read_live decides again with the real sizes). `member_reads` is read_live's
    ("export": a saved plan's stale check, one read for every list)."""
    prefetch = Prefetch()
    project_type = destination.spec.projectType
    prefer_user_id = project_type == "userId"
    membership = "emailListIds" if project_type == "email" else "userListIds"

    def register() -> None:
        try:
            all_lists = client.get_lists()
        except Exception:  # read_live asks again and reports it
            return
        by_name: dict[str, list[ListInfo]] = {}
        for info in all_lists:
            by_name.setdefault(info.name, []).append(info)
        found = [name for name in declared if name in by_name]
        if not found:
            return  # nothing to read yet: new lists
        large_names = {a.list_name for a in large}
        expected = [
            sizes.get(name)
            if sizes is not None
            else (engine.settings.threshold if name in large_names else 0)
            for name in found
        ]
        route = choose_route(expected, client.settings, member_reads)
        unknown = any(size is None for size in expected)
        if route.name == "asyncExport" and not (unknown and client.settings.member_reads == "auto"):
            path = engine.directory / f"{engine.name('prefetch')}.jsonl"
            # The consent guard's channel unsubscribes ride on the same job (one read of
            # the project, not two: state/consent.py).
            fields = ("email", "userId", membership, CHANNELS_FIELD)
            prefetch.export = ExportDownload(
                route, fields, path, started=time.monotonic(), calls_before=dict(client.stats.calls)
            )
            return
        if route.name != "getUsers" or project_type == "hybrid" or member_reads is not None:
            return
        for audience in large:
            candidates = [
                x for x in by_name.get(audience.list_name, []) if x.list_type == "Standard"
            ]
            if len(candidates) != 1:
                continue  # a new list, or an ambiguity read_live reports
            path = engine.directory / f"{engine.name('prefetch')}.txt"
            prefetch.downloads[audience.list_name] = Download(
                candidates[0].id, prefer_user_id, path
            )

    def stoppable(advance: Callable[[int], None]) -> Callable[[int], None]:
        """Progress that ends the read once the prefetch is abandoned."""

        def on_lines(n: int) -> None:
            if prefetch.stop.is_set():
                raise RuntimeError("the read was abandoned")
            advance(n)

        return on_lines

    def fetch(name: str, download: Download, beat: Heartbeat, slots: threading.Semaphore) -> None:
        try:
            with slots:
                if prefetch.stop.is_set():
                    return
                task = progress.task(f"reading list {name!r}")
                beat.add(task)
                try:
                    client.download_list_members(
                        download.list_id,
                        download.prefer_user_id,
                        download.path,
                        stoppable(task.advance),
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

    def export_job(export: ExportDownload) -> None:
        task = progress.task(
            "reading the project's users (one asynchronous export job, started before the "
            "sources were read)"
        )
        try:
            with heartbeat(task):
                export.lines = client.download_export_job(
                    list(export.fields), export.path, task.advance, stop=prefetch.stop
                )
        except Exception as exc:  # read_live reports it, or falls back as it would
            export.error = exc
        finally:
            task.finish()
            export.done.set()

    def run() -> None:
        try:
            register()
        finally:
            prefetch.registered.set()
        if prefetch.export is not None:
            export_job(prefetch.export)
            return
        if not prefetch.downloads or prefetch.stop.is_set():
            return
        # Several in flight at once, as read_live reads: Iterable limits the starts. Plain
        # daemon threads, not a pool: the interpreter waits for a pool's threads at exit,
        # and a getUsers waiting for its first byte cannot be stopped.
        slots = threading.Semaphore(client.settings.list_read_concurrency)
        with heartbeat() as beat:
            readers = [
                threading.Thread(
                    target=fetch,
                    args=(name, download, beat, slots),
                    name="reconciler-prefetch-list",
                    daemon=True,
                )
                for name, download in prefetch.downloads.items()
            ]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()

    thread = threading.Thread(target=run, name="reconciler-prefetch", daemon=True)
    prefetch.threads.append(thread)
    thread.start()
    return prefetch
