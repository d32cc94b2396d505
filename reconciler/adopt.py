"""Adopt lists that already exist in Iterable (`reconciler import`).

For each Standard list of a destination, write an Audience manifest and a CSV of its
current members beside it, so a team can put an existing project under review without
changing anyone's membership: a plan right after the import shows no changes.

The members are read the way a plan will read them back. getUsers reports each member by
one identifier, and an audience whose members have userIds is read with preferUserId
(see `DesiredList.prefer_user_id`), so the CSV holds exactly those identifiers: the
userId where the profile has one (hybrid and userID-based projects), otherwise the email.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import textwrap
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import duckdb
from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from reconciler.connect import destination_project, open_client
from reconciler.errors import ConfigError, IterableError, LiveStateError, ReconcilerError
from reconciler.iterable import ClientSettings, IterableClient, ListInfo
from reconciler.iterable.client import member_line
from reconciler.layout import one_line, unseen
from reconciler.leftovers import NO_ROOM, sweep_earlier_import_directories
from reconciler.manifest import API_VERSION, Audience, Destination, Manifests
from reconciler.manifest.model import NAME_PATTERN, AudienceSpec
from reconciler.manifest.yaml_readings import read_as_other_than_text
from reconciler.members.engine.rows import write_table
from reconciler.members.engine.workspace import duckdb_no_room, unquoted_reason
from reconciler.members.identity import (
    InvalidIdentity,
    ProjectType,
    looks_like_email,
    validate_user_id,
)
from reconciler.members.model import Engine
from reconciler.open_flags import BINARY
from reconciler.owner_only import chmod_open_file
from reconciler.placeholders import placeholders_in, user_ids_of
from reconciler.plan.former import FormerLists
from reconciler.plan.ownership import (
    audience_marks,
    marked_after,
    marked_audience,
    unmarked,
)
from reconciler.progress import NULL_PROGRESS, Heartbeat, Progress, heartbeat
from reconciler.render.masking import mask_emails
from reconciler.sources.registry import source_for
from reconciler.state.live import (
    LiveDestination,
    LiveList,
    export_type_hint,
    fails_alone,
    names_no_email_hint,
)
from reconciler.state.routes import MemberRoute, choose_member_read
from reconciler.threads import ReadGroup, reading_pool, start_thread
from reconciler.words import quantity

_VALID_NAME = re.compile(NAME_PATTERN)
_SLUG_JUNK = re.compile(r"[^a-z0-9._-]+")
_MAX_NAME = 200
# What a manifest accepts as spec.listName, checked as the loader checks it. The cast: the
# field's annotation is typed `type[Any] | None` by pydantic 2.13 and `TypeForm[Any] | None`
# by 2.14, which mypy will not pass to TypeAdapter (a fresh `pip install -e '.[test]'`
# takes the newest pydantic, and the README's test command then failed in mypy).
_LIST_NAME: TypeAdapter[str | None] = TypeAdapter(
    cast(Any, AudienceSpec.model_fields["listName"].annotation)
)


@dataclass(frozen=True)
class ImportedList:
    """A list written out as an audience."""

    list_id: int
    list_name: str
    audience: str
    manifest: Path
    members_file: Path
    members: int
    # Members whose userId a plan takes for an export's mistake (a missing value such as
    # 'null', a spreadsheet's error, a number in exponent form): it skips their rows.
    refused: int = 0


@dataclass(frozen=True)
class SkippedList:
    """A list not imported, and why (written for the user)."""

    list_id: int
    list_name: str
    reason: str
    unread: bool = False  # its members could not be read with confidence: an error (exit 1)


@dataclass
class ImportResult:
    destination: str
    imported: list[ImportedList] = field(default_factory=list)
    skipped: list[SkippedList] = field(default_factory=list)
    # How the members were read (route, calls, time), as a plan says its read.
    member_read: str | None = None
    # What else was read (placeholder emails' userIds), as a plan's "also read" says it.
    other_read: str | None = None


@dataclass(frozen=True)
class _Target:
    info: ListInfo
    audience: str
    manifest: Path
    members_file: Path


def destination_named(manifests: Manifests, name: str) -> Destination:
    try:
        return manifests.destinations[name]
    except KeyError:
        known = ", ".join(manifests.destinations) or "(none)"
        raise ConfigError(
            f"--destination names unknown destination {name!r}; destinations are: {known}"
        ) from None


def import_lists(
    manifests: Manifests,
    destination: str,
    out_dir: Path,
    *,
    state_dir: Path,
    lists: Collection[str] | None = None,
    force: bool = False,
    now: datetime | None = None,
    progress: Progress = NULL_PROGRESS,
    on_notice: Callable[[str], None] | None = None,
) -> ImportResult:
    """Write an Audience manifest and a member CSV into `out_dir` for each Standard list of
    `destination` that no manifest manages yet (only those named in `lists`, if given).

    Refuses, writing nothing, when any file it would write exists, unless `force`.
    """
    dest = destination_named(manifests, destination)
    with open_client(dest, ClientSettings.from_env(), state_dir) as client:
        if on_notice is not None:
            client.on_notice(on_notice)  # rate-limit waits (12 s per list) and retries
        try:
            return _import(
                manifests, dest, client, out_dir, lists, force, now or datetime.now(UTC), progress
            )
        except (IterableError, LiveStateError) as exc:
            # Which destination's key or host to check, as plan and status say it.
            raise exc.in_destination(dest.name) from None


def _import(
    manifests: Manifests,
    dest: Destination,
    client: IterableClient,
    out_dir: Path,
    only: Collection[str] | None,
    force: bool,
    now: datetime,
    progress: Progress,
) -> ImportResult:
    result = ImportResult(dest.name)
    all_lists = client.get_lists()
    candidates = _candidates(manifests, dest, client.project_id, all_lists, only, result)
    targets = _name_targets(manifests, candidates, out_dir)
    _remove_partials(targets)
    sweep_earlier_import_directories(out_dir)
    if not force:
        existing = [
            str(path)
            for target in targets
            for path in (target.manifest, target.members_file)
            if path.exists()
        ]
        if existing:
            shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
            raise ReconcilerError(
                f"import would overwrite {quantity(len(existing), 'existing file')}: "
                f"{shown}; nothing "
                "was written. Choose another --out directory or pass --force"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = _schema_reference(manifests, out_dir)
    project_type = dest.spec.projectType
    with Engine.from_env() as engine:
        try:
            read = read_members(engine, client, [t.info for t in targets], project_type, progress)
        except Exception as exc:
            # The reads write only in the temporary directory: a full one is said as such.
            said = engine.no_room(exc)
            if said is None:
                raise
            raise said from None
        result.member_read = read.describe()
        type_hint = _project_type_hint(dest, read)
        if project_type == "userId":
            _refuse_emails_as_user_ids(client, dest, read.files)
        # Members an email-based project knows by a placeholder email get their userId
        # beside it, so a plan still finds them once the app gives them a real address.
        user_ids: Mapping[str, str] = {}
        if project_type == "email":
            _refuse_names_no_email(dest, read.files)
            downloads = [p for p in read.files.values() if isinstance(p, Path)]
            user_ids, result.other_read = user_ids_of(client, placeholders_in(downloads))
        for target in targets:
            outcome = read.files[target.info.id]
            if isinstance(outcome, Exception):
                # Named, and the other lists go ahead; the run exits 1. Nothing is written
                # for it (an existing file, under --force, is left as it was). Said on
                # stderr, a CI log (import has no --show-members): Iterable's msg in the
                # failure may quote a member back.
                if isinstance(outcome, EmptyReadError):
                    why = str(outcome) + type_hint
                elif isinstance(outcome, ProjectTypeError):
                    why = str(outcome)
                elif _deleted_since_listed(outcome):
                    why = (
                        "Iterable answered that it has no such list (invalidListId): deleted "
                        "since import read the list index"
                    )
                else:
                    why = f"its members could not be read ({mask_emails(str(outcome))})"
                result.skipped.append(
                    SkippedList(
                        target.info.id,
                        target.info.name,
                        f"{why}; nothing was written for it: run import again",
                        unread=True,
                    )
                )
                continue
            count, refused = _write_list(
                engine, target, project_type, outcome, dest.name, now, schema, user_ids
            )
            result.imported.append(
                ImportedList(
                    target.info.id,
                    target.info.name,
                    target.audience,
                    target.manifest,
                    target.members_file,
                    count,
                    refused,
                )
            )
    return result


def _write_list(
    engine: Engine,
    target: _Target,
    project_type: ProjectType,
    download: Path,
    destination: str,
    now: datetime,
    schema: str,
    user_ids: Mapping[str, str],
) -> tuple[int, int]:
    """The list's member CSV, then its manifest; returns its members, and how many of them
    have a userId a plan refuses (_import_members). Stopped between the
    two (Ctrl-C, a full disk), the CSV this run created is removed: a CSV without its
    manifest would make the next import refuse to overwrite it."""
    created = not target.members_file.exists()
    try:
        count, refused = _import_members(engine, target, project_type, download, user_ids)
        _write_manifest(target, destination, project_type, count, now, schema)
    except BaseException as exc:
        if created:
            target.members_file.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritten(target, exc) from None
        raise
    return count, refused


def _unwritten(target: _Target, exc: OSError) -> ReconcilerError:
    """What to say when a list's CSV or manifest could not be written: a write that found
    no room (a full disk, a quota) names the directory, as one in the temporary directory
    is named (leftovers.no_room)."""
    files = f"({target.manifest.name}, {target.members_file.name})"
    why = exc.strerror or str(exc)
    if exc.errno in NO_ROOM:
        return ReconcilerError(
            f"no room to write the files of list {target.info.id} {target.info.name!r} in "
            f"{target.members_file.parent} {files} ({why}): free some space there, or "
            "choose another --out directory; neither was left half-written"
        )
    return ReconcilerError(
        f"could not write the files of list {target.info.id} {target.info.name!r} in "
        f"{target.members_file.parent} {files}: {why}; neither was left half-written"
    )


class EmptyReadError(LiveStateError):
    """A list's member read answered no members, yet Iterable counts members on it."""


