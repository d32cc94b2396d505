"""Iterable's endpoints, one function each: (project, call) -> response.

Bodies arrive already parsed and checked against the OpenAPI definition of the operation,
so the functions only enforce what the schema cannot say.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from reconciler.emulator import fields as profile_fields
from reconciler.emulator import spec
from reconciler.emulator.exports import (
    CANCELLED,
    COMPLETED,
    DOWNLOAD_PREFIX,
    FINAL_STATES,
    ExportJob,
    ExportJobs,
    ExportPlan,
    job_model,
    job_state,
    plan_files,
)
from reconciler.emulator.identifiers import is_valid_email, is_valid_user_id, normalize_email
from reconciler.emulator.identify import (
    FAILED_UPDATE_KEYS,
    Failure,
    Match,
    identify,
    member_failure,
)
from reconciler.emulator.knobs import Faults, Limits
from reconciler.emulator.project import (
    CHANNELS,
    LIST_API_SOURCE,
    SYSTEM_FIELD_TYPES,
    ListRecord,
    Project,
    User,
)
from reconciler.emulator.replies import (
    JSON_STREAM_TYPE,
    EmulatorResponse,
    Pacing,
    api_error,
    bad_params,
    fault_reply,
    invalid_list_id,
    json_reply,
    rate_limited,
    success,
    text_reply,
)


@dataclass
class Call:
    """One request as the endpoint functions see it."""

    path_params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    faults: Faults
    now: float = 0.0
    """The emulator's clock when the request arrived."""
    limits: Limits = field(default_factory=Limits)
    exports: ExportJobs = field(default_factory=ExportJobs)
    """The organisation's asynchronous export jobs (every project's)."""
    link_base: str = "http://emulator.invalid"
    """Scheme and host the request came to, for the file links the emulator serves."""

    @property
    def read_cutoff(self) -> float | None:
        """Reads show the project as of this time (Faults.read_lag_seconds); None: now."""
        lag = self.faults.read_lag_seconds
        return self.now - lag if lag > 0 else None


Endpoint = Callable[[Project, Call], EmulatorResponse]

_INTEGER = re.compile(r"-?\d{1,19}")


class _ParamError(Exception):
    def __init__(self, response: EmulatorResponse):
        self.response = response


def _int_param(value: str | None, name: str) -> int:
    if value is None:
        raise _ParamError(bad_params(f"Missing required parameter: {name}"))
    if not _INTEGER.fullmatch(value):
        raise _ParamError(bad_params(f"Invalid value for {name}: must be an integer"))
    return int(value)


