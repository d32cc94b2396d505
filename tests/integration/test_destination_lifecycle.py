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
