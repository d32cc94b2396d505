"""The field profile's knobs: an absent channelUnsubscribe taken as true, invalidListId for a
while after a create, and reads that lag writes; each alone, then the profile as a whole."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator import Emulator, Faults, Limits
from reconciler.emulator.knobs import FIELD_FRESH_LIST_SECONDS, FIELD_READ_LAG_SECONDS
from reconciler.emulator.project import DEFAULT_CHANNEL_ID
from tests.conftest import EMULATOR_PROJECT
from tests.emulator.support import FakeClock, client_for, subscribe, unsubscribe


@pytest.fixture
def timed(make_emulator_server, clock: FakeClock):
    """(client, emulator) over a clock the test moves."""
    server = make_emulator_server(clock=clock)
    with client_for(server) as client:
        yield client, server.emulator


def members(client: httpx.Client, list_id: int) -> list[str]:
    response = client.get("/api/lists/getUsers", params={"listId": str(list_id)})
    assert response.status_code == 200, response.text
    return response.text.split()


def export_rows(client: httpx.Client) -> list[dict]:
    response = client.get("/api/export/data.json", params={"dataTypeName": "user", "range": "All"})
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.mark.parametrize(
    ("setting", "body", "lost"),
    [
        (False, {}, False),
        (True, {}, True),
        (True, {"channelUnsubscribe": False}, False),
        (False, {"channelUnsubscribe": True}, True),
    ],
)
def test_an_absent_channel_unsubscribe_can_mean_true(
    client: httpx.Client, setting: bool, body: dict, lost: bool
) -> None:
    client.post("/_emulator/faults", json={"absent_channel_unsubscribe_is_true": setting})
    list_id = client.post("/api/lists", json={"name": "l"}).json()["listId"]
    subscribe(client, list_id, [{"email": "a@example.com"}])
    assert unsubscribe(client, list_id, [{"email": "a@example.com"}], **body).status_code == 200
    user = client.get("/api/users/a@example.com").json()["user"]
    channels = user["dataFields"].get("unsubscribedChannelIds", [])
    assert channels == ([DEFAULT_CHANNEL_ID] if lost else [])


def test_a_new_list_rejects_writes_for_a_time_after_its_create(timed, clock) -> None:
    client, emulator = timed
    emulator.faults.fresh_list_seconds = 30.0
    list_id = client.post("/api/lists", json={"name": "new"}).json()["listId"]
    clock.advance(29.9)
    refused = subscribe(client, list_id, [{"email": "a@example.com"}])
    assert refused.status_code == 400
    assert refused.json() == {
        "msg": f"error.lists.invalidListId({list_id})",
        "code": "Success",
        "params": None,
    }
    assert unsubscribe(client, list_id, [{"email": "a@example.com"}]).status_code == 400
    clock.advance(0.2)
    assert subscribe(client, list_id, [{"email": "a@example.com"}]).status_code == 200
    assert emulator.project(EMULATOR_PROJECT).members(list_id) == ["a@example.com"]


def test_reads_lag_writes(timed, clock) -> None:
    client, emulator = timed
    project = emulator.project(EMULATOR_PROJECT)
    old = project.add_list("old")
    project.subscribe_direct(old, email="kept@example.com")
    project.subscribe_direct(old, email="leaving@example.com")
    emulator.faults.read_lag_seconds = 60.0

    new = client.post("/api/lists", json={"name": "new"}).json()["listId"]
    subscribe(client, old, [{"email": "joined@example.com"}])
    unsubscribe(client, old, [{"email": "leaving@example.com"}])
    client.delete(f"/api/lists/{old}")
    clock.advance(59)
    # As it was a minute ago: "old" still there with its members, "new" not yet.
    names = [x["name"] for x in client.get("/api/lists").json()["lists"]]
    assert names == ["old"]
    assert sorted(members(client, old)) == ["kept@example.com", "leaving@example.com"]
    assert client.get(f"/api/lists/{old}/size").text == "2"
    assert client.get("/api/lists/getUsers", params={"listId": str(new)}).status_code == 400
    rows = {row["email"]: row.get("userListIds", []) for row in export_rows(client)}
    assert rows == {"kept@example.com": [old], "leaving@example.com": [old]}

    clock.advance(2)
    assert [x["name"] for x in client.get("/api/lists").json()["lists"]] == ["new"]
    assert members(client, new) == []
    rows = {row["email"]: row.get("userListIds", []) for row in export_rows(client)}
    assert rows == {"kept@example.com": [], "leaving@example.com": [], "joined@example.com": []}


def test_a_lagged_read_undoes_only_what_is_younger_than_the_lag(timed, clock) -> None:
    client, emulator = timed
    emulator.faults.read_lag_seconds = 10.0
    list_id = client.post("/api/lists", json={"name": "l"}).json()["listId"]
    subscribe(client, list_id, [{"email": "first@example.com"}])
    clock.advance(6)
    subscribe(client, list_id, [{"email": "second@example.com"}])
    unsubscribe(client, list_id, [{"email": "first@example.com"}])
    subscribe(client, list_id, [{"email": "first@example.com"}])
    clock.advance(5)  # the first subscribe is 11 s old, the rest 5 s
    assert members(client, list_id) == ["first@example.com"]
    clock.advance(6)
    assert sorted(members(client, list_id)) == ["first@example.com", "second@example.com"]
    # What every read already shows is forgotten, so the log stays the lag's size.
    assert len(emulator.project(EMULATOR_PROJECT).changes) == 0


def test_seeding_is_never_lagged(timed) -> None:
    client, emulator = timed
    emulator.faults.read_lag_seconds = 60.0
    project = emulator.project(EMULATOR_PROJECT)
    list_id = project.add_list("seeded")
    project.subscribe_direct(list_id, email="a@example.com")
    assert members(client, list_id) == ["a@example.com"]


def _phone(client: httpx.Client, email: str) -> tuple[object, object]:
    """The profile's phoneNumber (None: none) and its other field, plan."""
    fields = client.get(f"/api/users/{email}").json()["user"]["dataFields"]
    return fields.get("phoneNumber"), fields.get("plan")