def _bool_param(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value not in ("true", "false"):
        raise _ParamError(bad_params(f"Invalid value for {name}: must be true or false"))
    return value == "true"


def _first(call: Call, name: str) -> str | None:
    values = call.query.get(name)
    return values[0] if values else None


def handles_param_errors(endpoint: Endpoint) -> Endpoint:
    def wrapper(project: Project, call: Call) -> EmulatorResponse:
        try:
            return endpoint(project, call)
        except _ParamError as error:
            return error.response

    wrapper.__name__ = endpoint.__name__
    wrapper.__doc__ = endpoint.__doc__
    return wrapper


# Lists ------------------------------------------------------------------------------------


@handles_param_errors
def get_lists(project: Project, call: Call) -> EmulatorResponse:
    cutoff = call.read_cutoff
    records = project.lists.values() if cutoff is None else project.lists_as_of(cutoff)
    return json_reply(200, {"lists": [record.to_api() for record in records]})


@handles_param_errors
def get_campaigns(project: Project, call: Call) -> EmulatorResponse:
    """Paginated as Iterable documents it: `page` from 1, `pageSize` up to 1000 (20 when
    only `page` is given); without either, every campaign."""
    page_param, size_param = _first(call, "page"), _first(call, "pageSize")
    campaigns = sorted(project.campaigns.values(), key=lambda c: c["id"])
    if page_param is None and size_param is None:
        return json_reply(200, {"campaigns": campaigns})
    page = _int_param(page_param, "page") if page_param is not None else 1
    size = _int_param(size_param, "pageSize") if size_param is not None else 20
    if page < 1 or not 1 <= size <= 1000:
        return api_error(400, "InvalidParams", "page must be >= 1, pageSize 1..1000")
    chunk = campaigns[(page - 1) * size : page * size]
    body: dict[str, Any] = {"campaigns": chunk, "totalCampaignsCount": len(campaigns)}
    if page * size < len(campaigns):
        body["nextPageUrl"] = f"/api/campaigns?page={page + 1}&pageSize={size}"
    return json_reply(200, body)


def _java_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _kept_name(name: str, rewrites: list[str]) -> str:
    """The name a created list is kept under (Faults.list_name_rewrites)."""
    if "trim" in rewrites:
        name = name.strip()
    if "nfc" in rewrites:
        name = unicodedata.normalize("NFC", name)
    return name


@handles_param_errors
def create_list(project: Project, call: Call) -> EmulatorResponse:
    name: str = call.body["name"]
    if not name.strip():
        return bad_params("List name must not be empty")
    description = call.body.get("description")
    most = call.faults.list_description_max
    # Counted as Java counts a string's length (UTF-16 units: an emoji is two), the
    # stricter of the readings Iterable's "max character count" may have.
    if most is not None and isinstance(description, str) and _java_length(description) > most:
        return bad_params(f"List description must be at most {most} characters")
    list_id = project.add_list(_kept_name(name, call.faults.list_name_rewrites), description)
    record = project.lists[list_id]
    record.fresh_rejects_left = call.faults.fresh_list_rejects
    record.fresh_until = call.now + call.faults.fresh_list_seconds
    return json_reply(200, {"listId": list_id})


@handles_param_errors
def delete_list(project: Project, call: Call) -> EmulatorResponse:
    list_id = _int_param(call.path_params["listId"], "listId")
    record = project.writable_list(list_id)
    if record is None:
        return invalid_list_id(list_id)
    if record.in_use:
        # The OpenAPI's only word on it: 409 "List is in use".
        return api_error(409, "GenericError", f"List {list_id} is in use and cannot be deleted")
    project.delete_list(list_id)
    return success(f"Deleted list {list_id}")


@handles_param_errors
def get_users(project: Project, call: Call) -> EmulatorResponse:
    list_id = _int_param(_first(call, "listId"), "listId")
    prefer_user_id = _bool_param(_first(call, "preferUserId"), "preferUserId")
    record = _readable_list(project, call, list_id)
    if record is None:
        return invalid_list_id(list_id)
    failing = _failing_list(call, list_id)
    if failing is not None:
        return failing
    cutoff = call.read_cutoff
    keys = record.members if cutoff is None else project.member_keys_as_of(record, cutoff)
    lines = project.identifiers(keys, prefer_user_id)
    # One newline after each line, without a new string per line: lists run to millions.
    lines.append("")
    faults = call.faults
    body = "\n".join(lines)
    if faults.get_users_rewrites:
        body = _rewritten_lines(body, faults.get_users_rewrites)
    return _member_stream(
        text_reply(200, body),
        faults,
        faults.get_users_first_byte_seconds,
        faults.get_users_members_per_second,
        faults.get_users_stream_seconds,
    )


def _rewritten_lines(body: str, rewrites: list[str]) -> str:
    """`body`, a line per member, as a proxy or CDN might pass it on (Faults.get_users_rewrites)."""
    lines = body.split("\n")[:-1]
    if "blank_lines" in rewrites:
        lines = [x for line in lines for x in ("", " ", "\t ", line)] + ["  "]
    ends = [
        "\r\n"
        if "crlf" in rewrites and i % 2 == 0
        else "\r"
        if "cr" in rewrites and i % 3 == 1
        else "\n"
        for i in range(len(lines))
    ]
    bom = "\ufeff" if "bom" in rewrites else ""
    return bom + "".join(line + end for line, end in zip(lines, ends, strict=True))


@handles_param_errors
def list_size(project: Project, call: Call) -> EmulatorResponse:
    list_id = _int_param(call.path_params["listId"], "listId")
    record = _readable_list(project, call, list_id)
    if record is None:
        return invalid_list_id(list_id)
    failing = _failing_list(call, list_id)
    if failing is not None:
        return failing
    cutoff = call.read_cutoff
    size = len(record.members if cutoff is None else project.member_keys_as_of(record, cutoff))
    return text_reply(200, str(size))


def _failing_list(call: Call, list_id: int) -> EmulatorResponse | None:
    """Faults.failing_list_ids: this list's member reads fail, every time."""
    if list_id not in call.faults.failing_list_ids:
        return None
    response = fault_reply(call.faults.failing_list_status, None, call.faults.fail_message)
    response.fault = "failing_list"
    return response


def _member_stream(
    response: EmulatorResponse,
    faults: Faults,
    first_byte_seconds: float,
    members_per_second: float | None,
    stream_seconds: float | None,
) -> EmulatorResponse:
    """A line-per-member answer paced and perhaps cut by the read-speed knobs.

    The cut is decided here, from the modelled times rather than the wall clock, so it falls
    after the same member however busy the machine is.
    """
    total = response.body.count(b"\n")
    cut: int | None = None
    if stream_seconds is not None:
        if first_byte_seconds >= stream_seconds:
            cut = -1
        elif members_per_second is not None:
            due = math.floor((stream_seconds - first_byte_seconds) * members_per_second)
            cut = due if due < total else None
    if cut is None and faults.streams_to_cut > 0:
        faults.streams_to_cut -= 1
        cut = total // 2
    if cut is None and first_byte_seconds <= 0 and members_per_second is None:
        return response
    response.pacing = Pacing(first_byte_seconds, members_per_second, cut)
    if cut is not None:
        response.fault = "stream_cut"
    return response


def _readable_list(project: Project, call: Call, list_id: int) -> ListRecord | None:
    """The Standard list a member read asks about, as the (possibly lagging) reads see it."""
    cutoff = call.read_cutoff
    record = project.writable_list(list_id) if cutoff is None else None
    if cutoff is not None:
        record = project.list_as_of(list_id, cutoff)
        if record is not None and record.list_type != "Standard":
            record = None
    return record


# Membership writes -------------------------------------------------------------------------


@dataclass
class _BatchResult:
    """UserBulkUpdateListResponse, accumulated member by member."""

    success_count: int = 0
    fail_count: int = 0
    failed: dict[str, list[str]] = field(
        default_factory=lambda: {key: [] for key in FAILED_UPDATE_KEYS}
    )
    # dicts as ordered sets: the schema marks both arrays uniqueItems.
    created_fields: dict[str, None] = field(default_factory=dict)
    filtered_out_fields: dict[str, None] = field(default_factory=dict)

    def fail(self, failure: Failure) -> None:
        self.fail_count += 1
        for key, identifier in failure.entries:
            self.failed[key].append(identifier)

    def to_json(self, counts_only: bool = False) -> dict[str, Any]:
        if counts_only:
            # Faults.counts_only_answers: the older shape, failures counted, few named.
            return {
                "successCount": self.success_count,
                "failCount": self.fail_count,
                "invalidEmails": self.failed["invalidEmails"],
                "invalidUserIds": self.failed["invalidUserIds"],
            }
        return {
            "successCount": self.success_count,
            "failCount": self.fail_count,
            "failedUpdates": self.failed,
            "createdFields": list(self.created_fields),
            "filteredOutFields": list(self.filtered_out_fields),
        }


def _writable_list_or_error(
    project: Project, call: Call, list_id: int
) -> ListRecord | EmulatorResponse:
    record = project.writable_list(list_id)
    if record is None:
        return invalid_list_id(list_id)
    if record.fresh_rejects_left > 0:
        record.fresh_rejects_left -= 1
        return invalid_list_id(list_id)
    if call.now < record.fresh_until:
        return invalid_list_id(list_id)
    return record


@dataclass
class _Upsert:
    user: User
    created: Mapping[str, str]
    filtered_out: list[str]


def _upsert(
    project: Project,
    member: dict[str, Any],
    *,
    create_new_fields: bool,
    update_existing_only: bool = False,
    phone_e164_only: bool = False,
) -> _Upsert | Failure:
    """Find or create the member's profile and write its dataFields; all or nothing
    (but a phoneNumber Iterable would not keep, with `phone_e164_only`: _kept_phone)."""
    email: str | None = member.get("email")
    user_id: str | None = member.get("userId")
    found = identify(
        project,
        email,
        user_id,
        create=True,
        prefer_user_id=bool(member.get("preferUserId", False)),
        update_existing_only=update_existing_only,
    )
    if isinstance(found, Failure):
        return found
    reported_email = normalize_email(email) if email is not None else None

    data: dict[str, Any] = member.get("dataFields") or {}
    custom = {k: v for k, v in data.items() if k not in SYSTEM_FIELD_TYPES}
    if phone_e164_only and not _kept_phone(custom.get(PHONE_FIELD)):
        # Dropped before typing: a value never stored must not type the field either.
        custom.pop(PHONE_FIELD, None)
    membership: list[int] | None = None
    if project.membership_field in data:
        value = data[project.membership_field]
        if not isinstance(value, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in value
        ):
            return member_failure("invalidData", reported_email, user_id)
        membership = value
    try:
        write = profile_fields.plan_write(project.field_types, custom, create_new=create_new_fields)
    except profile_fields.FieldTypeMismatch:
        return member_failure("invalidData", reported_email, user_id)
    renamed = _renamed(project, found, data)
    if isinstance(renamed, Failure):
        return member_failure(renamed.kind, reported_email, user_id)

    user = _apply_match(project, found)
    if renamed is not None:
        new_email, new_user_id = renamed
        if new_email is not None:
            project.set_email(user, new_email)
        if new_user_id is not None:
            project.set_user_id(user, new_user_id)
    if custom:
        project.write_fields(user, write, merge_nested=bool(member.get("mergeNestedObjects")))
    if membership is not None:
        # Iterable lets a user update set list membership directly, bypassing subscribe
        # events (and journeys). Reproduced, and counted, so tests can prove nobody does it.
        project.set_membership(user, membership)
    return _Upsert(user, write.created, write.filtered_out)


# Iterable sends SMS to phoneNumber and keeps it only "in the proper format and include a
# country code", +16503926753 (its SMS overview, support article 211970843); Segment's
# Iterable docs (segment-docs PR 4340) say a number in another form is not shown on the
# profile. E.164: a +, a country code not starting with 0, at most 15 digits. The emulator
# keeps its own pattern, not reconciler's, so that a mistake in one shows against the other.
PHONE_FIELD = "phoneNumber"
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def _kept_phone(value: Any) -> bool:
    """Whether Iterable keeps this phoneNumber (E.164 text; null clears it); an absent
    one is None too, and nothing is dropped."""
    return value is None or (isinstance(value, str) and _E164.fullmatch(value) is not None)


def _renamed(
    project: Project, found: Match, data: dict[str, Any]
) -> tuple[str | None, str | None] | Failure | None:
    """A new email or userId given in dataFields: how an update changes them in userID-based
    and hybrid projects, and a userId in email-based ones (support article 217502386:
    `{"userId": "old", "dataFields": {"userId": "new", "email": "new@x.com"}}`). Refused
    when another profile holds an identifier the project keeps unique, or it is forgotten.
    An email-based project changes an email with updateEmail only: there it is ignored."""
    email = data.get("email") if project.project_type != "email" else None
    user_id = data.get("userId")
    email = email if isinstance(email, str) and email else None
    user_id = user_id if isinstance(user_id, str) and user_id else None
    if email is None and user_id is None:
        return None
    if (email is not None and not is_valid_email(email)) or (
        user_id is not None and not is_valid_user_id(user_id)
    ):
        return Failure("invalidData")
    if project.is_forgotten(email, user_id):
        return Failure("forgotten")
    email = normalize_email(email) if email is not None else None
    taken = (
        email is not None
        and project.project_type == "hybrid"
        and project.user_by_email(email) not in (None, found.user)
    ) or (
        user_id is not None
        and project.project_type != "email"
        and project.user_by_user_id(user_id) not in (None, found.user)
    )
    if taken:
        return Failure("conflict")
    return email, user_id


def _apply_match(project: Project, match: Match) -> User:
    if match.user is None:
        return project.create_user(match.email, match.user_id)
    if match.email is not None:
        project.set_email(match.user, match.email)
    if match.user_id is not None:
        project.set_user_id(match.user, match.user_id)
    return match.user


def _type_refusal(
    project: Project, call: Call, users: list[dict[str, Any]], create_new_fields: bool
) -> EmulatorResponse | None:
    """Faults.type_mismatch_rejects_request: the whole request's refusal when any user's
    value has another type than its field (a field new to the project is typed by the
    first user of the request that sends it), or None."""
    if not call.faults.type_mismatch_rejects_request:
        return None
    types = dict(project.field_types)
    errors: dict[str, dict[str, Any]] = {}
    for user in users:
        data = user.get("dataFields") or {}
        custom = {k: v for k, v in data.items() if k not in SYSTEM_FIELD_TYPES}
        if not custom:
            continue
        try:
            write = profile_fields.plan_write(types, custom, create_new=create_new_fields)
        except profile_fields.FieldTypeMismatch as mismatch:
            # Keyed as production answers key them: an index name, ":::", the field.
            errors.setdefault(
                f"{project.name}:::{mismatch.path}",
                {
                    "incomingTypes": [mismatch.sent],
                    "expectedType": mismatch.existing,
                    "category": "user",
                    "offendingValue": _value_text(custom, mismatch.path),
                    "_type": "UnexpectedType",
                },
            )
            continue
        types.update(write.created)
    if not errors:
        return None
    response = json_reply(
        400,
        {
            "msg": "Request fields types mismatched",
            "code": "RequestFieldsTypesMismatched",
            "params": {"validationErrors": errors},
        },
    )
    response.fault = "type_mismatch"
    return response


def _value_text(data: Mapping[str, Any], path: str) -> str:
    """The value at a dotted path (an array's first item standing for the array), as text."""
    value: Any = data
    for part in path.split("."):
        while isinstance(value, list) and value:
            value = value[0]
        value = value.get(part) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else json.dumps(value)


@handles_param_errors
def subscribe(project: Project, call: Call) -> EmulatorResponse:
    record = _writable_list_or_error(project, call, call.body["listId"])
    if isinstance(record, EmulatorResponse):
        return record
    refusal = _type_refusal(project, call, call.body["subscribers"], project.accepts_new_fields)
    if refusal is not None:
        return refusal
    update_existing_only = bool(call.body.get("updateExistingUsersOnly", False))
    result = _BatchResult()
    for member in call.body["subscribers"]:
        outcome = _upsert(
            project,
            member,
            create_new_fields=project.accepts_new_fields,
            update_existing_only=update_existing_only,
            phone_e164_only=call.faults.phone_number_e164_only,
        )
        if isinstance(outcome, Failure):
            result.fail(outcome)
            continue
        project.subscribe(outcome.user, record.id)
        result.success_count += 1
        result.created_fields.update(dict.fromkeys(outcome.created))
        result.filtered_out_fields.update(dict.fromkeys(outcome.filtered_out))
    return json_reply(200, result.to_json(call.faults.counts_only_answers))


@handles_param_errors
def unsubscribe(project: Project, call: Call) -> EmulatorResponse:
    record = _writable_list_or_error(project, call, call.body["listId"])
    if isinstance(record, EmulatorResponse):
        return record
    absent = call.faults.absent_channel_unsubscribe_is_true
    channel_unsubscribe = bool(call.body.get("channelUnsubscribe", absent))
    result = _BatchResult()
    for member in call.body["subscribers"]:
        found = identify(project, member.get("email"), member.get("userId"), create=False)
        if isinstance(found, Failure):
            result.fail(found)
            continue
        assert found.user is not None  # create=False never asks for a new profile
        if channel_unsubscribe:
            found.user.unsubscribed_channel_ids = {
                *found.user.unsubscribed_channel_ids,
                record.channel_id,
            }
            project.touch(found.user)
        # Not on the list is still a success: Iterable's unsubscribe is idempotent.
        project.unsubscribe(found.user, record.id)
        # Recorded with the source that tells an API client's unsubscribe from a person's own.
        project.record_unsubscribe(
            found.user,
            LIST_API_SOURCE,
            list_ids=(record.id,),
            channel_ids=(record.channel_id,) if channel_unsubscribe else (),
            campaign_id=call.body.get("campaignId"),
        )
        result.success_count += 1
    return json_reply(200, result.to_json(call.faults.counts_only_answers))


@handles_param_errors
def bulk_update(project: Project, call: Call) -> EmulatorResponse:
    create_new_fields = bool(call.body.get("createNewFields", project.accepts_new_fields))
    refusal = _type_refusal(project, call, call.body["users"], create_new_fields)
    if refusal is not None:
        return refusal
    result = _BatchResult()
    for member in call.body["users"]:
        outcome = _upsert(
            project,
            member,
            create_new_fields=create_new_fields,
            phone_e164_only=call.faults.phone_number_e164_only,
        )
        if isinstance(outcome, Failure):
            if outcome.kind == "notFound":
                # The OpenAPI says notFound* is "for subscribe/unsubscribe only".
                outcome = Failure(
                    "invalid",
                    [(key.replace("notFound", "invalid"), v) for key, v in outcome.entries],
                )
            result.fail(outcome)
            continue
        result.success_count += 1
        result.created_fields.update(dict.fromkeys(outcome.created))
        result.filtered_out_fields.update(dict.fromkeys(outcome.filtered_out))
    return json_reply(200, result.to_json(call.faults.counts_only_answers))


@handles_param_errors
def update_user(project: Project, call: Call) -> EmulatorResponse:
    body = call.body
    email, user_id = body.get("email"), body.get("userId")
    if email is None and user_id is None:
        return bad_params("Either email or userId must be provided")
    if project.project_type == "userId" and user_id is None:
        return bad_params("userId is required in a userID-based project")
    outcome = _upsert(
        project,
        body,
        create_new_fields=bool(body.get("createNewFields", project.accepts_new_fields)),
        phone_e164_only=call.faults.phone_number_e164_only,
    )
    if isinstance(outcome, _Upsert):
        return success()
    if outcome.kind == "invalid":
        if any(key == "invalidEmails" for key, _ in outcome.entries):
            return api_error(400, "InvalidEmailAddressError", f"Invalid email: {email}")
        return api_error(400, "InvalidUserIdError", f"Invalid userId: {user_id}")
    if outcome.kind == "notFound":
        return api_error(400, "UnknownUserIdError", f"No user exists with userId {user_id}")
    if outcome.kind == "conflict":
        return api_error(409, "ExternalKeyConflict", "email and userId belong to different users")
    # invalidData: the only kind left.
    problem = _type_problem(project, body.get("dataFields") or {})
    return api_error(400, "RequestFieldsTypesMismatched", problem)


def update_email(project: Project, call: Call) -> EmulatorResponse:
    """POST /api/users/updateEmail (OpenAPI updateEmail): the profile named by currentEmail
    (taken first when both are given) or currentUserId gets newEmail, keeping its fields,
    list memberships and events ("all profile data and events will be migrated"). Refused
    when the new email is another profile's or forgotten (409, per the spec). Iterable
    documents it for email-based projects only (userID-based and hybrid ones change an
    email through users/update), so other projects are refused here: an assumption."""
    body = call.body
    new, current, user_id = body["newEmail"], body.get("currentEmail"), body.get("currentUserId")
    if project.project_type != "email":
        return bad_params("updateEmail is for email-based projects: use POST /api/users/update")
    if current is None and user_id is None:
        return bad_params("Either currentEmail or currentUserId must be provided")
    if not is_valid_email(new):
        return api_error(400, "InvalidEmailAddressError", f"Invalid email: {new}")
    user = project.user_by_email(current) if current is not None else None
    if current is None:
        user = project.user_by_user_id(user_id)
    if user is None:
        return bad_params("No user exists with the current email or userId")
    if project.is_forgotten(new, None):
        return api_error(409, "GenericError", "The new email has been forgotten")
    holder = project.user_by_email(new)
    if holder is not None and holder is not user:
        return api_error(409, "ExternalKeyConflict", "The new email already exists")
    project.set_email(user, new)
    return success()


def _type_problem(project: Project, data: dict[str, Any]) -> str:
    custom = {k: v for k, v in data.items() if k not in SYSTEM_FIELD_TYPES}
    try:
        profile_fields.plan_write(project.field_types, custom, create_new=True)
    except profile_fields.FieldTypeMismatch as mismatch:
        return (
            f"Field {mismatch.path!r} has type {mismatch.existing}; "
            f"the request sent {mismatch.sent}"
        )
    return f"Invalid value for {project.membership_field}"


# User reads -------------------------------------------------------------------------------


def _iterable_date(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S +00:00")


def _profile(
    project: Project, user: User, list_ids: AbstractSet[int] | None = None
) -> dict[str, Any]:
    """Custom and system fields of a profile, as getUser's dataFields and the export show."""
    doc: dict[str, Any] = dict(user.data_fields)
    if user.email is not None:
        doc["email"] = user.email
    if user.user_id is not None:
        doc["userId"] = user.user_id
    doc["signupDate"] = _iterable_date(user.signup_date)
    doc["profileUpdatedAt"] = _iterable_date(user.profile_updated_at)
    list_ids = user.list_ids if list_ids is None else list_ids
    if list_ids:
        doc[project.membership_field] = sorted(list_ids)
    if user.unsubscribed_channel_ids:
        doc["unsubscribedChannelIds"] = sorted(user.unsubscribed_channel_ids)
    return doc


def _user_response(project: Project, user: User | None) -> EmulatorResponse:
    if user is None:
        # Iterable answers an unknown user with 200 and an empty object, not 404.
        return json_reply(200, {})
    out: dict[str, Any] = {}
    if user.email is not None:
        out["email"] = user.email
    if user.user_id is not None:
        out["userId"] = user.user_id
    out["dataFields"] = _profile(project, user)
    return json_reply(200, {"user": out})


@handles_param_errors
def get_user_by_email(project: Project, call: Call) -> EmulatorResponse:
    email = call.path_params["email"]
    if not is_valid_email(email):
        return api_error(400, "InvalidEmailAddressError", f"Invalid email: {email}")
    return _user_response(project, project.user_by_email(email))


@handles_param_errors
def get_user_by_user_id(project: Project, call: Call) -> EmulatorResponse:
    user_id = call.path_params.get("userId")
    if user_id is None:
        user_id = _first(call, "userId")
    if not user_id:
        return bad_params("Missing required parameter: userId")
    user = project.user_by_user_id(user_id)
    answer = call.faults.unknown_user_id_answer
    if user is None and answer == "blank":
        return json_reply(200, {"user": {"email": "", "userId": ""}})
    if user is None and answer == "error":
        response = api_error(500, "error.users.noUserWithIdExists", "User not found")
        response.fault = "unknown_user_id"
        return response
    return _user_response(project, user)


def _forgotten_reply(project: Project, kind: str) -> EmulatorResponse:
    """GET /api/users/forgotten (emails) or /forgottenUserIds: hashes, sorted, so the
    answer says nothing about when each user was forgotten."""
    refused = "userId" if kind == "emails" else "email"
    if project.project_type == refused:
        what = "email" if kind == "emails" else "userId"
        return bad_params(f"Forgotten {what}s are not available in a {refused}-based project")
    if kind == "emails":
        return json_reply(200, {"hashedEmails": sorted(project.forgotten_emails)})
    return json_reply(200, {"hashedUserIds": sorted(project.forgotten_user_ids)})


@handles_param_errors
def get_forgotten_emails(project: Project, call: Call) -> EmulatorResponse:
    return _forgotten_reply(project, "emails")


@handles_param_errors
def get_forgotten_user_ids(project: Project, call: Call) -> EmulatorResponse:
    return _forgotten_reply(project, "userIds")


@handles_param_errors
def get_fields(project: Project, call: Call) -> EmulatorResponse:
    system = {
        name: kind
        for name, kind in SYSTEM_FIELD_TYPES.items()
        if name not in ("emailListIds", "userListIds") or name == project.membership_field
    }
    return json_reply(200, {"fields": {**system, **project.field_types}})


# Export -----------------------------------------------------------------------------------


@functools.cache
def _export_data_types() -> frozenset[str]:
    """dataTypeName values the OpenAPI allows for export/data.json."""
    operation = spec.openapi()["paths"]["/api/export/data.json"]["get"]
    parameter = next(p for p in operation["parameters"] if p["name"] == "dataTypeName")
    return frozenset(parameter["enum"])


_EXPORT_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?: ?([+-])(\d{2}):?(\d{2}))?"
)


