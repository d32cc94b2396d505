"""The state file: saved after each change, atomically, without any API key."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from reconciler.emulator import emulator as emulator_module
from reconciler.emulator import store as state_store
from reconciler.leftovers import IDLE_SECONDS
from tests.emulator.support import client_for, subscribe

SECRET = "s3cret-key-never-on-disk"


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "emulator.json"


def new_emulator(state_path: Path) -> Emulator:
    emulator = Emulator(limits=Limits.unlimited(), state_path=state_path)
    if "default" not in emulator.projects:
        emulator.add_project("default", "hybrid", SECRET)
    return emulator


def test_state_survives_a_restart(state_path: Path) -> None:
    first = new_emulator(state_path)
    with EmulatorServer(first) as server, client_for(server, SECRET) as client:
        list_id = client.post("/api/lists", json={"name": "l", "description": "d"}).json()["listId"]
        subscribe(
            client,
            list_id,
            [
                {"email": "b@example.com", "dataFields": {"plan": "gold"}},
                {"userId": "u-a"},
                {"email": "a@example.com", "userId": "u-c"},
            ],
        )
        client.post(f"/_emulator/lists/{list_id}/in-use")
        client.post(
            "/api/lists/unsubscribe",
            json={
                "listId": list_id,
                "subscribers": [{"userId": "u-a"}],
                "channelUnsubscribe": True,
            },
        )

    second = Emulator.load(state_path, limits=Limits.unlimited())
    project = second.project("default")
    assert project.project_type == "hybrid"
    assert project.members(list_id) == ["b@example.com", "a@example.com"]
    assert project.lists[list_id].in_use
    assert project.lists[list_id].description == "d"
    assert project.field_types == {"plan": "string"}
    assert project.find_user(user_id="u-a").unsubscribed_channel_ids  # type: ignore[union-attr]
    # The key still works after the reload, though only its hash was stored.
    with EmulatorServer(second) as server, client_for(server, SECRET) as client:
        assert client.post("/api/lists", json={"name": "next"}).json() == {"listId": list_id + 1}
        with client_for(server, "other") as stranger:
            assert stranger.get("/api/lists").status_code == 401


def test_the_key_never_reaches_the_file(state_path: Path) -> None:
    emulator = new_emulator(state_path)
    emulator.project("default").add_user(email="a@example.com")
    emulator.save()
    text = state_path.read_text()
    assert SECRET not in text
    assert (
        json.loads(text)["projects"][0]["apiKeySha256"]
        == emulator.project("default").api_key_sha256
    )
    # mkstemp's 0600 survives the rename: the file holds people's emails.
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600


def test_writes_replace_the_file_atomically(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = new_emulator(state_path)
    list_id = emulator.project("default").add_list("l")
    emulator.save()
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(source: str, target: str) -> None:
        replaced.append((str(source), str(target)))
        real_replace(source, target)

    monkeypatch.setattr(state_store.os, "replace", recording_replace)
    with EmulatorServer(emulator) as server, client_for(server, SECRET) as client:
        subscribe(client, list_id, [{"email": "a@example.com"}])
        client.get("/api/lists")  # a read saves nothing
        client.get("/api/lists/getUsers", params={"listId": list_id})
    assert len(replaced) == 1
    source, target = replaced[0]
    assert Path(source).parent == state_path.parent
    assert Path(target) == state_path
    assert sorted(p.name for p in state_path.parent.iterdir()) == [state_path.name]


def test_faulted_and_refused_requests_save_nothing(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = new_emulator(state_path)
    list_id = emulator.project("default").add_list("l")
    emulator.save()
    saves: list[Path] = []
    monkeypatch.setattr(
        "reconciler.emulator.emulator.write_state_atomically",
        lambda path, state: saves.append(path),
    )
    emulator.faults = Faults(fail_every=1, paths=["/api/lists/subscribe"])
    with EmulatorServer(emulator) as server, client_for(server, SECRET) as client:
        assert subscribe(client, list_id, [{"email": "a@example.com"}]).status_code == 503
        assert client.post("/api/lists/unsubscribe", content=b"{").status_code == 400
    assert saves == []


def test_a_failed_write_leaves_the_old_file(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = new_emulator(state_path)
    emulator.save()
    before = state_path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(state_store.os, "fsync", failing_fsync)
    emulator.project("default").add_list("l")
    with pytest.raises(OSError, match="disk full"):
        emulator.save()
    assert state_path.read_bytes() == before
    assert sorted(p.name for p in state_path.parent.iterdir()) == [state_path.name]


def test_load_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Emulator.load(tmp_path / "missing.json")


def test_state_endpoint_shows_no_key_material(emulator_server: EmulatorServer) -> None:
    emulator_server.emulator.project("default").add_list("l")
    with httpx.Client(base_url=emulator_server.base_url) as client:
        state = client.get("/_emulator/state").json()
    assert state["projects"][0]["lists"][0]["name"] == "l"
    assert "apiKeySha256" not in json.dumps(state)
    assert "test-key" not in json.dumps(state)


def test_a_slow_save_is_spaced_out_and_the_sandbox_client_saves_the_rest_as_it_closes(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each save writes the whole state: saving after every subscribe made an apply of
    # 100,000 members into the sandbox write its growing state 100 times (33 s). Every save
    # counts as slow here, and the next is due only long after, so no timing is measured.
    from reconciler.emulator import EmulatorTransport
    from reconciler.emulator import emulator as emulator_module

    monkeypatch.setattr(emulator_module, "SLOW_SAVE_SECONDS", 0.0)
    monkeypatch.setattr(emulator_module, "SAVE_SPACING", 10**9)
    writes: list[Path] = []
    write = emulator_module.write_state_atomically

    def counting(path: Path, data: object) -> None:
        writes.append(path)
        write(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(emulator_module, "write_state_atomically", counting)
    emulator = new_emulator(state_path)
    writes.clear()
    with httpx.Client(
        transport=EmulatorTransport(emulator),
        base_url="https://sandbox.invalid",
        headers={"Api-Key": SECRET},
    ) as client:
        list_id = client.post("/api/lists", json={"name": "l"}).json()["listId"]
        for batch in range(50):
            subscribe(client, list_id, [{"email": f"m{batch}@example.com"}])
        # The project's creation was the last save: the list and its members wait for the
        # next one that is due.
        assert writes == []
    assert writes == [state_path]  # the close saved them, once
    saved = Emulator.load(state_path, limits=Limits.unlimited()).project("default")
    assert len(saved.members(list_id)) == 50


def test_state_survives_a_restart_when_saves_are_spaced_out(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save slower than SLOW_SAVE_SECONDS defers the next ones (the state stays dirty),
    as on a loaded machine, where even a tiny state took that long: stopping the server
    left the last requests unsaved, and the restart lost them (two tests failed so at
    load average 20). Here every save after the first is deferred."""
    monkeypatch.setattr(emulator_module, "SLOW_SAVE_SECONDS", -1.0)
    monkeypatch.setattr(emulator_module, "SAVE_SPACING", 1e9)
    first = new_emulator(state_path)
    with EmulatorServer(first) as server, client_for(server, SECRET) as client:
        list_id = client.post("/api/lists", json={"name": "l"}).json()["listId"]
        subscribe(client, list_id, [{"email": "a@example.com"}])

    second = Emulator.load(state_path, limits=Limits.unlimited())
    assert second.project("default").members(list_id) == ["a@example.com"]