@dataclass
class MemberFiles:
    """Each list's members as getUsers names them, one per line in a file of the
    workspace (or why they could not be read), and how they were read: `live` says the
    route, its calls and its time as a plan says its own read."""

    files: dict[int, Path | Exception]
    live: LiveDestination

    def describe(self) -> str | None:
        return self.live.describe_reads()


def read_members(
    engine: Engine,
    client: IterableClient,
    lists: list[ListInfo],
    project_type: ProjectType,
    progress: Progress = NULL_PROGRESS,
) -> MemberFiles:
    """The members of `lists`, by the route a plan would take (state/routes.py
    choose_member_read): getUsers for several at once, one user export, or one
    asynchronous export job with its files fetched in parallel. The lists are in no
    manifest yet, so their sizes are asked of Iterable (lists/{id}/size) when there are no
    more of them than a minute's getUsers budget: a minute of that budget at most, against
    hours by getUsers for a list of millions that an export job reads in minutes. The
    sizes share that budget with the reads, so with more lists than half of it the reads
    start first and only those still running after the minute are sized
    (_read_by_get_users_first). With more lists than the budget, the model counts calls
    (one export). An export that cannot be read is
    replaced by getUsers, as in a plan. A list whose read fails after its retries, or that
    reads empty while Iterable counts members on it, is given its failure; the others
    are read all the same."""
    started, before = time.monotonic(), dict(client.stats.calls)
    files: dict[int, Path | Exception] = {}
    member_reads = 0
    if _reads_first(client.settings, len(lists)):
        files, sizes, route, member_reads = _read_by_get_users_first(
            engine, client, lists, project_type, progress
        )
    else:
        sizes = _list_sizes(client, lists)
        route = choose_member_read([sizes.get(info.id) for info in lists], client.settings)
    rest = [info for info in lists if info.id not in files]  # the lists still to read
    if route.name in ("export", "asyncExport", "windowedExport") and rest:
        try:
            files |= _members_by_export(engine, client, rest, project_type, progress, route.name)
            member_reads += 1
            rest = []
        except Exception as exc:
            if not fails_alone(exc):
                raise
            # The export is one read for every list: when it cannot be read (cut off each
            # time, a 5xx, a job truncated or failed), the lists are read one by one.
            progress.note(
                # stderr: Iterable's msg may quote a member.
                f"the user export could not be read ({mask_emails(str(exc))}); reading the "
                f"{quantity(len(rest), 'list')} with getUsers instead"
            )
            # Printed on stdout (how the members were read), as masked.
            route = MemberRoute(
                "getUsers", f"the user export could not be read ({mask_emails(str(exc))})"
            )
    if rest:
        files |= _members_by_get_users(engine, client, rest, project_type, sizes, progress)
        member_reads += len(rest)
    live = LiveDestination([], {}, member_reads, route.name, route=route)
    for info in lists:
        outcome = files[info.id]
        if isinstance(outcome, Path) and _is_empty(outcome):
            outcome = files[info.id] = _check_empty_read(client, info, outcome, sizes, live)
        if isinstance(outcome, Exception):
            live.unproven[info.name] = str(outcome)
        else:
            live.managed[info.name] = LiveList(info, set())
    live.seconds = time.monotonic() - started
    live.calls = client.stats.calls_since(before)
    live.calls.pop("GET /api/lists", None)
    return MemberFiles(files, live)


