"""Desired members a plan leaves out because sending them cannot succeed, and that is no
failure (issue 16, points 5 and 6):

- users Iterable has forgotten (GDPR). It refuses every write naming them, so an audience
  holding one would fail every run, forever. `GET /api/users/forgotten` (emails) and
  `/api/users/forgottenUserIds` list SHA-256 hashes of the forgotten identifiers, trimmed
  and lowercased; each is read at most once per plan, and only when the plan adds anyone.
  A userId is hashed lowercased too, so a userId differing from a forgotten one only in
  case is taken as forgotten as well: left out and named, never sent.
- with `updateExistingUsersOnly`, users Iterable does not know: it answers them notFound
  and creates nobody, on every run. Their existence is read as mapped fields are (one
  export or per-user reads, whichever is cheaper), for up to MAX_TABLE_CHECK adds of an
  audience planned in DuckDB; beyond, the adds stay in DuckDB and are matched there with
  the profiles of one user export (the one that read the members, where it did): left
  unchecked, the same unknown people were planned and sent on every run, and a plan
  never came back empty.

Both are named in the plan (masked) with counts, and are neither changes nor failures.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import IterableError
from reconciler.iterable import IterableClient
from reconciler.members.engine.existence import creators_table, split_unknown
from reconciler.members.engine.field_tables import read_identifier_export
from reconciler.members.identity import Member, ProjectType
from reconciler.members.model import TableRows, member_rows
from reconciler.plan import FieldRead, ListPlan
from reconciler.plan.model import without_keys
from reconciler.state.live import read_field_values
from reconciler.state.users_file import ProfilesFile
from reconciler.state.windows import WholeDownload

# Adds of an updateExistingUsersOnly audience planned in DuckDB are held as members and
# checked as the Python engine's are up to this many; beyond (a first load of millions),
# they stay in DuckDB and are matched there (_without_unknown_in_tables).
MAX_TABLE_CHECK = 100_000
# The read, as a plan names it where it took another destination's export of the project.
EXISTENCE = "users' existence"


@dataclass
class LeftOut:
    lists: list[ListPlan]
    reads: list[str] = field(default_factory=list)  # what was read, for people
    # Unknown adds of updateExistingUsersOnly lists kept because another list's subscribe
    # creates them, by list name: settled by not_created_after_consent once consent has
    # held its people back (then nothing may create them).
    created_elsewhere: dict[str, tuple[Member, ...]] = field(default_factory=dict)


def forgotten_hash(identifier: str) -> str:
    """How Iterable lists a forgotten email or userId."""
    return hashlib.sha256(identifier.strip().lower().encode("utf-8")).hexdigest()


def leave_out_unsendable(
    client: IterableClient,
    project_type: ProjectType,
    lists: Sequence[ListPlan],
    users_file: ProfilesFile | None = None,
) -> LeftOut:
    """`users_file`: the export that read the members, where whether users exist is
    read rather than asked of Iterable again, when that is cheaper; or the project's
    export shared by the plan's destinations naming it, where an export is read."""
    out = LeftOut(list(lists))
    if not any(lp.add for lp in out.lists):
        return out
    # Neither read is needed for correctness: apply counts Iterable's forgotten and
    # notFound answers as expected too. So a read Iterable refuses (a key without the
    # permission, a project of another type) is noted, and the members are sent.
    try:
        emails = client.forgotten_hashes("email") if project_type != "userId" else frozenset()
        user_ids = client.forgotten_hashes("userId") if project_type != "email" else frozenset()
    except IterableError as exc:
        out.reads.append(
            f"forgotten users could not be read ({_why(exc)}): any forgotten member is sent, and "
            "Iterable's refusal is counted as expected"
        )
    else:
        calls = (project_type != "userId") + (project_type != "email")
        out.reads.append(f"forgotten users read with {calls} call{'s' if calls != 1 else ''}")
        if emails or user_ids:
            out.lists = [_without_forgotten(lp, emails, user_ids) for lp in out.lists]
    try:
        out.lists = _without_unknown(
            client, project_type, out.lists, out.reads, users_file, out.created_elsewhere
        )
    except IterableError as exc:
        out.reads.append(
            f"whether updateExistingUsersOnly members exist could not be read ({_why(exc)}): they "
            "are sent, and Iterable's notFound answers are counted as not created"
        )
    return out


def _why(exc: IterableError) -> str:
    """The failure without Iterable's message, which may quote a member's identifier."""
    where = f"{exc.endpoint}: " if exc.endpoint else ""
    return f"{where}HTTP {exc.status}" if exc.status else f"{where}no answer"


def _is_forgotten(member: Member, emails: frozenset[str], user_ids: frozenset[str]) -> bool:
    return (member.email is not None and forgotten_hash(member.email) in emails) or (
        member.user_id is not None and forgotten_hash(member.user_id) in user_ids
    )


