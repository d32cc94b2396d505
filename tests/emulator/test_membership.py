"""subscribe / unsubscribe: identification by project type, per-member failures."""

from __future__ import annotations

import httpx
import pytest

from reconciler.emulator import Project
from tests.emulator.conftest import ClientFactory
from tests.emulator.support import FAILED_UPDATE_KEYS, failed, subscribe, unsubscribe


def test_response_has_iterables_shape(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    body = subscribe(client, list_id, [{"email": "a@example.com"}]).json()
    assert body == {
        "successCount": 1,
        "failCount": 0,
        "failedUpdates": {key: [] for key in FAILED_UPDATE_KEYS},
        "createdFields": [],
        "filteredOutFields": [],
    }


def test_emails_are_stored_lowercase_and_found_in_any_case(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    subscribe(client, list_id, [{"email": "Mixed.Case@Example.COM"}])
    assert project.members(list_id) == ["mixed.case@example.com"]
    found = client.get("/api/users/MIXED.case@example.com").json()
    assert found["user"]["email"] == "mixed.case@example.com"
    # Same address, other case: the same profile, not a second one.
    subscribe(client, list_id, [{"email": "mixed.CASE@example.com"}])
    assert len(project.users) == 1


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "a@b",
        "a@@example.com",
        " lead@example.com",
        "trail@example.com ",
        "a..b@example.com",
        ".a@example.com",
        "a b@example.com",
        "ü@example.com",
        "a@-example.com",
        "",
        "x" * 65 + "@example.com",
    ],
)
def test_invalid_emails_fail_per_member(client: httpx.Client, project: Project, email: str) -> None:
    list_id = project.add_list("l")
    response = subscribe(client, list_id, [{"email": email}, {"email": "ok@example.com"}])
    assert response.status_code == 200
    assert response.json()["successCount"] == 1
    assert response.json()["failCount"] == 1
    assert failed(response) == {"invalidEmails": [email]}
    assert project.members(list_id) == ["ok@example.com"]


@pytest.mark.parametrize(
    "email", ["first.last+tag@example.com", "o'brien@example.co.uk", "x@sub.example-site.io"]
)
def test_valid_emails_pass(client: httpx.Client, project: Project, email: str) -> None:
    list_id = project.add_list("l")
    assert subscribe(client, list_id, [{"email": email}]).json()["successCount"] == 1


@pytest.mark.parametrize(
    "user_id",
    ["x" * 53, "trailing ", "", "tab\there", "caf\u00e9", "new\nline"],
)
def test_invalid_user_ids_fail_per_member(
    client: httpx.Client, project: Project, user_id: str
) -> None:
    list_id = project.add_list("l")
    response = subscribe(client, list_id, [{"userId": user_id}, {"userId": "fine"}])
    assert response.json()["failCount"] == 1
    assert failed(response) == {"invalidUserIds": [user_id]}
    assert project.members(list_id) == ["fine"]