def _parse_export_datetime(value: str, name: str) -> datetime:
    match = _EXPORT_DATETIME.fullmatch(value.strip())
    if match is None:
        raise _ParamError(bad_params(f"Invalid {name}: expected yyyy-MM-dd HH:mm:ss [ZZ]"))
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        raise _ParamError(bad_params(f"Invalid {name}: not a real date")) from None
    if sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        moment = moment - offset if sign == "+" else moment + offset
    return moment


def _export_window(call: Call) -> tuple[datetime | None, datetime | None]:
    """[start, end) over profileUpdatedAt, from range or startDateTime/endDateTime."""
    range_name = _first(call, "range")
    start_text, end_text = _first(call, "startDateTime"), _first(call, "endDateTime")
    if range_name is None and start_text is None and end_text is None:
        # The spec gives range a default ("Today") yet says range or start/end is required;
        # taking the stricter reading keeps a client from silently exporting one day.
        raise _ParamError(bad_params("Either range or startDateTime and endDateTime is required"))
    if range_name is not None:
        # Today by Iterable's clock (Faults.clock_offset_seconds), as it stamps profiles.
        moment = datetime.now(UTC) + timedelta(seconds=call.faults.clock_offset_seconds)
        today = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        windows: dict[str, tuple[datetime | None, datetime | None]] = {
            "All": (None, None),
            "Today": (today, None),
            "Yesterday": (today - timedelta(days=1), today),
            "BeforeToday": (None, today),
        }
        if range_name not in windows:
            raise _ParamError(bad_params(f"Invalid range: {range_name}"))
        return windows[range_name]
    if start_text is None or end_text is None:
        # "either 'range' or 'startDateTime' and 'endDateTime'": one date alone is not
        # given a meaning here, so a client never relies on a default Iterable may not have.
        raise _ParamError(bad_params("startDateTime and endDateTime go together"))
    start = _parse_export_datetime(start_text, "startDateTime")
    end = _parse_export_datetime(end_text, "endDateTime")
    return start, end


