"""Saved plans (`plan --out FILE`, `apply --plan FILE`): exactly what was reviewed is applied.

A plan file is gzip-compressed JSON lines: a first line with everything but the members,
then every list's adds, removes, subscribes' mapped fields and field-update keys, and each
destination's field updates, one per line (it must hold them, to apply exactly:
treat it as personal data), a digest of the manifests and member sources it was made
from, and a fingerprint of the live state it read; a last line holds the SHA-256 of the
lines before it, so a file edited by hand or cut short is refused rather than applied.
Lines let a plan of ten million members be written and read a batch at a time; large
member sets are read back into the DuckDB workspace rather than into memory. It never
holds an API key: keys are resolved again from the manifests' env/file references at
apply time.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar, runtime_checkable

from reconciler import __version__
from reconciler.errors import ReconcilerError, StalePlanError, display_path
from reconciler.layout import one_line
from reconciler.members.identity import Member
from reconciler.members.issue import MemberIssue
from reconciler.plan import (
    CampaignUse,
    DestinationPlan,
    FieldRead,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
)
from reconciler.plan import file_shape as shape
from reconciler.plan.field_changes import FieldChanges
from reconciler.plan.field_clears import FieldClears
from reconciler.plan.fingerprint import FIELDS_CHANGED, difference_in
from reconciler.traits.compare import holds_value
from reconciler.words import named

FORMAT = "reconciler-plan"
# 2: trait-mapping field writes; 3: members on lines of their own; 4: mapped fields too;
# 5: a checksum line last; 6: a subscribe's fields hold no clear, and an object only where
# the member's field was read and held none (plan/fields.sent_on_subscribe): the same
# lines, but those of 5 were decided unread, and applied they erased values no plan showed
VERSION = 6
# Format 5 is still read: its lines are those of 6, and what made it unsafe is in them. A
# clear on a subscribe is never sent (apply/executor.subscribe_payload); an object on one
# (decided unread) is refused by name (_UnreadObject), so a plan saved on a pull request
# before an upgrade applies on merge when it holds none.
UNREAD_SUBSCRIBES = 5
# Within a format, the keys and lines this build writes: raised by every change that adds
# one, so that a build reading a plan it cannot make sense of tells a newer build's plan
# (revision above its own) from a damaged one. Builds of one release share
# reconciler_version, and a build before this number ignores it (and unknown keys: a key
# an older build must not apply without is a new VERSION, not a revision).
REVISION = 1
CHECKSUM = "sha256"


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    manifest_root: Path
    manifest_digest: str
    targets: list[str] | None
    created_at: str
    # Each manifest and member file -> its SHA-256 (state/desired.py manifest_file_digests):
    # names the file when the digest differs.
    manifest_files: Mapping[str, str] | None = None
    # The file it was read from, which a stale plan's refusal names: a job applying one of
    # several saved plans (one per destination, say) is told which one to make again.
    path: Path | None = None
    # Its plan file format: one of UNREAD_SUBSCRIBES read no joining member's fields.
    version: int = VERSION

    @property
    def _made(self) -> str:
        """The plan as its refusals name it: its file, when it was read from one."""
        return shown_path(self.path) if self.path is not None else "the plan"

    def raise_if_targets_gone(self, audiences: Collection[str]) -> None:
        """StalePlanError when an audience the plan was made for (`plan --target`) is no
        longer declared: the manifests changed, whatever the digest would say after."""
        gone = sorted(set(self.targets or ()) - set(audiences))
        if gone:
            raise StalePlanError(
                f"stale plan: {self._made if self.path else 'it'} was made for "
                f"{named(gone, 'audience')}, no longer in the manifests; run plan again"
            )

    def raise_if_stale(
        self, manifest_digest: str, current: Plan, files: Mapping[str, str] | None = None
    ) -> None:
        """StalePlanError when the manifests (or their member sources) changed since the
        plan was saved (`manifest_digest` is theirs now: state/desired.py manifests_digest,
        made of `files`), or Iterable did: `current` is a plan made now, whose fingerprint
        of the live lists must be the saved one's."""
        if manifest_digest != self.manifest_digest:
            which = _changed_file(self.manifest_files, files, self.manifest_root)
            raise StalePlanError(
                "stale plan: the manifests or their member sources changed since "
                f"{self._made} was made{f' ({which})' if which else ''}; run plan again"
            )
        # A plan of UNREAD_SUBSCRIBES read no joining member's fields, which a plan made
        # now reads where a subscribe would clear one or give it an object: its values
        # differ whether Iterable changed or not.
        unread = (
            f", or this reconciler reads fields of joining members that the build which "
            f"made it (plan file format {UNREAD_SUBSCRIBES}) did not"
            if self.version == UNREAD_SUBSCRIBES
            else ""
        )
        error = changed_since(
            self.plan,
            current,
            since=f"since {self._made} was made",
            applied="was this plan applied already?",
            again="run plan again",
            unread=unread,
        )
        if error is not None:
            raise error