KILLED_MID_SAVE = """
import os, signal, sys
from pathlib import Path
from reconciler.emulator import Emulator, Limits
from reconciler.emulator import store

def killed(source, target):  # the copy is written whole; SIGKILL before it is renamed
    os.kill(os.getpid(), signal.SIGKILL)

emulator = Emulator(limits=Limits.unlimited(), state_path=Path(sys.argv[1]))
project = emulator.add_project("default", "hybrid", "k")
project.subscribe_direct(project.add_list("l"), email="jane.doe@example.com")
store.os.replace = killed
emulator.save()
"""


def test_a_copy_a_killed_save_left_is_removed_by_a_later_save(state_path: Path) -> None:
    """A run killed while the state was written (a sandbox of many members is written
    every few seconds, for seconds at a time) left `.emulator.json.<random>.tmp` beside
    it, a copy of every user, that nothing ever removed: the state directory then held
    members after the state file itself was deleted for an erasure. The copy is named for
    its process, and the first save of a later run removes what a gone process left,
    once untouched for an hour (as a killed `plan --out` leaves its partial), and the
    earlier name too."""
    state_path.parent.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_SAVE, str(state_path)], check=False)
    assert killed.returncode == -signal.SIGKILL
    (left,) = [p for p in state_path.parent.iterdir() if p != state_path]
    assert left.name.startswith(f".{state_path.name}.partial-")
    assert b"jane.doe@example.com" in left.read_bytes()
    assert stat.S_IMODE(left.stat().st_mode) == 0o600
    earlier = state_path.parent / f".{state_path.name}.ab3de_gh.tmp"  # an earlier version's
    earlier.write_text('{"projects": [')
    then = time.time() - IDLE_SECONDS - 60
    for path in (left, earlier):
        os.utime(path, (then, then))

    new_emulator(state_path).save()
    assert sorted(p.name for p in state_path.parent.iterdir()) == [state_path.name]
