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