def _project_type_hint(dest: Destination, read: MemberFiles) -> str:
    """An export reads each list's members from the membership field of the declared
    projectType (emailListIds or userListIds, _members_by_export): declared wrong, every
    list reads empty while Iterable counts members, and "run import again" never helps.
    Where the export found no member on any list and some list counts members, the likely
    cause (as plan names it), to add to those lists' reasons; else ""."""
    route = read.live.route
    if route is None or route.name not in ("export", "asyncExport", "windowedExport"):
        return ""
    outcomes = read.files.values()
    if not any(isinstance(outcome, EmptyReadError) for outcome in outcomes):
        return ""
    if any(isinstance(outcome, Path) and not _is_empty(outcome) for outcome in outcomes):
        return ""  # the declared field holds memberships: the type is not what is wrong
    return f"; {export_type_hint(dest, dest.spec.projectType)}"


def _reads_first(settings: ClientSettings, lists: int) -> bool:
    """Whether asking every list's size before reading would hold reads back: sizes and
    getUsers share one budget (5 a minute: shared/iterable-api.md, the emulator's
    Limits.list_reads), so with more lists than half of it the last reads would wait a
    minute for the sizes' starts to age out. Then the reads start first instead."""
    budget = settings.list_reads_per_minute
    return settings.member_reads == "auto" and budget > 0 and lists <= budget < 2 * lists


def _read_by_get_users_first(
    engine: Engine,
    client: IterableClient,
    lists: list[ListInfo],
    project_type: ProjectType,
    progress: Progress,
) -> tuple[dict[int, Path | Exception], dict[int, int], MemberRoute, int]:
    """getUsers for every list at once, no size asked first (_reads_first). A read still
    running once the budget's minute has passed (so its start no longer counts) may be a
    list of millions: those reads, and only those, are sized, and the route chosen for
    them; when it is an export, they are stopped and left to read_members (not in the
    files returned). Returns the files (or failures) read, the sizes asked, the route and
    the getUsers calls made. Readers are daemon threads, as the plan's prefetch's: a read
    stopped while it waits for its first byte cannot be woken, and nothing waits for it."""
    settings = client.settings
    prefer_user_id = project_type != "email"  # as _members_by_get_users reads
    stop: set[int] = set()  # lists whose reads are abandoned for an export
    outcomes: dict[int, Path | Exception] = {}
    done = {info.id: threading.Event() for info in lists}

    def read(info: ListInfo, beat: Heartbeat) -> None:
        path = engine.directory / f"{engine.name('import')}.txt"
        task = progress.task(f"reading list {info.name!r}")
        beat.add(task)

        def on_lines(n: int) -> None:
            if info.id in stop:
                raise LiveStateError("the read was abandoned for an export")
            task.advance(n)

        try:
            client.download_list_members(info.id, prefer_user_id, path, on_lines)
            outcomes[info.id] = path
        except Exception as exc:
            outcomes[info.id] = exc
        finally:
            beat.discard(task)
            task.finish()
            if info.id in stop:
                path.unlink(missing_ok=True)
            done[info.id].set()

    route = MemberRoute(
        "getUsers",
        "no list's size asked: every read ended within the minute the sizes would have "
        "held reads back (sizes and getUsers share 5 a minute)",
    )
    sizes: dict[int, int] = {}
    with heartbeat() as beat:
        for info in lists:
            name = "reconciler-import-read"
            start_thread(threading.Thread(target=read, args=(info, beat), name=name, daemon=True))
        deadline = time.monotonic() + 60.0 / settings.time_scale
        for info in lists:
            done[info.id].wait(max(0.0, deadline - time.monotonic()))
        running = [info for info in lists if not done[info.id].is_set()]
        if running:
            sizes = _list_sizes(client, running)
            chosen = choose_member_read([sizes.get(info.id) for info in running], settings)
            reason = (
                f"{len(running)} of {len(lists)} lists still reading by getUsers after a "
                f"minute were sized: {chosen.reason or 'getUsers'}"
            )
            route = MemberRoute(chosen.name, reason, chosen.seconds)
            if chosen.name != "getUsers":
                stop.update(info.id for info in running if not done[info.id].is_set())
        for info in lists:
            if info.id not in stop:
                done[info.id].wait()
    files = {list_id: outcome for list_id, outcome in outcomes.items() if list_id not in stop}
    for outcome in files.values():
        if isinstance(outcome, Exception) and not _fails_alone(outcome):
            raise outcome
    return files, sizes, route, len(lists)


def _list_sizes(client: IterableClient, lists: list[ListInfo]) -> dict[int, int]:
    """Members Iterable counts on each list, asked when the answer can choose the read
    route (state/routes.py) for at most a minute's getUsers budget; none otherwise. A size
    that cannot be read is left unknown (the model then counts calls)."""
    settings = client.settings
    budget = settings.list_reads_per_minute
    if settings.member_reads != "auto" or not lists or (budget > 0 and len(lists) > budget):
        return {}

    def size(info: ListInfo) -> int | None:
        try:
            return client.list_size(info.id)
        except Exception as exc:
            if not _fails_alone(exc):
                raise
            return None  # its read will say what is wrong with the list

    workers = max(1, min(len(lists), settings.list_read_concurrency))
    with reading_pool(workers, "reconciler-import-size") as pool:
        answers = list(pool.map(size, lists))
    return {info.id: n for info, n in zip(lists, answers, strict=True) if n is not None}