def changed_since(
    shown: Plan, current: Plan, since: str, applied: str, again: str, unread: str = ""
) -> StalePlanError | None:
    """The refusal of `shown` when Iterable changed `since` it was made (`current`: a plan
    made now, whose fingerprint of the live lists must be `shown`'s), or None. `applied`
    asks whether it was applied already when nothing is left to do; `again` is what to do
    instead; `unread` is added to a difference of mapped fields' values."""
    found = difference_in(shown.fingerprint, current.fingerprint, current.listed)
    if found is None:
        return None
    difference, destination = found
    settled = not current.has_changes and not current.summary.problems
    if shown.has_changes and settled:
        # The usual cause: this plan was applied already (a job run again), which
        # changed the lists it read. Nothing is left to do either way.
        error = StalePlanError(
            f"stale plan: {difference} {since}; Iterable already matches the manifests "
            f"({applied}): nothing is left to apply"
        )
    else:
        left_out = _left_out_now(shown, current)
        # A listId's audience left out says what to set already (state/live.py).
        advice = (
            ""
            if "set listName:" in left_out
            else _renamed_advice(shown, current, destination, difference)
        )
        unread = unread if difference.startswith(FIELDS_CHANGED) else ""
        error = StalePlanError(
            f"stale plan: {difference} {since}{unread}{left_out}; {again}{advice}"
        )
    # Whose lists changed, for machines (the JSON error's `destination`); the message is
    # whole as it is: it names the destination when there are several.
    return error.in_destination(destination, said=True)


def _renamed_advice(saved: Plan, current: Plan, destination: str, difference: str) -> str:
    """What to do about the saved plan's list that `difference` says was renamed in
    Iterable since: a plan made again finds no list of the old name and makes a new one,
    beside the one campaigns and journeys use."""
    names = current.listed.get(destination, {})
    for d in saved.destinations:
        if d.destination != destination:
            continue
        for lp in d.lists:
            renamed = names.get(lp.list_id) if lp.list_id is not None else None
            said = (f"(list {lp.list_id}) was renamed", f"(list {lp.list_id} was renamed")
            if renamed is not None and any(s in difference for s in said):
                return (
                    f" (to keep managing that list, set listName: {renamed!r} on audience "
                    f"{lp.audience!r})"
                )
    return ""


def _left_out_now(saved: Plan, current: Plan) -> str:
    """Why audiences the saved plan had are left out of the plan made now (a second list
    of the same name made in Iterable, a list that cannot be read): the fingerprint only
    sees that their list is no longer in the plan, and the stale message should say why."""
    before = {audience for d in saved.destinations for audience, _ in d.unread}
    now = [
        f"{audience}: {reason}"
        for d in current.destinations
        for audience, reason in d.unread
        if audience not in before
    ]
    return f". Left out of a plan made now: {'; '.join(now)}" if now else ""


class MemberTables(Protocol):
    """Where a saved plan's large member sets are read into (the DuckDB workspace:
    members/engine/saved.py), so that a plan of ten million members is not ten million
    objects. Without one, every set is read into memory."""

    def holds(self, count: int) -> bool:
        """Whether a set of `count` rows goes into a table."""
        ...

    def members(self, rows: Iterable[Member], count: int) -> Sequence[Member]: ...

    def identifiers(self, ids: Iterable[str], count: int) -> Sequence[str]: ...

    def field_values(
        self, rows: Iterable[tuple[str, dict[str, Any]]], count: int
    ) -> Mapping[str, dict[str, Any]]: ...

    def field_updates(
        self, rows: Iterable[tuple[Any, ...]], count: int, make: Callable[..., FieldUpdate]
    ) -> Sequence[FieldUpdate]: ...


@runtime_checkable
class _Streams(Protocol):
    """Rows still in a workspace table (members/engine/rows.py): read through one cursor."""

    def batches(self, size: int) -> Iterator[Sequence[Any]]: ...