def _without_forgotten(lp: ListPlan, emails: frozenset[str], user_ids: frozenset[str]) -> ListPlan:
    if not lp.add:
        return lp
    if isinstance(lp.add, TableRows):
        return _table_without_forgotten(lp, lp.add, emails, user_ids)
    forgotten = tuple(m.key for m in lp.add if _is_forgotten(m, emails, user_ids))
    if not forgotten:
        return lp
    gone = set(forgotten)
    return _left_out(lp, tuple(m for m in lp.add if m.key not in gone), forgotten=forgotten)


def _table_without_forgotten(
    lp: ListPlan, adds: TableRows[Member], emails: frozenset[str], user_ids: frozenset[str]
) -> ListPlan:
    """The same in DuckDB, for adds that live in its workspace (sha256 as Iterable's)."""
    engine = adds.engine
    connection = engine.connection
    hashes = engine.name("forgotten")
    connection.execute(f"CREATE TEMP TABLE {hashes} (kind VARCHAR, hash VARCHAR)")
    rows = [("email", h) for h in emails] + [("userId", h) for h in user_ids]
    connection.executemany(f"INSERT INTO {hashes} VALUES (?, ?)", rows)
    condition = (
        f"(email IS NOT NULL AND sha256(lower(trim(email))) IN "
        f"(SELECT hash FROM {hashes} WHERE kind = 'email')) OR (user_id IS NOT NULL AND "
        f"sha256(lower(trim(user_id))) IN (SELECT hash FROM {hashes} WHERE kind = 'userId'))"
    )
    found = connection.execute(
        f"SELECT key FROM {adds.table} WHERE {condition} ORDER BY key"
    ).fetchall()
    if not found:
        return lp
    kept = engine.name("adds")
    connection.execute(
        f"CREATE TABLE {kept} AS SELECT key, key_kind, email, user_id FROM {adds.table} "
        f"WHERE NOT ({condition})"
    )
    connection.execute(f"DROP TABLE {hashes}")
    remaining = member_rows(engine, kept, len(adds) - len(found))
    return _left_out(lp, remaining, forgotten=tuple(key for (key,) in found))


def _without_unknown(
    client: IterableClient,
    project_type: ProjectType,
    lists: list[ListPlan],
    reads: list[str],
    users_file: ProfilesFile | None = None,
    created_elsewhere: dict[str, tuple[Member, ...]] | None = None,
) -> list[ListPlan]:
    """updateExistingUsersOnly: adds Iterable has no profile for are not created (email-
    based projects ignore the option, so nothing is left out there). Those kept because
    another list creates them are noted in `created_elsewhere`, by list."""
    if project_type == "email":
        return lists
    in_tables = {lp.list_name for lp in lists if lp.update_existing_users_only and _in_table(lp)}
    checks: list[_Check] = []
    try:
        lists = _without_unknown_in_tables(client, project_type, lists, checks, users_file)
        checked = [lp for lp in _checkable(lists) if lp.list_name not in in_tables]
        if checked:
            lists = _without_unknown_members(
                client, project_type, lists, checked, checks, users_file, created_elsewhere
            )
    finally:
        reads.extend(_existence_lines(checks))
    return lists


def _without_unknown_members(
    client: IterableClient,
    project_type: ProjectType,
    lists: list[ListPlan],
    checked: list[ListPlan],
    checks: list[_Check],
    users_file: ProfilesFile | None,
    created_elsewhere: dict[str, tuple[Member, ...]] | None,
) -> list[ListPlan]:
    """_without_unknown of the `checked` lists' adds held as members (as the Python
    engine's are), their read added to `checks`."""
    checked = _as_members(checked)
    by_name = {lp.list_name: lp for lp in checked}
    lists = [by_name.get(lp.list_name, lp) for lp in lists]
    members = {m.key: m for lp in checked for m in lp.add}
    existing = read_field_values(
        client, list(members.values()), [], project_type, users_file, EXISTENCE
    )
    unknown = {key for key, values in existing.values.items() if values is None}
    # Unknown now, but another list of this plan creates them: apply subscribes those lists
    # first (DestinationPlan.changes), so they exist by the time these subscribes go out.
    # Left out, they were added only by the next run: no apply converged in one.
    elsewhere = _created_by_other_lists(lists, [members[key] for key in unknown], project_type)
    unknown -= elsewhere
    if created_elsewhere is not None:
        created_elsewhere.update(_kept_for(checked, elsewhere))
    checks.append(_Check(existing.read))
    return _not_created(lists, checked, unknown)


@dataclass(frozen=True)
class _Check:
    """An existence check's read, and whether it took the plan's `users_file` (the
    project's export shared by its reads, or the export that read the members)."""

    read: FieldRead
    from_file: bool = False