def _split_fields(call: Call, name: str) -> list[str] | None:
    values = call.query.get(name)
    if values is None:
        return None
    # onlyFields is repeated (collectionFormat multi) yet described as comma separated;
    # accept both spellings.
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@handles_param_errors
def export_json(project: Project, call: Call) -> EmulatorResponse:
    data_type = _first(call, "dataTypeName")
    if data_type is None:
        return bad_params("Missing required parameter: dataTypeName")
    if data_type not in _export_data_types():
        return bad_params(f"Invalid dataTypeName: {data_type}")
    start, end = _export_window(call)
    only = _split_fields(call, "onlyFields")
    omit = set(_split_fields(call, "omitFields") or ())
    if data_type == "emailUnSubscribe":
        body = "".join(_unsubscribe_lines(project, start, end, only, omit)).encode("utf-8")
        response = EmulatorResponse(200, {"Content-Type": JSON_STREAM_TYPE}, body)
        most = call.faults.events_stream_lines
        if most is not None and body.count(b"\n") > most:
            response.pacing = Pacing(0.0, None, int(most))
            response.fault = "stream_cut"
        return response
    if data_type != "user":
        # The emulator records no other events: their exports are empty, not an error.
        return EmulatorResponse(200, {"Content-Type": JSON_STREAM_TYPE}, b"")
    # The profiles are copied under the emulator's lock; their lines, seconds of work for
    # millions of them, are written outside it, so other requests (a getUsers beside it)
    # are answered meanwhile.
    snapshot = _export_snapshot(project, start, end, only, call.read_cutoff)
    membership = project.membership_field
    faults = call.faults
    response = EmulatorResponse(200, {"Content-Type": JSON_STREAM_TYPE}, b"")

    def build() -> Callable[[], None]:
        with _collector_paused():
            body = "".join(_snapshot_lines(membership, snapshot, only, omit)).encode("utf-8")

        def publish() -> None:
            response.body = body
            _member_stream(
                response,
                faults,
                faults.export_first_byte_seconds,
                faults.export_members_per_second,
                faults.export_stream_seconds,
            )

        return publish

    response.deferred = build
    return response


