"""Saved plans, stale-plan refusal, the safety policy, ownership and prune (issue 5)."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from tests.integration.conftest import API_KEY_VAR

WRITES = ("POST", "DELETE", "PUT")


def project(server):
    return server.emulator.project("default")


def writes(server) -> list:
    return [r for r in server.emulator.request_log if r.method in WRITES]


def list_named(server, name: str):
    (record,) = [r for r in project(server).lists.values() if r.name == name]
    return record


def seed_list(server, name: str, emails: list[str], description: str | None = None) -> int:
    proj = project(server)
    list_id = proj.add_list(name, description)
    for email in emails:
        proj.subscribe_direct(list_id, email=email)
    return list_id


def emails(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(n)]


# -- saved plans -----------------------------------------------------------------------


def test_saved_plan_applies_exactly_and_needs_no_path(workspace, cli, emulator_server, tmp_path):
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "vip.plan"
    made = cli("plan", workspace.manifests, "--out", planfile)
    assert made.exit_code == 0, made.output
    assert f"reconciler apply --plan {planfile}" in made.stderr

    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 0, applied.output
    assert sorted(project(emulator_server).members(list_named(emulator_server, "vip").id)) == [
        "a@example.com",
        "b@example.com",
    ]
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_stale_plan_is_refused_with_zero_writes_when_iterable_changed(
    workspace, cli, emulator_server, tmp_path
):
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0

    project(emulator_server).subscribe_direct(list_id, email="someone@example.com")
    emulator_server.emulator.clear_log()
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 4, result.output
    assert "stale plan: list 'vip' changed (1 -> 2 members)" in result.stderr
    assert "run plan again" in result.stderr
    assert writes(emulator_server) == []


def test_a_stale_plan_in_json_names_the_destination_whose_list_changed(
    workspace, cli, emulator_server, tmp_path
):
    """The JSON object names the destination, as for every other error in one destination,
    and the message is the same as in text, which a project of one destination need not
    prefix with its name."""
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    project(emulator_server).subscribe_direct(list_id, email="someone@example.com")

    result = cli("apply", "--plan", planfile, "--yes", "--format", "json")

    assert result.exit_code == 4, result.output
    out = result.json()
    assert out["destination"] == "prod" and out["exit_code"] == 4
    assert out["error"].startswith("stale plan: list 'vip' changed (1 -> 2 members)")
    assert "error: stale plan: list 'vip' changed (1 -> 2 members)" in result.stderr


def test_stale_plan_is_refused_when_a_planned_list_appeared(
    workspace, cli, emulator_server, tmp_path
):
    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    project(emulator_server).add_list("vip")
    emulator_server.emulator.clear_log()
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 4
    assert "list 'vip' was created" in result.stderr
    assert writes(emulator_server) == []


def test_a_stale_plan_names_a_list_renamed_in_iterable_not_deleted(
    workspace, cli, emulator_server, tmp_path
):
    """A list renamed in Iterable's web app keeps its id: the saved plan's list was said to
    be 'deleted', and a person looking for it found it there under its new name."""
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    list_named(emulator_server, "vip").name = "VIP customers"
    emulator_server.emulator.clear_log()
    renamed = cli("apply", "--plan", planfile, "--yes")
    assert renamed.exit_code == 4, renamed.output
    assert (
        f"error: stale plan: list 'vip' (list {list_id}) was renamed 'VIP customers' in "
        "Iterable since p.plan was made; run plan again (to keep managing that list, set "
        "listName: 'VIP customers' on audience 'vip')"
    ) in renamed.stderr
    assert writes(emulator_server) == []
    # Renamed, and another list made under the old name: the old one is named too.
    other = project(emulator_server).add_list("vip")
    replaced = cli("apply", "--plan", planfile, "--yes")
    assert replaced.exit_code == 4, replaced.output
    assert (
        f"error: stale plan: list 'vip' now has id {other} (list {list_id} was renamed "
        "'VIP customers' in Iterable) since p.plan was made"
    ) in replaced.stderr


def test_stale_plan_is_refused_when_manifests_changed(workspace, cli, emulator_server, tmp_path):
    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    workspace.audience("vip", {"inline": ["a@example.com", "c@example.com"]})
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 4
    assert "manifests or their member sources changed" in result.stderr
    assert writes(emulator_server) == []


def test_plan_file_holds_members_but_never_the_key(
    workspace, cli, emulator_server, tmp_path, monkeypatch
):
    secret = "itbl-SECRET-KEY-0123456789"
    emulator_server.emulator.set_api_key("default", secret)
    monkeypatch.setenv(API_KEY_VAR, secret)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = tmp_path / "p.plan"
    made = cli("plan", workspace.manifests, "--out", planfile)
    assert made.exit_code == 0, made.output
    raw = gzip.decompress(planfile.read_bytes()).decode()
    assert secret not in raw and secret not in made.output
    assert "a@example.com" in raw  # full members: needed to apply exactly
    assert json.loads(raw.splitlines()[0])["format"] == "reconciler-plan"  # a header line
    assert planfile.stat().st_mode & 0o077 == 0  # owner-only


def test_a_damaged_plan_file_is_a_clear_error(cli, tmp_path):
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    result = cli("apply", "--plan", bad, "--yes")
    assert result.exit_code == 1
    assert "not a reconciler plan file" in result.stderr


# -- safety policy ---------------------------------------------------------------------


def test_removal_over_threshold_is_blocked_with_zero_writes_and_allowed_with_flag(
    workspace, cli, emulator_server
):
    seed_list(emulator_server, "vip", emails(10))
    workspace.audience("vip", {"inline": emails(8)})  # removes 2 of 10: 20% > 10%
    emulator_server.emulator.clear_log()

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 3
    assert "BLOCKED by the safety policy" in plan.stdout
    assert "removes 2 of 10 members (20.0%), more than maxRemovalPercent 10%" in plan.stdout
    assert "- remove 2 members" in plan.stdout  # the whole plan is printed before exit

    blocked = cli("apply", workspace.manifests, "--yes")
    assert blocked.exit_code == 3
    assert "nothing was changed" in blocked.stderr
    assert writes(emulator_server) == []

    allowed = cli("apply", workspace.manifests, "--yes", "--allow-removals")
    assert allowed.exit_code == 0, allowed.output
    assert len(project(emulator_server).members(list_named(emulator_server, "vip").id)) == 8
    # The plan apply prints says what happens: overridden, not "BLOCKED".
    assert "BLOCKED" not in allowed.stdout
    assert "Safety policy overridden on the command line" in allowed.stdout
    assert "removes 2 of 10 members (20.0%)" in allowed.stdout


def test_exactly_the_threshold_passes(workspace, cli, emulator_server):
    seed_list(emulator_server, "vip", emails(10))
    workspace.audience("vip", {"inline": emails(9)})  # exactly 10%: compared with ">"
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_max_removals_and_audience_override(workspace, cli, emulator_server):
    seed_list(emulator_server, "vip", emails(100))
    workspace.destination(policy={"maxRemovals": 3, "maxRemovalPercent": 50})
    workspace.audience("vip", {"inline": emails(95)})
    blocked = cli("plan", workspace.manifests, "--format", "json")
    assert blocked.exit_code == 3
    body = blocked.json()
    assert body["blocked"] is True
    assert body["violations"][0]["rule"] == "removals"
    assert "more than maxRemovals 3" in body["violations"][0]["message"]

    workspace.audience("vip", {"inline": emails(95)}, policy={"maxRemovals": 5})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_a_destinations_removal_share_is_inherited_and_an_audiences_own_wins(
    workspace, cli, emulator_server
):
    seed_list(emulator_server, "vip", emails(10))
    workspace.destination(policy={"maxRemovalPercent": 50})
    workspace.audience("vip", {"inline": emails(7)})  # 30%: within the destination's 50%
    inherited = cli("plan", workspace.manifests, "--format", "json")
    assert inherited.exit_code == 0, inherited.output
    assert inherited.json()["blocked"] is False

    workspace.audience("vip", {"inline": emails(7)}, policy={"maxRemovalPercent": 20})
    own = cli("plan", workspace.manifests, "--format", "json")
    assert own.exit_code == 3, own.output
    assert "more than maxRemovalPercent 20%" in own.json()["violations"][0]["message"]


def test_channel_unsubscribe_is_shown_prominently(workspace, cli, emulator_server):
    seed_list(emulator_server, "vip", emails(2))
    workspace.audience(
        "vip",
        {"inline": emails(1)},
        unsubscribe={"channelUnsubscribe": True},
        policy={"maxRemovalPercent": 100},
    )
    text = cli("plan", workspace.manifests).stdout
    assert text.startswith("!!! channelUnsubscribe is ON for vip")
    markdown = cli("plan", workspace.manifests, "--format", "markdown").stdout
    assert "**channelUnsubscribe is ON**" in markdown
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    (unsubscribe,) = [
        r for r in emulator_server.emulator.request_log if r.path == "/api/lists/unsubscribe"
    ]
    assert unsubscribe.body["channelUnsubscribe"] is True


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_channel_unsubscribe_of_people_other_lists_keep_is_noted(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # m1 and m2 leave vip, whose removals take the channel, while news keeps m1 (on it)
    # and gains m2: they stay on news but no longer get its email, and no plan said so
    # (nor any later one: news is as the manifests say). m3 is on no other list; m4 left
    # news themselves, so news holds them back: not on it, not counted.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    seed_list(emulator_server, "vip", emails(5))
    news = seed_list(emulator_server, "news", [emails(5)[1], emails(5)[4]])
    proj = project(emulator_server)
    proj.self_unsubscribe(proj.find_user(email=emails(5)[4]), list_id=news)
    workspace.csv("data/vip.csv", "email", emails(1))
    workspace.csv("data/news.csv", "email", [*emails(3)[1:], emails(5)[4]])
    workspace.audience(
        "vip",
        {"csv": "data/vip.csv"},
        unsubscribe={"channelUnsubscribe": True},
        policy={"maxRemovalPercent": 100},
    )
    workspace.audience("news", {"csv": "data/news.csv"})
    note = (
        "channelUnsubscribe on 'vip': 2 of its 4 removals are people the manifests keep on "
        "other lists ('news': 2); they stay on those lists, but lose the channel with this "
        "removal, so its messages no longer reach them there"
    )
    text = cli("plan", workspace.manifests).stdout
    assert f"note: {note}" in text
    assert (
        note
        in cli("plan", workspace.manifests, "--format", "json").json()["destinations"][0]["notes"]
    )
    assert note in cli("plan", workspace.manifests, "--format", "markdown").stdout
    # Without channelUnsubscribe nothing is taken from them: no note.
    workspace.audience("vip", {"csv": "data/vip.csv"}, policy={"maxRemovalPercent": 100})
    assert "channelUnsubscribe on" not in cli("plan", workspace.manifests).stdout


# -- ownership and prune ---------------------------------------------------------------


def test_prune_deletes_only_marked_lists_and_only_when_allowed(workspace, cli, emulator_server):
    workspace.destination(prune=True)
    workspace.audience("keep", {"inline": ["a@example.com"]})
    workspace.audience("old", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert "managed-by: reconciler" in list_named(emulator_server, "old").description
    handmade = seed_list(emulator_server, "handmade", ["c@example.com"])

    (workspace.manifests / "aud-old.yaml").unlink()
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 3  # allowListDeletion is false by default
    assert 'delete list "old"' in plan.stdout
    assert "handmade" not in plan.stdout

    assert cli("apply", workspace.manifests, "--yes").exit_code == 3
    assert cli("apply", workspace.manifests, "--yes", "--allow-list-deletion").exit_code == 0
    names = sorted(r.name for r in project(emulator_server).lists.values())
    assert names == ["handmade", "keep"]
    assert handmade in project(emulator_server).lists
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_prune_keeps_the_lists_of_another_destination_naming_the_same_project(
    workspace, cli, emulator_server
):
    """Two destinations of one repository can name one Iterable project (a team's own
    destination, with its own policy). Prune in one must not delete the lists the other
    declares: each apply would delete them and the next create them again, losing the
    list's id, history and the campaigns that use it."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.destination("lifecycle")
    workspace.audience("churn", {"inline": ["a@example.com"]})
    workspace.audience("vip", {"inline": ["b@example.com"]}, destination="lifecycle")
    workspace.audience("old", {"inline": ["c@example.com"]}, destination="lifecycle")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    vip = list_named(emulator_server, "vip").id
    old = list_named(emulator_server, "old").id
    (workspace.manifests / "aud-old.yaml").unlink()

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 0, plan.output
    # A list no destination of the project declares any more is still pruned.
    assert f'delete list "old" (list {old})' in plan.stdout
    assert 'delete list "vip"' not in plan.stdout
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert vip in project(emulator_server).lists
    assert old not in project(emulator_server).lists
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_prune_keeps_the_lists_of_a_destination_reaching_the_project_with_another_key(
    workspace, cli, emulator_server, monkeypatch
):
    """Two teams' destinations on one Iterable project, each with an API key of its own
    (Iterable makes as many as its admins like): projects were told apart by host and key,
    so the pruning one took the other's lists for lists no manifest declares and deleted
    them on every apply, and the other created them again (new ids, campaigns cut off,
    who left them re-added). A destination on another project still has its lists of
    audiences declared elsewhere pruned: an audience moved from one project to another."""
    emulator = emulator_server.emulator
    emulator.add_api_key("default", "growth-key")
    emulator.add_project("eu", "hybrid", "eu-key")
    monkeypatch.setenv("GROWTH_KEY", "growth-key")
    monkeypatch.setenv("EU_KEY", "eu-key")
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.destination("growth", apiKey={"env": "GROWTH_KEY"})
    workspace.destination("eu", apiKey={"env": "EU_KEY"})
    workspace.audience("churn", {"inline": ["a@example.com"]})
    workspace.audience("vip", {"inline": ["c@example.com"]})
    workspace.audience("trial", {"inline": ["b@example.com"]}, destination="growth")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    trial = list_named(emulator_server, "trial").id
    vip = list_named(emulator_server, "vip").id
    workspace.audience("vip", {"inline": ["c@example.com"]}, destination="eu")

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 0, plan.output
    assert f'delete list "vip" (list {vip})' in plan.stdout  # moved to project eu
    assert 'delete list "trial"' not in plan.stdout
    # Nor is churn noted in growth as a list left behind.
    assert "list 'churn'" not in plan.stdout
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert trial in project(emulator_server).lists
    assert vip not in project(emulator_server).lists
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_prune_is_off_by_default_and_with_targets(workspace, cli, emulator_server):
    seed_list(emulator_server, "orphan", [], description="[managed-by: reconciler]")
    workspace.audience("keep", {"inline": ["a@example.com"]})
    assert 'delete list "orphan"' not in cli("plan", workspace.manifests).stdout
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    assert 'delete list "orphan"' in cli("plan", workspace.manifests).stdout
    assert "orphan" not in cli("plan", workspace.manifests, "--target", "keep").stdout


