"""Manifests + sources -> DesiredState: per destination, each list and who must be on it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reconciler.errors import SourceChangedError, SourceError
from reconciler.manifest import Audience, Destination, Manifests
from reconciler.manifest.repository import real_path
from reconciler.members.identity import Member, ProjectType
from reconciler.progress import NULL_PROGRESS, Progress, Task, heartbeat
from reconciler.sources import MemberIssue, read_members, source_for
from reconciler.sources.shared_runs import SharedRun
from reconciler.sources.snapshot import file_digest
from reconciler.state.shared_fields import read_with
from reconciler.traits.mapping import CompiledMapping, compile_mapping
from reconciler.traits.values import DesiredFields, desired_fields, desired_fields_table

if TYPE_CHECKING:
    from reconciler.members.model import DesiredTable, Engine

T = TypeVar("T")


@dataclass
class DesiredList:
    audience: Audience
    members: dict[str, Member]
    issues: list[MemberIssue]
    fields: DesiredFields | None = None  # the audience's trait mapping applied to its members
    # Large audiences live in the DuckDB workspace instead of `members` (engine/).
    table: DesiredTable | None = None
    duplicates: int = 0  # rows collapsed into an earlier one with the same key
    conflicts: list[MemberIssue] = field(default_factory=list)  # those that disagreed
    # Those that disagreed beyond `conflicts`: a table lists its first 1,000.
    conflicts_unlisted: int = 0
    conflict_keys: int = 0  # the identity keys of the rows that disagreed (Python's read)
    project_type: ProjectType = "hybrid"
    skipped_ids: set[str] = field(default_factory=set)  # what rows skipped as invalid name

    @property
    def list_name(self) -> str:
        return self.audience.list_name

    @property
    def prefer_user_id(self) -> bool:
        """Ask getUsers for userIds: always in userID-based projects (without it Iterable
        names members by email there, and removals by {"userId": email} find no one,
        whatever the audience holds, even nothing: issue 16, point 7), never in
        email-based ones, and in hybrid ones when this audience identifies members by
        userId."""
        if self.table is not None:
            return self.table.prefer_user_id
        if self.project_type != "hybrid":
            return self.project_type == "userId"
        return any(m.key_kind == "userId" for m in self.members.values())


@dataclass
class Alongside:
    """With --target, an audience not targeted whose trait mapping writes a field a
    targeted one of its destination writes: its source read for conflicts only
    (state/alongside.py), nothing planned for it."""

    audience: Audience
    shared: frozenset[str]  # the fields its mapping writes that a targeted one writes too
    position: int  # its place among the destination's audiences (a full plan's order)
    mapping: CompiledMapping  # for its fields' limits, read or not
    item: DesiredList | None = None  # its source as read
    error: str | None = None  # why its source could not be read

    def unread_issue(self, name: str) -> MemberIssue:
        """Field `name`, left unwritten for every targeted member: this audience's source
        could not be read to tell whether it sets them another value."""
        source = source_for(self.audience)
        return MemberIssue(
            f"audience {self.audience.name!r} ({source.declared_at})",
            f"field {name!r} is not written by this --target plan: this audience, not "
            f"targeted, maps it too and its source cannot be read ({self.error}), so whether "
            "the two set a member different values is unknown; make its source readable "
            "here, or plan without --target",
        )


@dataclass
class DesiredDestination:
    destination: Destination
    lists: list[DesiredList] = field(default_factory=list)
    # With --target: the audiences not targeted whose mappings write a field a targeted
    # one writes, their sources read for conflicts only (state/alongside.py); and every
    # audience's place in the manifests, the order a full plan merges their values in.
    alongside: list[Alongside] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)

    @property
    def project_type(self) -> ProjectType:
        return self.destination.spec.projectType


def build_desired(
    manifests: Manifests,
    targets: set[str] | None = None,
    engine: Engine | None = None,
    progress: Progress = NULL_PROGRESS,
    errors: list[SourceError] | None = None,
    count_queries: bool = True,
) -> dict[str, DesiredDestination]:
    """Read every (targeted) audience's source. Destinations without audiences are kept so a
    plan still checks their connection. With an `engine`, large audiences are read into its
    DuckDB workspace (see engine/); `count_queries` False reads a query's rows there
    without counting them first (at_scale).

    A source that cannot be read stops the build, unless `errors` is given: then it is
    appended there and the other audiences are still read (validate reports them all)."""
    desired = {name: DesiredDestination(dest) for name, dest in manifests.destinations.items()}
    compiled: dict[str, CompiledMapping] = {}
    audiences = [a for n, a in manifests.audiences.items() if targets is None or n in targets]
    # Audiences reading one query at one database share its run (sources/shared_runs.py).
    with shared_runs(audiences):
        for audience in audiences:
            try:
                _read_audience(
                    manifests, audience, desired, compiled, engine, progress, count_queries
                )
            except SourceError as exc:
                if errors is None:
                    raise
                errors.append(exc)
    if targets is not None:
        desired = {k: v for k, v in desired.items() if v.lists}
    return desired


@contextmanager
def shared_runs(audiences: Sequence[Audience]) -> Iterator[None]:
    """While reading `audiences`, those whose sources run one query at one database
    (Source.run_key) share one run of it (sources/shared_runs.py); the files of the rows
    kept for them are removed on leaving, whether all of them read it or not. Inside
    another, the audiences it shares a run among keep that run (plan --target reads its
    targets and the audiences beside them in turn, in one such run)."""
    groups: dict[str, list[Audience]] = {}
    for audience in audiences:
        if source_for(audience).shared is not None:
            continue
        key = source_for(audience).run_key()
        if key is not None:
            groups.setdefault(key, []).append(audience)
    shared = [(SharedRun(readers=len(group)), group) for group in groups.values() if len(group) > 1]
    for run, group in shared:
        for audience in group:
            source_for(audience).shared = run
    try:
        yield
    finally:
        for run, group in shared:
            for audience in group:
                source_for(audience).shared = None
            run.close()


def unreadable_sources(errors: Sequence[SourceError]) -> SourceError:
    """One error for every source a run could not read, so that a plan names them all at
    once, as validate does (two broken exports took two runs to find, one per audience).
    It exits as a refused change (3) only when every source was refused for changing while
    it was read: a source that cannot be read at all is an error to fix (1), whatever else
    changed beside it."""
    if len(errors) == 1:
        return errors[0]
    message = f"{len(errors)} sources cannot be read:\n" + "\n".join(str(e) for e in errors)
    if all(isinstance(e, SourceChangedError) for e in errors):
        return SourceChangedError(message)
    return SourceError(message)


def _read_audience(
    manifests: Manifests,
    audience: Audience,
    desired: dict[str, DesiredDestination],
    compiled: dict[str, CompiledMapping],
    engine: Engine | None,
    progress: Progress,
    count_queries: bool = True,
) -> None:
    name = audience.name
    dest = desired[audience.spec.destination]
    if engine is not None and at_scale(engine, audience, manifests, count_queries):
        from reconciler.members.model import load_desired

        task = progress.task(f"reading audience {name!r} into DuckDB", unit="rows")
        table, shown = _watched(
            audience, task, lambda: load_desired(engine, audience, dest.project_type)
        )
        task.advance(table.rows - shown)
        task.finish()
        item = DesiredList(
            audience, {}, list(table.issues), table=table, project_type=dest.project_type
        )
        if audience.spec.traits is not None:
            mapping = _compiled(manifests, audience.spec.traits, compiled)
            task = progress.task(f"mapping fields of audience {name!r}", table.valid, "rows")
            item.fields = desired_fields_table(engine, audience, mapping, table, task.advance)
            task.finish()
        dest.lists.append(item)
        return
    task = progress.task(f"reading audience {name!r}", unit="rows")
    result, shown = _watched(audience, task, lambda: read_members(audience, dest.project_type))
    task.advance(result.rows - shown)
    task.finish()
    item = DesiredList(
        audience,
        result.members,
        result.issues,
        project_type=dest.project_type,
        duplicates=result.duplicates,
        conflicts=result.conflicts,
        conflict_keys=len(result.conflict_keys),
        skipped_ids=result.skipped_ids,
    )
    refuse_unordered_conflicts(item)
    if audience.spec.traits is not None:
        mapping = _compiled(manifests, audience.spec.traits, compiled)
        item.fields = desired_fields(audience, mapping, result.members, result.where)
    dest.lists.append(item)


def refuse_unordered_conflicts(item: DesiredList) -> None:
    """Refuse an audience whose query gives one identifier on rows that disagree (another
    email, userId or mapped value) without an ORDER BY: the first row of each is used, and
    which row comes first may then change from run to run (DuckDB's parallel GROUP BY or
    join, a warehouse's plan), so every plan could send the other value back. A file's
    rows, and an ordered query's, are in the order their author set: the first row is
    used, and the others are warnings. For a table, once `conflicts()` has counted them
    (planning asks only when the join found duplicates: no pass of its own at scale)."""
    keys = item.table.conflict_keys if item.table is not None else item.conflict_keys
    source = source_for(item.audience)
    if not keys or source.rows_in_order():
        return
    raise SourceError(
        f"{source.declared_at}: audience {item.audience.name!r}: the query returns {keys:,} "
        f"identifier{'s' if keys != 1 else ''} on rows with different values and has no "
        "ORDER BY, so which of those rows is used (the first of each) can change from one "
        "run to the next, and the plan with it; add an ORDER BY that puts the row to use "
        "first, or have the query return one row per member"
    )


def _watched(audience: Audience, task: Task, read: Callable[[], T]) -> tuple[T, int]:
    """`read()`, with the rows its source streams (a query's) shown on `task` as they
    arrive, and its elapsed time while none do (the server may work for minutes before
    the first); and how many rows were shown."""
    source = source_for(audience)
    if not source.streams_rows:
        return read(), 0
    shown = 0

    def arrived(rows: int) -> None:
        nonlocal shown
        shown += rows
        task.advance(rows)

    source.watch_rows(arrived)
    try:
        with heartbeat(task):
            result = read()
    finally:
        source.watch_rows(None)
    return result, shown


def _compiled(
    manifests: Manifests, name: str, compiled: dict[str, CompiledMapping]
) -> CompiledMapping:
    if name not in compiled:
        compiled[name] = compile_mapping(manifests.trait_mappings[name])
    return compiled[name]


def at_scale(
    engine: Engine, audience: Audience, manifests: Manifests, count_queries: bool = True
) -> bool:
    """Whether DuckDB plans this audience. Inline members always stay in Python, and so do
    audiences with a trait mapping whose source kind cannot keep its columns in DuckDB yet
    (Source.traits_at_scale): the one switch between the two paths for mapped fields.

    A query is sized by a count(*) over it, a second run of it at its database (a second
    connection too). `count_queries` False (validate, which plans nothing) takes DuckDB
    for it without that run: both engines make the same checks of the same rows, and
    DuckDB's holds a chunk of them at a time, whatever their number."""
    source = source_for(audience)
    if not source.scales or (audience.spec.traits is not None and not source.traits_at_scale):
        return False
    if engine.settings.engine != "auto":
        return engine.settings.engine == "duckdb"
    if source.counted_by_running and not count_queries:
        return True
    from reconciler.members.model import estimate_rows

    mapping = manifests.trait_mappings.get(audience.spec.traits or "")
    return engine.use_duckdb(
        engine.remember(size_key(audience), lambda: estimate_rows(audience)),
        traits=audience.spec.traits is not None,
        fields=len(mapping.spec.fields) if mapping is not None else 0,
    )


def size_key(audience: Audience) -> tuple[str, str]:
    """The key its row count is remembered by: the query's run, for audiences that share
    one (a count over a warehouse query is a second run of it, made once for them all)."""
    run = source_for(audience).run_key()
    return ("run", run) if run is not None else ("rows", audience.name)


def manifests_digest(manifests: Manifests, targets: Collection[str] | None = None) -> str:
    """Digest of every manifest file and every file-based member source, by content: a
    saved plan records it, and apply refuses the plan when it changed."""
    return combined_digest(manifest_file_digests(manifests, targets))


def manifest_file_digests(
    manifests: Manifests, targets: Collection[str] | None = None
) -> dict[str, str]:
    """Each manifest file and file-based member source (relative to the manifest root) ->
    the SHA-256 of its content, or "missing": what manifests_digest is made of, so that a
    stale plan can name the file that changed. With `targets` (a plan of some audiences),
    only their sources and those read beside them for conflicts (state/alongside.py): the
    others' are never read into the plan, so a change to them (a nightly export rewriting
    another audience's CSV) leaves it correct. Every manifest file still counts, whoever
    it declares."""
    files: dict[Path, bytes | None] = {real_path(Path(f)): None for f in manifests.files}
    read = read_with(manifests, targets) if targets else None
    for audience in manifests.audiences.values():
        if read is not None and audience.name not in read:
            continue
        # Member files as this run read them (their snapshots: a file rewritten after it
        # was read must not lend its digest to a plan made from the old content). A
        # query's result at a url cannot be digested without running it; the live
        # fingerprint still catches changes on Iterable's side.
        try:
            digests = source_for(audience).digests()
        except SourceChangedError:
            raise
        except SourceError:
            digests = []  # unreadable: it digests as missing below
            for source_file in source_for(audience).files():
                files.setdefault(real_path(source_file.path), None)
        for path, digest in digests:
            files[real_path(path)] = bytes.fromhex(digest)
    # Paths relative to the manifest root: a plan made in one checkout must still match in
    # another (CI jobs on self-hosted runners check out to different directories).
    root = real_path(Path(manifests.root))
    found = {}
    for path in sorted(files):
        known = files[path]
        try:
            digest = known.hex() if known is not None else file_digest(path)
        except OSError:
            digest = MISSING
        found[os.path.relpath(path, root)] = digest
    return found


MISSING = "missing"


def combined_digest(files: Mapping[str, str]) -> str:
    """One digest of manifest_file_digests' answer, in its order."""
    h = hashlib.sha256()
    for name, digest in files.items():
        h.update(name.encode() + b"\0")
        h.update(b"missing" if digest == MISSING else bytes.fromhex(digest))
    return h.hexdigest()
