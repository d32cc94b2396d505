"""Other writers to the Iterable project while an apply plans and writes: another apply
(a CI runner and a laptop, which share no lock and no run journal), a person in
Iterable's web app, another tool writing the same lists. Each test drives the emulator
over HTTP between reconciler's own requests, as the other writer would."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator import EmulatorResponse
from reconciler.plan.ownership import mark
from tests.integration.reliability import lists_by_name


def project(server):
    return server.emulator.project("default")


def create_as_another_apply(server, handle, name: str, audience: str) -> int:
    """The create another apply of the same manifests sends (its own run token), through
    the API, so the field profile's list index lags it as it lags reconciler's own."""
    request = httpx.Request(
        "POST",
        f"{server.base_url}/api/lists",
        headers={"Api-Key": "test-key"},
        json={"name": name, "description": mark(None, audience, "0ddba11e")},
    )
    reply = handle(request)
    assert reply.status == 200, reply.body
    return int(json.loads(reply.body)["listId"])


def on_first_create(server, before: bool):
    """Run another apply's create of the same list when this run's first create arrives:
    just `before` it is handled, or just after. The other list's id is in the dict."""
    emulator = server.emulator
    original = emulator.handle
    other: dict[str, int] = {}

    def handle(request: httpx.Request) -> EmulatorResponse:
        first = request.method == "POST" and request.url.path == "/api/lists" and not other
        if first and before:
            other["id"] = create_as_another_apply(server, original, "vip", "vip")
        reply = original(request)
        if first and not before:
            other["id"] = create_as_another_apply(server, original, "vip", "vip")
        return reply

    emulator.handle = handle  # type: ignore[method-assign]
    return other


MEMBERS = ["a@example.com", "b@example.com"]


@pytest.mark.field_profile
def test_an_apply_whose_list_another_apply_created_first_deletes_its_own_copy(
    workspace, cli, emulator_server
):
    """A CI runner and a laptop apply the same new audience at once: both plans read no
    list 'vip' (no shared lock, no shared journal), and both create it. Iterable then had
    two lists of one name, each with every member, and every later plan left the audience
    out until someone chose one to delete (and with it the unsubscribes it recorded). The
    run whose list is the newer now deletes its own copy before a member is sent to it,
    so one list is left, and says so (exit 1)."""
    other = on_first_create(emulator_server, before=True)
    workspace.audience("vip", {"inline": MEMBERS})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output
    assert lists_by_name(emulator_server)["vip"] == [other["id"]]
    assert f"another list named 'vip' (list {other['id']})" in result.stdout
    subscribes = [
        r for r in emulator_server.emulator.request_log if r.path == "/api/lists/subscribe"
    ]
    assert subscribes == []  # nobody was put on the copy it deleted
    assert "2 of 2 additions" in result.stdout

    # The next run manages the list the other apply made.
    again = cli("apply", workspace.manifests, "--yes")
    if again.exit_code != 0:  # the other list's create may still lag (field profile)
        again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert lists_by_name(emulator_server)["vip"] == [other["id"]]
    assert sorted(project(emulator_server).members(other["id"])) == MEMBERS


@pytest.mark.field_profile
def test_a_saved_plan_applied_while_another_machine_applies_it_leaves_one_list(
    workspace, cli, emulator_server, tmp_path
):
    """`apply --plan` on one machine while the same change is applied from another: the
    stale check cannot see the other's new list while Iterable's index lags its create,
    so both create it; the saved plan's run, the newer, deletes its copy unsent."""
    workspace.audience("vip", {"inline": MEMBERS})
    saved = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", saved).exit_code == 0
    other = on_first_create(emulator_server, before=True)
    result = cli("apply", "--plan", saved, "--yes")
    assert result.exit_code == 1, result.output
    assert lists_by_name(emulator_server)["vip"] == [other["id"]]
    assert "this run deleted its copy, empty" in result.stdout


def test_an_apply_whose_list_is_the_older_keeps_it_and_names_the_other(
    workspace, cli, emulator_server
):
    """The other side of the race: the other list is the newer, so this run keeps its
    own and fills it, and the report names the other (which its apply deletes, being the
    newer; one made by hand would leave the audience out of the next plan)."""
    other = on_first_create(emulator_server, before=False)
    workspace.audience("vip", {"inline": MEMBERS})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output
    (ours,) = [i for i in lists_by_name(emulator_server)["vip"] if i != other["id"]]
    assert sorted(project(emulator_server).members(ours)) == MEMBERS
    assert f"another list named 'vip' (list {other['id']})" in result.stdout

    # Had the other apply not deleted its copy, the next plan leaves the audience out,
    # saying which list is which: both made for the audience, this run's first.
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 1, plan.output
    assert (
        f"Iterable has 2 lists named 'vip' (ids {ours}, {other['id']}; made by reconciler "
        f"for audience 'vip': {ours}, {other['id']}, {ours} first)"
    ) in " ".join(plan.stdout.split())
    assert "keep the one your campaigns and journeys use" in " ".join(plan.stdout.split())


