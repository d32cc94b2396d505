"""Object-typed mapped fields (`type: object`) over objects a profile already holds: what
a write would lose is shown by the plan and counted by the field_clears guard, in both
engines."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_safety import project, writes


def mapping(merge: bool = False) -> str:
    return (
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec:\n  fields: {address: {from: addr, type: object}}\n"
        f"  mergeNestedObjects: {'true' if merge else 'false'}\n"
    )


def cell(value: object) -> str:
    """A CSV cell holding `value` as JSON text."""
    return '"' + json.dumps(value).replace('"', '""') + '"'


HELD = {"city": "Rome", "zip": "00184"}


@pytest.fixture(params=["100000", "1"], ids=["python", "duckdb"])
def engine(request, monkeypatch):
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", request.param)


def seed_on_list(server, n: int = 10) -> None:
    proj = project(server)
    list_id = proj.add_list("vip", None)
    for i in range(n):
        proj.subscribe_direct(list_id, email=f"m{i}@example.com", data_fields={"address": HELD})


@pytest.mark.parametrize(
    ("merge", "sent"),
    [(False, {"city": "Rome"}), (False, {"city": None, "zip": None}), (True, {"zip": None})],
    ids=["replaced-without-zip", "all-nulls", "merged-null"],
)
def test_an_object_losing_a_key_on_every_member_is_held_by_the_field_clears_guard(
    workspace, cli, emulator_server, engine, merge, sent
):
    # Another team's address.zip on every member of 'vip': a mapping giving the object
    # without it (replacing it), as nulls (a struct over a join that found nothing), or a
    # null merged into it, wiped the zip on all 10 in one apply, counted as a change (no
    # limit by default), not a clear.
    seed_on_list(emulator_server)
    workspace.write("traits.yaml", mapping(merge))
    rows = [f"m{i}@example.com,{cell(sent)}" for i in range(10)]
    workspace.csv("data/vip.csv", "email,addr", rows)
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    assert (violation["list_name"], violation["rule"]) == ("vip", "field_clears")
    assert (
        "clears field 'address', which holds a value, for 10 of the 10 members"
        in (violation["message"])
    )
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 3, applied.output
    assert writes(emulator_server) == []
    assert project(emulator_server).user_by_email("m0@example.com").data_fields["address"] == HELD


@pytest.mark.parametrize(
    ("merge", "sent"),
    [(False, {"city": "Oslo"}), (True, {"city": "Oslo", "zip": None})],
    ids=["replacing", "merging-a-null"],
)
def test_joining_a_list_does_not_wipe_an_objects_keys_the_plan_never_read(
    workspace, cli, emulator_server, engine, merge, sent
):
    # Ten users hold an address another team set (zip included) and join 'vip', whose
    # mapping gives the object without the zip (replacing the profile's) or with a null
    # for it (merged): the subscribe carried it unread, wiping every zip, while plan said
    # only "add 12 members with fields address" and exited 0, unguarded.
    proj = project(emulator_server)
    other = proj.add_list("other-team", None)
    for i in range(10):
        proj.subscribe_direct(other, email=f"m{i}@example.com", data_fields={"address": HELD})
    workspace.write("traits.yaml", mapping(merge))
    # Two new users join too: nothing of theirs to lose, the object rides the subscribe.
    rows = [f"{e}@example.com,{cell(sent)}" for e in [*(f"m{i}" for i in range(10)), "n1", "n2"]]
    workspace.csv("data/vip.csv", "email,addr", rows)
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    # n1 and n2 hold nothing to lose: not among those counted, and said so.
    assert (
        "clears field 'address', which holds a value, for 10 of the 10 members on or "
        "joining list 'vip' (100.0%; 2 more joining hold nothing in it and are not counted)"
    ) in violation["message"]
    assert plan.json()["summary"]["users_to_update"] == 10
    text = cli("plan", workspace.manifests)
    assert "~ ***@***#1: address " in text.stdout
    assert cli("apply", workspace.manifests, "--yes").exit_code == 3
    assert writes(emulator_server) == []

    applied = cli("apply", workspace.manifests, "--yes", "--allow-field-clears")
    assert applied.exit_code == 0, applied.output
    (subscribe,) = [r for r in writes(emulator_server) if r.path == "/api/lists/subscribe"]
    carried = {s["email"]: s.get("dataFields") for s in subscribe.body["subscribers"]}
    assert carried["n1@example.com"] == carried["n2@example.com"] == {"address": sent}
    assert all(not carried[f"m{i}@example.com"] for i in range(10))
    (update,) = [r for r in writes(emulator_server) if r.path == "/api/users/bulkUpdate"]
    assert sorted(u["email"] for u in update.body["users"]) == [
        f"m{i}@example.com" for i in range(10)
    ]
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_an_object_joining_over_one_it_keeps_whole_is_no_clear(
    workspace, cli, emulator_server, engine
):
    # Merged, the city changes and the zip stays: an update shown in the plan, no clear.
    proj = project(emulator_server)
    other = proj.add_list("other-team", None)
    proj.subscribe_direct(other, email="m0@example.com", data_fields={"address": HELD})
    workspace.write("traits.yaml", mapping(merge=True))
    workspace.csv("data/vip.csv", "email,addr", [f"m0@example.com,{cell({'city': 'Oslo'})}"])
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    (update,) = [r for r in writes(emulator_server) if r.path == "/api/users/bulkUpdate"]
    assert update.body["users"][0]["mergeNestedObjects"] is True
    address = proj.user_by_email("m0@example.com").data_fields["address"]
    assert address == {"city": "Oslo", "zip": "00184"}
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