T = TypeVar("T")


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if isinstance(items, _Streams):
        yield from items.batches(size)
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def save_plan(
    path: Path,
    plan: Plan,
    manifest_digest: str,
    manifest_root: Path,
    targets: list[str] | None,
    files: Mapping[str, str] | None = None,
) -> None:
    """`manifest_digest`: the digest of the manifests and member sources the plan was made
    from (state.desired.manifests_digest), which apply compares to refuse a stale plan;
    `files`, what it is made of (file -> SHA-256), to name the file that changed."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "revision": REVISION,
        "reconciler_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # As given (so a plan made in one checkout applies in another from the same
        # relative place) and absolute (so it applies from any directory on this machine).
        "manifests": {
            "root": str(manifest_root),
            "absolute_root": str(manifest_root.absolute()),
            "digest": manifest_digest,
            "files": dict(files) if files is not None else None,
        },
        "targets": targets,
        "fingerprint": plan.fingerprint,
        "destinations": [_destination_to_json(d) for d in plan.destinations],
    }
    # Through a symbolic link, as a plain write goes: renamed over, the link itself was
    # replaced by a file and the file it named kept the previous plan.
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic, and readable only by its owner: the file holds member identifiers. Named for
    # this process, so that what a run killed while writing (a plan of millions takes
    # minutes) leaves beside the target is removed by the next (leftovers.sweep_partials).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.partial-{os.getpid()}-")
    try:
        os.chmod(tmp, 0o600)
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed,
        ):
            handle = _Summed(compressed)
            handle.write(_line(payload))
            for d in plan.destinations:
                for lp in d.lists:
                    for batch in _batches(lp.add, _BATCH):
                        handle.write(b"".join(_line(_member_to_json(m)) for m in batch))
                    for ids in _batches(lp.remove, _BATCH):
                        handle.write(b"".join(_line(i) for i in ids))
                    for pairs in _field_batches(lp.add_fields):
                        handle.write(b"".join(_line([k, v]) for k, v in pairs))
                    for keys in _batches(lp.field_update_keys, _BATCH):
                        handle.write(b"".join(_line(k) for k in keys))
                for updates in _batches(d.field_updates, _BATCH):
                    handle.write(b"".join(_line(_update_to_json(u)) for u in updates))
            compressed.write(_line({CHECKSUM: handle.digest.hexdigest()}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_BATCH = 10_000


class _Summed:
    """A plan file's lines as written or read, and the SHA-256 of those lines so far."""

    def __init__(self, handle: IO[bytes] | gzip.GzipFile) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self._handle.write(data)

    def readline(self) -> bytes:
        line = self._handle.readline()
        self.digest.update(line)
        return line


def _field_batches(
    add_fields: Mapping[str, dict[str, Any]],
) -> Iterator[Sequence[tuple[str, dict[str, Any]]]]:
    """A list's add_fields in key order (a workspace view a batch at a time)."""
    batched = getattr(add_fields, "items_batched", None)
    if batched is not None:
        yield from batched()
        return
    pairs = sorted(add_fields.items())
    for start in range(0, len(pairs), _BATCH):
        yield pairs[start : start + _BATCH]


def _update_to_json(u: FieldUpdate) -> list[Any]:
    changes = [[name, old, new] for name, (old, new) in u.changes.items()]
    return [u.key, u.key_kind, u.email, u.user_id, changes, u.merge_nested_objects]


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def shown_path(path: Path) -> str:
    """A plan file's name as messages show it: from the working directory, on one line (a
    name holding '\\n::error::' would start a workflow command of its own on a runner).
    Emails in it are masked where every message is (cli/exits.py)."""
    return one_line(display_path(path))