def test_a_managed_list_no_longer_declared_is_noted_when_prune_is_off(
    workspace, cli, emulator_server
):
    """An audience removed from the manifests left its list in Iterable, still mailed,
    and the plan said nothing of it: "No changes. Iterable matches the manifests." """
    workspace.audience("keep", {"inline": ["a@example.com"]})
    workspace.audience("gone", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    gone = list_named(emulator_server, "gone").id
    (workspace.manifests / "aud-gone.yaml").unlink()

    plan = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output  # a note, not a change
    assert plan.json()["destinations"][0]["notes"] == [
        f"list 'gone' (list {gone}) was created by reconciler for audience 'gone' and no "
        "manifest declares it any more: prune is off, so it stays in Iterable as it is, no "
        "longer kept in line (`prune: true` on the destination deletes it; declare it again "
        "to keep managing it)."
    ]
    assert "no manifest declares it any more: prune is off" in " ".join(
        cli("plan", workspace.manifests).stdout.split()
    )
    # Only a plan of every audience knows what is declared; prune deletes it, not notes it.
    assert "gone" not in cli("plan", workspace.manifests, "--target", "keep").stdout
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    pruned = cli("plan", workspace.manifests, "--format", "json")
    assert pruned.json()["destinations"][0]["notes"] == []
    assert pruned.json()["destinations"][0]["lists_to_delete"][0]["list_id"] == gone


def test_deleting_a_list_in_use_is_reported_clearly(workspace, cli, emulator_server):
    list_id = seed_list(emulator_server, "busy", [], description="x [managed-by: reconciler]")
    project(emulator_server).set_in_use(list_id)
    # The project holds a list the manifests declare: it is theirs, not another's.
    seed_list(emulator_server, "keep", ["a@example.com"])
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("keep", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1
    assert "in use by a campaign or journey" in result.stdout
    assert list_id in project(emulator_server).lists


def test_a_list_made_by_hand_with_a_managed_name_leaves_out_only_that_audience(
    workspace, cli, emulator_server
):
    """Someone makes a second list named like a managed one in Iterable's web app. Which
    of the two is the audience's is not guessed, but the project's other audiences are
    still synced: failing the whole destination stopped every list's hourly sync."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("churn", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    vip_id = list_named(emulator_server, "vip").id
    extra = seed_list(emulator_server, "vip", ["x@example.com"])

    workspace.audience("vip", {"inline": ["a@example.com", "c@example.com"]})
    workspace.audience("churn", {"inline": ["b@example.com", "d@example.com"]})
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    assert (
        f"vip: left out of this plan: Iterable has 2 lists named 'vip' (ids {vip_id}, {extra}; "
        f"made by reconciler for audience 'vip': {vip_id})"
    ) in " ".join(applied.stdout.split())
    proj = project(emulator_server)
    assert sorted(proj.members(list_named(emulator_server, "churn").id)) == [
        "b@example.com",
        "d@example.com",
    ]
    # Neither list named vip is written to, and prune deletes neither.
    assert proj.members(vip_id) == ["a@example.com"]
    assert proj.members(extra) == ["x@example.com"]
    status = cli("status", workspace.manifests)
    assert status.exit_code == 1
    assert "LEFT OUT" in status.stdout


# -- concurrency -----------------------------------------------------------------------


def project_lock(workspace):
    """The lock file of the workspace's Iterable project (keyed by base URL and key)."""
    import os

    from reconciler.apply.lock import lock_path
    from reconciler.iterable import IterableClient
    from tests.integration.conftest import API_KEY_VAR

    with IterableClient(workspace.base_url, os.environ[API_KEY_VAR]) as client:
        return lock_path(workspace.root / ".reconciler", client.project_id)


def test_a_held_lock_refuses_a_second_apply_naming_the_holder(workspace, cli, emulator_server):
    import os
    import socket

    workspace.audience("vip", {"inline": ["a@example.com"]})
    lock = project_lock(workspace)
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps(
            {
                "pid": os.getppid(),
                "host": socket.gethostname(),
                "since": "2026-11-28T10:00:00+00:00",
            }
        )
    )
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1
    assert f"pid {os.getppid()}" in result.stderr and "another apply" in result.stderr
    assert writes(emulator_server) == []
    lock.unlink()
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert not lock.exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(workspace, cli):
    import socket

    workspace.audience("vip", {"inline": ["a@example.com"]})
    lock = project_lock(workspace)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_a_saved_plan_applies_from_another_checkout(
    workspace, cli, emulator_server, tmp_path, monkeypatch
):
    import shutil

    workspace.csv("data/m.csv", "email", ["a@example.com"])
    workspace.audience("vip", {"csv": "data/m.csv"})
    planfile = tmp_path / "p.plan"
    assert cli("plan", "manifests", "--out", planfile).exit_code == 0  # relative, from root
    other = tmp_path / "elsewhere"
    shutil.copytree(workspace.manifests, other / "manifests")
    monkeypatch.chdir(other)
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 0, result.output


def test_two_applies_from_different_directories_create_a_list_once(
    workspace, emulator_server, tmp_path_factory
):
    """Issue 15.8: local state was relative to the working directory and the lock keyed by
    the destination's name, so two applies started from two directories both ran and
    created the same list twice. Now they meet at the lock of the repository's state."""
    import subprocess
    import sys

    from tests.integration.reliability import lists_by_name, requests_held, subprocess_env

    workspace.audience("vip", {"inline": [f"m{i}@example.com" for i in range(20)]})
    env = subprocess_env(workspace)
    manifests = str(workspace.manifests.resolve())

    def start(cwd):
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "apply", manifests, "--yes"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first_cwd, second_cwd = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    # The first apply's requests wait until the second has ended: it holds its lock from
    # its first request on, however long the second takes to start on a loaded machine
    # (3 s of latency on each list request was the margin before, a guess).
    with requests_held(emulator_server) as arrived:
        first = start(first_cwd)
        assert arrived.wait(60), "the first apply sent no request within 60 s"
        second = start(second_cwd)
        second_outcome = (second.wait(timeout=60), second.stderr.read())  # type: ignore[union-attr]
    outcomes = [(first.wait(timeout=60), first.stderr.read()), second_outcome]  # type: ignore[union-attr]
    assert [code for code, _ in outcomes] == [0, 1], outcomes
    assert "another apply is running" in outcomes[1][1]
    assert "destination 'prod'" in outcomes[1][1]
    assert len(lists_by_name(emulator_server)["vip"]) == 1
    # The state is the repository's (here: the directory holding the manifest directory).
    assert list((workspace.root / ".reconciler" / "runs").glob("apply-*.jsonl"))
    assert not (first_cwd / ".reconciler").exists() and not (second_cwd / ".reconciler").exists()


def test_the_lock_belongs_to_the_project_whatever_the_destination_is_called(
    workspace, cli, emulator_server
):
    import os
    import socket

    (workspace.manifests / "dest-prod.yaml").unlink()
    workspace.destination("production-renamed")
    workspace.audience("vip", {"inline": ["a@example.com"]}, destination="production-renamed")
    lock = project_lock(workspace)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1 and "another apply is running" in result.stderr
    assert "destination 'production-renamed'" in result.stderr
    assert lock.name not in result.output  # the file is named by a digest of the key
    assert writes(emulator_server) == []


def test_local_state_lives_in_the_manifests_git_work_tree_not_the_working_directory(
    tmp_path, cli, monkeypatch
):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)  # what find_repository looks for
    manifests = repo / "deploy" / "manifests"
    manifests.mkdir(parents=True)
    (manifests / "all.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sb}\n"
        "spec: {region: sandbox, projectType: email}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: vip}\n"
        "spec: {destination: sb, members: {inline: [a@example.com]}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("RECONCILER_STATE_DIR", raising=False)
    assert cli("apply", manifests, "--yes").exit_code == 0
    assert (repo / ".reconciler" / "sandbox.json").exists()
    assert not (elsewhere / ".reconciler").exists()
    monkeypatch.chdir(manifests)  # from anywhere, the same sandbox: nothing left to do
    result = cli("plan", ".", "--detailed-exitcode")
    assert result.exit_code == 0, result.output


def test_a_saved_plan_refuses_target_and_changes_nothing(workspace, cli, emulator_server, tmp_path):
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("beta", {"inline": ["b@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    emulator_server.emulator.clear_log()
    for target in ("vip", "no-such-audience"):
        result = cli("apply", "--plan", planfile, "--target", target, "--yes")
        assert result.exit_code == 1, result.output
        assert "--target cannot be combined with --plan" in result.stderr
        assert "reconciler plan PATH --target AUDIENCE --out FILE" in result.stderr
    assert writes(emulator_server) == []


def test_a_path_given_with_a_saved_plan_is_used(workspace, cli, emulator_server, tmp_path):
    import shutil

    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    other = tmp_path / "other"
    shutil.copytree(workspace.manifests, other)
    (other / "aud-vip.yaml").write_text(
        (other / "aud-vip.yaml").read_text().replace("a@example.com", "z@example.com")
    )
    emulator_server.emulator.clear_log()
    # The plan was made from other manifests than those at PATH: stale, nothing written.
    result = cli("apply", other, "--plan", planfile, "--yes")
    assert result.exit_code == 4, result.output
    assert "manifests or their member sources changed" in result.stderr
    assert writes(emulator_server) == []
    shutil.rmtree(other)
    shutil.copytree(workspace.manifests, other)
    result = cli("apply", other, "--plan", planfile, "--yes")
    assert result.exit_code == 0, result.output


def test_a_saved_plan_needs_no_path_from_another_directory(
    workspace, cli, emulator_server, tmp_path, monkeypatch
):
    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no manifests/ here: the plan's recorded root is used
    result = cli("apply", "--plan", planfile, "--yes", "--state-dir", tmp_path / ".reconciler")
    assert result.exit_code == 0, result.output
    assert project(emulator_server).members(list_named(emulator_server, "vip").id)


# -- --format json: exactly one object on stdout, whatever happens ----------------------


def test_json_output_is_one_object_on_errors_and_on_a_blocked_apply(
    workspace, cli, emulator_server, tmp_path
):
    import json as json_module

    seed_list(emulator_server, "vip", emails(10))
    workspace.audience("vip", {"inline": emails(5)})  # removes 50%: blocked

    blocked = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert blocked.exit_code == 3
    plan = json_module.loads(blocked.stdout)
    assert plan["blocked"] is True and plan["exit_code"] == 3
    assert plan["violations"][0]["rule"] == "removals"
    assert "nothing was changed" in plan["error"]

    unknown = cli("status", workspace.manifests, "--format", "json", "--target", "nope")
    assert unknown.exit_code == 1
    assert json_module.loads(unknown.stdout)["exit_code"] == 1
    assert "--target names unknown audience nope;" in json_module.loads(unknown.stdout)["error"]
    two = cli("status", workspace.manifests, "--format", "json", "-t", "nope", "-t", "zed")
    assert "unknown audiences nope, zed;" in json_module.loads(two.stdout)["error"]

    planfile = tmp_path / "p.plan"
    workspace.audience("vip", {"inline": emails(10)})
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    workspace.audience("vip", {"inline": emails(9)})
    stale = cli("apply", "--plan", planfile, "--yes", "--format", "json")
    assert stale.exit_code == 4
    assert json_module.loads(stale.stdout) == {
        "error": json_module.loads(stale.stdout)["error"],
        "exit_code": 4,
    }
    assert "stale plan" in json_module.loads(stale.stdout)["error"]

    workspace.write("broken.yaml", "kind: Audience\nspec: [\n")
    broken = cli("plan", workspace.manifests, "--format", "json")
    assert broken.exit_code == 1
    error = json_module.loads(broken.stdout)
    assert error["exit_code"] == 1 and error["problems"]
    assert "broken.yaml" in error["problems"][0]


def test_a_plan_that_exits_with_an_error_says_why_in_its_json_object(
    workspace, cli, emulator_server
):
    # plan --format json exited 3 (blocked) or 1 (source rows not used) with an object
    # holding no `error` nor `exit_code`, and in JSON mode stderr said nothing of why: a
    # script reading stdout could not tell the exit code's reason, as apply's blocked
    # object and status's object each tell it.
    seed_list(emulator_server, "vip", emails(10))
    workspace.audience("vip", {"inline": [*emails(5), "foo@bar..com"]})  # removes 50%

    blocked = cli("plan", workspace.manifests, "--format", "json")
    assert blocked.exit_code == 3, blocked.output
    body = blocked.json()
    assert body["blocked"] is True and body["exit_code"] == 3
    assert body["error"] == (
        "the safety policy blocks this plan: prod/vip: removes 5 of 10 members (50.0%), more "
        "than maxRemovalPercent 10%; apply refuses it unless given --allow-removals (or "
        "--allow-unsafe)"
    )

    workspace.audience("vip", {"inline": [*emails(10), "foo@bar..com"]})
    skipped = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert skipped.exit_code == 1, skipped.output
    body = skipped.json()
    assert body["exit_code"] == 1 and body["summary"]["members_skipped"] == 1
    assert body["error"] == (
        "1 member could not be used; the plan's skipped_members, field_issues and unread say which"
    )
    assert "foo@bar" not in skipped.stdout  # masked, as the rest of the plan is

    workspace.audience("vip", {"inline": emails(10)})
    clean = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert clean.exit_code == 0, clean.output
    assert "error" not in clean.json() and "exit_code" not in clean.json()


def test_an_apply_that_exits_1_says_why_in_its_json_report(workspace, cli, emulator_server):
    # apply --format json exited 1 for members Iterable rejected or source rows it could not
    # use with a report holding neither `error` nor `exit_code`, as plan's and status's
    # objects hold whenever they exit non-zero.
    workspace.audience("vip", {"inline": ["known@example.com", "two.dots@ex_ample.com"]})
    rejected = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert rejected.exit_code == 1, rejected.output
    body = rejected.json()
    assert body["ok"] is False and body["exit_code"] == 1
    assert body["error"] == (
        "apply finished with failures (1 member rejected, 0 errors); the report's "
        "destinations say which. Run apply again to retry what failed: it reads Iterable "
        "afresh and sends only what is left. Members Iterable rejected are rejected again "
        "until their rows in the source are fixed."
    )
    assert "two.dots" not in rejected.stdout  # masked, as the rest of the report is

    workspace.audience("vip", {"inline": ["known@example.com", "new@example.com", "foo@bar..com"]})
    skipped = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert skipped.exit_code == 1, skipped.output
    body = skipped.json()
    assert body["ok"] is True and body["exit_code"] == 1
    assert body["error"] == (
        "1 member could not be used; `reconciler plan --format json` says which "
        "(skipped_members, field_issues, unread)"
    )
    assert "foo@bar" not in skipped.stdout

    nothing = cli("apply", workspace.manifests, "--yes", "--format", "json")  # only the skip
    assert nothing.exit_code == 1, nothing.output
    body = nothing.json()
    assert body["destinations"] == [] and body["exit_code"] == 1
    assert body["error"].startswith("1 member could not be used; ")
    assert body["error"].endswith("; nothing else to apply")

    workspace.audience("vip", {"inline": ["known@example.com", "new@example.com"]})
    clean = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert clean.exit_code == 0, clean.output
    assert "error" not in clean.json() and "exit_code" not in clean.json()


def test_an_apply_that_overrode_the_policy_says_so_in_its_json_report_and_run_record(
    workspace, cli, emulator_server, tmp_path
):
    # The text apply prints its plan, which says what the command line overrode; with
    # --format json stdout has only the report, and neither it nor the run record (a
    # sync's history) said that a removal beyond the limit was applied by override.
    seed_list(emulator_server, "vip", emails(10))
    workspace.audience("vip", {"inline": emails(5)})  # removes 50%: the removal limit
    record = tmp_path / "run.json"
    result = cli(
        "apply",
        workspace.manifests,
        *("--yes", "--allow-removals", "--format", "json", "--summary-json", record),
    )
    assert result.exit_code == 0, result.output
    for overridden in (result.json()["overridden"], json.loads(record.read_text())["overridden"]):
        assert [(v["destination"], v["list_name"], v["rule"]) for v in overridden] == [
            ("prod", "vip", "removals")
        ]
        assert "more than maxRemovalPercent 10%" in overridden[0]["message"]

    workspace.audience("vip", {"inline": emails(6)})  # adds 1: nothing to override
    plain = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert plain.exit_code == 0, plain.output
    assert plain.json()["overridden"] == []


def test_a_blocked_apply_in_json_lists_as_violations_only_what_still_blocks_it(
    workspace, cli, emulator_server
):
    # The text plan apply prints separates what blocks it from what the command line
    # overrode; the JSON object named both as violations, so a CI step posting them said
    # the removals it had been told to allow still blocked the run.
    seed_list(emulator_server, "vip", emails(10))
    workspace.audience("vip", {"inline": emails(5)})  # removes 50%: the removal limit
    workspace.audience("news", {"inline": emails(3, prefix="new")}, policy={"maxAdditions": 2})

    result = cli("apply", workspace.manifests, "--yes", "--allow-removals", "--format", "json")
    assert result.exit_code == 3, result.output
    body = result.json()
    assert body["blocked"] is True and body["exit_code"] == 3
    assert [(v["list_name"], v["rule"]) for v in body["violations"]] == [("news", "additions")]
    assert [(v["list_name"], v["rule"]) for v in body["overridden"]] == [("vip", "removals")]
    assert "maxRemovalPercent" not in body["error"] and "maxAdditions 2" in body["error"]
    assert writes(emulator_server) == []

    # plan overrides nothing: both block it, as its text says.
    plan = cli("plan", workspace.manifests, "--format", "json").json()
    assert sorted(v["rule"] for v in plan["violations"]) == ["additions", "removals"]
    assert plan["overridden"] == []


def test_a_changed_list_name_is_a_new_list_and_a_changed_description_is_noted(
    workspace, cli, emulator_server
):
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("beta", {"inline": ["a@example.com"]}, listName="Beta testers")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    old_id = list_named(emulator_server, "Beta testers").id

    workspace.audience("beta", {"inline": ["a@example.com"]}, listName="Beta")
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 0, plan.output
    assert (
        f"list {old_id}, created for audience 'beta', is named 'Beta testers' in Iterable, "
        "not 'Beta' (the audience's listName changed, or the list was renamed in Iterable): "
        "Iterable's API cannot rename a list, so this creates a new list with a new id and "
        "prune deletes it in this plan."
    ) in " ".join(plan.stdout.split())
    assert f"Campaigns and journeys that use list {old_id} must be repointed" in plan.stdout
    assert f"to keep list {old_id} instead, set listName: 'Beta testers'" in plan.stdout
    # The note said the list "is deleted below", but text and markdown print the deletion
    # above the notes: the words now say what happens, wherever a layout puts it.
    deletion = plan.stdout.index(f'delete list "Beta testers" (list {old_id})')
    assert deletion < plan.stdout.index(f"list {old_id}, created for audience 'beta'")
    assert "below" not in plan.stdout
    markdown = cli("plan", workspace.manifests, "--format", "markdown").stdout
    assert markdown.index("**delete list** (prune)") < markdown.index("prune deletes it")
    assert "below" not in markdown

    workspace.audience(
        "beta", {"inline": ["a@example.com"]}, listName="Beta testers", description="Early"
    )
    described = cli("plan", workspace.manifests, "--format", "json")
    assert described.exit_code == 0, described.output
    (note,) = described.json()["destinations"][0]["notes"]
    assert f"description of list 'Beta testers' (list {old_id}) is empty in Iterable" in note
    assert "'Early' in the manifest: Iterable cannot change a list's description" in note


def test_a_renamed_audience_key_says_how_to_keep_its_list(workspace, cli, emulator_server):
    """Renaming an audience's key (vip -> vip-customers) plans a new list and prunes the old
    one, with its id, history and campaigns: the plan says so and how to keep it. Who left
    the old list themselves is held back from the new one, and the note says so (it said
    they were added, which they were: tests/integration/test_consent.py holds them back);
    here b has left the source too, so nobody is held back and prune deletes the list.
    (Its other audience keeps its list: a project holding none of the declared lists is
    blocked, test_destination_lifecycle.)"""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    workspace.audience("churn", {"inline": ["c@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    old_id = list_named(emulator_server, "vip").id
    proj = project(emulator_server)
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    (workspace.manifests / "aud-vip.yaml").unlink()
    workspace.audience("vip-customers", {"inline": ["a@example.com"]})

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (note,) = plan.json()["destinations"][0]["notes"]
    assert note == (
        f"list 'vip' (list {old_id}) was created for audience 'vip', which no manifest "
        "declares any more, and this plan creates list 'vip-customers': prune deletes it in "
        "this plan, losing its id and history. Who left it themselves is held back from the "
        "new list, on this plan and those after (nothing to do: they left; `resubscribe: "
        "allowed` on an audience adds them). If an audience was renamed from 'vip', set its "
        f"listName: 'vip' to keep list {old_id} and the campaigns and journeys that use it."
    )

    text = cli("plan", workspace.manifests).stdout
    assert text.index(f'delete list "vip" (list {old_id})') < text.index("prune deletes it")
    assert "below" not in text

    workspace.audience("vip-customers", {"inline": ["a@example.com"]}, listName="vip")
    kept = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert kept.exit_code == 0, kept.output


def test_a_renamed_key_too_long_to_name_its_old_list_says_only_this_plan_holds_back(
    workspace, cli, emulator_server
):
    """A new key of 150 characters leaves the new list's description (Iterable keeps 140)
    no room to name the old list: the plan that creates it holds back who left the old
    one, the plans after cannot, and the note says so and what to do."""
    workspace.audience("vip", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    old_id = list_named(emulator_server, "vip").id
    (workspace.manifests / "aud-vip.yaml").unlink()
    long = "v" * 150
    workspace.audience(long, {"inline": ["a@example.com"]})

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (note,) = plan.json()["destinations"][0]["notes"]
    assert note.endswith(
        f"Only this plan does: the description of list {long!r} (Iterable keeps 140 "
        f"characters) has no room to name list {old_id} beside the audience, so the plans "
        "after add them; to keep them out, set the old list's listName on the audience."
    )


def test_renaming_many_audience_keys_notes_each_old_list_without_naming_every_new_one(
    workspace, cli
):
    """A restructure renaming 40 audience keys at once (a prefix added): each of the 40
    notes named all 40 new lists, so the notes grew with the square of the audiences
    (1,000 renamed: 1,000 notes of 1,000 names) and filled the pull-request comment."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    names = [f"segment-{i:02d}" for i in range(40)]
    for name in names:
        workspace.audience(name, {"inline": [f"{name}@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    for name in names:
        (workspace.manifests / f"aud-{name}.yaml").unlink()
        workspace.audience(f"eu-{name}", {"inline": [f"{name}@example.com"]})

    plan = cli("plan", workspace.manifests, "--format", "json")
    # Every list renamed leaves the project none of the declared lists, as a key of
    # another project does: its deletions wait for --allow-list-deletion.
    assert plan.exit_code == 3, plan.output
    assert {v["rule"] for v in plan.json()["violations"]} == {"list_deletion"}
    notes = plan.json()["destinations"][0]["notes"]
    assert len(notes) == 40
    for note in notes:
        assert "this plan creates 40 lists ('eu-segment-00', 'eu-segment-01', " in note
        assert "'eu-segment-02' and 37 more)" in note
        assert "eu-segment-03" not in note


def test_a_list_renamed_in_iterable_is_noted_with_how_to_keep_it(workspace, cli, emulator_server):
    """Iterable's web app can rename a list; the manifest did not change. The note must not
    say the manifest's listName changed, and its advice must keep the list."""
    workspace.audience("vip", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    renamed = list_named(emulator_server, "vip")
    renamed.name = "VIP (old)"  # as a rename in Iterable's web app leaves it

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 0, plan.output
    text = " ".join(plan.stdout.split())
    assert (
        f"list {renamed.id}, created for audience 'vip', is named 'VIP (old)' in Iterable, not "
        "'vip' (the audience's listName changed, or the list was renamed in Iterable)"
    ) in text
    assert "it stays as it is (no longer managed; `prune: true` deletes it)" in text
    assert f"to keep list {renamed.id} instead, set listName: 'VIP (old)'" in text

    workspace.audience("vip", {"inline": ["a@example.com"]}, listName="VIP (old)")
    kept = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert kept.exit_code == 0, kept.output


# What a list's name in Iterable may hold (its API takes any text): a line of its own that
# GitHub Actions runs as a workflow command, a carriage return that overwrites the line
# in a terminal, escape sequences (7-bit and the C1 CSI), a bell, a right-to-left override
# and a zero-width space, which make the name read as another.
NAMED_IN_ITERABLE = "Old\n::error::forged\r= no changes\x1b[2K\x07\u202eevil\u200b\x9b31m"
RAW = ("\n::", "\r", "\x1b", "\x07", "\u202e", "\u200b", "\x9b")


def test_a_list_name_from_iterable_prints_on_one_line_and_visibly_everywhere(
    workspace, cli, emulator_server
):
    """Manifest names are refused with such characters, but a list reconciler created can
    be renamed in Iterable; prune then deletes it under that name, which the text plan and
    the apply report printed as it was."""
    workspace.audience("keep", {"inline": ["a@example.com"]})
    workspace.audience("old", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    list_named(emulator_server, "old").name = NAMED_IN_ITERABLE
    (workspace.manifests / "aud-old.yaml").unlink()
    workspace.destination(prune=True)
    summary = workspace.root / "summary.md"

    outputs = {
        "plan": cli("plan", workspace.manifests),
        "plan markdown": cli("plan", workspace.manifests, "--format", "markdown"),
        "status": cli("status", workspace.manifests),
        "status markdown": cli("status", workspace.manifests, "--format", "markdown"),
        "apply": cli(
            "apply",
            workspace.manifests,
            "--yes",
            "--allow-list-deletion",
            "--summary-file",
            summary,
        ),
    }

    assert outputs["apply"].exit_code == 0, outputs["apply"].output
    assert [r.name for r in project(emulator_server).lists.values()] == ["keep"]
    shown = "Old\\n::error::forged\\r= no changes\\x1b[2K\\x07\\u202eevil\\u200b\\x9b31m"
    in_markdown = shown.replace("\\", "\\\\").replace("[", "\\[")  # as it renders: shown
    texts = {what: result.stdout for what, result in outputs.items()}
    texts["summary"] = summary.read_text()
    for what, text in texts.items():
        assert not [raw for raw in RAW if raw in text], what
        assert (in_markdown if "markdown" in what or what == "summary" else shown) in text, what
    # The plan and the report say which list, once each.
    assert outputs["plan"].stdout.count(f'delete list "{shown}"') == 1
    assert outputs["apply"].stdout.count(f"delete list {shown}") == 1


def test_iterable_text_in_an_error_or_warning_line_stays_on_its_line(
    workspace, cli, emulator_server
):
    """stderr's `error:` and `warning:` lines quoted Iterable as it came: a list's name
    there (the safety policy's block and override name destination/list) and the msg of an
    API error, so either could forge lines of a CI log or rewrite the terminal's."""
    workspace.audience("keep", {"inline": ["a@example.com"]})
    workspace.audience("old", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    list_named(emulator_server, "old").name = NAMED_IN_ITERABLE
    (workspace.manifests / "aud-old.yaml").unlink()
    workspace.destination(prune=True)
    shown = "Old\\n::error::forged\\r= no changes\\x1b[2K\\x07\\u202eevil\\u200b\\x9b31m"

    blocked = cli("apply", workspace.manifests, "--yes")
    assert blocked.exit_code == 3, blocked.output
    assert f"error: the safety policy blocks this plan, nothing was changed: prod/{shown}: " in (
        blocked.stderr
    )
    emulator_server.emulator.faults.update(
        {"script": [400], "paths": ["/api/lists"], "fail_message": NAMED_IN_ITERABLE}
    )
    refused = cli("plan", workspace.manifests)
    assert refused.exit_code == 1, refused.output
    assert f"GET /api/lists: HTTP 400 GenericError: {shown}" in refused.stderr
    overridden = cli("apply", workspace.manifests, "--yes", "--allow-list-deletion")
    assert overridden.exit_code == 0, overridden.output
    assert f"warning: applying despite the safety policy: prod/{shown}: " in overridden.stderr

    for result in (blocked, refused, overridden):
        assert not [raw for raw in RAW if raw in result.stderr], result.stderr


@pytest.mark.parametrize(
    ("name", "in_iterable"),
    [
        ("Churn risk", "Churn Risk"),
        ("Churn risk", "Churn risk\u200b"),  # a zero-width space
        ("Churn risk", "Churn  risk "),
        ("Churn risk", "\uff23hurn risk"),  # a fullwidth C
        ("Caf\u00e9", "Cafe\u0301"),  # the same text, decomposed (NFD)
        # Segment's Iterable Lists destination names a list by its audience key.
        ("high-value-users", "high_value_users"),
        ("Churn risk", "churn-risk"),
    ],
)
def test_a_list_whose_name_differs_only_in_case_or_invisibly_is_noted(
    workspace, cli, emulator_server, name, in_iterable
):
    """Names are matched exactly, as Iterable keeps them: a list made by hand whose name
    differs from listName only in case, spaces, `_` or `-` (Segment's list of the audience
    key), an invisible character or Unicode form is another list, and the plan creates one
    that reads the same. It says so, with how to manage the list that exists instead."""
    existing = project(emulator_server).add_list(in_iterable)
    workspace.audience("churn", {"inline": ["a@example.com"]}, listName=name)
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (note,) = plan.json()["destinations"][0]["notes"]
    assert note == (
        f"this plan creates list {name!r} while Iterable has list {existing} named "
        f"{in_iterable!r}, which differs from it only in case, spaces, `_` or `-`, invisible "
        "characters or Unicode form: reconciler matches list names exactly, as Iterable "
        "keeps them, so "
        f"it is another list. To manage list {existing} instead, set listName: "
        f"{in_iterable!r} on audience 'churn'."
    )


def test_a_list_name_of_spaces_alone_is_refused_at_its_line(workspace, cli, emulator_server):
    """Iterable refuses to create a list named by spaces alone: the plan said it would
    create list '   ' and every apply failed there ('POST /api/lists: HTTP 400'). The
    manifest is refused at the listName's line, before anything is sent."""
    workspace.audience("vip", {"inline": ["a@example.com"]}, listName="   ")
    checked = cli("validate", workspace.manifests)
    assert checked.exit_code == 1, checked.output
    assert re.search(
        r"aud-vip\.yaml:\d+:\d+: .*spec\.listName: a list name cannot be blank", checked.output
    ), checked.output
    emulator_server.emulator.clear_log()
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    assert "a list name cannot be blank" in applied.output
    assert writes(emulator_server) == []


@pytest.mark.parametrize(
    ("rewrite", "name", "kept"),
    [("trim", " VIP ", "VIP"), ("nfc", "Cafe\u0301 lovers", "Caf\u00e9 lovers")],
)
def test_a_created_list_iterable_keeps_under_another_name_is_an_error(
    workspace, cli, emulator_server, rewrite, name, kept
):
    """Iterable does not publish whether it keeps a list's name as sent. Were it to trim
    or normalise one, the list an apply created would not be found by its listName, and
    every later apply would create another beside it (each noted, none an error). The
    apply that created it reads the list index anyway (check_created): there it sees the
    name the list is kept under and says to set that listName, exiting 1."""
    emulator_server.emulator.faults.update({"list_name_rewrites": [rewrite]})
    workspace.audience("vip", {"inline": ["a@example.com"]}, listName=name)
    applied = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert applied.exit_code == 1, applied.output
    (created,) = project(emulator_server).lists.values()
    assert created.name == kept
    assert len(created.members) == 1  # its own list: the members went to it
    (result,) = applied.json()["destinations"][0]["lists"]
    assert result["errors"] == [
        f"Iterable keeps the list this run created (list {created.id}) under the name "
        f"{kept!r}, not {name!r} as sent: plans find a list by its exact name, so the next "
        f"would create another list; set listName: {kept!r} on audience 'vip'"
    ]
    # The advice agrees: applying again would create another list, not retry.
    error = applied.json()["error"]
    assert error.endswith(
        "Change first what the error above says, in the manifests or in Iterable: "
        "applying again before that does not resolve it."
    ), error
    assert "retry" not in error


# -- guards on the source (issue 19, section 3) -----------------------------------------


def test_an_empty_source_is_blocked_unless_the_audience_allows_it(workspace, cli, emulator_server):
    # The list is made by an apply, so under the field profile the plan right after it
    # meets Iterable's read lag: a plan that did not wait it out would read no list at all,
    # and plan to create one instead of being blocked.
    workspace.csv("vip.csv", "email", emails(20))
    workspace.audience("vip", {"csv": "vip.csv"})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    # A CSV with only its header: what a failed export job leaves behind. The removal
    # policy is opened wide so that only the empty-source guard can block.
    workspace.csv("vip.csv", "email", [])
    workspace.audience("vip", {"csv": "vip.csv"}, policy={"maxRemovalPercent": 100})
    emulator_server.emulator.clear_log()

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    body = plan.json()
    assert body["blocked"] is True
    (violation,) = body["violations"]
    assert violation["rule"] == "empty_source"
    assert "audience 'vip'" in violation["message"]
    assert "guard empty_source" in violation["message"]
    assert "allowEmpty: true" in violation["message"]

    for flags in ((), ("--allow-removals",)):
        blocked = cli("apply", workspace.manifests, "--yes", *flags)
        assert blocked.exit_code == 3, blocked.output
        assert "nothing was changed" in blocked.stderr
        assert "empty_source" in blocked.stderr and "--allow-unsafe" in blocked.stderr
        # The closing line says the one flag that overrides the guard: it offered
        # --allow-removals too, which a user then passed to be blocked again.
        (error,) = [x for x in blocked.stderr.splitlines() if x.startswith("error: ")]
        assert error.endswith("Review it, then pass --allow-unsafe to apply"), error
    assert writes(emulator_server) == []
    assert len(project(emulator_server).members(list_named(emulator_server, "vip").id)) == 20

    workspace.audience(
        "vip",
        {"csv": "vip.csv"},
        policy={"maxRemovalPercent": 100},
        allowEmpty=True,
    )
    allowed = cli("apply", workspace.manifests, "--yes")
    assert allowed.exit_code == 0, allowed.output
    assert project(emulator_server).members(list_named(emulator_server, "vip").id) == []
    # The next plan reads the emptied list, not the one before the apply.
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.fixture(params=["python", "duckdb"])
def engine(request, monkeypatch):
    """Both planners: the guards are judged on the plan, whichever engine made it."""
    monkeypatch.setenv("RECONCILER_ENGINE", request.param)
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "256MB")
    return request.param


def test_min_members_blocks_a_source_that_drains_the_list(workspace, cli, emulator_server, engine):
    workspace.csv("vip.csv", "email", emails(100))
    workspace.audience("vip", {"csv": "vip.csv"})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    # 5% fewer each run passes the removal limit every time: minMembers is what stops it.
    workspace.csv("vip.csv", "email", emails(95))
    workspace.audience("vip", {"csv": "vip.csv"}, minMembers=96)
    emulator_server.emulator.clear_log()

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    assert violation["rule"] == "bounds"
    assert "guard minMembers: audience 'vip'" in violation["message"]
    assert "95 members, fewer than minMembers 96" in violation["message"]
    assert plan.json()["destinations"][0]["lists"][0]["resulting_members"] == 95

    blocked = cli("apply", workspace.manifests, "--yes", "--allow-removals")
    assert blocked.exit_code == 3, blocked.output
    assert "guard minMembers" in blocked.stderr and "--allow-unsafe" in blocked.stderr
    assert writes(emulator_server) == []

    workspace.audience("vip", {"csv": "vip.csv"}, minMembers=95)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert len(project(emulator_server).members(list_named(emulator_server, "vip").id)) == 95
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_max_members_and_addition_limits_block_a_source_that_swells(
    workspace, cli, emulator_server, engine
):
    seed_list(emulator_server, "vip", emails(10))
    workspace.csv("vip.csv", "email", emails(10) + emails(6, prefix="new"))
    workspace.audience("vip", {"csv": "vip.csv"}, maxMembers=15)
    emulator_server.emulator.clear_log()

    text = cli("plan", workspace.manifests)
    assert text.exit_code == 3, text.output
    assert "guard maxMembers: audience 'vip' would leave the list with 16 members" in text.stdout
    assert "(override: widen minMembers/maxMembers or --allow-unsafe)" in text.stdout

    # Additions limits, set on the destination and inherited by the audience.
    workspace.destination(policy={"maxAdditionPercent": 50, "maxAdditions": 5})
    workspace.audience("vip", {"csv": "vip.csv"})
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    messages = [v["message"] for v in plan.json()["violations"]]
    assert [v["rule"] for v in plan.json()["violations"]] == ["additions", "additions"]
    assert "guard maxAdditionPercent: audience 'vip' adds 6 to 10 members (60.0%)" in messages[0]
    assert (
        "guard maxAdditions: audience 'vip' adds 6 members, more than maxAdditions 5"
        in (messages[1])
    )
    assert cli("apply", workspace.manifests, "--yes").exit_code == 3
    assert writes(emulator_server) == []

    # The audience's own setting wins over its destination's.
    workspace.audience(
        "vip", {"csv": "vip.csv"}, policy={"maxAdditionPercent": 60, "maxAdditions": 6}
    )
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert len(project(emulator_server).members(list_named(emulator_server, "vip").id)) == 16
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_an_add_only_audience_never_removes_and_says_what_it_held_back(
    workspace, cli, emulator_server, engine
):
    seed_list(emulator_server, "vip", emails(10))
    workspace.csv("vip.csv", "email", emails(3) + emails(2, prefix="new"))
    workspace.audience("vip", {"csv": "vip.csv"}, removals="never")

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (lst,) = plan.json()["destinations"][0]["lists"]
    assert lst["held_back_removals"] == 7
    if engine == "duckdb":
        assert "DuckDB" in plan.json()["destinations"][0]["member_read"]
    assert [c["type"] for c in lst["changes"]] == ["add_members"]
    assert "held back 7 removals (removals: never)" in cli("plan", workspace.manifests).stdout

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    left = project(emulator_server).members(list_named(emulator_server, "vip").id)
    assert set(left) == set(emails(10) + emails(2, prefix="new"))
    # The list's size, not the source's: "no changes (5 members)" read as a list of 5.
    again = cli("plan", workspace.manifests).stdout
    assert re.search(r"= vip \(list \d+\): no changes \(12 members\)\n", again), again
    assert "held back 7 removals (removals: never)" in again

    # Even an empty source removes nobody from an add-only audience.
    workspace.csv("vip.csv", "email", [])
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert len(project(emulator_server).members(list_named(emulator_server, "vip").id)) == 12


def test_rows_skipped_as_invalid_never_remove_the_members_they_stand_for(
    workspace, cli, emulator_server, engine
):
    list_id = seed_list(
        emulator_server, "vip", ["a@example.com", "b@example.com", "c@example.com", "gone@x.com"]
    )
    project(emulator_server).subscribe_direct(list_id, user_id="u-1")
    # Each malformed row is skipped (it cannot be sent), and each names a live member.
    workspace.csv(
        "vip.csv",
        "email,userId",
        [
            "a\uff20example.com,",  # a fullwidth at sign
            "b\u200b@example.com,",  # a zero-width space
            ",u-1 ",  # a userId with a trailing space
            "c@example.com,",
        ],
    )
    workspace.audience("vip", {"csv": "vip.csv"}, policy={"maxRemovalPercent": 100})

    plan = cli("plan", workspace.manifests, "--format", "json", "--show-members")
    assert plan.exit_code == 1, plan.output  # skipped rows are reported, nothing blocks
    (lst,) = plan.json()["destinations"][0]["lists"]
    assert lst["kept_for_skipped_rows"] == 3
    (remove,) = [c for c in lst["changes"] if c["type"] == "remove_members"]
    assert remove["count"] == 1 and remove["sample"] == ["gone@x.com"]
    assert len(plan.json()["destinations"][0]["skipped_members"]) == 3
    text = cli("plan", workspace.manifests).stdout
    assert "= kept 3 members that rows skipped as invalid stand for" in text

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output  # the skipped rows are still problems
    left = set(project(emulator_server).members(list_id, True))
    assert left == {"a@example.com", "b@example.com", "c@example.com", "u-1"}
