"""Iterable's per-project rate limits, against a clock the test moves."""

from __future__ import annotations

import httpx
import pytest

from reconciler.emulator import EmulatorServer, Faults, Limits, Project
from tests.emulator.conftest import ClientFactory
from tests.emulator.support import FakeClock, subscribe

RATE_LIMITED_BODY = {
    "msg": "Rate limit exceeded for this endpoint",
    "code": "RateLimitExceeded",
    "params": None,
}


@pytest.fixture
def limited(typed_client: ClientFactory, clock: FakeClock) -> tuple[httpx.Client, Project]:
    """A client and project under Iterable's limits, timed by `clock`."""
    return typed_client("hybrid", limits=Limits.iterable(), clock=clock)


def test_get_users_allows_5_per_minute(
    limited: tuple[httpx.Client, Project], clock: FakeClock
) -> None:
    client, project = limited
    list_id = project.add_list("l")
    statuses = [
        client.get("/api/lists/getUsers", params={"listId": list_id}).status_code for _ in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    refused = client.get("/api/lists/getUsers", params={"listId": list_id})
    assert refused.json() == RATE_LIMITED_BODY
    # Undocumented by Iterable, so absent unless asked for.
    assert "retry-after" not in refused.headers
    clock.advance(59.9)
    assert client.get(f"/api/lists/{list_id}/size").status_code == 429
    clock.advance(0.2)
    assert client.get(f"/api/lists/{list_id}/size").status_code == 200


def test_get_users_and_size_share_one_budget(limited: tuple[httpx.Client, Project]) -> None:
    client, project = limited
    list_id = project.add_list("l")
    for _ in range(3):
        assert client.get("/api/lists/getUsers", params={"listId": list_id}).status_code == 200
    for _ in range(2):
        assert client.get(f"/api/lists/{list_id}/size").status_code == 200
    assert client.get("/api/lists/getUsers", params={"listId": list_id}).status_code == 429


def test_retry_after_counts_seconds_until_a_slot_frees(
    limited: tuple[httpx.Client, Project], clock: FakeClock
) -> None:
    client, project = limited
    client.post("/_emulator/faults", json={"retry_after": True})
    list_id = project.add_list("l")
    for _ in range(5):
        client.get(f"/api/lists/{list_id}/size")
        clock.advance(2)
    # The oldest request was 10 s ago, so its slot frees in 50 s.
    assert client.get(f"/api/lists/{list_id}/size").headers["retry-after"] == "50"
    clock.advance(49.5)
    assert client.get(f"/api/lists/{list_id}/size").headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "window"),
    [
        ("GET", "/api/export/data.json?dataTypeName=user&range=All", None, 4, 60),
        ("POST", "/api/users/bulkUpdate", {"users": []}, 5, 1),
        ("GET", "/api/users/getFields", None, 3, 1),
        ("GET", "/api/lists", None, 100, 1),
        ("GET", "/api/users/byUserId/u1", None, 100, 1),
        ("POST", "/api/users/update", {"userId": "u1"}, 500, 1),
    ],
)
def test_documented_limits(
    limited: tuple[httpx.Client, Project],
    clock: FakeClock,
    method: str,
    path: str,
    body: dict[str, object] | None,
    allowed: int,
    window: float,
) -> None:
    client, _ = limited

    def send() -> int:
        return client.request(method, path, json=body).status_code

    assert [send() for _ in range(allowed)] == [200] * allowed
    assert send() == 429
    clock.advance(window)
    assert send() == 200


def test_subscribe_has_no_limit_by_default(limited: tuple[httpx.Client, Project]) -> None:
    client, project = limited
    list_id = project.add_list("l")
    statuses = {
        subscribe(client, list_id, [{"email": "a@example.com"}]).status_code for _ in range(30)
    }
    assert statuses == {200}


def test_limits_are_per_project(limited: tuple[httpx.Client, Project]) -> None:
    client, _ = limited
    client.post("/_emulator/projects", json={"name": "b", "projectType": "hybrid", "apiKey": "b"})
    for _ in range(3):
        client.get("/api/users/getFields")
    assert client.get("/api/users/getFields").status_code == 429
    with httpx.Client(base_url=str(client.base_url), headers={"Api-Key": "b"}) as other:
        assert other.get("/api/users/getFields").status_code == 200


def test_a_rate_limited_write_changes_nothing(limited: tuple[httpx.Client, Project]) -> None:
    client, project = limited
    for i in range(5):
        client.post("/api/users/bulkUpdate", json={"users": [{"email": f"u{i}@example.com"}]})
    refused = client.post("/api/users/bulkUpdate", json={"users": [{"email": "late@example.com"}]})
    assert refused.status_code == 429
    assert project.find_user(email="late@example.com") is None
    assert client.get("/_emulator/requests").json()["requests"][-1]["fault"] == "rate_limit"


def test_write_rate_fault_throttles_membership_writes(
    limited: tuple[httpx.Client, Project], clock: FakeClock
) -> None:
    client, project = limited
    client.post("/_emulator/faults", json={"write_rate_per_second": 2, "retry_after": True})
    list_id = project.add_list("l")

    def send() -> httpx.Response:
        return subscribe(client, list_id, [{"email": "a@example.com"}])

    assert [send().status_code for _ in range(2)] == [200, 200]
    refused = send()
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    clock.advance(0.5)
    assert send().status_code == 200
    # Reads are not writes.
    assert client.get("/api/lists").status_code == 200


def test_unlimited_has_no_limits() -> None:
    assert all(value is None for value in vars(Limits.unlimited()).values())
    assert Limits() == Limits.iterable()
    assert Limits.iterable().list_reads == (5, 60.0)


def test_limits_can_change_at_run_time(
    limited: tuple[httpx.Client, Project],
) -> None:
    client, _ = limited
    for _ in range(3):
        client.get("/api/users/getFields")
    assert client.get("/api/users/getFields").status_code == 429
    assert client.post("/_emulator/limits", json={"preset": "unlimited"}).status_code == 200
    assert client.get("/api/users/getFields").status_code == 200
    assert client.post("/_emulator/limits", json={"get_fields": [1, 10]}).status_code == 200
    assert [client.get("/api/users/getFields").status_code for _ in range(2)] == [200, 429]


def test_faults_knob_for_retry_after_on_injected_429s(client: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"script": [429, 429], "retry_after": False})
    assert "retry-after" not in client.get("/api/lists").headers
    client.post("/_emulator/faults", json={"retry_after": True})
    assert client.get("/api/lists").headers["retry-after"] == "1"


def test_faults_object_can_be_replaced(
    emulator_server: EmulatorServer, client: httpx.Client
) -> None:
    emulator_server.emulator.faults = Faults(script=[503])
    assert client.get("/api/lists").status_code == 503
    assert client.get("/api/lists").status_code == 200