def load_plan(path: Path, tables: MemberTables | None = None) -> SavedPlan:
    """Read a saved plan. Member sets that `tables` holds go into it; the others (all of
    them, without `tables`) are read into memory. Every value is checked for its type and
    shape as it is read (plan/file_shape.py): the checksum has no key, so a file edited
    with its checksum made again is refused naming the field, not applied."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ReconcilerError(f"cannot read plan file {shown_path(path)}: {exc.strerror}") from None
    payload: Any = None
    try:
        with raw, _maybe_gzip(raw) as file:
            handle = _Summed(file)
            payload = json.loads(handle.readline())
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                raise ValueError("not a plan file")
            header = shape.Fields(payload, "")
            version = header.get("version", _version)
            if version not in (VERSION, UNREAD_SUBSCRIBES):
                raise _other_version(path, payload)
            header.get("reconciler_version", shape.text, "")
            # 0: saved before revisions were written, whether it says so or not: this build
            # reads revision REVISION and before (only a later one is told apart, as newer).
            header.get("revision", shape.count, 0)
            manifests = header.object("manifests")
            saved = SavedPlan(
                plan=Plan((), {}),
                manifest_root=_root(manifests),
                manifest_digest=manifests.get("digest", shape.text),
                targets=_targets(header.get("targets", shape.optional(_target_names), None)),
                created_at=header.get("created_at", shape.text, ""),
                manifest_files=manifests.get("files", shape.optional(_file_digests), None),
            )
            fingerprint = header.get("fingerprint", shape.fingerprint)
            members = _MemberLines(handle, tables, unread=version == UNREAD_SUBSCRIBES)
            plan = Plan(
                tuple(_destination_from_json(d, members) for d in header.objects("destinations")),
                fingerprint,
            )
            trailer = json.loads(file.readline() or b"null")
            if not isinstance(trailer, dict) or CHECKSUM not in trailer:
                raise ValueError("the plan file ends before its checksum")
            if trailer[CHECKSUM] != handle.digest.hexdigest() or file.readline():
                raise ReconcilerError(
                    f"{shown_path(path)} is not the plan that was saved: its content does not "
                    "match its checksum (it was edited or damaged since). Nothing was applied; "
                    "make the plan again"
                )
        return dataclasses.replace(saved, plan=plan, path=path, version=version)
    except ReconcilerError:
        raise
    except _UnreadObject as exc:
        raise _unread_object(path, payload, exc.field) from None
    except shape.ShapeError as exc:
        newer = _newer_build(path, payload)
        if newer is not None:
            raise newer from None
        raise ReconcilerError(
            f"{shown_path(path)} is not a reconciler plan file (or it is damaged): {exc}; "
            "nothing was applied"
        ) from None
    except (
        OSError,
        EOFError,
        ValueError,
        LookupError,
        TypeError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ):
        # gzip.BadGzipFile and json.JSONDecodeError are OSError and ValueError; JSON nested
        # too deep for Python's parser is a RecursionError, and int() of the Infinity that
        # json.loads reads an OverflowError.
        newer = _newer_build(path, payload)
        if newer is not None:
            raise newer from None
        raise ReconcilerError(
            f"{shown_path(path)} is not a reconciler plan file (or it is damaged)"
        ) from None


def _version(value: Any, where: str) -> int:
    """A format version: a positive integer (another one is told apart by _other_version)."""
    if shape.count(value, where) == 0:
        raise shape.ShapeError(f"{where} should be a positive integer")
    return int(value)


_target_names = shape.list_of(shape.text)
_file_digests = shape.mapping(shape.text)


def _targets(names: tuple[str, ...] | None) -> list[str] | None:
    return None if names is None else list(names)


def _other_version(path: Path, payload: dict[str, Any]) -> ReconcilerError:
    """A plan file of another format version, which is never read: what made it, and what
    to do. A newer one is the usual sight where the plan job installs the newest reconciler
    and the apply job an older one (a cached runner, two pins): running plan again with the
    older one is not the only way out, and 'run plan again' alone read as a damaged file."""
    version = payload.get("version")
    by, this = _made_by(payload)
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        return ReconcilerError(
            f"{shown_path(path)} was made{by} in plan file format {version}, newer than the format "
            f"{VERSION} this reconciler{this} reads; nothing was applied. Apply it "
            "with the reconciler that made it, or upgrade this one, or run plan again with "
            "this one"
        )
    return ReconcilerError(
        f"{shown_path(path)} was made{by} in plan file format {version}, older than the format "
        f"{VERSION} this reconciler{this} reads; nothing was applied: run plan "
        "again with this one"
    )


def _newer_build(path: Path, payload: Any) -> ReconcilerError | None:
    """For a plan file of this format that this build cannot read: the refusal naming it
    a newer build's, when its header says so (a later release's reconciler_version, or a
    later REVISION of the format), which holds what this build does not know rather than
    damage; None otherwise (then it is called damaged)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return None
    made_by = payload.get("reconciler_version")
    newer_release = isinstance(made_by, str) and _release(made_by) > _release(__version__)
    revision = payload.get("revision")
    newer_revision = (
        isinstance(revision, int) and not isinstance(revision, bool) and revision > REVISION
    )
    if not newer_release and not newer_revision:
        return None
    if newer_release:
        which = (
            f"by reconciler {one_line(str(made_by))}, newer than this reconciler ({__version__})"
        )
    else:
        which = (
            f"by a newer build of reconciler (plan file revision {revision}; this one reads "
            f"revision {REVISION} and before)"
        )
    return ReconcilerError(
        f"{shown_path(path)} was made {which}, and holds what this one does not know; "
        "nothing was applied. Apply it with the reconciler that made it, or upgrade this "
        "one, or run plan again with this one"
    )


def _release(version: str) -> tuple[int, ...]:
    """A version's release numbers ("0.10.2rc1": (0, 10, 2)), trailing zeros dropped so
    that 0.2 and 0.2.0 are one; () when it starts with none (never newer)."""
    numbers: list[int] = []
    for part in version.strip().split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits or len(digits) > 9:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def _made_by(payload: dict[str, Any]) -> tuple[str, str]:
    """(" by reconciler X", " (Y)"): the build that made a plan file and this one, named
    only when they differ: builds of one release share its number, and 'made by 0.1.0 ...
    this reconciler (0.1.0)' would read as a contradiction."""
    made_by = payload.get("reconciler_version")
    if not isinstance(made_by, str) or not made_by or made_by == __version__:
        return "", ""
    return f" by reconciler {one_line(made_by)}", f" ({__version__})"


