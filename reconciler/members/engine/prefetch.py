"""getUsers bodies of large lists, downloaded while the sources are being read.

Reading a ten-million-row source and downloading a ten-million-line list each take
seconds (against Iterable, the download far longer), and neither needs the other: the
only thing the download needs from the source is `preferUserId`, which the project type
settles for email- and userID-based projects. Hybrid projects wait for the source.

A prefetch is only ever a head start: whatever it could not do, or did differently from
what the plan turns out to need, read_live does itself.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.iterable import IterableClient, ListInfo
from reconciler.manifest import Audience, Destination
from reconciler.members.engine.workspace import Engine
from reconciler.progress import NULL_PROGRESS, Heartbeat, Progress, heartbeat
from reconciler.state.routes import choose_member_read


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
class Prefetch:
    downloads: dict[str, Download] = field(default_factory=dict)  # by list name
    registered: threading.Event = field(default_factory=threading.Event)

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
) -> Prefetch:
    """Start downloading the lists of the `large` audiences in a daemon thread (a plan
    that fails meanwhile need not wait for it). `declared` names every list the plan
    reads in this destination: when there are enough of them that read_live will read
    members with one user export, nothing is downloaded here."""
    prefetch = Prefetch()
    project_type = destination.spec.projectType
    if project_type == "hybrid" or not large:
        prefetch.registered.set()
        return prefetch
    prefer_user_id = project_type == "userId"

    def register() -> None:
        try:
            all_lists = client.get_lists()
        except Exception:  # read_live asks again and reports it
            return
        by_name: dict[str, list[ListInfo]] = {}
        for info in all_lists:
            by_name.setdefault(info.name, []).append(info)
        # The audiences' sizes are not known yet (their sources are being read): a large
        # one holds at least the engine's threshold, the others are taken as empty, so
        # getUsers is favoured; read_live decides again with the real sizes.
        large_names = {a.list_name for a in large}
        sizes = [
            engine.settings.threshold if name in large_names else 0
            for name in declared
            if name in by_name
        ]
        if choose_member_read(sizes, client.settings).name != "getUsers":
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

    def fetch(name: str, download: Download, beat: Heartbeat) -> None:
        task = progress.task(f"reading list {name!r}")
        beat.add(task)
        try:
            client.download_list_members(
                download.list_id, download.prefer_user_id, download.path, task.advance
            )
            download.ok = True
        except Exception as exc:  # read_live reports it
            download.ok = False
            download.error = exc
        finally:
            beat.discard(task)
            task.finish()
            download.done.set()

    def run() -> None:
        try:
            register()
        finally:
            prefetch.registered.set()
        if not prefetch.downloads:
            return
        # Several in flight at once, as read_live reads: Iterable limits the starts.
        workers = min(len(prefetch.downloads), client.settings.list_read_concurrency)
        with heartbeat() as beat, ThreadPoolExecutor(workers, "reconciler-prefetch") as pool:
            for name, download in prefetch.downloads.items():
                pool.submit(fetch, name, download, beat)

    threading.Thread(target=run, name="reconciler-prefetch", daemon=True).start()
    return prefetch