def _unsubscribe_lines(
    project: Project,
    start: datetime | None,
    end: datetime | None,
    only: list[str] | None,
    omit: set[str],
) -> Iterator[str]:
    """emailUnSubscribe events, oldest first, in [start, end) over createdAt."""
    start_ms = int(start.timestamp() * 1000) if start else None
    end_ms = int(end.timestamp() * 1000) if end else None
    for event in project.unsubscribe_events:
        at = event["createdAt"]
        if (start_ms is not None and at < start_ms) or (end_ms is not None and at >= end_ms):
            continue
        row = {**event, "createdAt": _iterable_date(at)}
        if only is not None:
            row = {key: row[key] for key in only if key in row}
        if omit:
            row = {key: value for key, value in row.items() if key not in omit}
        yield json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n"


@handles_param_errors
def get_channels(project: Project, call: Call) -> EmulatorResponse:
    """GET /api/channels: the project's message channels (the same two in every project)."""
    return json_reply(200, {"channels": [dict(c) for c in CHANNELS]})


# One profile as an export shows it, copied: (its fields, email, userId, signupDate,
# profileUpdatedAt, list ids, unsubscribed channel ids).
_SnapshotRow = tuple[
    Mapping[str, Any], str | None, str | None, int, int, tuple[int, ...], tuple[int, ...]
]


