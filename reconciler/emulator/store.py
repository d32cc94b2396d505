"""The emulator's state file: JSON, replaced atomically, never holding an API key.

Atomic means: write a temporary file in the same directory (so the rename cannot cross a
file system), fsync it, then os.replace() it over the old file. A crash leaves either the
old state or the new one, never half of each.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import json_shape as shape
from reconciler.emulator.project import (
    DEFAULT_CHANNEL_ID,
    LIST_TYPES,
    PROJECT_TYPES,
    ListIdSequence,
    ListRecord,
    Project,
    User,
)
from reconciler.leftovers import sweep_partials

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


def project_from_json(data: Any, list_ids: ListIdSequence, where: str = "project") -> Project:
    """A project as project_to_json wrote it. Every value is checked as it is read: a file
    edited by hand, or by another program, failed later on a wrong one (a user with neither
    email nor userId, a name that is not a string, a date past year 9999, a list id that is
    not an integer) as an internal error, or as a client retrying a list for 20 s."""
    fields = shape.Fields(data, where)
    project = Project(
        fields.get("name", shape.text),
        fields.get("projectType", _project_type),  # type: ignore[arg-type]
        fields.get("apiKeySha256", shape.text),
        list_ids=list_ids,
    )
    lists = fields.objects("lists")
    for item in lists:
        record = ListRecord(
            id=item.get("id", _list_id(list_ids)),
            name=item.get("name", shape.text),
            description=item.get("description", shape.optional(shape.text), None),
            created_at=item.get("createdAt", epoch_ms),
            list_type=item.get("listType", _list_type),  # type: ignore[arg-type]
            in_use=item.get("inUse", shape.flag, False),
            channel_id=item.get("channelId", shape.count, DEFAULT_CHANNEL_ID),
        )
        if record.id in project.lists:
            raise shape.ShapeError(f"{where}.lists holds list id {record.id} twice")
        project.lists[record.id] = record
    users: list[User] = []
    stamps: list[tuple[int, int]] = []
    for index, item in enumerate(fields.objects("users")):
        email = item.get("email", shape.optional(shape.text), None)
        user_id = item.get("userId", shape.optional(shape.text), None)
        if email is None and user_id is None:
            raise shape.ShapeError(f"{where}.users[{index}] has neither email nor userId")
        user = project.create_user(email, user_id)
        user.data_fields = item.get("dataFields", shape.json_object, {})
        user.unsubscribed_channel_ids = set(item.get("unsubscribedChannelIds", _ids, ()))
        stamps.append((item.get("signupDate", epoch_ms), item.get("profileUpdatedAt", epoch_ms)))
        users.append(user)
    for item in lists:
        for index in item.get("members", shape.list_of(_position(len(users))), ()):
            project.subscribe(users[index], item.get("id", shape.count))
    # Last, because creating and subscribing stamp profiles with the current time.
    for user, (signup_date, updated_at) in zip(users, stamps, strict=True):
        user.signup_date = signup_date
        user.profile_updated_at = updated_at
    project.field_types = fields.get("fieldTypes", shape.mapping(shape.text), {})
    project.campaigns = {
        campaign["id"]: campaign for campaign in fields.get("campaigns", _campaigns, ())
    }
    project.silent_membership_writes = fields.get("silentMembershipWrites", shape.count, 0)
    project.forgotten_emails = set(fields.get("forgottenEmails", _texts, ()))
    project.forgotten_user_ids = set(fields.get("forgottenUserIds", _texts, ()))
    project.unsubscribe_events = list(fields.get("unsubscribeEvents", _events, ()))
    project.dirty = False
    return project


# Epoch milliseconds of a date Python can show (years 1970 to 9999): the API formats them.
_LAST_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


def epoch_ms(value: Any, where: str) -> int:
    if shape.count(value, where) > _LAST_MS:
        raise shape.ShapeError(f"{where} should be epoch milliseconds of a year up to 9999")
    return int(value)


_project_type = shape.one_of(*PROJECT_TYPES)
_list_type = shape.one_of(*LIST_TYPES)
_texts = shape.list_of(shape.text)
_ids = shape.list_of(shape.count)


def _list_id(list_ids: ListIdSequence) -> shape.Check[int]:
    """A list id below the next one to be given: a new list would otherwise take its id."""

    def check(value: Any, where: str) -> int:
        if shape.count(value, where) >= list_ids.next_id:
            raise shape.ShapeError(f"{where} should be below nextListId")
        return int(value)

    return check


def _position(users: int) -> shape.Check[int]:
    def check(value: Any, where: str) -> int:
        if shape.count(value, where) >= users:
            raise shape.ShapeError(f"{where} should be the position of one of the users")
        return int(value)

    return check


def _campaign(value: Any, where: str) -> dict[str, Any]:
    """A campaign as add_campaign makes it: the fields GET /api/campaigns answers with and
    reconciler reads are checked."""
    campaign = shape.Fields(value, where)
    campaign.get("id", shape.count)
    for name in ("name", "type", "campaignState", "messageMedium"):
        campaign.get(name, shape.text, None)
    for name in ("listIds", "suppressionListIds"):
        campaign.get(name, _ids, None)
    for name in ("createdAt", "updatedAt"):
        campaign.get(name, epoch_ms, None)
    return dict(value)


def _event(value: Any, where: str) -> dict[str, Any]:
    """An emailUnSubscribe event as Project.record_unsubscribe makes it."""
    event = shape.Fields(value, where)
    event.get("createdAt", epoch_ms)
    for name in ("email", "userId", "unsubSource"):
        event.get(name, shape.text, None)
    for name in ("emailListIds", "channelIds"):
        event.get(name, _ids, None)
    event.get("campaignId", shape.count, None)
    return dict(value)


_campaigns = shape.list_of(_campaign)
_events = shape.list_of(_event)


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
    """The projects of a state file; a ValueError naming the value that is wrong (a
    ShapeError: json_shape.py) for one it did not write."""
    data = shape.Fields(json.loads(path.read_text(encoding="utf-8")), "")
    version = data.get("version", lambda value, where: value, None)
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ValueError(f"{path}: unsupported emulator state version {version!r}")
    list_ids = ListIdSequence(data.get("nextListId", shape.count))
    projects = {}
    for index, item in enumerate(data.get("projects", shape.list_of(shape.json_object))):
        project = project_from_json(item, list_ids, f"projects[{index}]")
        if project.name in projects:
            raise shape.ShapeError(f"projects[{index}].name is the name of an earlier project")
        projects[project.name] = project
    return projects, list_ids


def write_state_atomically(path: Path, state: dict[str, Any]) -> None:
    payload = json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    _sweep_once(path)
    # mkstemp creates the file 0600: the state holds people's emails. Named for this
    # process, so that what a run killed while writing it (a sandbox of many members is
    # written often, for seconds at a time) leaves is removed by a later one.
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.partial-{os.getpid()}-", dir=directory)
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


_swept: set[Path] = set()


def _sweep_once(path: Path) -> None:
    """Remove, the first time this process writes `path`, the partial copies of it that
    killed runs left: `.NAME.partial-<pid>-...`, and the `.NAME.<random>.tmp` of earlier
    versions, each a copy of every user of the state."""
    if path in _swept:
        return
    _swept.add(path)
    sweep_partials(path, earlier_suffix=".tmp", holds_a_start=_a_states_start)


def _a_states_start(name: str) -> bool:
    """Whether the file `name` can be the start of a state file: empty, or a JSON object."""
    with open(name, "rb") as handle:
        return handle.read(1) in (b"", b"{")


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