def _members_by_get_users(
    engine: Engine,
    client: IterableClient,
    lists: list[ListInfo],
    project_type: ProjectType,
    sizes: dict[int, int],
    progress: Progress,
) -> dict[int, Path | Exception]:
    """getUsers for every list, several in flight, the largest known first, each with
    its progress (the list's size as its total, when known)."""
    # Email-based projects answer with emails whatever preferUserId says.
    prefer_user_id = project_type != "email"
    paths = {info.id: engine.directory / f"{engine.name('import')}.txt" for info in lists}
    order = sorted(lists, key=lambda info: -sizes.get(info.id, 0))

    # A read failing in a way that ends the import stops the others (ReadGroup).
    group = ReadGroup()

    def read(info: ListInfo, beat: Heartbeat) -> Path:
        group.check()
        task = progress.task(f"reading list {info.name!r}", total=sizes.get(info.id))
        beat.add(task)
        try:
            client.download_list_members(
                info.id, prefer_user_id, paths[info.id], group.watching(task.advance)
            )
        finally:
            beat.discard(task)
            task.finish()
        return paths[info.id]

    workers = max(1, min(len(lists), client.settings.list_read_concurrency))
    # Ctrl-C does not wait for the reads in flight (one getUsers can stream for hours).
    with heartbeat() as beat, reading_pool(workers, "reconciler-import") as pool:
        futures = {info.id: pool.submit(read, info, beat) for info in order}
        return group.gather(futures, lambda exc: not _fails_alone(exc))


def _fails_alone(exc: Exception) -> bool:
    """A list's read failing so that the other lists can still be read (state/live.py
    fails_alone), or answered 400 invalidListId: the list was deleted after the list index
    was read (a long import, someone at Iterable's web app), which says nothing of the
    others. Any other 400 is a request every list's read makes, and ends the import."""
    return fails_alone(exc) or _deleted_since_listed(exc)


def _deleted_since_listed(exc: Exception) -> bool:
    return isinstance(exc, IterableError) and exc.status == 400 and "invalidListId" in str(exc)


class ProjectTypeError(LiveStateError):
    """A list's read named a member as no project of the declared projectType does (by
    something that is no email, to one declaring email; by an email no profile has as its
    userId, to one declaring userId)."""


def _refuse_names_no_email(dest: Destination, files: dict[int, Path | Exception]) -> None:
    """An email-based project's getUsers names every member by email: a userId there says
    the project is another type, and the CSV would hold it as an email (which a plan
    refuses). Each list read so is given the failure, its file removed."""
    for list_id, outcome in files.items():
        if isinstance(outcome, Path) and _names_no_email(outcome):
            outcome.unlink(missing_ok=True)
            files[list_id] = ProjectTypeError(names_no_email_hint(dest))


def _refuse_emails_as_user_ids(
    client: IterableClient, dest: Destination, files: dict[int, Path | Exception]
) -> None:
    """A userID-based project's getUsers (with preferUserId) names every member by its
    userId; a hybrid or email-based one names a member without a userId by its email,
    which the CSV would hold as a userId. A userId may be shaped like an email, so the
    first such text is read by userId (one read, only when a list holds one): no profile
    having it says the project is another type, and each list holding such a text is
    given the failure, its file removed."""
    holding = {
        list_id: found
        for list_id, outcome in files.items()
        if isinstance(outcome, Path) and (found := _first_email(outcome)) is not None
    }
    if not holding or client.get_user(user_id=next(iter(holding.values()))) is not None:
        return
    why = (
        "Iterable's member read named a member by an email that no profile has as its "
        "userId, which a userID-based project never does; destination "
        f"{dest.name!r} declares projectType userId, and Iterable's answers look like a "
        "hybrid or email-based project: check projectType in "
        f"{dest.field_location('projectType')}"
    )
    for list_id in holding:
        outcome = files[list_id]
        assert isinstance(outcome, Path)
        outcome.unlink(missing_ok=True)
        files[list_id] = ProjectTypeError(why)


def _first_email(download: Path) -> str | None:
    """The first member of the read shaped like an email, streamed (None: none is)."""
    with download.open(encoding="utf-8", errors="replace", newline="") as handle:
        for line in handle:
            member = member_line(line.removesuffix("\n"))
            if looks_like_email(member):
                return member
    return None


def _names_no_email(download: Path) -> bool:
    """Whether a line of the read names a member by something that is no email (no
    `@`), streamed: an email-based project's getUsers names every member by email."""
    with download.open("rb") as handle:
        return any(b"@" not in line for line in handle if line.strip())


def _is_empty(download: Path) -> bool:
    """No member in the file (a blank line is none): only a short file can be empty."""
    if download.stat().st_size > 4096:
        return False
    with download.open(encoding="utf-8", errors="replace") as handle:
        return not any(line.strip() for line in handle)


def _check_empty_read(
    client: IterableClient,
    info: ListInfo,
    download: Path,
    sizes: dict[int, int],
    live: LiveDestination,
) -> Path | Exception:
    """An empty answer is not an empty list (issue 16, point 8): adopting it would declare
    the list empty, and the next apply would empty it. The size asked before the read
    serves; else it is asked now."""
    size = sizes.get(info.id)
    if size is None:
        live.size_reads += 1
        try:
            size = client.list_size(info.id)
        except Exception as exc:
            if not _fails_alone(exc):
                raise
            return LiveStateError(
                f"its read answered no members and its size could not be read ({exc})"
            )
    if size > 0:
        download.unlink(missing_ok=True)
        return EmptyReadError(
            f"Iterable's member read answered no members, yet Iterable counts {size:,} on the list"
        )
    return download


def _members_by_export(
    engine: Engine,
    client: IterableClient,
    lists: list[ListInfo],
    project_type: ProjectType,
    progress: Progress,
    route: str,
) -> dict[int, Path | Exception]:
    """One user export (`asyncExport`: one export job, its files fetched in parallel;
    `windowedExport`: the user export in date windows), cut into a file per list naming
    members as getUsers with preferUserId does (the userId where the profile has one, else
    the email). Raises when the export cannot be read: no list's file is written from part
    of it."""
    from reconciler.members.engine.export_table import (
        EXPORT_BY_LIST_FROM,
        export_by_list,
        read_export_table,
    )
    from reconciler.state.windows import read_export_windows

    def windows(only: Sequence[str], path: Path, on_lines: Callable[[int], None] | None) -> int:
        # The project's size is unknown here: one window to start with, split where a
        # stream dies.
        return read_export_windows(client, only, path, project_type, 0, on_lines).rows

    asynchronous = route == "asyncExport"
    how = {
        "asyncExport": "one asynchronous export job",
        "windowedExport": "the user export in date windows",
    }.get(route, "one user export")
    membership = "emailListIds" if project_type == "email" else "userListIds"
    # The export holds the whole project, whose size is unknown: a count without a total.
    task = progress.task(
        f"reading members of {len(lists)} list{'s' if len(lists) != 1 else ''} ({how})",
        unit="users",
    )
    try:
        with heartbeat(task):
            export = read_export_table(
                engine,
                client,
                membership,
                [info.id for info in lists],
                task.advance,
                asynchronous,
                download=windows if route == "windowedExport" else None,
            )
    finally:
        task.finish()
    name = "email" if project_type == "email" else "coalesce(user_id, email)"
    # From many lists the export is sorted by list once and each list reads its own rows,
    # as a plan reads them (state/live.py): a scan of the whole export per list grew with
    # the lists times the users.
    by_list = None
    if len(lists) >= EXPORT_BY_LIST_FROM:
        by_list = export_by_list(engine, export, [info.id for info in lists])
    files: dict[int, Path | Exception] = {}
    for info in lists:
        path = engine.directory / f"{engine.name('import')}.txt"
        rows_of = (
            f"{by_list} WHERE list_id = {int(info.id)}"
            if by_list is not None
            else f"{export} WHERE list_contains(lists, {int(info.id)})"
        )
        cursor = engine.connection.execute(f"SELECT {name} FROM {rows_of} AND {name} IS NOT NULL")
        with path.open("w", encoding="utf-8", newline="") as handle:
            while rows := cursor.fetchmany(100_000):
                handle.writelines(f"{identifier}\n" for (identifier,) in rows)
        files[info.id] = path
    for table in (by_list, export):
        if table is not None:
            engine.connection.execute(f"DROP TABLE {table}")
    return files


