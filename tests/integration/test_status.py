"""`reconciler status` end to end: the real CLI against the emulator over loopback HTTP."""

from __future__ import annotations

import json


def test_an_audience_left_out_keeps_its_row_in_every_format(workspace, cli, emulator_server):
    workspace.audience("kept", {"inline": ["a@example.com"]})
    workspace.audience("unreadable", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = emulator_server.emulator.project("default")
    (bad_id,) = [i for i, x in proj.lists.items() if x.name == "unreadable"]
    emulator_server.emulator.faults.update({"failing_list_ids": [bad_id]})

    as_json = cli("status", workspace.manifests, "--format", "json")

    assert as_json.exit_code == 1  # an audience left out of the plan (--help)
    rows = {r["audience"]: r for r in json.loads(as_json.stdout)["audiences"]}
    assert set(rows) == {"kept", "unreadable"}
    assert rows["kept"]["left_out"] is None and rows["kept"]["iterable_members"] == 1
    left_out = rows["unreadable"]
    assert f"(id {bad_id}): its members could not be read" in left_out["left_out"]
    assert left_out["iterable_members"] is None and left_out["pending_removes"] is None
    assert "1 audience was left out" in as_json.stderr

    markdown = cli("status", workspace.manifests, "--format", "markdown")
    assert markdown.exit_code == 1
    assert "| prod | unreadable | - | - | - | - | - | - | - | LEFT OUT |" in markdown.stdout

    text = cli("status", workspace.manifests)
    assert text.exit_code == 1
    row, why = [x for x in text.stdout.splitlines() if "unreadable" in x]
    assert "LEFT OUT" in row
    assert why.startswith(f"prod/unreadable left out: list 'unreadable' (id {bad_id}): its")


def test_status_in_a_log_shows_each_audience_on_one_line_however_long(workspace, cli):
    long_names = [f"{'imported-list-' * 10}{n}" for n in (1000009, 1000010)]
    for name in long_names:
        workspace.audience(name, {"inline": ["a@example.com"]})
    result = cli("status", workspace.manifests)  # not a terminal, as in CI
    assert result.exit_code == 0, result.output
    for name in long_names:
        (line,) = [x for x in result.stdout.splitlines() if name in x]
        assert "(not created)" in line and "…" not in line


def test_a_list_prune_deletes_has_a_row_in_every_format(workspace, cli, emulator_server):
    """Status showed only audiences: a destination about to lose a list to prune looked as
    if nothing were pending, while `plan` deleted it."""
    workspace.audience("kept", {"inline": ["a@example.com"]})
    workspace.audience("gone", {"inline": ["b@example.com"]}, listName="Gone [old]")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = emulator_server.emulator.project("default")
    (gone_id,) = [i for i, x in proj.lists.items() if x.name == "Gone [old]"]
    (workspace.manifests / "aud-gone.yaml").unlink()
    workspace.destination(prune=True)  # allowListDeletion is off: the delete is blocked

    rows = cli("status", workspace.manifests, "--format", "json").json()["audiences"]
    (deleted,) = [r for r in rows if r["delete_list"]]
    assert deleted["list_id"] == gone_id and deleted["list_name"] == "Gone [old]"
    assert deleted["audience"] is None and deleted["blocked"] is True
    assert deleted["iterable_members"] is None  # not read: no audience declares it
    assert [r["audience"] for r in rows if not r["delete_list"]] == ["kept"]

    markdown = cli("status", workspace.manifests, "--format", "markdown").stdout
    assert (
        f"| prod | (list 'Gone \\[old\\]': declared by no audience, prune deletes it) | "
        f"{gone_id} | - | - | - | - | - | - | DELETE (BLOCKED) |"
    ) in markdown
    (line,) = [x for x in cli("status", workspace.manifests).stdout.splitlines() if "Gone" in x]
    assert "(list 'Gone [old]': declared by no audience, prune deletes it)" in line
    assert "DELETE (BLOCKED)" in line


def test_status_json_says_why_it_exits_1_when_members_are_skipped(workspace, cli):
    """A script reads stdout: the warning on stderr is not there, so the object carries
    the reason and the exit code, as `plan`'s object does when it exits with an error."""
    workspace.audience("vip", {"inline": ["a@example.com", "foo@bar..com"]})

    result = cli("status", workspace.manifests, "--format", "json")

    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["exit_code"] == 1
    assert out["error"] == "1 member could not be used; `reconciler plan` shows them"
    assert [r["audience"] for r in out["audiences"]] == ["vip"]


def test_status_json_has_no_error_when_nothing_was_skipped(workspace, cli):
    workspace.audience("vip", {"inline": ["a@example.com"]})

    result = cli("status", workspace.manifests, "--format", "json")

    assert result.exit_code == 0
    assert set(json.loads(result.stdout)) == {"audiences"}


def test_members_held_back_are_counted_so_desired_and_iterable_add_up(
    workspace, cli, emulator_server
):
    """A member who left the list themselves and is still in the source: status showed
    41 desired, 40 in Iterable and nothing to add, with no word of why (`plan` says
    it: held back for consent). Each row counts the desired members not sent, as expected
    and no failure: consent, forgotten users, users updateExistingUsersOnly does not make."""
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com", "c@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = emulator_server.emulator.project("default")
    (list_id,) = [i for i, x in proj.lists.items() if x.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=list_id)

    (row,) = cli("status", workspace.manifests, "--format", "json").json()["audiences"]
    assert (row["iterable_members"], row["desired_members"], row["pending_adds"]) == (2, 3, 0)
    assert row["held_back"] == 1

    markdown = cli("status", workspace.manifests, "--format", "markdown").stdout
    assert "| ~update | held back | policy |" in markdown
    assert f"| prod | vip | {list_id} | 2 | 3 | 0 | 0 | 0 | 1 |  |" in markdown
    (line,) = [x for x in cli("status", workspace.manifests).stdout.splitlines() if "vip" in x]
    assert line.split("│")[-2].strip() == "1"  # the held back column, before policy
