"""An audience's spec.listId: the list it manages is the one with that id, so a list
renamed or deleted in Iterable's web app is said as such, never replaced by a new list of
the audience's name that would take back who had left the old one themselves."""

from __future__ import annotations

import json

import pytest

WRITES = ("POST", "DELETE", "PUT")


def project(server):
    return server.emulator.project("default")


def writes(server) -> list:
    return [r for r in server.emulator.request_log if r.method in WRITES]


def adopted(server, name: str = "vip") -> int:
    """A list without reconciler's marker (made by Segment, or by hand), as import adopts
    it: a and b on it, b then leaving it by an unsubscribe link."""
    proj = project(server)
    list_id = proj.add_list(name)
    for email in ("a@example.com", "b@example.com"):
        proj.subscribe_direct(list_id, email=email)
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=list_id)
    return list_id


SOURCE = {"inline": ["a@example.com", "b@example.com", "c@example.com"]}


def test_a_list_renamed_in_iterable_leaves_its_audience_out_and_creates_no_list(
    workspace, cli, emulator_server
):
    """Renamed in the web app, an adopted list was found by name no more: the plan created
    a new 'vip' and added a, b (who had left the old one herself) and c to it."""
    list_id = adopted(emulator_server)
    workspace.audience("vip", SOURCE, listId=list_id)
    project(emulator_server).lists[list_id].name = "VIP customers"

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 1, plan.output
    text = " ".join(plan.output.split())
    assert (
        f"aud-vip.yaml:16:15: listId {list_id} is named 'VIP customers' in Iterable, not "
        "'vip' (renamed in Iterable's web app, or the audience's listName changed), and no "
        f"new list is made in its place. To keep managing list {list_id}, set listName: 'VIP "
        "customers' on audience 'vip', or rename the list to 'vip' in Iterable; for a new "
        "list, remove listId."
    ) in text
    assert "This audience is left out of the plan (nothing is created, added or removed)" in text

    emulator_server.emulator.clear_log()
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    assert writes(emulator_server) == []
    assert [x.name for x in project(emulator_server).lists.values()] == ["VIP customers"]

    # As the message says: the listName set to the new name manages that list again,
    # and who left it herself stays off it.
    workspace.audience("vip", SOURCE, listId=list_id, listName="VIP customers")
    kept = cli("apply", workspace.manifests, "--yes")
    assert kept.exit_code == 0, kept.output
    assert sorted(project(emulator_server).members(list_id)) == ["a@example.com", "c@example.com"]
    assert len(project(emulator_server).lists) == 1


def test_a_list_id_iterable_does_not_hold_is_not_created_again(workspace, cli, emulator_server):
    """Deleted in Iterable (or an id of another project): a plan by name alone made a new
    list, which took back who had left the old one; verify first, then drop listId."""
    list_id = adopted(emulator_server)
    workspace.audience("vip", SOURCE, listId=list_id)
    project(emulator_server).delete_list(list_id)

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 1, plan.output
    (destination,) = plan.json()["destinations"]
    assert destination["lists"] == []
    ((audience, reason),) = [(x["audience"], x["reason"]) for x in destination["unread"]]
    assert audience == "vip"
    assert reason.endswith(
        f"aud-vip.yaml:16:15: listId {list_id} is no list in Iterable (deleted there, or an "
        "id of another project?). A new list in its place would take back who had left it "
        "themselves: verify that the list is gone, then remove listId from audience 'vip' "
        "to create one. This audience is left out of the plan (nothing is created, added "
        "or removed)"
    ), reason
    assert plan.json()["summary"]["lists_to_create"] == 0

    # A list of the audience's name made since is named, with the listId that takes it.
    other = project(emulator_server).add_list("vip")
    again = cli("plan", workspace.manifests)
    assert again.exit_code == 1, again.output
    assert (
        f"another project?); list 'vip' in Iterable is list {other}: if that is the "
        f"audience's list, set listId: {other}. A new list"
    ) in " ".join(again.output.split())


