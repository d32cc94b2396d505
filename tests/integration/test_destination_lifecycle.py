"""A destination's own lifecycle: its key swapped for another project's, renamed, split,
moved to another project."""

from __future__ import annotations

from tests.integration.conftest import API_KEY_VAR


def _managed_lists(project, names: list[str]) -> dict[str, int]:
    """Lists another repository's reconciler made in `project`, a member each."""
    ids = {}
    for name in names:
        marker = f"[managed-by: reconciler; audience: {name}]"
        ids[name] = project.add_list(name, description=marker)
        project.subscribe_direct(ids[name], email=f"{name}@example.com")
    return ids


def test_a_key_of_another_project_neither_creates_nor_deletes_lists_there(
    workspace, cli, emulator_server, monkeypatch
):
    """The destination's key secret replaced by another project's key (a rotation pasted
    from the wrong project): the scheduled apply created every list in that project and,
    with prune, deleted the lists another repository made there (their ids, campaigns and
    who left them gone). A project holding none of the lists the manifests declare in it
    now blocks prune's deletions whatever allowListDeletion says, and the plan says why."""
    growth = emulator_server.emulator.add_project("growth", "hybrid", "growth-key")
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("churn", {"inline": ["b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    theirs = _managed_lists(growth, ["winback", "loyal"])

    monkeypatch.setenv(API_KEY_VAR, "growth-key")
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 3, applied.output
    assert {r.id: r.name for r in growth.lists.values()} == {i: n for n, i in theirs.items()}
    text = " ".join(applied.output.split())
    assert (
        f"prod/winback: deletes list 'winback' (id {theirs['winback']}) from a project "
        "holding no list the manifests declare in it (they declare 2 lists there): is the "
        "destination's API key another project's? If instead every audience was renamed at "
        "once, the deletion is meant (override: --allow-list-deletion or --allow-unsafe)"
    ) in text

    # The right key again: its own project, nothing blocked, nothing to do.
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_every_audience_renamed_at_once_deletes_the_old_lists_when_told(
    workspace, cli, emulator_server
):
    """The same plan from the project's own key (every audience key renamed in one pull
    request) is what it was once --allow-list-deletion says the deletion is meant."""
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    (workspace.manifests / "aud-vip.yaml").unlink()
    workspace.audience("vip-customers", {"inline": ["a@example.com"]})

    assert cli("apply", workspace.manifests, "--yes").exit_code == 3
    applied = cli("apply", workspace.manifests, "--yes", "--allow-list-deletion")
    assert applied.exit_code == 0, applied.output
    names = sorted(r.name for r in emulator_server.emulator.project("default").lists.values())
    assert names == ["vip-customers"]


def test_a_key_of_another_project_with_prune_off_adds_nobody_there_until_told(
    workspace, cli, emulator_server, monkeypatch
):
    """Prune off, the destination's key replaced by another project's: the apply created
    every list in that project and added every member to it, nothing in the way. The
    last apply from this state directory wrote to lists the project does not have, so
    plan and apply now block the destination, naming where its key comes from (never the
    key), until --allow-new-project names it."""
    growth = emulator_server.emulator.add_project("growth", "hybrid", "growth-key")
    workspace.destination()
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("churn", {"inline": ["b@example.com"]})
    first = cli("apply", workspace.manifests, "--yes")  # a first apply: nothing known yet
    assert first.exit_code == 0, first.output
    own = sorted(r.id for r in emulator_server.emulator.project("default").lists.values())
    theirs = _managed_lists(growth, ["winback"])

    monkeypatch.setenv(API_KEY_VAR, "growth-key")
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 3, plan.output
    text = " ".join(plan.output.split())
    assert (
        "destination 'prod' takes its API key from environment variable "
        f"{API_KEY_VAR} (manifests/dest-prod.yaml:"
    ) in text
    assert (
        "and the project that key reaches holds none of the 2 lists the manifests declare "
        "in it, though the last apply to it from this state directory wrote to lists of "
        f"ids {own[0]}, {own[1]}, none of which the project has: is environment variable "
        f"{API_KEY_VAR} another project's key (a secret pasted from another project)? "
        "Nothing is written there until `reconciler apply --allow-new-project prod` says "
        "this is the destination's project"
    ) in text
    assert "(override: --allow-new-project prod or --allow-unsafe)" in text
    assert "growth-key" not in plan.output
    as_json = cli("plan", workspace.manifests, "--format", "json")
    assert as_json.exit_code == 3, as_json.output
    (violation,) = as_json.json()["violations"]
    assert (violation["rule"], violation["list_name"]) == ("unfamiliar_project", "churn, vip")
    assert as_json.json()["error"].endswith(
        "apply refuses it unless given --allow-new-project prod (or --allow-unsafe)"
    )
    assert "growth-key" not in as_json.output

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 3, applied.output
    assert "(override: --allow-new-project prod or --allow-unsafe)" in " ".join(
        applied.output.split()
    )
    assert {r.id for r in growth.lists.values()} == set(theirs.values())
    assert growth.find_user(email="a@example.com") is None
    # Naming another destination overrides nothing.
    assert cli("apply", workspace.manifests, "--yes", "--allow-new-project", "x").exit_code == 3

    # Meant (the destination moved to this project): named, it is written, and then known.
    applied = cli("apply", workspace.manifests, "--yes", "--allow-new-project", "prod")
    assert applied.exit_code == 0, applied.output
    assert sorted(r.name for r in growth.lists.values()) == ["churn", "vip", "winback"]
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_a_key_of_another_project_said_of_one_list(workspace, cli, emulator_server, monkeypatch):
    """One list declared and recorded: the block said "holds none of the 1 list ...
    wrote to lists of ids 1000001, none of which the project has"."""
    emulator_server.emulator.add_project("growth", "hybrid", "growth-key")
    workspace.destination()
    workspace.audience("vip", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    (own,) = [r.id for r in emulator_server.emulator.project("default").lists.values()]

    monkeypatch.setenv(API_KEY_VAR, "growth-key")
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 3, plan.output
    assert (
        "and the project that key reaches does not hold the list the manifests declare in "
        f"it, though the last apply to it from this state directory wrote to list {own}, "
        "which the project does not have: is environment variable"
    ) in " ".join(plan.output.split())


def test_an_audience_listid_another_project_lacks_blocks_its_destination_on_a_first_run(
    workspace, cli, emulator_server, monkeypatch
):
    """No state directory to go by (a fresh CI checkout): an audience's listId, a list of
    another project (ids are unique across projects), is the evidence. The audience was
    left out and every other list created and filled there; now nothing is written."""
    growth = emulator_server.emulator.add_project("growth", "hybrid", "growth-key")
    vip = emulator_server.emulator.project("default").add_list("vip")
    workspace.destination()
    workspace.audience("vip", {"inline": ["a@example.com"]}, listId=vip)
    workspace.audience("churn", {"inline": ["b@example.com"]})
    monkeypatch.setenv(API_KEY_VAR, "growth-key")
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 3, plan.output
    text = " ".join(plan.output.split())
    assert (
        f"though audience 'vip' holds list {vip} by its listId (manifests/aud-vip.yaml:"
    ) in text
    assert "and the project has no list of that id: is environment variable" in text
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 3, applied.output
    assert list(growth.lists.values()) == []

    # The project's own key: nothing is unfamiliar, churn is created as ever.
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
