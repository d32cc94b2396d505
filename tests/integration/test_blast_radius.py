"""Blast radius (issue 19, section 2): every plan names the campaigns that use the lists it
changes, removals from a suppression list are called out, and `activeCampaignAdds: block`
refuses adds to a list an active campaign sends to."""

from __future__ import annotations

import dataclasses
import json

WRITES = ("POST", "DELETE", "PUT")


def project(server):
    return server.emulator.project("default")


def seed_list(server, name: str, emails: list[str]) -> int:
    proj = project(server)
    list_id = proj.add_list(name)
    for email in emails:
        proj.subscribe_direct(list_id, email=email)
    return list_id


def campaign_reads(server) -> list:
    return [r for r in server.emulator.request_log if r.path.startswith("/api/campaigns")]


def writes(server) -> list:
    return [r for r in server.emulator.request_log if r.method in WRITES]


def test_plan_names_campaigns_of_changed_lists_in_every_format(workspace, cli, emulator_server):
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    other = seed_list(emulator_server, "other", ["z@example.com"])
    proj = project(emulator_server)
    welcome = proj.add_campaign(
        "Welcome", campaign_type="Triggered", state="Running", list_ids=[list_id]
    )
    promo = proj.add_campaign(
        "Promo", campaign_type="Blast", state="Scheduled", suppression_list_ids=[list_id]
    )
    proj.add_campaign("Elsewhere", list_ids=[other])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    emulator_server.emulator.clear_log()

    text = cli("plan", workspace.manifests)
    assert text.exit_code == 0, text.output
    assert f"send list of running triggered campaign 'Welcome' (id {welcome})" in text.stdout
    assert f"suppression list of scheduled blast campaign 'Promo' (id {promo})" in text.stdout
    assert "can be messaged by running triggered campaign" in text.stdout  # warn: default
    assert "Elsewhere" not in text.stdout  # its list does not change
    # One paced read per destination, a page of Iterable's maximum size.
    (read,) = campaign_reads(emulator_server)
    assert "pageSize=1000" in read.query

    md = cli("plan", workspace.manifests, "--format", "markdown")
    assert f"send list of running triggered campaign 'Welcome' (id {welcome})" in md.stdout
    assert "**1 added member can be messaged by it**" in md.stdout

    out = json.loads(cli("plan", workspace.manifests, "--format", "json").stdout)
    (vip,) = out["destinations"][0]["lists"]
    assert vip["campaigns"] == [
        {
            "id": welcome,
            "name": "Welcome",
            "type": "Triggered",
            "state": "Running",
            "role": "send",
            "active": True,
        },
        {
            "id": promo,
            "name": "Promo",
            "type": "Blast",
            "state": "Scheduled",
            "role": "suppression",
            "active": True,
        },
    ]
    assert out["destinations"][0]["campaigns_read_error"] is None


def test_removing_from_a_suppression_list_is_called_out(workspace, cli, emulator_server):
    list_id = seed_list(emulator_server, "do-not-mail", [f"m{i}@example.com" for i in range(20)])
    promo = project(emulator_server).add_campaign(
        "Promo", state="Running", suppression_list_ids=[list_id]
    )
    workspace.audience("do-not-mail", {"inline": [f"m{i}@example.com" for i in range(19)]})

    text = cli("plan", workspace.manifests)
    assert (
        '! removing 1 member from the suppression list of running campaign "Promo" '
        f"(id {promo}) makes them reachable by it" in text.stdout
    )
    md = cli("plan", workspace.manifests, "--format", "markdown")
    assert (
        "**removing 1 member from this suppression list makes them reachable by this campaign**"
        in md.stdout
    )


def test_a_list_prune_deletes_names_the_campaigns_that_use_it(workspace, cli, emulator_server):
    """Renaming an audience's key, or dropping it, prunes its old list: the campaigns that
    send to it, or suppress it, lose that list, so the plan names them under the delete."""
    workspace.destination(prune=True)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    (old,) = [i for i, r in project(emulator_server).lists.items() if r.name == "vip"]
    proj = project(emulator_server)
    weekly = proj.add_campaign("Weekly", state="Scheduled", list_ids=[old])
    promo = proj.add_campaign(
        "Promo", campaign_type="Triggered", state="Running", suppression_list_ids=[old]
    )
    (workspace.manifests / "aud-vip.yaml").unlink()
    workspace.audience("vip-customers", {"inline": ["a@example.com"]})

    text = cli("plan", workspace.manifests)
    assert text.exit_code == 3, text.output  # allowListDeletion is false by default
    assert (
        f'delete list "vip" (list {old}): created by reconciler, no longer declared (prune)\n'
        f"      campaign: send list of scheduled blast campaign 'Weekly' (id {weekly})\n"
        f'      ! deleting the list leaves scheduled campaign "Weekly" (id {weekly}) without '
        "its send list\n"
    ) in text.stdout
    # A suppression list deleted lets its campaign reach whom it kept out (a do-not-mail
    # audience dropped): said as removals from one are, not as a list merely gone.
    assert (
        f'leaves running campaign "Promo" (id {promo}) without its suppression list: whoever '
        "it kept out can be messaged by the campaign\n"
    ) in text.stdout

    md = cli("plan", workspace.manifests, "--format", "markdown")
    assert (
        f"- vip: send list of scheduled blast campaign 'Weekly' (id {weekly}): **deleting "
        "this list leaves the campaign without its send list**"
    ) in md.stdout
    assert (
        f"- vip: suppression list of running triggered campaign 'Promo' (id {promo}): "
        "**deleting this list leaves the campaign without its suppression list: whoever it "
        "kept out can be messaged by the campaign**"
    ) in md.stdout
    out = json.loads(cli("plan", workspace.manifests, "--format", "json").stdout)
    (deleted,) = out["destinations"][0]["lists_to_delete"]
    assert [(c["id"], c["role"]) for c in deleted["campaigns"]] == [
        (weekly, "send"),
        (promo, "suppression"),
    ]


