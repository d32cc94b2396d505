"""dataFields: types fixed project-wide, overwrite vs merge, createNewFields."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.emulator import Project
from reconciler.emulator.fields import FieldTypeMismatch, collect_types, value_type
from tests.emulator.conftest import ClientFactory
from tests.emulator.support import failed, subscribe


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gold", "string"),
        ("2024-03-01", "date"),
        ("2024-03-01 10:20:30 +00:00", "date"),
        ("2024-03-01T10:20:30Z", "date"),
        ("2024-03-01T10:20:30.123+02:00", "date"),
        # A fraction after a space is text to Iterable (block/iterable-go's recorded
        # RequestFieldsTypesMismatched: "2020-04-13 14:04:09.000" came in as a string).
        ("2020-04-13 14:04:09.000", "string"),
        ("2020-04-13 14:04:09.5 +00:00", "string"),
        ("2020-04-13 14:04:09", "date"),
        ("2024-03-01 and more", "string"),
        (3, "long"),
        (3.5, "double"),
        (True, "boolean"),
        ({"a": 1}, "object"),
        (None, None),
    ],
)
def test_value_types(value: Any, expected: str | None) -> None:
    assert value_type(value) == expected


def test_nested_paths_and_arrays_are_typed() -> None:
    assert collect_types({"a": {"b": [1, 2.5], "c": ["x", "2024-01-01"]}, "e": []}) == {
        "a": "object",
        "a.b": "double",
        "a.c": "string",
    }
    with pytest.raises(FieldTypeMismatch):
        collect_types({"mixed": [1, "one"]})


def bulk_update(client: httpx.Client, users: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post("/api/users/bulkUpdate", json={"users": users, **extra})


def test_bulk_update_creates_fields_and_reports_them(
    client: httpx.Client, project: Project
) -> None:
    response = bulk_update(
        client,
        [
            {"email": "a@example.com", "dataFields": {"plan": "gold", "ltv": 10}},
            {"userId": "u-b", "dataFields": {"plan": "silver", "address": {"city": "Oslo"}}},
        ],
    )
    body = response.json()
    assert body["successCount"] == 2
    assert body["createdFields"] == ["plan", "ltv", "address", "address.city"]
    assert project.field_types == {
        "plan": "string",
        "ltv": "long",
        "address": "object",
        "address.city": "string",
    }


def test_a_type_mismatch_fails_only_that_user(client: httpx.Client, project: Project) -> None:
    project.add_user(email="seed@example.com", data_fields={"ltv": 10, "since": "2024-01-01"})
    response = bulk_update(
        client,
        [
            {"email": "a@example.com", "dataFields": {"ltv": "ten"}},
            {"userId": "u-b", "dataFields": {"since": "last year"}},
            {"email": "c@example.com", "dataFields": {"ltv": 11}},
        ],
    )
    assert response.status_code == 200
    assert response.json()["successCount"] == 1
    assert failed(response) == {
        "invalidDataEmails": ["a@example.com"],
        "invalidDataUserIds": ["u-b"],
    }
    # A failed member changes nothing, not even by creating its profile.
    assert project.find_user(email="a@example.com") is None
    assert project.find_user(user_id="u-b") is None


def test_the_field_profile_refuses_the_whole_bulk_update_for_one_mismatch(
    client: httpx.Client, project: Project, emulator_server: Any
) -> None:
    """As production clients see Iterable (block/iterable-go): 400 RequestFieldsTypesMismatched
    naming the field, and nothing written, not even the other users' good values."""
    emulator_server.emulator.faults.type_mismatch_rejects_request = True
    project.add_user(email="seed@example.com", data_fields={"ltv": 10})
    response = bulk_update(
        client,
        [
            {"email": "good@example.com", "dataFields": {"ltv": 11, "tier": "gold"}},
            {"email": "bad@example.com", "dataFields": {"ltv": "ten"}},
        ],
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "RequestFieldsTypesMismatched"
    assert body["params"]["validationErrors"] == {
        "default:::ltv": {
            "incomingTypes": ["string"],
            "expectedType": "long",
            "category": "user",
            "offendingValue": "ten",
            "_type": "UnexpectedType",
        }
    }
    assert project.find_user(email="good@example.com") is None
    assert "tier" not in project.field_types


def test_the_field_profile_types_a_new_field_by_its_first_user_in_the_request(
    client: httpx.Client, project: Project, emulator_server: Any
) -> None:
    emulator_server.emulator.faults.type_mismatch_rejects_request = True
    list_id = project.add_list("l")
    response = subscribe(
        client,
        list_id,
        [
            {"email": "a@example.com", "dataFields": {"score": 5}},
            {"email": "b@example.com", "dataFields": {"score": "five"}},
        ],
    )
    assert response.status_code == 400
    assert list(response.json()["params"]["validationErrors"]) == ["default:::score"]
    assert project.members(list_id) == []
    ok = subscribe(client, list_id, [{"email": "a@example.com", "dataFields": {"score": 5}}])
    assert (ok.status_code, project.members(list_id)) == (200, ["a@example.com"])


@pytest.mark.parametrize(
    ("existing", "sent", "accepted"),
    [
        (1.5, 2, True),
        (2, 2.5, False),
        ("text", "2024-01-01", True),
        ("2024-01-01", "text", False),
        (True, "true", False),
        ({"a": 1}, "flat", False),
        (1, None, True),
    ],
)
def test_type_compatibility(
    client: httpx.Client, project: Project, existing: Any, sent: Any, accepted: bool
) -> None:
    project.add_user(email="seed@example.com", data_fields={"f": existing})
    response = bulk_update(client, [{"email": "a@example.com", "dataFields": {"f": sent}}])
    assert response.json()["successCount"] == (1 if accepted else 0)


def test_single_update_mismatch_is_http_400(client: httpx.Client, project: Project) -> None:
    project.add_user(email="a@example.com", data_fields={"ltv": 10})
    response = client.post(
        "/api/users/update", json={"email": "a@example.com", "dataFields": {"ltv": "high"}}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "RequestFieldsTypesMismatched"
    assert "ltv" in response.json()["msg"]
    assert project.find_user(email="a@example.com").data_fields == {"ltv": 10}  # type: ignore[union-attr]


def test_single_update_creates_and_answers_success(client: httpx.Client, project: Project) -> None:
    response = client.post("/api/users/update", json={"userId": "u1", "dataFields": {"tier": "a"}})
    assert response.status_code == 200
    assert response.json() == {"msg": "", "code": "Success", "params": None}
    assert project.find_user(user_id="u1").data_fields == {"tier": "a"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "bad"}, 400, "InvalidEmailAddressError"),
        ({"userId": "x" * 60}, 400, "InvalidUserIdError"),
        ({"dataFields": {"a": 1}}, 400, "BadParams"),
    ],
)
def test_single_update_identifier_errors(
    client: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/api/users/update", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_single_update_conflict_is_409(client: httpx.Client, project: Project) -> None:
    project.add_user(email="a@example.com")
    project.add_user(user_id="u-b")
    response = client.post("/api/users/update", json={"email": "a@example.com", "userId": "u-b"})
    assert response.status_code == 409


@pytest.mark.parametrize("current", [{"currentEmail": "Old@x.io"}, {"currentUserId": "U-1"}])
def test_update_email_moves_the_profile_with_its_lists_and_fields(
    typed_client: ClientFactory, current: dict[str, str]
) -> None:
    """updateEmail (email-based projects): one profile, its memberships and fields kept."""
    client, project = typed_client("email")
    list_id = project.add_list("l")
    project.add_user(email="old@x.io", user_id="U-1", data_fields={"tier": "a"}, list_ids=[list_id])
    response = client.post("/api/users/updateEmail", json={**current, "newEmail": "New@x.io"})
    assert response.status_code == 200, response.text
    assert project.members(list_id) == ["new@x.io"]
    assert project.find_user(email="old@x.io") is None
    moved = project.find_user(email="new@x.io")
    assert moved is not None and (moved.user_id, moved.data_fields) == ("U-1", {"tier": "a"})
    assert len(project.users) == 1


@pytest.mark.parametrize(
    ("project_type", "body", "status"),
    [
        ("email", {"currentEmail": "a@x.io", "newEmail": "b@x.io"}, 409),  # b's email
        ("email", {"currentEmail": "a@x.io", "newEmail": "gone@x.io"}, 409),  # forgotten
        ("email", {"currentEmail": "nobody@x.io", "newEmail": "c@x.io"}, 400),
        ("email", {"newEmail": "c@x.io"}, 400),
        ("email", {"currentEmail": "a@x.io", "newEmail": "not-an-email"}, 400),
        ("hybrid", {"currentEmail": "a@x.io", "newEmail": "c@x.io"}, 400),
    ],
)
def test_update_email_refusals_change_nothing(
    typed_client: ClientFactory, project_type: str, body: dict[str, str], status: int
) -> None:
    client, project = typed_client(project_type)
    project.add_user(email="a@x.io", user_id="U-1")
    project.add_user(email="b@x.io", user_id="U-2")
    project.forget(email="gone@x.io")
    response = client.post("/api/users/updateEmail", json=body)
    assert response.status_code == status, response.text
    assert sorted(u.email or "" for u in project.users.values()) == ["a@x.io", "b@x.io"]


@pytest.mark.parametrize("project_type", ["hybrid", "userId"])
def test_an_update_changes_the_email_and_user_id_given_in_data_fields(
    typed_client: ClientFactory, project_type: str
) -> None:
    """userID-based and hybrid projects change a profile's identifiers by users/update
    (support article 217502386): the profile keeps its lists and fields."""
    client, project = typed_client(project_type)
    list_id = project.add_list("l")
    project.add_user(email="old@x.io", user_id="U-1", data_fields={"tier": "a"}, list_ids=[list_id])
    body = {"userId": "U-1", "dataFields": {"email": "New@x.io", "userId": "U-9"}}
    response = client.post("/api/users/update", json=body)
    assert response.status_code == 200, response.text
    (user,) = project.users.values()
    assert (user.email, user.user_id, user.data_fields) == ("new@x.io", "U-9", {"tier": "a"})
    assert project.members(list_id, prefer_user_id=True) == ["U-9"]
    assert project.find_user(user_id="U-1") is None


def test_an_update_to_another_profiles_email_is_a_conflict_in_hybrid_projects(
    typed_client: ClientFactory,
) -> None:
    client, project = typed_client("hybrid")
    project.add_user(email="a@x.io", user_id="U-1")
    project.add_user(email="b@x.io", user_id="U-2")
    response = bulk_update(client, [{"userId": "U-1", "dataFields": {"email": "b@x.io"}}])
    assert failed(response) == {"conflictUserIds": ["U-1"]}
    assert project.find_user(user_id="U-1").email == "a@x.io"  # type: ignore[union-attr]


def test_an_email_projects_update_ignores_an_email_in_data_fields(
    typed_client: ClientFactory,
) -> None:
    """Email-based projects change an email with updateEmail alone."""
    client, project = typed_client("email")
    project.add_user(email="a@x.io")
    body = {"email": "a@x.io", "dataFields": {"email": "z@x.io", "userId": "U-7"}}
    assert client.post("/api/users/update", json=body).status_code == 200
    (user,) = project.users.values()
    assert (user.email, user.user_id) == ("a@x.io", "U-7")


def test_top_level_fields_are_overwritten_and_others_kept(
    client: httpx.Client, project: Project
) -> None:
    user = project.add_user(
        email="a@example.com", data_fields={"keep": 1, "prefs": {"mobile": True, "email": True}}
    )
    bulk_update(client, [{"email": "a@example.com", "dataFields": {"prefs": {"sms": False}}}])
    assert user.data_fields == {"keep": 1, "prefs": {"sms": False}}


def test_merge_nested_objects_merges(client: httpx.Client, project: Project) -> None:
    user = project.add_user(
        email="a@example.com", data_fields={"prefs": {"mobile": True, "deep": {"x": 1}}}
    )
    bulk_update(
        client,
        [
            {
                "email": "a@example.com",
                "mergeNestedObjects": True,
                "dataFields": {"prefs": {"sms": False, "deep": {"y": 2}}},
            }
        ],
    )
    assert user.data_fields == {"prefs": {"mobile": True, "sms": False, "deep": {"x": 1, "y": 2}}}


def test_create_new_fields_false_filters_unknown_fields(
    client: httpx.Client, project: Project
) -> None:
    project.add_user(email="seed@example.com", data_fields={"known": "x"})
    response = bulk_update(
        client,
        [{"email": "a@example.com", "dataFields": {"known": "y", "fresh": 1, "obj": {"n": 1}}}],
        createNewFields=False,
    )
    body = response.json()
    assert body["successCount"] == 1
    assert body["filteredOutFields"] == ["fresh", "obj"]
    assert body["createdFields"] == []
    assert project.find_user(email="a@example.com").data_fields == {"known": "y"}  # type: ignore[union-attr]
    assert "fresh" not in project.field_types


def test_a_project_that_accepts_no_new_fields_drops_them_unless_a_write_asks(
    client: httpx.Client, project: Project
) -> None:
    # The project's own setting decides for writes that do not say createNewFields, and
    # subscribe cannot say it: its answer names what it dropped, as bulkUpdate's does.
    project.accepts_new_fields = False
    project.add_user(email="seed@example.com", data_fields={"known": "x"})
    list_id = project.add_list("l")
    data = {"known": "y", "fresh": 1}
    body = subscribe(client, list_id, [{"email": "a@example.com", "dataFields": data}]).json()
    assert (body["successCount"], body["filteredOutFields"]) == (1, ["fresh"])
    assert project.find_user(email="a@example.com").data_fields == {"known": "y"}  # type: ignore[union-attr]
    body = bulk_update(client, [{"email": "b@example.com", "dataFields": data}]).json()
    assert body["filteredOutFields"] == ["fresh"]
    assert "fresh" not in project.field_types
    body = bulk_update(
        client, [{"email": "b@example.com", "dataFields": data}], createNewFields=True
    ).json()
    assert (body["filteredOutFields"], body["createdFields"]) == ([], ["fresh"])


def test_subscribe_writes_data_fields_and_fails_mismatches(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    project.add_user(email="seed@example.com", data_fields={"score": 1})
    response = subscribe(
        client,
        list_id,
        [
            {"email": "ok@example.com", "dataFields": {"score": 5, "new": True}},
            {"email": "bad@example.com", "dataFields": {"score": "five"}},
        ],
    )
    assert response.json()["createdFields"] == ["new"]
    assert failed(response) == {"invalidDataEmails": ["bad@example.com"]}
    # A member failing on data is not subscribed either.
    assert project.members(list_id) == ["ok@example.com"]


def test_bulk_update_reports_unknown_user_ids_as_invalid_in_email_projects(
    typed_client: ClientFactory,
) -> None:
    client, project = typed_client("email")
    response = bulk_update(client, [{"userId": "u1", "dataFields": {"a": 1}}])
    # notFound* is documented "for subscribe/unsubscribe only".
    assert failed(response) == {"invalidUserIds": ["u1"]}
    assert project.users == {}
