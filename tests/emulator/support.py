"""Request helpers and a fake clock for the emulator's tests."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from reconciler.emulator import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_PROJECT

FAILED_UPDATE_KEYS = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
)


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# httpx builds a fresh SSL context (loading CA certificates) for every client, about 15 ms;
# these clients only speak plain HTTP to loopback, so one shared context is plenty.
SHARED_SSL_CONTEXT = ssl.create_default_context()


def client_for(server: EmulatorServer, api_key: str | None = EMULATOR_API_KEY) -> httpx.Client:
    headers = {"Api-Key": api_key} if api_key is not None else {}
    return httpx.Client(
        base_url=server.base_url, headers=headers, timeout=10.0, verify=SHARED_SSL_CONTEXT
    )


def subscribe(
    client: httpx.Client, list_id: int, subscribers: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    return client.post(
        "/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers, **extra}
    )


def unsubscribe(
    client: httpx.Client, list_id: int, subscribers: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    return client.post(
        "/api/lists/unsubscribe", json={"listId": list_id, "subscribers": subscribers, **extra}
    )


def failed(response: httpx.Response) -> dict[str, list[str]]:
    """failedUpdates without the empty lists, for compact assertions."""
    updates: dict[str, list[str]] = response.json()["failedUpdates"]
    return {key: value for key, value in updates.items() if value}


def get_users(client: httpx.Client, list_id: int, prefer_user_id: bool | None = None) -> list[str]:
    params: dict[str, Any] = {"listId": list_id}
    if prefer_user_id is not None:
        params["preferUserId"] = "true" if prefer_user_id else "false"
    response = client.get("/api/lists/getUsers", params=params)
    assert response.status_code == 200, response.text
    return response.text.splitlines()


__all__ = ["EMULATOR_API_KEY", "EMULATOR_PROJECT"]