def test_no_campaign_read_when_nothing_changes(workspace, cli, emulator_server):
    seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com"]})
    emulator_server.emulator.clear_log()
    assert cli("plan", workspace.manifests).exit_code == 0
    assert campaign_reads(emulator_server) == []


def test_block_refuses_adds_to_an_active_send_list_with_zero_writes(
    workspace, cli, emulator_server
):
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    welcome = project(emulator_server).add_campaign(
        "Welcome", campaign_type="Triggered", state="Running", list_ids=[list_id]
    )
    workspace.destination(policy={"activeCampaignAdds": "block"})
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    emulator_server.emulator.clear_log()

    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 3, result.output
    assert writes(emulator_server) == []
    assert "audience 'vip' adds 1 member to list 'vip'" in result.stderr
    assert f"campaign 'Welcome' (id {welcome})" in result.stderr
    assert "activeCampaignAdds is block" in result.stderr
    assert "--allow-unsafe" in result.stderr

    # The override named in the refusal applies it.
    assert cli("apply", workspace.manifests, "--yes", "--allow-unsafe").exit_code == 0
    assert sorted(project(emulator_server).members(list_id)) == ["a@example.com", "b@example.com"]
    # The plan right after reads the list as applied (Iterable's reads lag its writes):
    # nothing to add, so nothing for the policy to block.
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_block_is_per_audience_and_ignores_inactive_campaigns(workspace, cli, emulator_server):
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    project(emulator_server).add_campaign("Old", state="Finished", list_ids=[list_id])
    workspace.audience(
        "vip",
        {"inline": ["a@example.com", "b@example.com"]},
        policy={"activeCampaignAdds": "block"},
    )
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_a_failed_campaign_read_is_said_and_blocks_a_block_policy(workspace, cli, emulator_server):
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    # On top of the profile's behaviour (the field profile's lag and answers stay).
    emulator_server.emulator.faults = dataclasses.replace(
        emulator_server.emulator.faults,
        fail_every=1,
        fail_status=403,
        paths=["/api/campaigns"],
    )

    text = cli("plan", workspace.manifests)
    assert text.exit_code == 0, text.output
    assert "campaigns could not be read" in text.stdout
    out = json.loads(cli("plan", workspace.manifests, "--format", "json").stdout)
    assert "campaigns could not be read" in out["destinations"][0]["campaigns_read_error"]

    workspace.destination(policy={"activeCampaignAdds": "block"})
    emulator_server.emulator.clear_log()
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 3, result.output
    assert writes(emulator_server) == []
    assert project(emulator_server).members(list_id) == ["a@example.com"]


def test_a_saved_plan_keeps_its_campaigns_and_policy(workspace, cli, emulator_server, tmp_path):
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    project(emulator_server).add_campaign("Welcome", state="Running", list_ids=[list_id])
    workspace.destination(policy={"activeCampaignAdds": "block"})
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 3
    emulator_server.emulator.clear_log()
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 3, result.output
    assert "campaign 'Welcome'" in result.stderr
    assert writes(emulator_server) == []


def test_a_campaign_id_the_project_does_not_have_is_said_beside_the_removals(
    workspace, cli, emulator_server
):
    # unsubscribe.campaignId attributes the removals to a campaign: a typo (or another
    # project's id) would attribute them to none Iterable knows, so the plan says so.
    list_id = seed_list(emulator_server, "vip", ["a@example.com", "b@example.com"])
    known = project(emulator_server).add_campaign("Winback", list_ids=[list_id])
    policy = {"maxRemovalPercent": 100}
    for campaign_id, said in ((known + 1000, True), (known, False)):
        workspace.audience(
            "vip",
            {"inline": ["a@example.com"]},
            policy=policy,
            unsubscribe={"campaignId": campaign_id},
        )
        out = json.loads(cli("plan", workspace.manifests, "--format", "json").stdout)
        note = (
            f"unsubscribe.campaignId {campaign_id} of audience 'vip' is not a campaign of this "
            "project (GET /api/campaigns has no such id), yet its 1 removal from 'vip' would "
            "be attributed to it: check the id"
        )
        assert (note in out["destinations"][0]["notes"]) is said
        text = cli("plan", workspace.manifests)
        assert (f"note: {note}" in text.stdout) is said, text.stdout
    # Without removals the id is not used, and nothing is said.
    workspace.audience(
        "vip",
        {"inline": ["a@example.com", "b@example.com", "c@example.com"]},
        unsubscribe={"campaignId": known + 1000},
    )
    out = json.loads(cli("plan", workspace.manifests, "--format", "json").stdout)
    assert not any("campaignId" in n for n in out["destinations"][0]["notes"])