@pytest.mark.parametrize("setting", [True, False])
def test_a_phone_number_iterable_would_not_keep_is_not_stored(
    client: httpx.Client, setting: bool
) -> None:
    """Iterable keeps phoneNumber only as E.164 text and takes a request with another
    form without saving it: the emulator stored any, so a client sending (650) 392-6753
    looked right against it. The knob (on in the field profile) drops such a value from
    each kind of write, keeping the profile's number and writing the other fields; null
    still clears it."""
    client.post("/_emulator/faults", json={"phone_number_e164_only": setting})
    list_id = client.post("/api/lists", json={"name": "sms"}).json()["listId"]

    def update(email: str, phone: object, plan: str) -> None:
        fields = {"phoneNumber": phone, "plan": plan}
        answer = client.post("/api/users/update", json={"email": email, "dataFields": fields})
        assert answer.status_code == 200, answer.text

    def bulk(email: str, phone: object, plan: str) -> None:
        user = {"email": email, "dataFields": {"phoneNumber": phone, "plan": plan}}
        answer = client.post("/api/users/bulkUpdate", json={"users": [user]})
        assert answer.status_code == 200 and answer.json()["successCount"] == 1, answer.text

    def listed(email: str, phone: object, plan: str) -> None:
        user = {"email": email, "dataFields": {"phoneNumber": phone, "plan": plan}}
        answer = subscribe(client, list_id, [user])
        assert answer.status_code == 200 and answer.json()["successCount"] == 1, answer.text

    for write in (update, bulk, listed):
        email = f"{write.__name__}@example.com"
        write(email, "+16503926753", "gold")
        assert _phone(client, email) == ("+16503926753", "gold")
        for other_form in ("(650) 392-6753", "16503926753", "+1 650 392 6753", "+0650392"):
            write(email, other_form, other_form)
            kept = "+16503926753" if setting else other_form
            assert _phone(client, email) == (kept, other_form), write.__name__
        write(email, "+4915112345678", "silver")
        assert _phone(client, email) == ("+4915112345678", "silver")
        write(email, None, "none")
        assert _phone(client, email) == (None, "none")


def test_the_field_profile_turns_everything_on_at_field_values() -> None:
    faults = Faults.field()
    assert faults.absent_channel_unsubscribe_is_true
    assert faults.phone_number_e164_only
    assert faults.fresh_list_seconds == FIELD_FRESH_LIST_SECONDS == 30.0
    assert faults.read_lag_seconds == FIELD_READ_LAG_SECONDS == 60.0
    assert faults.drop_every == 0
    scaled = Faults.field(time_scale=100, lost_replies_every=7)
    assert scaled.fresh_list_seconds == pytest.approx(0.3)
    assert scaled.read_lag_seconds == pytest.approx(0.6)
    assert scaled.drop_every == 7
    with pytest.raises(ValueError):
        Faults.field(time_scale=0)


def test_the_profile_is_set_through_the_control_endpoint(client: httpx.Client) -> None:
    answer = client.post("/_emulator/profile", json={"name": "field", "timeScale": 60})
    assert answer.status_code == 200
    assert answer.json()["read_lag_seconds"] == pytest.approx(1.0)
    assert answer.json()["absent_channel_unsubscribe_is_true"] is True
    bad = client.post("/_emulator/profile", json={"name": "moon"})
    assert bad.status_code == 400
    # An unknown setting is named in the singular or plural its count takes.
    one = client.post("/_emulator/profile", json={"name": "field", "speed": 2})
    assert one.status_code == 400 and "unknown profile setting: speed" in one.text
    two = client.post("/_emulator/profile", json={"name": "field", "speed": 2, "moon": 1})
    assert "unknown profile settings: moon, speed" in two.text
    assert client.post("/_emulator/profile", json={"name": "none"}).json()["read_lag_seconds"] == 0


def test_the_knobs_are_set_one_by_one_and_checked(client: httpx.Client) -> None:
    for name, value in [
        ("fresh_list_seconds", 5),
        ("read_lag_seconds", 1.5),
        ("absent_channel_unsubscribe_is_true", True),
    ]:
        assert client.post("/_emulator/faults", json={name: value}).json()[name] == value
    for name, value in [
        ("fresh_list_seconds", -1),
        ("read_lag_seconds", "1"),
        ("absent_channel_unsubscribe_is_true", 1),
    ]:
        assert client.post("/_emulator/faults", json={name: value}).status_code == 400


def test_a_lagged_emulator_stays_fast_for_big_seeded_projects() -> None:
    # Seeding records nothing, so a lag costs nothing until requests change things.
    emulator = Emulator(limits=Limits.unlimited(), faults=Faults.field())
    project = emulator.add_project("p", "email", "k")
    list_id = project.add_list("big")
    for i in range(1000):
        project.subscribe_direct(list_id, email=f"u{i}@example.com")
    assert len(project.changes) == 0
