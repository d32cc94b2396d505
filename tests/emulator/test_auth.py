"""The Api-Key header picks the project; anything else is 401 BadApiKey."""

from __future__ import annotations

import httpx
import pytest

from reconciler.emulator import Emulator, EmulatorServer
from tests.emulator.support import client_for

BAD_KEY_BODY = {"msg": "Invalid API key", "code": "BadApiKey", "params": None}


@pytest.mark.parametrize("api_key", [None, "", "wrong-key", "TEST-KEY"])
def test_missing_or_wrong_key_is_401_bad_api_key(
    emulator_server: EmulatorServer, api_key: str | None
) -> None:
    with client_for(emulator_server, api_key=api_key) as client:
        response = client.get("/api/lists")
    assert response.status_code == 401
    assert response.json() == BAD_KEY_BODY


def test_the_right_key_is_accepted(client: httpx.Client) -> None:
    assert client.get("/api/lists").status_code == 200


def test_key_selects_the_project(emulator: Emulator, emulator_server: EmulatorServer) -> None:
    emulator.add_project("other", "email", "other-key")
    emulator.project("other").add_list("only in other")
    with client_for(emulator_server) as default, client_for(emulator_server, "other-key") as other:
        assert default.get("/api/lists").json() == {"lists": []}
        assert [x["name"] for x in other.get("/api/lists").json()["lists"]] == ["only in other"]
    assert [r.project for r in emulator.request_log] == ["default", "other"]


def test_unauthenticated_write_changes_nothing(emulator_server: EmulatorServer) -> None:
    with client_for(emulator_server, api_key="nope") as client:
        response = client.post("/api/lists", json={"name": "x"})
    assert response.status_code == 401
    assert emulator_server.emulator.project("default").lists == {}


def test_the_key_is_never_kept(emulator: Emulator, client: httpx.Client) -> None:
    client.get("/api/lists")
    project = emulator.project("default")
    assert "test-key" not in repr(project) + repr(emulator) + repr(emulator.request_log)
    assert "test-key" not in str(emulator.state_json())
    assert project.api_key_sha256 != "test-key"


def test_a_key_belongs_to_one_project(emulator: Emulator) -> None:
    with pytest.raises(ValueError) as raised:
        emulator.add_project("second", "hybrid", "test-key")
    assert "test-key" not in str(raised.value)


def test_control_endpoints_need_no_key(emulator_server: EmulatorServer) -> None:
    with client_for(emulator_server, api_key=None) as client:
        assert client.get("/_emulator/state").status_code == 200