def _export_snapshot(
    project: Project,
    start: datetime | None,
    end: datetime | None,
    only: list[str] | None,
    cutoff: float | None = None,
) -> list[_SnapshotRow]:
    """The users in [start, end) over profileUpdatedAt, copied (only the fields asked for)
    so the rows can be written out after the emulator's lock is released, as the project
    goes on changing."""
    start_ms = int(start.timestamp() * 1000) if start else None
    end_ms = int(end.timestamp() * 1000) if end else None
    users: Iterable[tuple[User, AbstractSet[int]]] = (
        ((user, user.list_ids) for user in project.users.values())
        if cutoff is None
        else project.users_as_of(cutoff)
    )
    wanted = None if only is None else set(only)
    # With onlyFields, what is not asked for is not copied (nor sorted): an export for the
    # consent guard asks three fields of every profile of the project.
    lists_wanted = wanted is None or project.membership_field in wanted
    channels_wanted = wanted is None or "unsubscribedChannelIds" in wanted
    if start_ms is not None or end_ms is not None:
        users = (
            (user, list_ids)
            for user, list_ids in users
            if (start_ms is None or user.profile_updated_at >= start_ms)
            and (end_ms is None or user.profile_updated_at < end_ms)
        )
    # One comprehension: a project's millions of profiles go through it, each a new tuple:
    # with the collector on, those would set off full collections over the whole project.
    with _collector_paused():
        return _snapshot_rows(users, wanted, lists_wanted, channels_wanted)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while an export makes a row per profile (it
    makes no cycles): on for a project of millions, each collection walks all of them.
    Only turned on again by whoever turned it off."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _snapshot_rows(
    users: Iterable[tuple[User, AbstractSet[int]]],
    wanted: AbstractSet[str] | None,
    lists_wanted: bool,
    channels_wanted: bool,
) -> list[_SnapshotRow]:
    return [
        (
            _copy_fields(data, wanted) if (data := user.data_fields) else _NO_FIELDS,
            user.email,
            user.user_id,
            user.signup_date,
            user.profile_updated_at,
            tuple(sorted(list_ids)) if lists_wanted else (),
            tuple(sorted(user.unsubscribed_channel_ids)) if channels_wanted else (),
        )
        for user, list_ids in users
    ]