def _existence_lines(checks: Sequence[_Check]) -> list[str]:
    """What the plan says of the existence checks' reads: one line for the adds in DuckDB
    and those held as members where both took one file, whose export each line counted
    (two lines of "1 user export" for one); a line each otherwise."""
    reads = [check.read for check in checks]
    if len(checks) == 2 and _one_file(*checks):
        reads = [dataclasses.replace(reads[0], users=reads[0].users + reads[1].users)]
    return [
        f"{r.users:,} user{'s' if r.users != 1 else ''} checked for existence with "
        f"{r.describe(users=False)}"
        for r in reads
    ]


def _one_file(tables: _Check, members: _Check) -> bool:
    """Whether both checks read one file: the adds in DuckDB took it (always by export:
    _without_unknown_in_tables), so the members' read took it too where it was by export
    (read_field_values: the file serves every export of no field), which its FieldRead
    then says as the first's."""
    same = dataclasses.replace(members.read, users=tables.read.users) == tables.read
    return tables.from_file and same


def _as_members(lists: Sequence[ListPlan]) -> list[ListPlan]:
    """`lists` with their adds held as members: those still in DuckDB are few enough here
    (at most MAX_TABLE_CHECK, the usual churn)."""
    return [
        dataclasses.replace(lp, add=tuple(lp.add)) if isinstance(lp.add, TableRows) else lp
        for lp in lists
    ]


def _not_created(
    lists: Sequence[ListPlan], checked: Sequence[ListPlan], unknown: set[str]
) -> list[ListPlan]:
    """`lists`, the adds of those `checked` that are `unknown` left out as not created."""
    checked_ids = {id(lp) for lp in checked}
    out = []
    for lp in lists:
        if id(lp) in checked_ids and any(m.key in unknown for m in lp.add):
            not_created = tuple(m.key for m in lp.add if m.key in unknown)
            kept = tuple(m for m in lp.add if m.key not in unknown)
            lp = _left_out(lp, kept, not_created=not_created)
        out.append(lp)
    return out


def _checkable(lists: Sequence[ListPlan]) -> list[ListPlan]:
    """The updateExistingUsersOnly lists with adds to check for existence as members: not
    those whose adds in DuckDB are over MAX_TABLE_CHECK (_without_unknown_in_tables)."""
    return [lp for lp in lists if lp.update_existing_users_only and lp.add and not _in_table(lp)]


def _in_table(lp: ListPlan) -> bool:
    """Whether the list's adds are too many to hold as members: checked in DuckDB."""
    return isinstance(lp.add, TableRows) and len(lp.add) > MAX_TABLE_CHECK


def _without_unknown_in_tables(
    client: IterableClient,
    project_type: ProjectType,
    lists: list[ListPlan],
    checks: list[_Check],
    users_file: ProfilesFile | None,
) -> list[ListPlan]:
    """updateExistingUsersOnly lists whose adds stay in DuckDB (over MAX_TABLE_CHECK)
    without the adds no profile has, matched in DuckDB with one user export's profiles:
    `users_file` where it serves (the export that read the members: no request), else
    one export (its read added to `checks`). Those another list of the plan creates stay,
    as in _without_unknown."""
    big = [lp for lp in lists if lp.update_existing_users_only and _in_table(lp)]
    if not big:
        return lists
    adds = [lp.add for lp in big if isinstance(lp.add, TableRows)]
    engine = adds[0].engine
    n = sum(len(a) for a in adds)
    check: _Check
    if users_file is not None and users_file.serves((), n, client.settings, "export"):
        share = users_file

        def from_file(
            only: Sequence[str], path: Path, on_lines: Callable[[int], None] | None
        ) -> int:
            return share.download(only, path, on_lines, EXISTENCE)

        profiles = read_identifier_export(engine, from_file)
        check = _Check(users_file.field_read(n, ()), from_file=True)
    else:
        download = WholeDownload(client, project_type)
        profiles = read_identifier_export(engine, download)
        requests = int(download.whole) + download.windows
        check = _Check(FieldRead("export", n, requests, (), download.windows, download.whole))
    # Unknown now, but another list's subscribe creates them: they stay (_without_unknown).
    creating = [lp.add for lp in lists if lp.add and not lp.update_existing_users_only]
    checked = {id(lp) for lp in big}
    out = []
    try:
        creators = creators_table(engine, creating)
        for lp in lists:
            if id(lp) in checked and isinstance(lp.add, TableRows):
                lp = _table_without_unknown(lp, lp.add, profiles, creators, project_type)
            out.append(lp)
        engine.connection.execute(f"DROP TABLE {creators}")
    finally:
        engine.connection.execute(f"DROP TABLE {profiles}")
    checks.append(check)
    return out


