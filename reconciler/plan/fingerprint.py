"""A fingerprint of the live state a plan was made from, so a saved plan can tell whether
Iterable changed before it is applied (Terraform's stale-plan check)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # plan/ stays free of DuckDB: the digest is made in members/
    from reconciler.members.fingerprint import MembersDigest

# The fingerprint entry for the current values of mapped user fields, beside the lists.
FIELDS_KEY = "(mapped user fields)"
# How difference_in says they differ (a saved plan's refusal adds to it: plan/file.py).
FIELDS_CHANGED = "the current values of mapped user fields changed in Iterable"


def values_digest(values: Mapping[str, Any]) -> str:
    """Digest of the current field values a plan read (member key -> fields).

    The digest of `json.dumps(values, sort_keys=True, ...)`, made a member at a time: the
    whole text would hold every value read a second time, twice."""
    digest = ValuesDigest()
    keys = sorted(values)
    for start in range(0, len(keys), _DIGEST_BATCH):
        for key in keys[start : start + _DIGEST_BATCH]:
            digest.add(key, values[key])
    return digest.hexdigest()


class ValuesDigest:
    """values_digest fed a member at a time, in key order (plans made in DuckDB read the
    values back in batches: state/field_tables.py)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b"{")
        self._first = True

    def add(self, key: str, value: Any) -> None:
        if not self._first:
            self._digest.update(b",")
        self._first = False
        self._digest.update(f"{json.dumps(key)}:{_canonical(value)}".encode())

    def hexdigest(self) -> str:
        digest = self._digest.copy()
        digest.update(b"}")
        return digest.hexdigest()


_DIGEST_BATCH = 10_000


def _canonical(value: Any) -> str:
    """json.dumps(value, sort_keys=True, ...); a member's fields (a dict of plain values,
    millions of them in a large plan) are joined directly, to the same text."""
    if type(value) is dict:
        parts = []
        for key, item in sorted(value.items()):
            text = scalar_json(item) if type(key) is str else None
            if text is None:
                break
            parts.append(f"{encode_basestring_ascii(key)}:{text}")
        else:
            return "{" + ",".join(parts) + "}"
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def scalar_json(value: Any) -> str | None:
    """json.dumps of a str, int, finite float, bool or None; None for anything else."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if value is None or kind is bool:
        return "null" if value is None else "true" if value else "false"
    return None


def list_fingerprint(list_id: int | None, members: MembersDigest | None) -> dict[str, Any]:
    """A list's entry: its id and, when its members were read, their count and digest
    (members/fingerprint.py: the same whichever engine read them)."""
    if list_id is None:
        return {"list_id": None}
    if members is None:  # a list we only saw in GET /api/lists (a deletion candidate)
        return {"list_id": list_id}
    return {"list_id": list_id, "size": members.count, "digest": members.digest}


def first_difference(
    saved: dict[str, dict[str, dict[str, Any]]], current: dict[str, dict[str, dict[str, Any]]]
) -> str | None:
    """A sentence naming what changed, or None when the fingerprints match. With several
    destinations it names the one that changed: a US and an EU project often hold lists
    of one name."""
    found = difference_in(saved, current)
    return None if found is None else found[0]


def difference_in(
    saved: dict[str, dict[str, dict[str, Any]]],
    current: dict[str, dict[str, dict[str, Any]]],
    listed: Mapping[str, Mapping[int, str]] | None = None,
) -> tuple[str, str] | None:
    """first_difference's sentence and the destination it is of (for machines: the JSON
    error's `destination`), or None when the fingerprints match. `listed`: each
    destination's list names by id in Iterable's index now, so that a list renamed there
    (its id kept) is said to be, not to be deleted.

    Lists are compared before the mapped fields' values: a membership change on an audience
    with a trait mapping changes both (the values are read for the list's members), and
    the list is what actually changed."""
    fields_changed: str | None = None
    several = len(set(saved) | set(current)) > 1
    for destination in sorted(set(saved) | set(current)):
        before, after = saved.get(destination, {}), current.get(destination, {})
        for list_name in sorted(set(before) | set(after)):
            old, new = before.get(list_name), after.get(list_name)
            if old == new:
                continue
            if list_name == FIELDS_KEY:
                fields_changed = fields_changed or destination
                continue
            where = f"{list_name!r} in destination {destination!r}" if several else repr(list_name)
            names = (listed or {}).get(destination, {})
            if old is not None and new is None and (gone := _gone(old, list_name, names)):
                # Left out of the plan made now (an audience's listId whose list was
                # renamed or deleted): said as what happened to the list.
                return f"list {where} {gone}", destination
            if old is None or new is None:
                return (
                    f"list {list_name!r} in destination {destination!r} was not in both plans",
                    destination,
                )
            return _list_difference(where, old, new, names), destination
    if fields_changed is not None:
        return (
            FIELDS_CHANGED + (f" (destination {fields_changed!r})" if several else ""),
            fields_changed,
        )
    return None


def _gone(old: dict[str, Any], list_name: str, names: Mapping[int, str]) -> str | None:
    """What became of a saved plan's list that a plan made now leaves out, when Iterable's
    index says: renamed (its id under another name) or deleted (its id gone); None when
    neither is known (the index not read, the list there under its name)."""
    list_id = old.get("list_id")
    if not isinstance(list_id, int) or not names:
        return None
    renamed = names.get(list_id)
    if renamed is None:
        return f"(list {list_id}) was deleted"
    if renamed != list_name:
        return f"(list {list_id}) was renamed {renamed!r} in Iterable"
    return None


def _list_difference(
    where: str, old: dict[str, Any], new: dict[str, Any], names: Mapping[int, str]
) -> str:
    """What changed in one list (`where` names it) whose fingerprints differ; `names`, the
    destination's list names by id now."""
    if old.get("list_id") != new.get("list_id"):
        old_id = old.get("list_id")
        renamed = names.get(old_id) if isinstance(old_id, int) else None
        if new.get("list_id") is None:
            if renamed is not None:
                return f"list {where} (list {old_id}) was renamed {renamed!r} in Iterable"
            return f"list {where} was deleted"
        if old_id is None:
            return f"list {where} was created (id {new['list_id']})"
        if renamed is not None:
            return (
                f"list {where} now has id {new['list_id']} (list {old_id} was renamed "
                f"{renamed!r} in Iterable)"
            )
        return f"list {where} now has id {new['list_id']}"
    if old.get("size") == new.get("size") and _kind(old) != _kind(new):
        # The digests cannot be compared, so the list may well be unchanged.
        return (
            f"list {where} was digested by a different version than the "
            f"plan's ({_kind(old)} then, {_kind(new)} now: reconciler or DuckDB "
            "was upgraded); make the plan again"
        )
    if old.get("size") == new.get("size"):
        return f"the members of list {where} changed (still {_count(new.get('size'))})"
    old_size, new_size = _count(old.get("size")), _count(new.get("size"))
    return f"list {where} changed ({old_size} -> {new_size} members)"


def _kind(entry: dict[str, Any]) -> str:
    """What made a list's digest: "duckdb-VERSION:..." (both engines since one fingerprint),
    or an older reconciler's SHA-256 of the sorted identifiers."""
    digest = str(entry.get("digest", ""))
    return digest.split(":", 1)[0] if digest.startswith("duckdb-") else "sha256"


def _count(size: object) -> str:
    """A list size as people read counts (1,200); anything else as it is."""
    return f"{size:,}" if isinstance(size, int) else str(size)