def test_a_ci_runner_and_a_laptop_applying_a_new_audience_at_once_leave_one_list(
    workspace, emulator_server, tmp_path
):
    """The race itself, with two real apply processes from two checkouts (no shared lock
    or journal): both plan before either creates (their creates are held until both have
    arrived), under Iterable's lagging list index. One list is left, holding everyone."""
    import subprocess
    import sys
    import threading

    from tests.integration.reliability import subprocess_env

    emulator = emulator_server.emulator
    emulator.faults.read_lag_seconds = 0.3
    original = emulator.handle
    both = threading.Barrier(2, timeout=60)

    def handle(request: httpx.Request) -> EmulatorResponse:
        if request.method == "POST" and request.url.path == "/api/lists":
            both.wait()
        return original(request)

    emulator.handle = handle  # type: ignore[method-assign]
    people = [f"m{i}@example.com" for i in range(5)]
    workspace.audience("vip", {"inline": people})
    env = subprocess_env(workspace, RECONCILER_READ_LAG="3")
    command = [sys.executable, "-m", "reconciler.cli", "apply", str(workspace.manifests)]
    runs = [
        subprocess.Popen(
            [*command, "--yes", "--state-dir", str(tmp_path / machine)],
            cwd=workspace.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for machine in ("ci", "laptop")
    ]
    outcomes = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    emulator.handle = original  # type: ignore[method-assign]
    (kept,) = lists_by_name(emulator_server)["vip"]
    assert sorted(project(emulator_server).members(kept)) == people
    said = "".join(out for _code, out, _err in outcomes)
    assert "this run deleted its copy, empty" in said, outcomes
    assert any(code == 0 or "kept its own" in out for code, out, _err in outcomes), outcomes


def test_lists_listed_without_descriptions_keep_this_runs_list_and_name_the_other(
    workspace, cli, emulator_server
):
    """GET /api/lists gives `description` only where a list has one (the OpenAPI has it
    optional): an index without them tells no copy of the audience's from a list made by
    hand, so this run keeps its own and names the other, rather than failing."""
    other = on_first_create(emulator_server, before=True)
    emulator = emulator_server.emulator
    creating = emulator.handle

    def handle(request: httpx.Request) -> EmulatorResponse:
        reply = creating(request)
        if request.method == "GET" and request.url.path == "/api/lists":
            listed = json.loads(reply.body)
            for item in listed["lists"]:
                item.pop("description", None)
            return EmulatorResponse(reply.status, reply.headers, json.dumps(listed).encode())
        return reply

    emulator.handle = handle  # type: ignore[method-assign]
    workspace.audience("vip", {"inline": MEMBERS})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output
    (ours,) = [i for i in lists_by_name(emulator_server)["vip"] if i != other["id"]]
    assert sorted(project(emulator_server).members(ours)) == MEMBERS
    assert f"another list named 'vip' (list {other['id']})" in result.stdout


def test_a_lost_create_that_shows_up_late_is_taken_back_not_left_as_a_second_list(
    workspace, cli, emulator_server, monkeypatch
):
    """A create whose answer was lost is looked for in the list index for
    RECONCILER_READ_LAG, then sent again. Iterable's index can show a list later than
    that (the lag is 'up to about a minute', not a law): the first create then shows up
    beside the second, both with this run's token. The second is deleted, still empty,
    and the members go to the first, as if its answer had come: no second list, and no
    report of another apply that never ran."""
    from reconciler.emulator.replies import fault_reply

    monkeypatch.setenv("RECONCILER_READ_LAG", "0.3")
    emulator = emulator_server.emulator
    original = emulator.handle
    late: dict[str, int] = {}

    def handle(request: httpx.Request) -> EmulatorResponse:
        if request.method == "POST" and request.url.path == "/api/lists" and not late:
            reply = original(request)
            late["id"] = int(json.loads(reply.body)["listId"])
            late["hidden"] = 1
            return fault_reply(504, None)  # done, and the answer lost on the way back
        if request.method == "POST" and request.url.path == "/api/lists":
            late["hidden"] = 0  # the index shows the first create once the second is sent
        reply = original(request)
        if request.method == "GET" and request.url.path == "/api/lists" and late.get("hidden"):
            listed = json.loads(reply.body)
            listed["lists"] = [x for x in listed["lists"] if x["id"] != late["id"]]
            return EmulatorResponse(reply.status, reply.headers, json.dumps(listed).encode("utf-8"))
        return reply

    emulator.handle = handle  # type: ignore[method-assign]
    workspace.audience("vip", {"inline": MEMBERS})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert lists_by_name(emulator_server)["vip"] == [late["id"]]
    assert sorted(project(emulator_server).members(late["id"])) == MEMBERS
    assert f"vip (list {late['id']}): created, added 2/2" in result.stdout
