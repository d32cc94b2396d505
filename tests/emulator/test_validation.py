"""Requests are held to Iterable's OpenAPI; unknown routes get the edge's HTML 404."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from reconciler.emulator import EmulatorServer, Project, spec
from reconciler.emulator.emulator import _ROUTES, MAX_BATCH_BYTES
from tests.emulator.support import client_for

POST_ENDPOINTS = [
    "/api/lists",
    "/api/lists/subscribe",
    "/api/lists/unsubscribe",
    "/api/users/bulkUpdate",
    "/api/users/update",
]


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"listId": NaN}', b"\xff\xfe"])
def test_malformed_json_is_bad_json_body(client: httpx.Client, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "BadJsonBody"


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/lists/subscribe", {"listId": "1", "subscribers": []}, "listId"),
        ("/api/lists/subscribe", {"listId": 1.0, "subscribers": []}, "listId"),
        ("/api/lists/subscribe", {"listId": True, "subscribers": []}, "listId"),
        ("/api/lists/subscribe", {"listId": 1}, "subscribers"),
        ("/api/lists/subscribe", {"listId": 1, "subscribers": {}}, "subscribers"),
        ("/api/lists/subscribe", {"listId": 1, "subscribers": [{"email": 5}]}, "email"),
        ("/api/lists/subscribe", {"listId": 1, "subscribers": [{"userId": None}]}, "userId"),
        (
            "/api/lists/subscribe",
            {"listId": 1, "subscribers": [], "updateExistingUsersOnly": "yes"},
            "updateExistingUsersOnly",
        ),
        (
            "/api/lists/unsubscribe",
            {"listId": 1, "subscribers": [], "channelUnsubscribe": 1},
            "channelUnsubscribe",
        ),
        (
            "/api/lists/unsubscribe",
            {"listId": 1, "subscribers": [], "campaignId": "7"},
            "campaignId",
        ),
        # int64 in the spec: a number Iterable's JSON reader cannot hold.
        (
            "/api/lists/unsubscribe",
            {"listId": 1, "subscribers": [], "campaignId": 2**63},
            "int64",
        ),
        ("/api/lists/subscribe", {"listId": -(2**63) - 1, "subscribers": []}, "int64"),
        ("/api/users/bulkUpdate", {"user": []}, "users"),
        ("/api/users/bulkUpdate", {"users": [{"dataFields": []}]}, "dataFields"),
        ("/api/users/update", {"email": "a@example.com", "dataFields": "x"}, "dataFields"),
        ("/api/users/update", [], "object"),
        ("/api/lists", {"name": None}, "name"),
    ],
)
def test_schema_invalid_bodies_are_bad_params(
    client: httpx.Client, project: Project, path: str, body: Any, named: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert named in response.json()["msg"]
    assert project.users == {} and project.lists == {}


@pytest.mark.parametrize(
    "path", ["/api/lists/subscribe", "/api/lists/unsubscribe", "/api/users/bulkUpdate"]
)
def test_batches_over_4_mb_are_refused(client: httpx.Client, project: Project, path: str) -> None:
    list_id = project.add_list("l")
    key = "users" if path.endswith("bulkUpdate") else "subscribers"
    body = {"listId": list_id, key: [{"email": "a@example.com"}], "padding": "x" * MAX_BATCH_BYTES}
    response = client.post(path, content=json.dumps(body).encode())
    assert response.status_code == 400
    assert response.json()["code"] == "BatchTooLarge"
    assert project.users == {}


def test_4_mb_is_counted_in_decimal(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    body = {"listId": list_id, "subscribers": [{"email": "a@example.com"}], "padding": ""}
    body["padding"] = "x" * (4_000_001 - len(json.dumps(body)))
    response = client.post("/api/lists/subscribe", content=json.dumps(body).encode())
    assert response.json()["code"] == "BatchTooLarge"


def test_a_batch_just_under_the_cap_is_fine(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    body = {"listId": list_id, "subscribers": [{"email": "a@example.com"}], "padding": ""}
    body["padding"] = "x" * (MAX_BATCH_BYTES - len(json.dumps(body)))
    encoded = json.dumps(body).encode()
    assert len(encoded) == MAX_BATCH_BYTES
    assert client.post("/api/lists/subscribe", content=encoded).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nothing"),
        ("GET", "/api/lists/"),
        ("PUT", "/api/lists"),
        ("GET", "/api/lists/subscribe"),
        ("GET", "/"),
        ("POST", "/api/users/a@example.com"),
    ],
)
def test_unknown_routes_are_html_404(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text


def test_404_comes_before_authentication(emulator_server: EmulatorServer) -> None:
    with client_for(emulator_server, api_key=None) as client:
        assert client.get("/api/nothing").status_code == 404


def test_every_request_body_definition_exists_in_the_spec() -> None:
    for route in _ROUTES:
        if route.body is not None:
            spec.definition_validator(route.body)