def _import_members(
    engine: Engine,
    target: _Target,
    project_type: ProjectType,
    download: Path,
    user_ids: Mapping[str, str],
) -> tuple[int, int]:
    """The list's members (read to `download`) into its CSV, sorted and each once; returns
    how many, and how many of them are written with a userId a plan refuses as it refuses
    a source's (identity.validate_user_id: 'null', '#N/A', '1.2E+15'), which Iterable
    holds all the same (an app that sent the text null): a plan skips their rows. A list
    of millions is sorted and written by DuckDB (as a plan of that size reads it back)
    rather than held in Python."""
    try:
        with download.open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        if engine.use_duckdb(lines):
            return _write_members_duckdb(engine, download, target, project_type, user_ids)
        # Undecodable bytes replaced, as a plan of this size reads them (httpx's iter_text).
        with download.open(encoding="utf-8", errors="replace", newline="") as handle:
            # Exactly as Iterable sent them, as a plan compares them (a userId may begin
            # with a space).
            members = sorted(
                {member_line(line.removesuffix("\n")) for line in handle if line.strip()}
            )
    finally:
        download.unlink(missing_ok=True)
    _write_members(target.members_file, members, project_type, user_ids)
    refused = sum(
        1
        for member in members
        if _user_id_column(member, project_type) and _refused_user_id(member)
    )
    return len(members), refused


def _user_id_column(identifier: str, project_type: ProjectType) -> bool:
    """Whether `identifier` is written in the userId column (_write_members)."""
    return project_type == "userId" or (project_type == "hybrid" and not _is_email(identifier))


def _refused_user_id(user_id: str) -> bool:
    try:
        validate_user_id(user_id)
    except InvalidIdentity:
        return True
    return False


def _write_members_duckdb(
    engine: Engine,
    download: Path,
    target: _Target,
    project_type: ProjectType,
    user_ids: Mapping[str, str],
) -> tuple[int, int]:
    """_write_members for a list read to a file: the same columns, rows and order; and
    the members written with a userId a plan refuses, as _import_members counts them."""
    from reconciler.members.engine.desired_table import user_id_rules
    from reconciler.members.model import LOOKS_LIKE_EMAIL, load_live_file, lower_sql

    what = f"getUsers for list {target.info.id} {target.info.name!r}"
    live = engine.name("imported")
    load_live_file(engine, download, live, what)
    columns = _columns(project_type)
    is_email = "false"
    if project_type == "hybrid":
        # As _write_members decides (_is_email).
        is_email = f"(regexp_full_match(id, '{LOOKS_LIKE_EMAIL}') AND id = {lower_sql('id')})"
        select = (
            f'CASE WHEN {is_email} THEN id END AS "email", '
            f'CASE WHEN NOT {is_email} THEN id END AS "userId"'
        )
    else:
        select = f'id AS "{columns[0]}"'
    source = f"(SELECT DISTINCT id FROM {live})"
    pairs = _user_id_pairs(engine, live, user_ids)
    if pairs is not None:
        # As _write_members writes an email-based project's placeholder members.
        select = 'id AS "email", p.user_id AS "userId"'
        source = f"(SELECT DISTINCT id FROM {live}) LEFT JOIN {pairs} p ON p.email = id"
    # DuckDB creates the file with the process umask: it writes into a directory only the
    # owner can enter, beside the target, and the file is made owner-only before it moves.
    # Named for the target, so a run again removes what a killed run left (_remove_partials).
    private_dir = _partial(target.members_file, ".d")
    shutil.rmtree(private_dir, ignore_errors=True)
    private_dir.mkdir(mode=0o700)
    written = private_dir / target.members_file.name
    path = str(written).replace("'", "''")
    try:
        row = engine.connection.execute(
            f"COPY (SELECT {select} FROM {source} ORDER BY id) "
            f"TO '{path}' (FORMAT csv, HEADER true)"
        ).fetchone()  # COPY answers with the number of rows it wrote
    except duckdb.Error as exc:
        full = duckdb_no_room(exc)
        if full is not None and str(private_dir) in str(exc):
            # The CSV itself found no room: said by _write_list, naming the --out directory.
            raise full from None
        # Else a spill of the sort into the temporary directory, or Iterable's lines.
        said = engine.no_room(exc)
        if said is not None:
            raise said from None
        raise LiveStateError(
            f"{what} answered lines reconciler cannot read: {unquoted_reason(exc)}"
        ) from None
    else:
        written.chmod(0o600)
        os.replace(written, target.members_file)
        refused = 0
        if project_type != "email":
            rules = " OR ".join(f"({rule})" for rule, _ in user_id_rules("id"))
            counted = engine.connection.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT id FROM {live}) "
                f"WHERE NOT {is_email} AND ({rules})"
            ).fetchone()
            refused = int(counted[0]) if counted else 0
    finally:
        engine.connection.execute(f"DROP VIEW {live}")
        if pairs is not None:
            engine.connection.execute(f"DROP TABLE {pairs}")
        shutil.rmtree(private_dir, ignore_errors=True)
    return (int(row[0]) if row else 0), refused