def test_user_ids_keep_their_case(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    longest = "x" * 52
    response = subscribe(
        client, list_id, [{"userId": "Abc"}, {"userId": "abc"}, {"userId": longest}]
    )
    assert response.json()["successCount"] == 3
    assert project.members(list_id) == ["Abc", "abc", longest]
    assert client.get("/api/users/byUserId/ABC").json() == {}


def test_partial_failure_is_http_200(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    response = subscribe(
        client,
        list_id,
        [
            {"email": "good@example.com"},
            {"email": "bad"},
            {"userId": "u" * 60},
            {"userId": "good-id"},
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (2, 2)
    assert failed(response) == {"invalidEmails": ["bad"], "invalidUserIds": ["u" * 60]}


def test_a_member_with_no_identifier_fails(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    response = subscribe(client, list_id, [{"dataFields": {"a": 1}}])
    assert response.json()["failCount"] == 1
    assert failed(response) == {"invalidEmails": [""]}
    assert project.users == {}


@pytest.mark.parametrize(
    ("project_type", "member", "failure"),
    [
        ("hybrid", {"email": "new@example.com"}, {"notFoundEmails": ["new@example.com"]}),
        ("hybrid", {"userId": "new"}, {"notFoundUserIds": ["new"]}),
        ("userId", {"userId": "new"}, {"notFoundUserIds": ["new"]}),
    ],
)
def test_update_existing_users_only_skips_unknown_users(
    typed_client: ClientFactory,
    project_type: str,
    member: dict[str, str],
    failure: dict[str, list[str]],
) -> None:
    client, project = typed_client(project_type)
    list_id = project.add_list("l")
    project.add_user(email="known@example.com", user_id="known")
    response = subscribe(
        client, list_id, [member, {"userId": "known"}], updateExistingUsersOnly=True
    )
    assert response.json()["successCount"] == 1
    assert failed(response) == failure
    assert len(project.users) == 1
    assert project.members(list_id) == [project.list_identifier(project.users[1], None)]


def test_update_existing_users_only_is_ignored_by_email_projects(
    typed_client: ClientFactory,
) -> None:
    client, project = typed_client("email")
    list_id = project.add_list("l")
    response = subscribe(
        client, list_id, [{"email": "new@example.com"}], updateExistingUsersOnly=True
    )
    assert response.json()["successCount"] == 1
    assert project.members(list_id) == ["new@example.com"]


class TestEmailProject:
    def test_user_id_alone_is_not_found_without_prefer_user_id(
        self, typed_client: ClientFactory
    ) -> None:
        client, project = typed_client("email")
        list_id = project.add_list("l")
        response = subscribe(client, list_id, [{"userId": "u1"}])
        assert failed(response) == {"notFoundUserIds": ["u1"]}
        assert project.users == {}

    def test_prefer_user_id_creates_a_placeholder_profile(
        self, typed_client: ClientFactory
    ) -> None:
        client, project = typed_client("email")
        list_id = project.add_list("l")
        response = subscribe(client, list_id, [{"userId": "u1", "preferUserId": True}])
        assert response.json()["successCount"] == 1
        user = project.find_user(user_id="u1")
        assert user is not None and user.email is not None
        assert user.email.endswith("@placeholder.email")
        assert project.members(list_id) == [user.email]

    def test_a_user_id_sent_with_the_email_is_set(self, typed_client: ClientFactory) -> None:
        client, project = typed_client("email")
        list_id = project.add_list("l")
        project.add_user(email="a@example.com")
        subscribe(client, list_id, [{"email": "a@example.com", "userId": "u1"}])
        user = project.find_user(email="a@example.com")
        assert user is not None and user.user_id == "u1"
        # Known userIds identify too.
        assert subscribe(client, list_id, [{"userId": "u1"}]).json()["successCount"] == 1

    def test_a_user_id_another_profile_has_is_shared(self, typed_client: ClientFactory) -> None:
        """Email-based projects do not keep userIds unique (Iterable's "Project Types
        and Unique Identifiers": "Enforce userId uniqueness? ... No"): the email
        identifies, and its profile gets the userId too. The emulator refused it as a
        conflict, so no test could meet two profiles sharing one."""
        client, project = typed_client("email")
        list_id = project.add_list("l")
        owner = project.add_user(email="owner@example.com", user_id="u1")
        response = subscribe(client, list_id, [{"email": "other@example.com", "userId": "u1"}])
        assert response.json()["successCount"] == 1, response.json()
        other = project.find_user(email="other@example.com")
        assert other is not None and other.user_id == "u1"
        assert project.users_by_user_id("u1") == [owner, other]
        # By userId, "the first user profile returned with that UserID": the oldest.
        found = client.get("/api/users/byUserId/u1").json()["user"]
        assert found["email"] == "owner@example.com"
        project.delete_user(owner)
        assert client.get("/api/users/byUserId/u1").json()["user"]["email"] == ("other@example.com")

    def test_profiles_seeded_with_one_user_id_keep_it(self, typed_client: ClientFactory) -> None:
        _client, project = typed_client("email")
        first = project.add_user(email="a@example.com", user_id="u1")
        second = project.add_user(email="b@example.com", user_id="u1")
        third = project.add_user(email="c@example.com", user_id="u1")
        project.set_user_id(second, "u2")
        assert project.users_by_user_id("u1") == [first, third]
        assert project.users_by_user_id("u2") == [second]
        project.set_user_id(second, "u1")
        assert project.users_by_user_id("u1") == [first, second, third]


class TestUserIdProject:
    def test_email_alone_identifies_nobody(self, typed_client: ClientFactory) -> None:
        client, project = typed_client("userId")
        list_id = project.add_list("l")
        project.add_user(email="a@example.com", user_id="u1")
        response = subscribe(client, list_id, [{"email": "a@example.com"}])
        assert failed(response) == {"notFoundEmails": ["a@example.com"]}
        assert project.members(list_id) == []

    def test_user_id_identifies_and_email_is_an_attribute(
        self, typed_client: ClientFactory
    ) -> None:
        client, project = typed_client("userId")
        list_id = project.add_list("l")
        response = subscribe(
            client,
            list_id,
            [
                {"userId": "u1", "email": "Shared@example.com"},
                {"userId": "u2", "email": "shared@example.com"},
            ],
        )
        # Emails are not unique in a userID-based project.
        assert response.json()["successCount"] == 2
        assert project.members(list_id) == ["u1", "u2"]
        assert project.find_user(user_id="u2").email == "shared@example.com"  # type: ignore[union-attr]


class TestHybridConflicts:
    def test_two_different_profiles_conflict(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        project.add_user(email="a@example.com")
        project.add_user(user_id="u-b")
        response = subscribe(client, list_id, [{"email": "a@example.com", "userId": "u-b"}])
        assert response.status_code == 200
        assert response.json()["failCount"] == 1
        assert failed(response) == {"conflictEmails": ["a@example.com"], "conflictUserIds": ["u-b"]}
        assert project.members(list_id) == []
        assert project.find_user(email="a@example.com").user_id is None  # type: ignore[union-attr]

    def test_email_profile_with_another_user_id_conflicts(
        self, client: httpx.Client, project: Project
    ) -> None:
        list_id = project.add_list("l")
        project.add_user(email="a@example.com", user_id="old")
        response = subscribe(client, list_id, [{"email": "a@example.com", "userId": "new"}])
        assert response.json()["failCount"] == 1
        assert project.find_user(user_id="new") is None

    def test_user_id_profile_with_another_email_conflicts(
        self, client: httpx.Client, project: Project
    ) -> None:
        list_id = project.add_list("l")
        project.add_user(email="old@example.com", user_id="u1")
        response = subscribe(client, list_id, [{"email": "new@example.com", "userId": "u1"}])
        assert response.json()["failCount"] == 1
        assert project.find_user(user_id="u1").email == "old@example.com"  # type: ignore[union-attr]

    def test_the_missing_identifier_is_added(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        project.add_user(email="a@example.com")
        project.add_user(user_id="u-b")
        response = subscribe(
            client,
            list_id,
            [
                {"email": "a@example.com", "userId": "u-a"},
                {"email": "b@example.com", "userId": "u-b"},
            ],
        )
        assert response.json()["successCount"] == 2
        assert len(project.users) == 2
        assert project.find_user(user_id="u-a") is project.find_user(email="a@example.com")
        assert project.find_user(user_id="u-b") is project.find_user(email="b@example.com")

    def test_both_new_creates_one_profile(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        subscribe(client, list_id, [{"email": "a@example.com", "userId": "u-a"}])
        assert len(project.users) == 1
        assert project.members(list_id, prefer_user_id=True) == ["u-a"]

    def test_both_naming_the_same_profile_is_fine(
        self, client: httpx.Client, project: Project
    ) -> None:
        list_id = project.add_list("l")
        project.add_user(email="a@example.com", user_id="u-a")
        response = subscribe(client, list_id, [{"email": "A@example.com", "userId": "u-a"}])
        assert response.json()["successCount"] == 1


class TestUnsubscribe:
    def test_removes_members(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        project.subscribe_direct(list_id, email="a@example.com")
        project.subscribe_direct(list_id, user_id="u-b")
        response = unsubscribe(client, list_id, [{"email": "A@EXAMPLE.COM"}, {"userId": "u-b"}])
        assert response.json()["successCount"] == 2
        assert project.members(list_id) == []

    def test_unknown_users_are_not_found(self, client: httpx.Client, project: Project) -> None:
        list_id = project.add_list("l")
        response = unsubscribe(
            client, list_id, [{"email": "ghost@example.com"}, {"userId": "ghost"}]
        )
        assert response.status_code == 200
        assert failed(response) == {
            "notFoundEmails": ["ghost@example.com"],
            "notFoundUserIds": ["ghost"],
        }
        assert project.users == {}

    def test_not_on_the_list_counts_as_success(
        self, client: httpx.Client, project: Project
    ) -> None:
        list_id = project.add_list("l")
        project.add_user(email="a@example.com")
        response = unsubscribe(client, list_id, [{"email": "a@example.com"}])
        assert response.json() | {"failedUpdates": None} == {
            "successCount": 1,
            "failCount": 0,
            "failedUpdates": None,
            "createdFields": [],
            "filteredOutFields": [],
        }

    def test_channel_unsubscribe_is_recorded_only_when_sent(
        self, client: httpx.Client, project: Project
    ) -> None:
        list_id = project.add_list("l")
        kept = project.subscribe_direct(list_id, email="kept@example.com")
        lost = project.subscribe_direct(list_id, email="lost@example.com")
        unsubscribe(client, list_id, [{"email": "kept@example.com"}], campaignId=1234)
        unsubscribe(client, list_id, [{"email": "lost@example.com"}], channelUnsubscribe=True)
        assert kept.unsubscribed_channel_ids == set()
        assert lost.unsubscribed_channel_ids == {project.lists[list_id].channel_id}
        profile = client.get("/api/users/lost@example.com").json()["user"]["dataFields"]
        assert profile["unsubscribedChannelIds"] == [project.lists[list_id].channel_id]
        first, second = project_log_bodies(client)
        assert first["campaignId"] == 1234 and "channelUnsubscribe" not in first
        assert second["channelUnsubscribe"] is True


def project_log_bodies(client: httpx.Client) -> list[dict[str, object]]:
    log = client.get("/_emulator/requests").json()["requests"]
    return [r["body"] for r in log if r["path"] == "/api/lists/unsubscribe"]


def test_request_log_counts_requests_and_subscribers(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    for start in range(0, 5, 2):
        members = [{"email": f"m{i}@example.com"} for i in range(start, min(start + 2, 5))]
        subscribe(client, list_id, members)
    emulator_log = [r for r in client.get("/_emulator/requests").json()["requests"]]
    subscribes = [r for r in emulator_log if r["path"] == "/api/lists/subscribe"]
    assert [len(r["body"]["subscribers"]) for r in subscribes] == [2, 2, 1]
    assert all(r["status"] == 200 and r["project"] == "default" for r in subscribes)


def test_writing_the_membership_field_directly_is_counted(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    response = client.post(
        "/api/users/bulkUpdate",
        json={"users": [{"email": "a@example.com", "dataFields": {"userListIds": [list_id]}}]},
    )
    assert response.json()["successCount"] == 1
    # Iterable lets this through (no subscribe events fire); tests can catch a client doing it.
    assert project.members(list_id) == ["a@example.com"]
    assert project.silent_membership_writes == 1
