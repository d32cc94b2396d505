"""Unsubscribes as Iterable reports them (issue 19, point 1): every one is an
emailUnSubscribe event with an unsubSource, exported with dataTypeName=emailUnSubscribe;
an API unsubscribe says ListAPI, a person's own (the test-only control route) says what
the person did; a channel unsubscribe also lands in the profile's unsubscribedChannelIds."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from reconciler.emulator import Emulator, EmulatorServer, Limits, Project
from reconciler.emulator.project import DEFAULT_CHANNEL_ID
from tests.emulator.support import client_for

SECRET = "consent-test-key"


def _events(client: httpx.Client, **params: str) -> list[dict]:
    response = client.get(
        "/api/export/data.json",
        params={"dataTypeName": "emailUnSubscribe", "range": "All", **params},
    )
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_api_and_self_service_unsubscribes_are_told_apart(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("vip")
    for email in ("api@example.com", "self@example.com"):
        project.subscribe_direct(list_id, email=email)
    sent = client.post(
        "/api/lists/unsubscribe",
        json={"listId": list_id, "subscribers": [{"email": "api@example.com"}], "campaignId": 5},
    )
    assert sent.json()["successCount"] == 1
    own = client.post(
        "/_emulator/self-unsubscribe",
        json={"email": "self@example.com", "listId": list_id, "channel": True},
    )
    assert own.status_code == 200, own.text
    assert project.members(list_id) == []

    api, self_service = _events(client)
    assert api["unsubSource"] == "ListAPI"
    assert (api["email"], api["emailListIds"], api["channelIds"]) == (
        "api@example.com",
        [list_id],
        [],
    )
    assert api["campaignId"] == 5
    assert self_service["unsubSource"] == "EmailLink"
    assert self_service["emailListIds"] == [list_id]
    assert self_service["channelIds"] == [DEFAULT_CHANNEL_ID]
    assert api["createdAt"].endswith("+00:00")
    # onlyFields is honoured as for the user export.
    assert _events(client, onlyFields="unsubSource") == [
        {"unsubSource": "ListAPI"},
        {"unsubSource": "EmailLink"},
    ]
    # The channel is on the profile, as the user export shows it.
    users = client.get(
        "/api/export/data.json",
        params=[
            ("dataTypeName", "user"),
            ("range", "All"),
            ("onlyFields", "email"),
            ("onlyFields", "unsubscribedChannelIds"),
        ],
    ).text.splitlines()
    assert {"email": "self@example.com", "unsubscribedChannelIds": [DEFAULT_CHANNEL_ID]} in [
        json.loads(u) for u in users
    ]
    channels = client.get("/api/channels").json()["channels"]
    assert {c["id"]: c["messageMedium"] for c in channels}[DEFAULT_CHANNEL_ID] == "Email"


def test_the_control_route_takes_a_source_and_refuses_nonsense(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("vip")
    project.subscribe_direct(list_id, user_id="u1")
    ok = client.post(
        "/_emulator/self-unsubscribe",
        json={"userId": "u1", "listId": list_id, "unsubSource": "Complaint"},
    )
    assert ok.status_code == 200
    assert [e["unsubSource"] for e in _events(client)] == ["Complaint"]
    assert client.post("/_emulator/self-unsubscribe", json={"userId": "u1"}).status_code == 400
    missing = client.post("/_emulator/self-unsubscribe", json={"userId": "nobody", "channel": True})
    assert missing.status_code == 404


def test_unsubscribe_events_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "emulator.json"
    first = Emulator(limits=Limits.unlimited(), state_path=state)
    project = first.add_project("default", "hybrid", SECRET)
    list_id = project.add_list("vip")
    project.subscribe_direct(list_id, email="a@example.com")
    with EmulatorServer(first) as server, client_for(server, SECRET) as client:
        client.post(
            "/_emulator/self-unsubscribe", json={"email": "a@example.com", "listId": list_id}
        ).raise_for_status()
    second = Emulator.load(state, limits=Limits.unlimited())
    with EmulatorServer(second) as server, client_for(server, SECRET) as client:
        (event,) = _events(client)
    assert (event["email"], event["unsubSource"]) == ("a@example.com", "EmailLink")