def _user_id_pairs(engine: Engine, live: str, user_ids: Mapping[str, str]) -> str | None:
    """A table of (email, user_id) for the list's placeholder members that have a userId,
    or None when it has none (its CSV then has the email column alone)."""
    if not user_ids:
        return None
    pairs = engine.name("placeholders")
    write_table(engine, pairs, sorted(user_ids.items()), ("email", "user_id"))
    found = engine.connection.execute(
        f"SELECT count(*) FROM {pairs} WHERE email IN (SELECT id FROM {live})"
    ).fetchone()
    if found and found[0]:
        return pairs
    engine.connection.execute(f"DROP TABLE {pairs}")
    return None


def _unknown_lists(unknown: list[str], all_lists: list[ListInfo], destination: str) -> str:
    """--list's names that are no list, each with the list it is a near miss of (a case
    slip, `VIP customers` for `vip customers`), and the lists there are: the user had to
    find the exact names in Iterable's web app."""
    from reconciler.manifest.validation import closest
    from reconciler.words import some_names

    names = sorted({x.name for x in all_lists})
    said = []
    for name in unknown:
        meant = closest(name, names)
        said.append(json.dumps(name) + (f" (did you mean {json.dumps(meant)}?)" if meant else ""))
    there = some_names([json.dumps(n) for n in names]) if names else "none"
    return (
        f"--list names no list in destination {destination!r}: {', '.join(said)}; "
        f"its lists are: {there} (give a list's name exactly, as Iterable has it)"
    )


def _candidates(
    manifests: Manifests,
    dest: Destination,
    project_id: str,
    all_lists: list[ListInfo],
    only: Collection[str] | None,
    result: ImportResult,
) -> list[ListInfo]:
    audiences = _project_audiences(manifests, dest, project_id)
    # Of every list: a managed list's marker names its former lists by id.
    held = held_lists([(a.name, a.list_name) for _, a in audiences], all_lists)
    holding = _holding_orphans(audiences, all_lists)
    if only:
        unknown = sorted(set(only) - {x.name for x in all_lists})
        if unknown:
            raise ReconcilerError(_unknown_lists(unknown, all_lists, dest.name))
        all_lists = [x for x in all_lists if x.name in set(only)]
    managed = _managed_lists(audiences, dest)
    # By id too: an audience's list renamed in Iterable is under a name no manifest declares.
    managed_ids = {
        a.spec.listId: managed[a.list_name] for _, a in audiences if a.spec.listId is not None
    }
    # The listId of the audience `managed` names for a list name (its first, likewise).
    ids_by_name: dict[str, int | None] = {}
    for _, a in audiences:
        ids_by_name.setdefault(a.list_name, a.spec.listId)
    marks = audience_marks(a.name for _, a in audiences)
    standard_names = Counter(x.name for x in all_lists if x.list_type == "Standard")
    chosen = []
    for info in sorted(all_lists, key=lambda x: (x.name, x.id)):
        reason = None
        if info.list_type != "Standard":
            article = "an" if info.list_type[:1] in ("A", "E", "I", "O", "U") else "a"
            reason = f"{article} {info.list_type} list; only Standard (static) lists can be managed"
        elif (problem := _unwritable_name(info.name)) is not None:
            # Written anyway, the manifest would fail to load and stop every plan.
            reason = f"no manifest can name it ({problem}): rename it in Iterable first"
        elif info.name in managed and ids_by_name[info.name] not in (None, info.id):
            # A second list of the name (made by hand in the web app): the audience's
            # listId says it manages the other one, and this one no audience does.
            reason = (
                f"a second list of the name of audience {managed[info.name]}, which manages "
                f"list {ids_by_name[info.name]} (its listId); rename this one in Iterable "
                "to import it"
            )
        elif info.name in managed:
            reason = f"already managed by audience {managed[info.name]}"
        elif info.id in managed_ids:
            reason = (
                f"already managed by audience {managed_ids[info.id]} (its listId), under "
                "another name: renamed in Iterable, so that audience is left out of its plans "
                "until its listName is set to this name"
            )
        elif info.id in held:
            key, list_name = held[info.id]
            # Adopted, it would be declared, and who left it themselves would be put on
            # the audience's list by the next apply (planning.with_former_lists).
            reason = (
                f"a former list of audience {key!r}: plans hold back from list "
                f"{list_name!r} whoever left this one themselves, which adopting it would "
                "end; leave it as it is"
            )
        elif (
            (made_for := marked_audience(info.description)) is not None
            and made_for not in marks
            and holding(info.id)
        ):
            # A list a plan creates meanwhile (the audience's new key) is held to its
            # departures while no manifest declares it (planning.orphan_lists); adopted,
            # it would be declared, and who left it themselves put on that new list.
            reason = (
                f"made by reconciler for audience {made_for!r}, which no manifest declares "
                "any more: restore that audience's manifest to manage it again (adopted, "
                "it would no longer hold back who left it themselves from the lists "
                "created after it)"
            )
        elif standard_names[info.name] > 1:
            reason = (
                f"{standard_names[info.name]} Standard lists share this name; reconciler "
                "never guesses between them: rename or delete the extras in Iterable first"
            )
        if reason is None:
            chosen.append(info)
        else:
            result.skipped.append(SkippedList(info.id, info.name, reason))
    return chosen


def held_lists(
    audiences: Sequence[tuple[str, str]], all_lists: Sequence[ListInfo]
) -> dict[int, tuple[str, str]]:
    """The lists a plan holds to the departures of an audience's list as its former
    lists (plan/former.py), for `audiences` given as (key, list name), by list id, with
    that audience's key and list name: declared
    by import, such a list would hold no one back any more, so who left it themselves
    would be put on the audience's list."""
    formers = FormerLists(all_lists)
    planned = {list_name for _, list_name in audiences}
    by_name: dict[str, list[int]] = {}
    for info in all_lists:
        by_name.setdefault(info.name, []).append(info.id)
    held: dict[int, tuple[str, str]] = {}
    for key, list_name in audiences:
        for list_id in sorted(formers.of(key, by_name.get(list_name, []), planned)):
            held.setdefault(list_id, (key, list_name))
    return held


def _holding_orphans(
    audiences: list[tuple[str, Audience]], all_lists: list[ListInfo]
) -> Callable[[int], bool]:
    """Whether a plan holds another list to the departures of the list of this id, made
    for an audience no manifest declares (planning.with_former_lists): one a plan creates
    (a declared audience of the project without its list) is held to every such list's,
    and one created since is held to those its marker names (`after`) while they are not
    declared. Adopting a list holding none back ends no hold: a new repository for a
    project whose lists reconciler made declares none of them, and imports them all."""
    standard = {x.name for x in all_lists if x.list_type == "Standard"}
    if any(audience.list_name not in standard for _, audience in audiences):
        return lambda _list_id: True
    named_after = {i for x in all_lists for i in marked_after(x.description)}
    return lambda list_id: list_id in named_after