def test_a_list_renamed_while_another_took_its_name_names_both(workspace, cli, emulator_server):
    list_id = adopted(emulator_server)
    workspace.audience("vip", SOURCE, listId=list_id)
    project(emulator_server).lists[list_id].name = "VIP customers"
    other = project(emulator_server).add_list("vip")

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 1, plan.output
    assert (
        f"listId {list_id} is named 'VIP customers' in Iterable, not 'vip', and list {other} "
        "has that name now (renamed in Iterable's web app, or the audience's listName "
        f"changed), and no new list is made in its place. To keep managing list {list_id}, set "
        f"listName: 'VIP customers' on audience 'vip'; to manage list {other} instead, set "
        f"listId: {other}."
    ) in " ".join(plan.output.split())


def test_a_list_id_of_the_list_of_its_name_plans_as_before(workspace, cli, emulator_server):
    list_id = adopted(emulator_server)
    workspace.audience("vip", SOURCE, listId=list_id)
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert sorted(project(emulator_server).members(list_id)) == ["a@example.com", "c@example.com"]
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_prune_keeps_a_list_an_audience_holds_by_its_id_when_renamed(
    workspace, cli, emulator_server
):
    """reconciler's own list, renamed in Iterable: its new name is declared nowhere, so
    prune planned to delete it (its id, history and campaigns) while its audience was left
    out."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("keep", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    lists = project(emulator_server).lists
    (record,) = [x for x in lists.values() if x.name == "vip"]
    workspace.audience("vip", {"inline": ["a@example.com"]}, listId=record.id)
    record.name = "VIP (old)"

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 1, plan.output
    assert plan.json()["summary"]["lists_to_delete"] == 0
    emulator_server.emulator.clear_log()
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    assert writes(emulator_server) == []
    assert sorted(x.name for x in lists.values()) == ["VIP (old)", "keep"]


def test_prune_deletes_no_list_while_an_audience_is_left_out(workspace, cli, emulator_server):
    """vip's listName changed beside a listId Iterable does not hold: vip was left out of
    the plan ("nothing is created, added or removed"), yet prune deleted its list, whose
    name no manifest declared any more, members and all."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    workspace.audience("keep", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    lists = project(emulator_server).lists
    (record,) = [x for x in lists.values() if x.name == "vip"]
    gone = project(emulator_server).add_list("gone")
    project(emulator_server).delete_list(gone)
    workspace.audience("vip", {"inline": ["a@example.com"]}, listName="VIP customers", listId=gone)

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 1, plan.output
    assert plan.json()["summary"]["lists_to_delete"] == 0
    (destination,) = plan.json()["destinations"]
    assert any(
        note.startswith("prune deletes no list in this plan") for note in destination["notes"]
    )
    assert not any("declares it any more" in note for note in destination["notes"])
    emulator_server.emulator.clear_log()
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    assert writes(emulator_server) == []
    assert sorted(project(emulator_server).members(record.id)) == [
        "a@example.com",
        "b@example.com",
    ]


