"""getUsers, size, user lookups, getFields and the user export."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from reconciler.emulator import Project
from tests.emulator.conftest import ClientFactory
from tests.emulator.support import get_users


def _seed_three(project: Project, list_id: int) -> None:
    if project.project_type != "userId":
        project.subscribe_direct(list_id, email="only-email@example.com")
    project.subscribe_direct(list_id, email="both@example.com", user_id="both-id")
    if project.project_type != "email":
        project.subscribe_direct(list_id, user_id="only-id")


@pytest.mark.parametrize(
    ("project_type", "prefer_user_id", "expected"),
    [
        ("hybrid", None, ["only-email@example.com", "both@example.com", "only-id"]),
        ("hybrid", False, ["only-email@example.com", "both@example.com", "only-id"]),
        ("hybrid", True, ["only-email@example.com", "both-id", "only-id"]),
        ("email", None, ["only-email@example.com", "both@example.com"]),
        ("email", True, ["only-email@example.com", "both@example.com"]),
        # Without preferUserId Iterable names profiles by email even in userID-based
        # projects (issue 16, point 7): only preferUserId=true gives their userIds.
        ("userId", None, ["both@example.com", "only-id"]),
        ("userId", False, ["both@example.com", "only-id"]),
        ("userId", True, ["both-id", "only-id"]),
    ],
)
def test_get_users_answers_identifiers_by_project_type(
    typed_client: ClientFactory,
    project_type: str,
    prefer_user_id: bool | None,
    expected: list[str],
) -> None:
    client, project = typed_client(project_type)
    list_id = project.add_list("l")
    _seed_three(project, list_id)
    assert get_users(client, list_id, prefer_user_id) == expected
    assert project.members(list_id, bool(prefer_user_id)) == expected


def test_get_users_is_plain_text_one_per_line(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    project.subscribe_direct(list_id, email="a@example.com")
    project.subscribe_direct(list_id, email="b@example.com")
    response = client.get("/api/lists/getUsers", params={"listId": list_id})
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "a@example.com\nb@example.com\n"
    empty = project.add_list("empty")
    assert client.get("/api/lists/getUsers", params={"listId": empty}).text == ""


def test_size_is_a_bare_number(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    for i in range(3):
        project.subscribe_direct(list_id, email=f"m{i}@example.com")
    response = client.get(f"/api/lists/{list_id}/size")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "3"


class TestUserLookup:
    def test_by_email(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        project.subscribe_direct(
            list_id, email="a@example.com", user_id="u-a", data_fields={"plan": "gold"}
        )
        user = client.get("/api/users/A@Example.com").json()["user"]
        assert user["email"] == "a@example.com"
        assert user["userId"] == "u-a"
        assert user["dataFields"]["plan"] == "gold"
        assert user["dataFields"]["userListIds"] == [list_id]

    def test_by_user_id_in_the_path_and_the_query(
        self, client: httpx.Client, project: Project
    ) -> None:
        project.add_user(user_id="team/42")
        by_path = client.get("/api/users/byUserId/team%2F42").json()
        by_query = client.get("/api/users/byUserId", params={"userId": "team/42"}).json()
        assert by_path == by_query
        assert by_path["user"]["userId"] == "team/42"
        assert "email" not in by_path["user"]

    def test_unknown_user_is_200_with_an_empty_object(self, client: httpx.Client) -> None:
        for path in ("/api/users/ghost@example.com", "/api/users/byUserId/ghost"):
            response = client.get(path)
            assert response.status_code == 200
            assert response.json() == {}

    def test_an_invalid_email_is_rejected(self, client: httpx.Client) -> None:
        response = client.get("/api/users/not-an-email")
        assert response.status_code == 400
        assert response.json()["code"] == "InvalidEmailAddressError"


def test_get_fields_lists_custom_and_system_fields(client: httpx.Client, project: Project) -> None:
    project.add_user(email="a@example.com", data_fields={"plan": "gold", "ltv": 1.5})
    fields = client.get("/api/users/getFields").json()["fields"]
    assert fields["plan"] == "string"
    assert fields["ltv"] == "double"
    assert fields["email"] == "string"
    assert fields["userListIds"] == "long"
    assert "emailListIds" not in fields


class TestExport:
    def _export(self, client: httpx.Client, **params: object) -> list[dict[str, object]]:
        response = client.get(
            "/api/export/data.json", params={"dataTypeName": "user", "range": "All", **params}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-json-stream"
        return [json.loads(line) for line in response.text.splitlines()]

    def test_one_object_per_user_with_fields_at_the_top(
        self, client: httpx.Client, project: Project
    ) -> None:
        first = project.add_list("first")
        second = project.add_list("second")
        project.subscribe_direct(first, email="a@example.com", data_fields={"plan": "gold"})
        project.subscribe_direct(second, email="a@example.com")
        project.subscribe_direct(second, user_id="u-b")
        rows = self._export(client)
        assert rows[0]["email"] == "a@example.com"
        assert rows[0]["plan"] == "gold"
        assert rows[0]["userListIds"] == [first, second]
        assert rows[1]["userId"] == "u-b"
        assert "email" not in rows[1]

    def test_only_fields_limits_the_keys(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        project.subscribe_direct(
            list_id, email="a@example.com", user_id="u-a", data_fields={"plan": "gold", "x": 1}
        )
        repeated = self._export(client, onlyFields=["email", "userId", "userListIds", "plan"])
        comma = self._export(client, onlyFields="email,userId,userListIds,plan")
        expected = {
            "email": "a@example.com",
            "userId": "u-a",
            "userListIds": [list_id],
            "plan": "gold",
        }
        assert repeated == comma == [expected]

    def test_email_projects_name_the_field_email_list_ids(
        self, typed_client: ClientFactory
    ) -> None:
        client, project = typed_client("email")
        list_id = project.add_list("l")
        project.subscribe_direct(list_id, email="a@example.com")
        rows = self._export(client, onlyFields=["email", "emailListIds", "userListIds"])
        assert rows == [{"email": "a@example.com", "emailListIds": [list_id]}]

    def test_users_without_lists_have_no_list_field(
        self, client: httpx.Client, project: Project
    ) -> None:
        project.add_user(email="a@example.com")
        assert self._export(client, onlyFields=["email", "userListIds"]) == [
            {"email": "a@example.com"}
        ]

    def test_range_today_leaves_out_older_profiles(
        self, client: httpx.Client, project: Project
    ) -> None:
        project.add_user(email="new@example.com")
        old = project.add_user(email="old@example.com")
        old.profile_updated_at = int((time.time() - 3 * 86400) * 1000)
        today = self._export(client, range="Today", onlyFields=["email"])
        everyone = self._export(client, onlyFields=["email"])
        assert today == [{"email": "new@example.com"}]
        assert len(everyone) == 2

    def test_a_range_or_dates_are_required(self, client: httpx.Client) -> None:
        response = client.get("/api/export/data.json", params={"dataTypeName": "user"})
        assert response.status_code == 400
        assert response.json()["code"] == "BadParams"

    def test_start_and_end_select_by_update_time(
        self, client: httpx.Client, project: Project
    ) -> None:
        project.add_user(email="a@example.com")
        params = {
            "dataTypeName": "user",
            "startDateTime": "2000-01-01 00:00:00 +00:00",
            "endDateTime": "2000-01-02 00:00:00",
        }
        response = client.get("/api/export/data.json", params=params)
        assert (response.status_code, response.text) == (200, "")

    @pytest.mark.parametrize(
        "params",
        [
            {"dataTypeName": "users", "range": "All"},
            {"range": "All"},
            {"dataTypeName": "user", "range": "Forever"},
            {"dataTypeName": "user", "startDateTime": "yesterday"},
        ],
    )
    def test_bad_parameters(self, client: httpx.Client, params: dict[str, str]) -> None:
        assert client.get("/api/export/data.json", params=params).status_code == 400

    def test_event_exports_are_empty(self, client: httpx.Client, project: Project) -> None:
        project.add_user(email="a@example.com")
        response = client.get(
            "/api/export/data.json", params={"dataTypeName": "emailSend", "range": "All"}
        )
        assert (response.status_code, response.text) == (200, "")