def _project_audiences(
    manifests: Manifests, dest: Destination, project_id: str
) -> list[tuple[str, Audience]]:
    """The audiences of this destination's Iterable project, each with its destination:
    its own, and those of every other destination naming the same project (the same host
    and key)."""
    return [
        (name, audience)
        for name, other in manifests.destinations.items()
        if name == dest.name or destination_project(other) == project_id
        for audience in manifests.audiences_of(name)
    ]


def _managed_lists(audiences: list[tuple[str, Audience]], dest: Destination) -> dict[str, str]:
    """The lists some audience of the project manages (_project_audiences), by name.
    Imported again under this destination, such a list would have two audiences with two
    sources, each undoing the other's changes on every run."""
    managed: dict[str, str] = {}
    for name, audience in audiences:
        where = "" if name == dest.name else f" of destination {name!r}"
        managed.setdefault(audience.list_name, f"{audience.name!r}{where}")
    return managed


def _unwritable_name(list_name: str) -> str | None:
    """Why `list_name` cannot be a manifest's spec.listName (empty, too long, a control
    character), or None when it can."""
    try:
        _LIST_NAME.validate_python(list_name)
    except ValidationError as exc:
        # The reason alone: what a manifest's author is told to do after it is not for a
        # list in Iterable.
        return str(exc.errors()[0]["msg"]).split(": ", 1)[0]
    return None


def audience_name(list_name: str) -> str | None:
    """The list name itself when it is a valid audience name, else None."""
    # Names starting with '.' are valid but would make hidden files, which the loader
    # skips; one starting with '-' makes files every shell command reads as an option
    # (`rm -x.csv`).
    if _VALID_NAME.match(list_name) and not list_name.startswith((".", "-")):
        return list_name
    return None


# Names Windows gives to devices, whatever the extension: "CON.yaml" cannot be created.
_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{kind}{n}" for kind in ("com", "lpt") for n in "0123456789"]
)


def _device(name: str) -> bool:
    return name.split(".", 1)[0].casefold() in _DEVICE_NAMES


def _free(name: str, taken: set[str], out_dir: Path, in_use: set[str]) -> bool:
    """Whether `name` can name a new audience and its files: no audience has it (file names
    must differ beyond case: on macOS and Windows "VIP.yaml" overwrites "vip.yaml"), it is
    no Windows device name, and its files are none the manifests are read from (a
    Destination's file named as a list, a member CSV): --force would overwrite them."""
    if name.casefold() in taken or _device(name):
        return False
    return all(_file_key(out_dir / f"{name}{ext}") not in in_use for ext in (".yaml", ".csv"))


def _file_key(path: Path) -> str:
    return os.path.abspath(path).casefold()


def _files_in_use(manifests: Manifests) -> set[str]:
    """The manifest files loaded and the member files their audiences read (_file_key)."""
    paths = list(manifests.files)
    for audience in manifests.audiences.values():
        paths.extend(file.path for file in source_for(audience).files())
    return {_file_key(path) for path in paths}


def slug(list_name: str) -> str:
    """A valid audience name made from a list name: 'Beta testers!' -> 'beta-testers'."""
    # Accents are dropped rather than turned into dashes: "Ünïcode" -> "unicode".
    ascii_text = unicodedata.normalize("NFKD", list_name).encode("ascii", "ignore").decode()
    text = _SLUG_JUNK.sub("-", ascii_text.casefold()).strip("-.")
    return text[:_MAX_NAME].rstrip("-.")


def _name_targets(manifests: Manifests, lists: list[ListInfo], out_dir: Path) -> list[_Target]:
    # Audience names are unique across all destinations (_free). Lists keeping their own
    # name go first, so a slug never takes it.
    taken = {name.casefold() for name in manifests.audiences}
    in_use = _files_in_use(manifests)
    names: dict[int, str] = {}
    for info in lists:
        own = audience_name(info.name)
        if own is not None and _free(own, taken, out_dir, in_use):
            names[info.id] = own
            taken.add(own.casefold())
    for info in lists:
        if info.id in names:
            continue
        base = slug(info.name) or "list"
        if _device(base):  # "con" -> "list-con": a suffix would leave the device name
            base = f"list-{base}"[:_MAX_NAME].rstrip("-.")
        name, attempt = base, 1
        # The list id makes it unique, unless another list is named so itself.
        while not _free(name, taken, out_dir, in_use):
            suffix = f"-{info.id}" + (f"-{attempt}" if attempt > 1 else "")
            name = base[: _MAX_NAME - len(suffix)] + suffix
            attempt += 1
        names[info.id] = name
        taken.add(name.casefold())
    return [
        _Target(
            info,
            names[info.id],
            out_dir / f"{names[info.id]}.yaml",
            out_dir / f"{names[info.id]}.csv",
        )
        for info in lists
    ]


def _partial(path: Path, suffix: str = "") -> Path:
    """Where `path` is written before it is moved onto its name whole: hidden, beside it."""
    return path.with_name(f".{path.name}.partial{suffix}")


def _remove_partials(targets: list[_Target]) -> None:
    """What an import killed while writing these lists left beside them (a CSV being
    written holds members' identities): hidden, so easily committed by `git add -A`."""
    for target in targets:
        for path in (target.manifest, target.members_file):
            _partial(path).unlink(missing_ok=True)
        shutil.rmtree(_partial(target.members_file, ".d"), ignore_errors=True)


def _columns(project_type: ProjectType) -> list[str]:
    # The header uses MembersSpec's default column names, so the manifest needs none.
    return {"email": ["email"], "userId": ["userId"], "hybrid": ["email", "userId"]}[project_type]


