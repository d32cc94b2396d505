"""The emulator's state file: JSON, replaced atomically, never holding an API key.

Atomic means: write a temporary file in the same directory (so the rename cannot cross a
file system), fsync it, then os.replace() it over the old file. A crash leaves either the
old state or the new one, never half of each.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reconciler.emulator.project import (
    DEFAULT_CHANNEL_ID,
    ListIdSequence,
    ListRecord,
    Project,
    User,
)

FORMAT_VERSION = 1

# What read_state raises for a file that is not a state it wrote: JSON that does not parse
# (ValueError; RecursionError when nested too deep for Python's parser), or that parses
# into another shape (KeyError, IndexError, TypeError, AttributeError). OSError (a
# directory, no permission) is not among them: that file is not damaged.
DAMAGED_STATE_ERRORS = (ValueError, LookupError, TypeError, AttributeError, RecursionError)


def project_to_json(project: Project, *, include_key_hash: bool = True) -> dict[str, Any]:
    position = {key: index for index, key in enumerate(project.users)}
    out: dict[str, Any] = {"name": project.name, "projectType": project.project_type}
    if include_key_hash:
        out["apiKeySha256"] = project.api_key_sha256
    out["lists"] = [
        {
            "id": record.id,
            "name": record.name,
            "description": record.description,
            "createdAt": record.created_at,
            "listType": record.list_type,
            "inUse": record.in_use,
            "channelId": record.channel_id,
            # Positions in "users", in subscription order, so getUsers answers in the same
            # order after a reload.
            "members": [position[key] for key in record.members],
        }
        for record in project.lists.values()
    ]
    out["users"] = [
        {
            "email": user.email,
            "userId": user.user_id,
            "dataFields": user.data_fields,
            "unsubscribedChannelIds": sorted(user.unsubscribed_channel_ids),
            "signupDate": user.signup_date,
            "profileUpdatedAt": user.profile_updated_at,
        }
        for user in project.users.values()
    ]
    out["fieldTypes"] = dict(project.field_types)
    out["campaigns"] = list(project.campaigns.values())
    out["silentMembershipWrites"] = project.silent_membership_writes
    out["forgottenEmails"] = sorted(project.forgotten_emails)
    out["forgottenUserIds"] = sorted(project.forgotten_user_ids)
    out["unsubscribeEvents"] = list(project.unsubscribe_events)
    return out


def project_from_json(data: dict[str, Any], list_ids: ListIdSequence) -> Project:
    project = Project(data["name"], data["projectType"], data["apiKeySha256"], list_ids=list_ids)
    for item in data["lists"]:
        project.lists[item["id"]] = ListRecord(
            id=item["id"],
            name=item["name"],
            description=item.get("description"),
            created_at=item["createdAt"],
            list_type=item["listType"],
            in_use=item.get("inUse", False),
            channel_id=item.get("channelId", DEFAULT_CHANNEL_ID),
        )
    users: list[User] = []
    for item in data["users"]:
        user = project.create_user(item.get("email"), item.get("userId"))
        user.data_fields = item.get("dataFields", {})
        user.unsubscribed_channel_ids = set(item.get("unsubscribedChannelIds", ()))
        users.append(user)
    for item in data["lists"]:
        for index in item.get("members", ()):
            project.subscribe(users[index], item["id"])
    # Last, because creating and subscribing stamp profiles with the current time.
    for user, item in zip(users, data["users"], strict=True):
        user.signup_date = item["signupDate"]
        user.profile_updated_at = item["profileUpdatedAt"]
    project.field_types = dict(data.get("fieldTypes", {}))
    project.campaigns = {int(c["id"]): dict(c) for c in data.get("campaigns", ())}
    project.silent_membership_writes = data.get("silentMembershipWrites", 0)
    project.forgotten_emails = set(data.get("forgottenEmails", ()))
    project.forgotten_user_ids = set(data.get("forgottenUserIds", ()))
    project.unsubscribe_events = [dict(e) for e in data.get("unsubscribeEvents", ())]
    project.dirty = False
    return project


def state_to_json(
    projects: dict[str, Project], list_ids: ListIdSequence, *, include_key_hash: bool = True
) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "nextListId": list_ids.next_id,
        "projects": [
            project_to_json(p, include_key_hash=include_key_hash) for p in projects.values()
        ],
    }


def read_state(path: Path) -> tuple[dict[str, Project], ListIdSequence]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported emulator state version {data.get('version')!r}")
    list_ids = ListIdSequence(data["nextListId"])
    projects = {}
    for item in data["projects"]:
        project = project_from_json(item, list_ids)
        projects[project.name] = project
    return projects, list_ids


def write_state_atomically(path: Path, state: dict[str, Any]) -> None:
    payload = json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600: the state holds people's emails.
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