# A profile without fields shares this (never written to: _snapshot_lines copies a row).
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


def _copy_fields(data: dict[str, Any], wanted: AbstractSet[str] | None) -> dict[str, Any]:
    """A profile's fields (those `wanted`), nested objects copied too: a later write may
    merge into them in place. Scalars are shared, as most fields are."""
    if wanted is not None and len(wanted) < len(data):
        # The few fields asked for, looked up (not every field of the profile walked).
        return {
            key: copy.deepcopy(value) if isinstance(value, dict | list) else value
            for key in wanted
            if key in data
            for value in (data[key],)
        }
    return {
        key: copy.deepcopy(value) if isinstance(value, dict | list) else value
        for key, value in data.items()
        if wanted is None or key in wanted
    }


def _snapshot_lines(
    membership_field: str,
    snapshot: Iterable[_SnapshotRow],
    only: list[str] | None,
    omit: set[str],
    fast: bool = True,
) -> Iterator[str]:
    """The export's lines, as _profile shapes a profile (`fast`: with onlyFields, each line
    written from the fields asked for alone, byte for byte the same)."""
    if only is not None and fast:
        yield from _only_lines(membership_field, snapshot, only, omit)
        return
    for data, email, user_id, signup, updated, list_ids, channels in snapshot:
        row: dict[str, Any] = dict(data)
        if email is not None:
            row["email"] = email
        if user_id is not None:
            row["userId"] = user_id
        row["signupDate"] = _iterable_date(signup)
        row["profileUpdatedAt"] = _iterable_date(updated)
        if list_ids:
            row[membership_field] = list(list_ids)
        if channels:
            row["unsubscribedChannelIds"] = list(channels)
        if only is not None:
            row = {key: row[key] for key in only if key in row}
        if omit:
            row = {key: value for key, value in row.items() if key not in omit}
        yield json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n"


# What _only_lines writes for a field asked for: the profile's own, or one of its fields.
_EMAIL, _USER_ID, _SIGNUP, _UPDATED, _LISTS, _CHANNELS, _DATA = range(7)


def _only_lines(
    membership_field: str,
    snapshot: Iterable[_SnapshotRow],
    only: list[str],
    omit: set[str],
) -> Iterator[str]:
    """_snapshot_lines with onlyFields, without a dict per profile: the fields asked for,
    in their order, each encoded as json.dumps encodes it inside the whole row (so the
    bytes are the same), and the dates formatted only when asked for. As there, a
    profile's own email, userId, dates, lists and channels stand before a data field of
    the same name (the email and userId when it has them, the lists and channels when
    not empty)."""
    encode = json.encoder.encode_basestring
    dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)
    kinds = {
        "email": _EMAIL,
        "userId": _USER_ID,
        "signupDate": _SIGNUP,
        "profileUpdatedAt": _UPDATED,
        membership_field: _LISTS,
        "unsubscribedChannelIds": _CHANNELS,
    }
    fields = [
        (kinds.get(key, _DATA), encode(key) + ":", key)
        for key in dict.fromkeys(only)
        if key not in omit
    ]
    for data, email, user_id, signup, updated, list_ids, channels in snapshot:
        parts = []
        for kind, prefix, key in fields:
            if kind == _EMAIL and email is not None:
                parts.append(prefix + encode(email))
            elif kind == _USER_ID and user_id is not None:
                parts.append(prefix + encode(user_id))
            elif kind == _SIGNUP:
                parts.append(prefix + encode(_iterable_date(signup)))
            elif kind == _UPDATED:
                parts.append(prefix + encode(_iterable_date(updated)))
            elif kind == _LISTS and list_ids:
                parts.append(prefix + "[" + ",".join(map(str, list_ids)) + "]")
            elif kind == _CHANNELS and channels:
                parts.append(prefix + "[" + ",".join(map(str, channels)) + "]")
            elif key in data:
                parts.append(prefix + dumps(data[key]))
        yield "{" + ",".join(parts) + "}\n"