def _private(path: Path) -> int:
    """Open `path` for writing, owner-only from its first byte (member CSVs hold personal
    data); an existing file (--force) is made owner-only too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | BINARY, 0o600)
    chmod_open_file(fd, path, 0o600)
    return fd


def _is_email(identifier: str) -> bool:
    """Whether a hybrid project's member, as getUsers with preferUserId names it, is known
    by its email: the userId where a profile has one, so an identifier that looks like an
    email is a profile without one, unless it has a capital letter. Iterable stores emails
    in lowercase (shared/iterable-api.md), so `Ann@Example.com` is a userId; in the email
    column the source would lowercase it, and the plan right after would remove the
    member it names and add that address instead."""
    return looks_like_email(identifier) and identifier == identifier.lower()


def _csv_cell(value: str) -> str:
    """One CSV cell exactly as DuckDB's COPY writes it (from RECONCILER_ENGINE_THRESHOLD
    members): quoted when it holds a comma, a quote, a line break or a '#', with '\n'
    line ends, so a list that grows past the threshold is not rewritten line by line."""
    if any(c in value for c in ',"\n\r#'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _write_members(
    path: Path, members: list[str], project_type: ProjectType, user_ids: Mapping[str, str]
) -> None:
    """`user_ids`: in email-based projects, the userIds of members known by a placeholder
    email (placeholders.py), written beside them in a userId column when the list has any."""
    columns = _columns(project_type)
    paired = project_type == "email" and any(m in user_ids for m in members)
    if paired:
        columns = ["email", "userId"]
    # Written beside the target and moved onto it whole: never a half file at its name.
    partial = _partial(path)
    try:
        with os.fdopen(_private(partial), "w", newline="", encoding="utf-8") as handle:
            handle.write(",".join(columns) + "\n")
            for identifier in members:
                cell = _csv_cell(identifier)
                if project_type == "hybrid":
                    handle.write(f"{cell},\n" if _is_email(identifier) else f",{cell}\n")
                elif paired:
                    handle.write(f"{cell},{_csv_cell(user_ids.get(identifier, ''))}\n")
                else:
                    handle.write(f"{cell}\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _day(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).date().isoformat()


def _description(raw: str | None) -> str | None:
    # reconciler adds its ownership marker when it creates a list; keeping it in the
    # manifest would add it twice if the list were ever created again. Taken off as a plan
    # takes it off to compare (plan/ownership.py), so the plan notes no other description.
    return unmarked(raw)


def _schema_reference(manifests: Manifests, out_dir: Path) -> str:
    """The JSON Schema for the comment editors read, relative to the manifests written:
    schema/reconciler.schema.json in `out_dir` or a directory above it, else where the
    README says to save it (`reconciler schema > schema/reconciler.schema.json`, beside
    the manifest directory)."""
    start = out_dir.absolute()
    for directory in (start, *start.parents):
        candidate = directory / "schema" / "reconciler.schema.json"
        if candidate.is_file():
            return os.path.relpath(candidate, start)
    root = Path(manifests.root).absolute()
    directory = root if root.is_dir() else root.parent  # PATH may name one manifest file
    beside = directory.parent / "schema" / "reconciler.schema.json"
    try:
        return os.path.relpath(beside, start)
    except ValueError:
        # On Windows a path on another drive than `out_dir` (manifests on C:, --out on
        # D:) has no relative form: relpath raised, after every list had been read.
        return beside.as_uri()


def _visible(dumped: str) -> str:
    """`dumped` YAML with each invisible character (`unseen`: a zero-width space, a soft
    hyphen, a direction mark) as an escape: ruamel writes them bare even inside double
    quotes. Only a listName or description that is not all printable holds one, and those
    are double-quoted, where YAML reads the escape back as the character."""
    if dumped.isascii():
        return dumped
    return "".join(one_line(ch) if ch != "\n" and unseen(ch) else ch for ch in dumped)


def _text(value: str) -> str:
    """`value` as a manifest writes it so that every reader sees this text.

    Double-quoted when not all printable: there an invisible character (a zero-width
    space) is written as an escape (_visible), where bare the manifest read as another
    list's name ("Gone" for "Gone\\u200b"), and NEL (U+0085), which ruamel wrote bare as a
    line break, reads back as itself, not as a space. Double-quoted too when a YAML 1.1
    reader would take it for something else: ruamel writes YAML 1.2, where `no` is text,
    so a reviewer's tools read a list named `no` as false."""
    if not value.isprintable() or read_as_other_than_text(value):
        return DoubleQuotedScalarString(value)
    return value


def _reported_by(project_type: ProjectType) -> str:
    """Which identifier the member CSV's rows hold, as the list was read (see the module's
    docstring): a reviewer of an email-based project's file is not told to look for
    userIds it never holds."""
    if project_type == "email":
        return "by email, as email-based projects identify users"
    if project_type == "userId":
        return "by userId, as userID-based projects identify users"
    return "userId where the profile has one, else email"


def _write_manifest(
    target: _Target,
    destination: str,
    project_type: ProjectType,
    members: int,
    now: datetime,
    schema: str,
) -> None:
    info = target.info
    created = _day(info.created_at)
    origin = (
        f"Imported by `reconciler import` on {now.date().isoformat()} from Iterable list "
        f"{info.id} {json.dumps(info.name)} in destination {destination}"
        + (f" (created {created})" if created else "")
        + f": {quantity(members, 'member')}. "
        f"Members are in {target.members_file.name} beside this file, one per row as "
        f"Iterable reported them ({_reported_by(project_type)})."
    )
    spec = CommentedMap()
    spec["destination"] = _text(destination)
    if target.audience != info.name:
        spec["listName"] = _text(info.name)
        spec.yaml_add_eol_comment("the list's name in Iterable", "listName")
    # The id ties the audience to this list through a rename in Iterable's web app, which
    # keeps no marker of reconciler's to find it by (state/live.py _check_list_id).
    spec["listId"] = info.id
    spec.yaml_add_eol_comment("the list's id in Iterable", "listId")
    description = _description(info.description)
    if description is not None:
        spec["description"] = _text(description)
    spec["members"] = CommentedMap([("csv", target.members_file.name)])
    document = CommentedMap(
        [
            ("apiVersion", API_VERSION),
            ("kind", "Audience"),
            ("metadata", CommentedMap([("name", _text(target.audience))])),
            ("spec", spec),
        ]
    )
    # Prefixed here: ruamel leaves a line that already starts with '#' as it is, and a
    # wrapped line may start with a '#' from the list's name.
    lines = textwrap.wrap(origin, 86, break_on_hyphens=False)
    header = [f"# yaml-language-server: $schema={schema}", *(f"# {line}" for line in lines)]
    document.yaml_set_start_comment("\n".join(header))
    yaml = YAML()
    yaml.width = 4096  # keep long list names and descriptions on one line
    # Written beside the target and moved onto it whole: a half manifest (a full disk, a
    # kill) would fail to load and stop every plan and import after it.
    partial = _partial(target.manifest)
    text = io.StringIO()
    yaml.dump(document, text)
    try:
        partial.write_text(_visible(text.getvalue()), encoding="utf-8")
        os.replace(partial, target.manifest)
    finally:
        partial.unlink(missing_ok=True)