def _table_without_unknown(
    lp: ListPlan, adds: TableRows[Member], profiles: str, creators: str, project_type: ProjectType
) -> ListPlan:
    kept, gone = split_unknown(adds, profiles, creators, project_type)
    if not gone:
        adds.engine.connection.execute(f"DROP TABLE {kept.table}")
        return lp
    return _left_out(lp, kept, not_created=gone)


def _kept_for(checked: Sequence[ListPlan], elsewhere: set[str]) -> dict[str, tuple[Member, ...]]:
    """Each checked list's unknown adds kept because another list's subscribe creates them
    (LeftOut.created_elsewhere), by list name."""
    out = {}
    for lp in checked:
        kept = tuple(m for m in lp.add if m.key in elsewhere)
        if kept:
            out[lp.list_name] = kept
    return out


def not_created_after_consent(
    lists: Sequence[ListPlan], left: LeftOut, project_type: ProjectType
) -> list[ListPlan]:
    """`lists` (after the consent guard) with the unknown adds kept for another list's
    subscribe (LeftOut.created_elsewhere) left out as not created when consent holds them
    back from every list that would create them: nothing creates them then, and the plan
    would show an add that apply reports not created, on every run."""
    if not left.created_elsewhere:
        return list(lists)
    out = []
    for lp in lists:
        pending = left.created_elsewhere.get(lp.list_name, ())
        if pending and not isinstance(lp.add, TableRows):
            created = _created_by_other_lists(lists, pending, project_type)
            adding = {m.key for m in lp.add}
            gone = tuple(m.key for m in pending if m.key not in created and m.key in adding)
            if gone:
                lost = set(gone)
                lp = _left_out(lp, tuple(m for m in lp.add if m.key not in lost), not_created=gone)
        out.append(lp)
    return out


def _created_by_other_lists(
    lists: Sequence[ListPlan], candidates: Sequence[Member], project_type: ProjectType
) -> set[str]:
    """Keys of `candidates` (unknown to Iterable) that a subscribe of a list without
    updateExistingUsersOnly creates in this apply, as Iterable would find them: by the same
    userId, or in hybrid projects by the same email unless the two name different userIds
    (a conflict there; emails identify nobody in userID-based projects)."""
    by_user_id = {m.user_id: m for m in candidates if m.user_id is not None}
    by_email: dict[str, list[Member]] = {}
    if project_type == "hybrid":
        for m in candidates:
            if m.email:
                by_email.setdefault(m.email, []).append(m)
    if not (by_user_id or by_email):
        return set()
    found: set[str] = set()
    for lp in lists:
        if lp.update_existing_users_only or not lp.add:
            continue
        if isinstance(lp.add, TableRows):
            pairs = _table_identifiers(lp.add, list(by_email), list(by_user_id))
        else:
            pairs = [(m.email, m.user_id) for m in lp.add]
        for email, user_id in pairs:
            if user_id is not None and user_id in by_user_id:
                found.add(by_user_id[user_id].key)
            for m in by_email.get(email or "", ()):
                if None in (user_id, m.user_id) or user_id == m.user_id:
                    found.add(m.key)
    return found


def _table_identifiers(
    adds: TableRows[Member], emails: list[str], user_ids: list[str]
) -> list[tuple[str | None, str | None]]:
    """(email, userId) of the adds in DuckDB that carry one of these identifiers: a query,
    not a walk through a first load's millions of rows."""
    connection = adds.engine.connection
    wanted = adds.engine.name("wanted")
    # One statement for all of them: executemany inserts a row at a time, seconds for the
    # 100,000 adds a plan checks for existence.
    connection.execute(
        f"CREATE TEMP TABLE {wanted} AS SELECT unnest(?::VARCHAR[]) AS kind, "
        "unnest(?::VARCHAR[]) AS id",
        [["email"] * len(emails) + ["userId"] * len(user_ids), [*emails, *user_ids]],
    )
    try:
        found = connection.execute(
            f"SELECT email, user_id FROM {adds.table} WHERE email IN (SELECT id FROM {wanted} "
            f"WHERE kind = 'email') OR user_id IN (SELECT id FROM {wanted} WHERE kind = 'userId')"
        ).fetchall()
    finally:
        connection.execute(f"DROP TABLE {wanted}")
    return [(email, user_id) for email, user_id in found]


def _left_out(
    lp: ListPlan,
    add: Sequence[Member],
    *,
    forgotten: tuple[str, ...] = (),
    not_created: tuple[str, ...] = (),
) -> ListPlan:
    gone = set(forgotten) | set(not_created)
    return dataclasses.replace(
        lp,
        add=add,
        add_fields=without_keys(lp.add_fields, gone),
        forgotten=lp.forgotten + forgotten,
        not_created=lp.not_created + not_created,
    )
