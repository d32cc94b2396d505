"""GET/POST /api/lists, DELETE /api/lists/{id}, and Iterable's invalidListId quirk."""

from __future__ import annotations

import time

import httpx
import pytest

from reconciler.emulator import Faults, Project
from tests.emulator.support import subscribe, unsubscribe


def test_create_list_returns_increasing_ids(client: httpx.Client) -> None:
    first = client.post("/api/lists", json={"name": "a"})
    second = client.post("/api/lists", json={"name": "b", "description": "B list"})
    assert first.status_code == 200
    assert first.json() == {"listId": 1000001}
    assert second.json() == {"listId": 1000002}


def test_get_lists_shows_iterable_list_details(client: httpx.Client) -> None:
    before = int(time.time() * 1000)
    client.post("/api/lists", json={"name": "plain"})
    client.post("/api/lists", json={"name": "described", "description": "why"})
    lists = client.get("/api/lists").json()["lists"]
    assert [(x["name"], x.get("description")) for x in lists] == [
        ("plain", None),
        ("described", "why"),
    ]
    assert "description" not in lists[0]
    for item in lists:
        assert item["listType"] == "Standard"
        # createdAt is epoch milliseconds, not seconds.
        assert before - 5_000 <= item["createdAt"] <= int(time.time() * 1000) + 5_000


def test_list_names_need_not_be_unique(client: httpx.Client) -> None:
    client.post("/api/lists", json={"name": "same"})
    client.post("/api/lists", json={"name": "same"})
    assert [x["name"] for x in client.get("/api/lists").json()["lists"]] == ["same", "same"]


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": 5}, {"description": "no name"}])
def test_create_list_needs_a_name(client: httpx.Client, body: dict[str, object]) -> None:
    response = client.post("/api/lists", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"


def test_delete_list_answers_success_and_drops_memberships(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("doomed")
    user = project.subscribe_direct(list_id, email="a@example.com")
    response = client.delete(f"/api/lists/{list_id}")
    assert response.status_code == 200
    assert response.json()["code"] == "Success"
    assert response.json()["params"] is None
    assert list_id not in project.lists
    assert user.list_ids == set()


def test_deleting_a_list_in_use_is_409(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("journey audience")
    project.set_in_use(list_id)
    assert client.delete(f"/api/lists/{list_id}").status_code == 409
    assert list_id in project.lists
    project.set_in_use(list_id, False)
    assert client.delete(f"/api/lists/{list_id}").status_code == 200


def test_in_use_can_be_set_through_the_control_endpoint(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("x")
    assert client.post(f"/_emulator/lists/{list_id}/in-use").status_code == 200
    assert client.delete(f"/api/lists/{list_id}").status_code == 409


def _invalid_list_requests(client: httpx.Client, list_id: int) -> dict[str, httpx.Response]:
    return {
        "subscribe": subscribe(client, list_id, [{"email": "a@example.com"}]),
        "unsubscribe": unsubscribe(client, list_id, [{"email": "a@example.com"}]),
        "getUsers": client.get("/api/lists/getUsers", params={"listId": list_id}),
        "size": client.get(f"/api/lists/{list_id}/size"),
        "delete": client.delete(f"/api/lists/{list_id}"),
    }


def test_unknown_list_is_400_with_code_success(client: httpx.Client, project: Project) -> None:
    for name, response in _invalid_list_requests(client, 4242).items():
        assert response.status_code == 400, name
        # Iterable's quirk: the code says Success, only the status tells the truth.
        assert response.json() == {
            "msg": "error.lists.invalidListId(4242)",
            "code": "Success",
            "params": None,
        }, name
    assert project.users == {}


@pytest.mark.parametrize("list_type", ["Dynamic", "Suppression", "Internal"])
def test_only_standard_lists_take_writes(
    client: httpx.Client, project: Project, list_type: str
) -> None:
    list_id = project.add_list("not static", list_type=list_type)  # type: ignore[arg-type]
    for name, response in _invalid_list_requests(client, list_id).items():
        assert response.status_code == 400, name
        assert response.json()["msg"] == f"error.lists.invalidListId({list_id})", name
    assert list_id in project.lists
    assert project.users == {}


def test_other_projects_lists_are_invalid(client: httpx.Client) -> None:
    created = client.post(
        "/_emulator/projects",
        json={"name": "other", "projectType": "hybrid", "apiKey": "other-key"},
    )
    assert created.status_code == 200
    with httpx.Client(base_url=str(client.base_url), headers={"Api-Key": "other-key"}) as other:
        foreign = other.post("/api/lists", json={"name": "theirs"}).json()["listId"]
    response = subscribe(client, foreign, [{"email": "a@example.com"}])
    assert response.status_code == 400
    assert response.json()["msg"] == f"error.lists.invalidListId({foreign})"


def test_a_fresh_list_can_briefly_reject_subscribes(client: httpx.Client, project: Project) -> None:
    client.post("/_emulator/faults", json={"fresh_list_rejects": 2})
    list_id = client.post("/api/lists", json={"name": "new"}).json()["listId"]
    statuses = [
        subscribe(client, list_id, [{"email": "a@example.com"}]).status_code for _ in range(3)
    ]
    assert statuses == [400, 400, 200]
    assert project.members(list_id) == ["a@example.com"]


def test_seeded_lists_are_not_fresh(client: httpx.Client, project: Project) -> None:
    project_list = project.add_list("seeded")
    client.post("/_emulator/faults", json={"fresh_list_rejects": 2})
    assert subscribe(client, project_list, [{"email": "a@example.com"}]).status_code == 200


@pytest.mark.parametrize(
    "params", [{}, {"listId": "abc"}, {"listId": "1.5"}, {"listId": "1", "preferUserId": "yes"}]
)
def test_get_users_checks_its_parameters(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get("/api/lists/getUsers", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"


def test_non_numeric_list_id_in_the_path_is_bad_params(client: httpx.Client) -> None:
    assert client.get("/api/lists/abc/size").json()["code"] == "BadParams"


def test_fault_settings_are_validated(client: httpx.Client) -> None:
    assert client.post("/_emulator/faults", json={"nope": 1}).status_code == 400
    assert client.post("/_emulator/faults", json={"fail_every": -1}).status_code == 400
    assert client.post("/_emulator/faults", json={"script": [200, "x"]}).status_code == 400
    assert client.get("/_emulator/faults").json() == Faults().to_json()