# Asynchronous export ------------------------------------------------------------------------


def _body_fields(value: Any) -> list[str] | None:
    """onlyFields/omitFields of StartExportRequest: one comma-separated string."""
    if value is None:
        return None
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _advance_exports(call: Call) -> None:
    queueing = call.faults.export_excess_jobs == "queue"
    call.exports.advance(call.now, call.limits.export_concurrent_jobs if queueing else None)


@handles_param_errors
def start_export(project: Project, call: Call) -> EmulatorResponse:
    body = call.body
    faults = call.faults
    if body["outputFormat"] != JSON_STREAM_TYPE:
        # Not modelled: the emulator writes JSON lines only, as the tool reads them.
        return bad_params(f"The emulator exports {JSON_STREAM_TYPE} only")
    start_text, end_text = body.get("startDateTime"), body.get("endDateTime")
    start = _parse_export_datetime(start_text, "startDateTime") if start_text else None
    end = _parse_export_datetime(end_text, "endDateTime") if end_text else None
    only = _body_fields(body.get("onlyFields"))
    omit = set(_body_fields(body.get("omitFields")) or ())
    _advance_exports(call)
    most = call.limits.export_concurrent_jobs
    rejecting = faults.export_excess_jobs == "reject"
    if rejecting and most is not None and call.exports.unfinished() >= most:
        response = rate_limited(1 if faults.retry_after else None)
        response.fault = "export_concurrency"
        return response
    snapshot: list[_SnapshotRow] = []
    if body["dataTypeName"] == "user":
        # The same rows as the synchronous export (data.json), so either read gives the
        # same memberships; events are not recorded, so their exports are empty.
        snapshot = _export_snapshot(project, start, end, only, call.read_cutoff)
    restart = faults.export_jobs_to_restart > 0
    if restart:
        faults.export_jobs_to_restart -= 1
    fail = not restart and faults.export_jobs_to_fail > 0
    if fail:
        faults.export_jobs_to_fail -= 1
    file_bytes, max_bytes = faults.export_file_bytes, faults.export_max_bytes
    plan = ExportPlan(
        body=b"",
        file_ends=[],
        file_rows=[],
        truncated=False,
        queue_seconds=faults.export_job_queue_seconds,
        rows_per_second=faults.export_job_members_per_second,
        restart=restart,
        restart_resets_files=faults.export_restart_resets_files,
        fail=fail,
        building=True,
    )
    job = call.exports.start(project.name, body["dataTypeName"], plan, call.now)
    _advance_exports(call)
    membership = project.membership_field

    def build() -> Callable[[], None]:
        # Writing millions of rows takes seconds: done outside the emulator's lock, from
        # the snapshot, while the job shows Enqueued with no files.
        text = "".join(_snapshot_lines(membership, snapshot, only, omit))
        rows, ends, file_rows, truncated = plan_files(text.encode("utf-8"), file_bytes, max_bytes)

        def publish() -> None:
            plan.body, plan.file_ends, plan.file_rows = rows, ends, file_rows
            plan.truncated, plan.building = truncated, False

        return publish

    response = json_reply(200, {"jobId": job.id})
    response.deferred = build
    return response


def _project_job(project: Project, call: Call) -> ExportJob:
    job_id = _int_param(call.path_params["jobId"], "jobId")
    job = call.exports.jobs.get(job_id)
    if job is None or job.project != project.name:
        # Another project's job is as unknown as one that never was.
        raise _ParamError(api_error(404, "NotFound", f"No export job {job_id}"))
    return job


@handles_param_errors
def export_files(project: Project, call: Call) -> EmulatorResponse:
    job = _project_job(project, call)
    _advance_exports(call)
    faults = call.faults
    start_after = _first(call, "startAfter")
    words = faults.export_words or ""
    names = [(job.file_name(index) + words, index) for index in job.files_ready()]
    if start_after is not None:
        names = [(name, index) for name, index in names if name > start_after]
    page = names[: faults.export_files_per_page]
    files = []
    for name, index in page:
        token = call.exports.link(job, index, call.now, faults.export_link_seconds)
        link = f"{call.link_base}{DOWNLOAD_PREFIX}{token}/{quote(name)}"
        files.append({"file": name, "url": link})
    state = job_state(job.state, faults.export_job_state_case)
    return json_reply(
        200,
        {
            "jobId": job.id,
            "jobState": state if job.state in FINAL_STATES else state + words,
            # Known once the job has finished.
            "exportTruncated": job.plan.truncated and job.state == COMPLETED,
            "files": files,
        },
    )


@handles_param_errors
def export_jobs(project: Project, call: Call) -> EmulatorResponse:
    _advance_exports(call)
    wanted = _first(call, "jobState")
    case = call.faults.export_job_state_case
    jobs = [
        job_model(job, case)
        for job in call.exports.jobs.values()
        if job.project == project.name
        and (wanted is None or job.state.lower() == wanted.strip().lower())
    ]
    return json_reply(200, {"jobs": jobs})


@handles_param_errors
def cancel_export(project: Project, call: Call) -> EmulatorResponse:
    job = _project_job(project, call)
    _advance_exports(call)
    if job.state in FINAL_STATES:
        return bad_params(f"Export job {job.id} has already finished")
    job.state = CANCELLED
    job.ended_at = call.now
    return success(f"Cancelled export job {job.id}")
