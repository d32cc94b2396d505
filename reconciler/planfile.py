"""Saved plans (`plan --out FILE`, `apply --plan FILE`): exactly what was reviewed is applied.

A plan file is gzip-compressed JSON holding the full member sets (it must, to apply
exactly: treat it as personal data), a digest of the manifests and member sources it was
made from, and a fingerprint of the live state it read. It never holds an API key: keys
are resolved again from the manifests' env/file references at apply time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.errors import ReconcilerError
from reconciler.identity import Member
from reconciler.manifest import Manifests
from reconciler.plan import (
    DestinationPlan,
    FieldRead,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
)
from reconciler.sources import MemberIssue
from reconciler.sources.read import source_path

FORMAT = "reconciler-plan"
VERSION = 2  # 2: trait-mapping field writes


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    manifest_root: Path
    manifest_digest: str
    targets: list[str] | None
    created_at: str


def manifests_digest(manifests: Manifests) -> str:
    """Digest of every manifest file and every file-based member source, by content."""
    files: set[Path] = {Path(f).resolve() for f in manifests.files}
    for audience in manifests.audiences.values():
        members = audience.spec.members
        # A query's result at a url cannot be digested without running it; the live
        # fingerprint still catches changes on Iterable's side.
        for relative in (members.csv, members.parquet, members.database):
            if relative is not None and relative != ":memory:":
                files.add(source_path(audience, relative).resolve())
    # Paths relative to the manifest root: a plan made in one checkout must still match in
    # another (CI jobs on self-hosted runners check out to different directories).
    root = Path(manifests.root).resolve()
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(os.path.relpath(path, root).encode() + b"\0")
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def save_plan(
    path: Path, plan: Plan, manifests: Manifests, manifest_root: Path, targets: list[str] | None
) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "reconciler_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # As given (so a plan made in one checkout applies in another from the same
        # relative place) and absolute (so it applies from any directory on this machine).
        "manifests": {
            "root": str(manifest_root),
            "absolute_root": str(manifest_root.absolute()),
            "digest": manifests_digest(manifests),
        },
        "targets": targets,
        "fingerprint": plan.fingerprint,
        "destinations": [_destination_to_json(d) for d in plan.destinations],
    }
    data = gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic, and readable only by its owner: the file holds member identifiers.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_plan(path: Path) -> SavedPlan:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReconcilerError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        payload = json.loads(text)
        if payload.get("format") != FORMAT:
            raise ValueError("not a plan file")
        if payload.get("version") != VERSION:
            raise ReconcilerError(
                f"{path} is a version {payload.get('version')} plan file; this reconciler reads "
                f"version {VERSION}: run plan again"
            )
        plan = Plan(
            tuple(_destination_from_json(d) for d in payload["destinations"]),
            payload["fingerprint"],
        )
        return SavedPlan(
            plan=plan,
            manifest_root=_root(payload["manifests"]),
            manifest_digest=payload["manifests"]["digest"],
            targets=payload.get("targets"),
            created_at=payload.get("created_at", ""),
        )
    except ReconcilerError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ReconcilerError(f"{path} is not a reconciler plan file (or it is damaged)") from None


def _root(recorded: dict[str, Any]) -> Path:
    given = Path(recorded["root"])
    absolute = recorded.get("absolute_root")
    if given.exists() or not absolute:
        return given
    return Path(absolute)


def _member_to_json(m: Member) -> list[Any]:
    return [m.key, m.key_kind, m.email, m.user_id, m.traits]


def _member_from_json(row: list[Any]) -> Member:
    key, key_kind, email, user_id, traits = row
    return Member(key, key_kind, email, user_id, traits)


def _destination_to_json(d: DestinationPlan) -> dict[str, Any]:
    return {
        "destination": d.destination,
        "project_type": d.project_type,
        "allow_list_deletion": d.allow_list_deletion,
        "member_read": d.member_read,
        "deletions": [[x.list_id, x.list_name] for x in d.deletions],
        "field_updates": [
            {
                "key": u.key,
                "key_kind": u.key_kind,
                "email": u.email,
                "user_id": u.user_id,
                "changes": {name: [old, new] for name, (old, new) in u.changes.items()},
                "merge_nested_objects": u.merge_nested_objects,
            }
            for u in d.field_updates
        ],
        "field_read": None
        if d.field_read is None
        else {
            "method": d.field_read.method,
            "users": d.field_read.users,
            "requests": d.field_read.requests,
            "fields": list(d.field_read.fields),
        },
        "skipped_members": [
            [audience, issue.where, issue.message, issue.value]
            for audience, issue in d.skipped_members
        ],
        "lists": [
            {
                "audience": lp.audience,
                "list_name": lp.list_name,
                "list_id": lp.list_id,
                "create": lp.create,
                "description": lp.description,
                "add": [_member_to_json(m) for m in lp.add],
                "remove": list(lp.remove),
                "unchanged": lp.unchanged,
                "live_count": lp.live_count,
                "desired_count": lp.desired_count,
                "update_existing_users_only": lp.update_existing_users_only,
                "campaign_id": lp.campaign_id,
                "channel_unsubscribe": lp.channel_unsubscribe,
                "max_removal_percent": lp.max_removal_percent,
                "max_removals": lp.max_removals,
                "add_fields": lp.add_fields,
                "merge_nested_objects": lp.merge_nested_objects,
                "field_update_keys": list(lp.field_update_keys),
            }
            for lp in d.lists
        ],
    }


def _destination_from_json(d: dict[str, Any]) -> DestinationPlan:
    return DestinationPlan(
        destination=d["destination"],
        project_type=d["project_type"],
        allow_list_deletion=bool(d["allow_list_deletion"]),
        member_read=d.get("member_read"),
        deletions=tuple(ListDeletion(int(i), str(n)) for i, n in d["deletions"]),
        field_updates=tuple(
            FieldUpdate(
                key=u["key"],
                key_kind=u["key_kind"],
                email=u["email"],
                user_id=u["user_id"],
                changes={name: (old, new) for name, (old, new) in u["changes"].items()},
                merge_nested_objects=bool(u["merge_nested_objects"]),
            )
            for u in d["field_updates"]
        ),
        field_read=None
        if d["field_read"] is None
        else FieldRead(
            method=d["field_read"]["method"],
            users=int(d["field_read"]["users"]),
            requests=int(d["field_read"]["requests"]),
            fields=tuple(d["field_read"]["fields"]),
        ),
        skipped_members=tuple(
            (audience, MemberIssue(where, message, value))
            for audience, where, message, value in d["skipped_members"]
        ),
        lists=tuple(
            ListPlan(
                audience=x["audience"],
                list_name=x["list_name"],
                list_id=x["list_id"],
                create=bool(x["create"]),
                description=x["description"],
                add=tuple(_member_from_json(m) for m in x["add"]),
                remove=tuple(x["remove"]),
                unchanged=int(x["unchanged"]),
                live_count=int(x["live_count"]),
                desired_count=int(x["desired_count"]),
                update_existing_users_only=bool(x["update_existing_users_only"]),
                campaign_id=x["campaign_id"],
                channel_unsubscribe=bool(x["channel_unsubscribe"]),
                max_removal_percent=float(x["max_removal_percent"]),
                max_removals=x["max_removals"],
                add_fields=x["add_fields"],
                merge_nested_objects=bool(x["merge_nested_objects"]),
                field_update_keys=tuple(x["field_update_keys"]),
            )
            for x in d["lists"]
        ),
    )