class _UnreadObject(Exception):
    """A format-5 plan's subscribe carrying an object (`field`), decided unread."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _unread_object(path: Path, payload: dict[str, Any], field: str) -> ReconcilerError:
    """A plan of format 5 whose subscribes give a mapped field an object: that build sent
    it without reading the joining member's profile, where it replaces the whole object
    (another team's keys beside the mapped ones) or merges its nulls in, unshown; the
    format 6 plan reads it first (plan/fields.object_on_subscribe). The field is named,
    never the member."""
    by, _ = _made_by(payload)
    return ReconcilerError(
        f"{shown_path(path)} was made{by} in plan file format {UNREAD_SUBSCRIBES}, whose "
        f"subscribes give field {one_line(repr(field))} an object without reading the "
        "joining member's profile, where it would replace or clear keys another team set, "
        "which no plan showed; nothing was applied: run plan again with this one"
    )


def _maybe_gzip(raw: IO[bytes]) -> IO[bytes]:
    # Plain JSON lines are read too: a plan someone decompressed to look at still applies.
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


class _MemberLines:
    """Reads each list's adds and removes from the lines after the header, in order, each
    checked for its shape (named by its line number: the header is line 1)."""

    def __init__(self, handle: _Summed, tables: MemberTables | None, unread: bool = False):
        self._handle = handle
        self._tables = tables
        self._number = 1
        # A format-5 plan: its subscribes' fields were decided unread (_UnreadObject).
        self._unread = unread

    def _lines(self, count: int, check: shape.Check[T], what: str) -> Iterator[T]:
        for _ in range(count):
            line = self._handle.readline()
            if not line:
                raise ValueError("the plan file ends before its members do")
            self._number += 1
            yield check(json.loads(line), f"line {self._number} ({what})")

    def members(self, count: int) -> Sequence[Member]:
        rows = (
            _member_from_json(row)
            for row in self._lines(count, shape.member_line, "a member to add")
        )
        if self._tables is not None and self._tables.holds(count):
            return self._tables.members(rows, count)
        return tuple(rows)

    def identifiers(self, count: int, what: str) -> Sequence[str]:
        ids = self._lines(count, shape.text, what)
        if self._tables is not None and self._tables.holds(count):
            return self._tables.identifiers(ids, count)
        return tuple(ids)

    def field_values(self, count: int) -> Mapping[str, dict[str, Any]]:
        rows = self._lines(count, shape.field_values_line, "a new member's field values")
        if self._unread:
            rows = _no_object(rows)
        if self._tables is not None and self._tables.holds(count):
            return self._tables.field_values(rows, count)
        return dict(rows)

    def field_updates(self, count: int) -> Sequence[FieldUpdate]:
        rows = self._lines(count, shape.field_update_line, "a field update")
        if self._tables is not None and self._tables.holds(count):
            return self._tables.field_updates(rows, count, _field_update)
        return tuple(
            _field_update(key, kind, email, user_id, {n: (o, v) for n, o, v in changes}, merge)
            for key, kind, email, user_id, changes, merge in rows
        )


def _no_object(rows: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A format-5 plan's subscribes' fields, refused at the first object holding a value
    (_UnreadObject); a clear (an object of nulls too) passes: apply never sends one."""
    for key, values in rows:
        for name, value in values.items():
            if isinstance(value, Mapping) and holds_value(value):
                raise _UnreadObject(name)
        yield key, values


def _changed_file(
    saved: Mapping[str, str] | None, current: Mapping[str, str] | None, root: Path
) -> str | None:
    """Which file differs, in words ("manifests/data/q.csv changed"), or None when
    unknown. Names are relative to the manifest root, shown from where they were given."""
    if saved is None or current is None:
        return None
    for name in sorted(set(saved) | set(current)):
        shown = display_path(Path(os.path.normpath(root / name)))
        if name not in current:
            return f"{shown} is no longer read"
        if name not in saved:
            return f"{shown} is new"
        if saved[name] != current[name]:
            return f"{shown} changed"
    return None


def _root(recorded: shape.Fields) -> Path:
    given = Path(recorded.get("root", shape.text))
    absolute = recorded.get("absolute_root", shape.optional(shape.text), None)
    if given.exists() or not absolute:
        return given
    return Path(absolute)


def _field_update(
    key: str,
    key_kind: str,
    email: str | None,
    user_id: str | None,
    changes: dict[str, tuple[Any, Any]],
    merge: bool,
) -> FieldUpdate:
    return FieldUpdate(key, key_kind, email, user_id, changes, bool(merge))


def _member_to_json(m: Member) -> list[Any]:
    # Not the member's source row (Member.traits, kept in the Python engine for a trait
    # mapping): apply sends the mapped values, saved beside (add_fields). The row holds
    # columns no mapping names, values JSON cannot (a PostgreSQL interval or bytea), and
    # DuckDB's members have none, so the same plan saved under the two engines differed.
    # The place stays, so plan files of either shape read alike.
    return [m.key, m.key_kind, m.email, m.user_id, {}]


def _member_from_json(row: tuple[Any, ...]) -> Member:
    key, key_kind, email, user_id, traits = row
    return Member(key, key_kind, email, user_id, traits)


def _destination_to_json(d: DestinationPlan) -> dict[str, Any]:
    return {
        "destination": d.destination,
        "project_type": d.project_type,
        "allow_list_deletion": d.allow_list_deletion,
        "declared_none_found": d.declared_none_found,
        "unfamiliar_project": d.unfamiliar_project,
        "campaigns": [
            [c.list_name, c.campaign_id, c.campaign_name, c.type, c.state, c.role]
            for c in d.campaigns
        ],
        "campaigns_read_error": d.campaigns_read_error,
        "member_read": d.member_read,
        "read_note": d.read_note,
        "deletions": [[x.list_id, x.list_name] for x in d.deletions],
        # The updates follow the destination's lists' lines (see save_plan).
        "field_update_rows": len(d.field_updates),
        "field_read": None
        if d.field_read is None
        else {
            "method": d.field_read.method,
            "users": d.field_read.users,
            "requests": d.field_read.requests,
            "fields": list(d.field_read.fields),
            "windows": d.field_read.windows,
            "whole": d.field_read.whole,
            "taken_from": d.field_read.taken_from,
            "taken_members": d.field_read.taken_members,
        },
        "skipped_unlisted": d.skipped_unlisted,
        "field_issues": [
            [audience, issue.where, issue.message, issue.value]
            for audience, issue in d.field_issues
        ],
        "field_issues_unlisted": d.field_issues_unlisted,
        "skipped_members": [
            [audience, issue.where, issue.message, issue.value]
            for audience, issue in d.skipped_members
        ],
        "duplicate_rows": d.duplicate_rows,
        "notes": list(d.notes),
        "duplicate_conflicts": [
            [audience, issue.where, issue.message, issue.value]
            for audience, issue in d.duplicate_conflicts
        ],
        "duplicate_conflicts_unlisted": d.duplicate_conflicts_unlisted,
        "lists": [
            {
                "audience": lp.audience,
                "list_name": lp.list_name,
                "list_id": lp.list_id,
                "create": lp.create,
                "description": lp.description,
                # The members follow the header line, in this order (see save_plan).
                "add_rows": len(lp.add),
                "remove_rows": len(lp.remove),
                "unchanged": lp.unchanged,
                "live_count": lp.live_count,
                "desired_count": lp.desired_count,
                "update_existing_users_only": lp.update_existing_users_only,
                "campaign_id": lp.campaign_id,
                "channel_unsubscribe": lp.channel_unsubscribe,
                "read_prefer_user_id": lp.read_prefer_user_id,
                "max_removal_percent": lp.max_removal_percent,
                "max_removals": lp.max_removals,
                "allow_empty": lp.allow_empty,
                "min_members": lp.min_members,
                "max_members": lp.max_members,
                "max_addition_percent": lp.max_addition_percent,
                "max_additions": lp.max_additions,
                "held_back_removals": lp.held_back_removals,
                "kept_for_skipped": lp.kept_for_skipped,
                "kept_respelled": lp.kept_respelled,
                "respelled": list(lp.respelled),
                "kept_email_changed": lp.kept_email_changed,
                "email_changed": list(lp.email_changed),
                "add_fields_rows": len(lp.add_fields),
                "merge_nested_objects": lp.merge_nested_objects,
                "field_update_key_rows": len(lp.field_update_keys),
                "forgotten": list(lp.forgotten),
                "not_created": list(lp.not_created),
                "left_themselves": list(lp.left_themselves),
                "left_sources": [list(pair) for pair in lp.left_sources],
                "channel_unsubscribed": list(lp.channel_unsubscribed),
                "resubscribe_allowed": lp.resubscribe_allowed,
                "resubscribed": list(lp.resubscribed),
                "active_campaign_adds": lp.active_campaign_adds,
            }
            for lp in d.lists
        ],
        "unread": [list(x) for x in d.unread],
        "unmatched": list(d.unmatched),
        "other_reads": list(d.other_reads),
        "project_type_at": d.project_type_at,
        "named_by_email": list(d.named_by_email),
        "new_fields": [list(x) for x in d.new_fields],
        "field_clears": [c.to_list() for c in d.field_clears],
        "field_changes": [c.to_list() for c in d.field_changes],
    }


def _destination_from_json(d: shape.Fields, members: _MemberLines) -> DestinationPlan:
    # In the order save_plan wrote their lines: each list's, then the field updates.
    lists = tuple(_list_from_json(x, members) for x in d.objects("lists"))
    field_updates = members.field_updates(d.get("field_update_rows", shape.count))
    issues = shape.list_of(shape.issue)
    return DestinationPlan(
        destination=d.get("destination", shape.text),
        project_type=d.get("project_type", _project_type),  # type: ignore[arg-type]
        allow_list_deletion=d.get("allow_list_deletion", shape.flag),
        # Plans saved before it was written: 0, as they were judged.
        declared_none_found=d.get("declared_none_found", shape.count, 0),
        unfamiliar_project=d.get("unfamiliar_project", shape.text, ""),
        campaigns=tuple(
            CampaignUse(*c) for c in d.get("campaigns", shape.list_of(shape.campaign), ())
        ),
        campaigns_read_error=d.get("campaigns_read_error", _optional_text, None),
        member_read=d.get("member_read", _optional_text, None),
        read_note=d.get("read_note", _optional_text, None),
        deletions=tuple(
            ListDeletion(i, n) for i, n in d.get("deletions", shape.list_of(_deletion))
        ),
        field_updates=field_updates,
        field_read=d.get("field_read", shape.optional(_field_read)),
        skipped_unlisted=d.get("skipped_unlisted", shape.count, 0),
        field_issues=_issues(d.get("field_issues", issues, ())),
        field_issues_unlisted=d.get("field_issues_unlisted", shape.count, 0),
        skipped_members=_issues(d.get("skipped_members", issues)),
        duplicate_rows=d.get("duplicate_rows", shape.count, 0),
        notes=d.get("notes", _texts, ()),
        duplicate_conflicts=_issues(d.get("duplicate_conflicts", issues, ())),
        duplicate_conflicts_unlisted=d.get("duplicate_conflicts_unlisted", shape.count, 0),
        lists=lists,
        unread=d.get("unread", shape.list_of(_text_pair), ()),
        # Plans saved before it: none told apart, said as not read with confidence.
        unmatched=d.get("unmatched", _texts, ()),
        other_reads=d.get("other_reads", _texts, ()),
        # Plans saved before it was kept: messages say "the destination's projectType".
        project_type_at=d.get("project_type_at", _optional_text, None),
        # Plans saved before they were kept: no removal guard names a likely mismatch.
        named_by_email=d.get("named_by_email", _texts, ()),
        new_fields=d.get("new_fields", shape.list_of(_text_pair), ()),
        # Plans saved before the field_clears guard: none, as they were judged.
        field_clears=tuple(
            FieldClears(*row) for row in d.get("field_clears", shape.list_of(_field_clears), ())
        ),
        # Plans saved before the field_changes guard: none, as they were judged.
        field_changes=tuple(
            FieldChanges(*row) for row in d.get("field_changes", shape.list_of(_field_changes), ())
        ),
    )


_project_type = shape.one_of("hybrid", "userId", "email")
_optional_text = shape.optional(shape.text)
_optional_count = shape.optional(shape.count)
_texts = shape.list_of(shape.text)
_text_pair = shape.row(("name", shape.text), ("value", shape.text))
_deletion = shape.row(("list_id", shape.count), ("list_name", shape.text))
_FIELD_CLEARS_PARTS = (
    ("field", shape.text),
    ("compared", shape.count),
    ("cleared", shape.count),
    ("lists", _texts),
    ("limit", shape.percent),
)
_field_clears_then = shape.row(*_FIELD_CLEARS_PARTS)
_field_clears_now = shape.row(*_FIELD_CLEARS_PARTS, ("left_out", shape.count))


def _field_clears(value: Any, where: str) -> tuple[Any, ...]:
    """A field_clears row; one saved before it counted the joiners left out has five
    items, and 0 of them (as it was judged)."""
    if isinstance(value, list) and len(value) == len(_FIELD_CLEARS_PARTS):
        return (*_field_clears_then(value, where), 0)
    return _field_clears_now(value, where)


_FIELD_CHANGES_PARTS = (
    ("field", shape.text),
    ("compared", shape.count),
    ("changed", shape.count),
    ("lists", _texts),
    ("limit", shape.percent),
)
_field_changes_then = shape.row(*_FIELD_CHANGES_PARTS)
_field_changes_owned = shape.row(*_FIELD_CHANGES_PARTS, ("own_limit_at", _optional_text))
_field_changes_now = shape.row(
    *_FIELD_CHANGES_PARTS, ("own_limit_at", _optional_text), ("left_out", shape.count)
)


def _field_changes(value: Any, where: str) -> tuple[Any, ...]:
    """A field_changes row; one saved before it said where a field's own limit is
    written has five items, and none; one saved before it counted the joiners left out
    has six, and 0 of them (as it was judged)."""
    if isinstance(value, list) and len(value) == len(_FIELD_CHANGES_PARTS):
        return (*_field_changes_then(value, where), None, 0)
    if isinstance(value, list) and len(value) == len(_FIELD_CHANGES_PARTS) + 1:
        return (*_field_changes_owned(value, where), 0)
    return _field_changes_now(value, where)


def _field_read(value: Any, where: str) -> FieldRead:
    read = shape.Fields(value, where)
    return FieldRead(
        method=read.get("method", shape.one_of("export", "user_reads")),  # type: ignore[arg-type]
        users=read.get("users", shape.count),
        requests=read.get("requests", shape.count),
        fields=read.get("fields", _texts),
        # Not in plans saved by builds before these were: described as those builds did.
        windows=read.get("windows", _optional_count, None),
        whole=read.get("whole", shape.flag, True),
        taken_from=read.get("taken_from", shape.text, ""),
        taken_members=read.get("taken_members", shape.flag, False),
    )


def _issues(rows: Iterable[tuple[Any, ...]]) -> tuple[tuple[str, MemberIssue], ...]:
    return tuple(
        (audience, MemberIssue(where, message, value)) for audience, where, message, value in rows
    )


def _list_from_json(x: shape.Fields, members: _MemberLines) -> ListPlan:
    # Its lines in the order save_plan wrote them.
    add = members.members(x.get("add_rows", shape.count))
    remove = members.identifiers(x.get("remove_rows", shape.count), "a member to remove")
    add_fields = members.field_values(x.get("add_fields_rows", shape.count))
    update_keys = members.identifiers(
        x.get("field_update_key_rows", shape.count), "a field update's key"
    )
    return ListPlan(
        audience=x.get("audience", shape.text),
        list_name=x.get("list_name", shape.text),
        list_id=x.get("list_id", _optional_count),
        create=x.get("create", shape.flag),
        description=x.get("description", _optional_text),
        add=add,
        remove=remove,
        unchanged=x.get("unchanged", shape.count),
        live_count=x.get("live_count", shape.count),
        desired_count=x.get("desired_count", shape.count),
        update_existing_users_only=x.get("update_existing_users_only", shape.flag),
        campaign_id=x.get("campaign_id", _optional_count),
        channel_unsubscribe=x.get("channel_unsubscribe", shape.flag),
        # Absent from plans saved before it was recorded: unknown, and apply then sends a
        # removal only as a profile getUsers names by it either way.
        read_prefer_user_id=x.get("read_prefer_user_id", shape.optional(shape.flag), None),
        max_removal_percent=x.get("max_removal_percent", shape.percent),
        max_removals=x.get("max_removals", _optional_count),
        allow_empty=x.get("allow_empty", shape.flag, False),
        min_members=x.get("min_members", _optional_count, None),
        max_members=x.get("max_members", _optional_count, None),
        max_addition_percent=x.get("max_addition_percent", shape.optional(shape.percent), None),
        max_additions=x.get("max_additions", _optional_count, None),
        held_back_removals=x.get("held_back_removals", shape.count, 0),
        kept_for_skipped=x.get("kept_for_skipped", shape.count, 0),
        kept_respelled=x.get("kept_respelled", shape.count, 0),
        respelled=x.get("respelled", _texts, ()),
        kept_email_changed=x.get("kept_email_changed", shape.count, 0),
        email_changed=x.get("email_changed", _texts, ()),
        add_fields=add_fields,
        merge_nested_objects=x.get("merge_nested_objects", shape.flag),
        field_update_keys=update_keys,
        forgotten=x.get("forgotten", _texts, ()),
        not_created=x.get("not_created", _texts, ()),
        left_themselves=x.get("left_themselves", _texts, ()),
        left_sources=x.get("left_sources", shape.list_of(_left_source), ()),
        channel_unsubscribed=x.get("channel_unsubscribed", _texts, ()),
        resubscribe_allowed=x.get("resubscribe_allowed", shape.flag, False),
        resubscribed=x.get("resubscribed", _texts, ()),
        active_campaign_adds=x.get("active_campaign_adds", _campaign_adds, "warn"),
    )


_campaign_adds: shape.Check[Literal["block", "warn"]] = shape.one_of("block", "warn")  # type: ignore[assignment]
_left_source = shape.row(("source", shape.text), ("members", shape.count))