def test_a_targeted_plan_leaving_an_audience_out_says_nothing_of_prune(
    workspace, cli, emulator_server
):
    """--target never prunes, yet a targeted plan of an audience left out said 'prune
    deletes no list in this plan ... prune runs again once every audience is planned', as
    if the audience left out were what held prune back."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    gone = project(emulator_server).add_list("gone")
    project(emulator_server).delete_list(gone)
    workspace.audience("vip", {"inline": ["a@example.com"]}, listName="VIP customers", listId=gone)

    plan = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    assert plan.exit_code == 1, plan.output
    (destination,) = plan.json()["destinations"]
    assert destination["unread"], destination
    assert not any("prune" in note for note in destination["notes"]), destination["notes"]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (0, "expected a number greater than 0; got 0"),
        ("1000001", "expected a whole number; got '1000001' (remove the quotes"),
        (True, "expected a whole number; got true"),
    ],
)
def test_validate_names_a_list_id_that_is_no_positive_whole_number(workspace, cli, value, said):
    workspace.audience("vip", {"inline": ["a@example.com"]}, listId=value)
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert f"manifests/aud-vip.yaml:14:15: spec.listId: {said}" in result.output


def test_import_writes_the_list_id_so_a_rename_after_it_creates_nothing(
    workspace, cli, emulator_server
):
    """Adopted by import, a list renamed in the web app was tied to its audience by
    nothing: the next plan created a second 'vip' and put b, who had left the first one
    herself, on it; and import run again took the renamed list for a new audience."""
    list_id = adopted(emulator_server)
    out = workspace.manifests / "imported"
    imported = cli("import", workspace.manifests, "--destination", "prod", "--out", out)
    assert imported.exit_code == 0, imported.output
    text = (out / "vip.yaml").read_text()
    assert f"  listId: {list_id}  # the list's id in Iterable\n" in text
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0

    project(emulator_server).lists[list_id].name = "VIP customers"
    emulator_server.emulator.clear_log()
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    assert f"listId {list_id} is named 'VIP customers' in Iterable, not 'vip'" in " ".join(
        applied.output.split()
    )
    assert writes(emulator_server) == []

    again = cli("import", workspace.manifests, "--destination", "prod", "--out", out)
    assert again.exit_code == 0, again.output
    assert (
        f"skipped list {list_id} 'VIP customers': already managed by audience 'vip' (its "
        "listId), under another name"
    ) in " ".join(again.output.split())
    assert sorted(p.name for p in out.iterdir()) == ["vip.csv", "vip.yaml"]


def test_validate_refuses_one_list_id_on_two_audiences(workspace, cli):
    """Two audiences of one list fight over its members on every apply; by name that was
    an error, by id it was left to the plan, which took one of them for a renamed list."""
    workspace.audience("vip", {"inline": ["a@example.com"]}, listId=1000001)
    workspace.audience("gold", {"inline": ["b@example.com"]}, listId=1000001)
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert (
        "manifests/aud-vip.yaml:14:15: audiences 'gold' and 'vip' both have listId 1000001 "
        "in destination 'prod': one list, which only one audience can manage; 'gold' is at "
        "manifests/aud-gold.yaml:14:15"
    ) in " ".join(result.output.split())


def test_a_saved_plan_whose_list_was_renamed_since_says_so(
    workspace, cli, emulator_server, tmp_path
):
    """The plan made again leaves the audience out, so the saved plan's list was said to
    be 'not in both plans', naming no rename."""
    list_id = adopted(emulator_server)
    workspace.audience("vip", SOURCE, listId=list_id)
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    project(emulator_server).lists[list_id].name = "VIP customers"
    emulator_server.emulator.clear_log()

    refused = cli("apply", "--plan", planfile, "--yes")
    assert refused.exit_code == 4, refused.output
    text = " ".join(refused.stderr.split())
    assert (
        f"error: stale plan: list 'vip' (list {list_id}) was renamed 'VIP customers' in "
        "Iterable since p.plan was made. Left out of a plan made now: vip: "
    ) in text
    assert text.endswith("(nothing is created, added or removed); run plan again"), text
    assert writes(emulator_server) == []


def test_prune_in_another_destination_of_the_project_keeps_a_renamed_listid_list(
    workspace, cli, emulator_server
):
    """Two destinations naming one project (the same host and key): the renamed list of
    one's audience was declared by name nowhere, so the other's prune deleted it."""
    workspace.destination("other", prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("keep", {"inline": ["a@example.com"]}, destination="other")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    lists = project(emulator_server).lists
    (record,) = [x for x in lists.values() if x.name == "vip"]
    workspace.audience("vip", {"inline": ["a@example.com"]}, listId=record.id)
    record.name = "VIP (old)"

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 1, plan.output
    assert plan.json()["summary"]["lists_to_delete"] == 0
    emulator_server.emulator.clear_log()
    assert cli("apply", workspace.manifests, "--yes").exit_code == 1
    assert writes(emulator_server) == []
    assert sorted(x.name for x in lists.values()) == ["VIP (old)", "keep"]


def test_a_second_list_of_the_name_made_by_hand_leaves_the_list_id_audience_managed(
    workspace, cli, emulator_server
):
    """A colleague made a second 'vip' list by hand in Iterable's web app. Found by name,
    the audience was left out ('Iterable has 2 lists named 'vip' ...; reconciler will not
    guess which one to manage'), though its listId says which: that list is managed, the
    other is left alone."""
    list_id = adopted(emulator_server)
    other = project(emulator_server).add_list("vip")
    workspace.audience("vip", SOURCE, listId=list_id)

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert sorted(project(emulator_server).members(list_id)) == ["a@example.com", "c@example.com"]
    assert project(emulator_server).members(other) == []
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_import_names_the_list_a_list_id_audience_manages_beside_a_second_of_its_name(
    workspace, cli, emulator_server
):
    """Beside the 'vip' an audience manages by its listId, a colleague made a second 'vip'
    by hand: import skipped that one as 'already managed by audience 'vip'', which
    manages no such list, so whoever wanted it imported was told there was nothing to do."""
    list_id = adopted(emulator_server)
    other = project(emulator_server).add_list("vip")
    workspace.audience("vip", SOURCE, listId=list_id)
    imported = cli("import", workspace.manifests, "--destination", "prod", "--out", "imp")
    assert imported.exit_code == 0, imported.output
    text = " ".join(imported.output.split())
    assert f"skipped list {list_id} 'vip': already managed by audience 'vip' skipped" in text
    assert (
        f"skipped list {other} 'vip': a second list of the name of audience 'vip', which "
        f"manages list {list_id} (its listId); rename this one in Iterable to import it"
    ) in text


def test_the_summary_of_audiences_left_out_is_true_of_each_reason(
    workspace, cli, emulator_server, tmp_path
):
    """The summary said every audience left out had its list 'not read with confidence',
    also of a listId's list renamed (never read: which list is meant is not certain),
    beside an audience whose read was not trusted."""
    list_id = adopted(emulator_server)
    workspace.audience("vip", SOURCE, listId=list_id)
    project(emulator_server).lists[list_id].name = "VIP customers"

    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 1, plan.output
    assert (
        "Warning: 1 audience left out (which list in Iterable not certain; see above)."
    ) in plan.stdout
    assert "read with confidence" not in plan.output
    summary = tmp_path / "summary.md"
    markdown = cli("plan", workspace.manifests, "--summary-file", summary)
    assert markdown.exit_code == 1, markdown.output
    assert "**1** audience left out (which list in Iterable not certain)" in summary.read_text()
    json_plan = cli("plan", workspace.manifests, "--format", "json").json()
    assert json_plan["summary"]["lists_unread"] == 1
    assert json_plan["summary"]["lists_unmatched"] == 1
    record = tmp_path / "run.json"
    applied = cli("apply", workspace.manifests, "--yes", "--summary-json", record)
    assert applied.exit_code == 1, applied.output
    assert json.loads(record.read_text())["message"] == (
        "1 audience was left out (which list in Iterable not certain)"
    )

    # Beside an audience whose list's read Iterable's size contradicts (not trusted).
    news = project(emulator_server).add_list("news")
    project(emulator_server).subscribe_direct(news, email="a@example.com")
    workspace.audience("news", {"inline": ["a@example.com"]})
    faults = emulator_server.emulator.faults
    faults.paths = ["/api/lists/getUsers"]
    faults.bad_body_every, faults.bad_body = 1, "empty"
    both = cli("plan", workspace.manifests)
    assert both.exit_code == 1, both.output
    assert (
        "Warning: 2 audiences left out (1 list not read with confidence, 1 which list in "
        "Iterable not certain; see above)."
    ) in both.stdout
