"""Never fight a person's own choice (issue 19, point 1): members who left a list by their
own action, or whose profile is unsubscribed from the list's channel, are not re-added
unless the audience says `resubscribe: allowed` (and then every plan says so in bold).

Through the CLI against the emulator over HTTP; the person's own unsubscribe goes through
the emulator's test-only control route, which records it as Iterable reports it.
"""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator.project import DEFAULT_CHANNEL_ID, SMS_CHANNEL_ID
from tests.integration.test_iterable_answers import (
    ENGINES,
    accepted,
    csv_audience,
    field_workspace,  # noqa: F401 (a fixture)
    requests_to,
)


def _ids(project_type: str) -> dict[str, str]:
    """The identifier each person has in the source, by project type."""
    if project_type == "userId":
        return {n: f"user-{n}" for n in "abcd"}
    return {n: f"{n}@example.com" for n in "abcd"}


def _who(project_type: str, identifier: str) -> dict[str, str]:
    return {"userId": identifier} if project_type == "userId" else {"email": identifier}


def _user_reads(server) -> list:
    """GET /api/users/{email} and /byUserId/{userId}: the consent guard's per-user reads."""
    return [
        r
        for r in server.emulator.request_log
        if r.method == "GET"
        and r.path.startswith("/api/users/")
        and r.path not in ("/api/users/getFields", "/api/users/forgotten")
        and r.path != "/api/users/forgottenUserIds"
    ]


def _force_profile_export(monkeypatch) -> None:
    """As if the adds were too many to read one by one (state/consent.py MAX_LOOKUPS)."""
    monkeypatch.setattr("reconciler.state.consent.MAX_LOOKUPS", 0)


def _members_by_get_users(monkeypatch) -> None:
    """The consent guard then reads the profiles itself (a user export read for the members
    carries them: test_early_exports.py)."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")


@pytest.mark.parametrize("profile_read", ["lookups", "export"])
@pytest.mark.parametrize("engine", [*ENGINES, "duckdb-many"])
@pytest.mark.parametrize("project_type", ["hybrid", "userId"])
def test_people_who_left_are_held_back_and_api_removals_are_not(
    field_workspace,  # noqa: F811
    cli,
    engine,
    project_type,
    profile_read,
    monkeypatch,
):
    many = engine == "duckdb-many"
    if many and profile_read == "lookups":
        pytest.skip("adds beyond MAX_TABLE_CHECK are never read one by one")
    _members_by_get_users(monkeypatch)
    if profile_read == "export":
        _force_profile_export(monkeypatch)
    if many:
        # As if the adds were too many to read one by one: every channel-unsubscribed
        # profile is exported and matched in DuckDB.
        monkeypatch.setattr("reconciler.state.consent.MAX_TABLE_CHECK", 0)
        engine = "duckdb"
    ws, server, proj = field_workspace(project_type, engine)
    column = "userId" if project_type == "userId" else "email"
    ids = _ids(project_type)
    a, b, c, d = (ids[n] for n in "abcd")
    csv_audience(ws, "vip", column, [a, b, c])
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (list_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]

    # b leaves the list by an unsubscribe link; d (not on the list) unsubscribes from the
    # whole email channel in the preference centre.
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={**_who(project_type, b), "listId": list_id}).raise_for_status()
    proj.add_user(**({"user_id": d} if project_type == "userId" else {"email": d}))
    httpx.post(control, json={**_who(project_type, d), "channel": True}).raise_for_status()
    # a is removed by reconciler itself (an API unsubscribe), and comes back to the source.
    csv_audience(ws, "vip", column, [b, c])
    assert cli("apply", ws.manifests, "--yes", "--allow-removals").exit_code == 0
    csv_audience(ws, "vip", column, [a, b, c, d])

    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 1  # a: its removal was reconciler's own
    assert body["summary"]["members_left_themselves"] == 1
    assert body["summary"]["members_channel_unsubscribed"] == 1
    (lp,) = body["destinations"][0]["lists"]
    assert lp["not_sent"]["left_themselves"]["count"] == 1
    assert lp["not_sent"]["left_themselves"]["by_source"] == {"EmailLink": 1}
    assert lp["not_sent"]["channel_unsubscribed"]["count"] == 1
    assert lp["consent"]["resubscribe"] == "never"
    for who in (b, d):
        assert who not in plan.stdout  # named, masked
    # The reads: one export of the unsubscribe events, paced with the other exports.
    exports = requests_to(server, "/api/export/data.json")
    events = [r for r in exports if "dataTypeName=emailUnSubscribe" in r.query]
    assert len(events) == 1 and events[0].status == 200
    channel_exports = [
        r for r in exports if "unsubscribedChannelIds" in r.query and "ListIds" not in r.query
    ]
    reads_said = " ".join(body["destinations"][0]["other_reads"])
    if profile_read == "export":
        # The adds' channel unsubscribes: one user export, however many the adds.
        assert len(channel_exports) == 1
        assert not _user_reads(server)
        assert "2 exports (emailUnSubscribe events, profiles'" in reads_said
    else:
        # Three adds (a, b, d) before the hold-back: one per-user read each, no export.
        assert channel_exports == []
        assert len(_user_reads(server)) == 3
        assert all(r.status == 200 for r in _user_reads(server))
        assert "3 per-user reads of profiles' unsubscribedChannelIds; about" in reads_said

    text = cli("plan", ws.manifests)
    assert "held back: left the list themselves: 1 (EmailLink 1" in text.stdout
    assert "held back: unsubscribed from the channel: 1" in text.stdout
    markdown = cli("plan", ws.manifests, "--format", "markdown")
    assert "held back: left the list themselves" in markdown.stdout
    assert "held back: unsubscribed from the channel" in markdown.stdout
    for who in (b, d):
        assert who not in text.stdout + markdown.stdout

    server.emulator.clear_log()
    applied = cli("apply", ws.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    sent = [s.get("email") or s.get("userId") for s in accepted(server, "/api/lists/subscribe")]
    assert sent == [a]
    # Held back is no change: the next plan has nothing to do.
    final = cli("plan", ws.manifests, "--detailed-exitcode")
    assert final.exit_code == 0, final.output
    assert "held back: left the list themselves: 1" in final.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_another_profiles_removal_is_not_the_latest_unsubscribe_of_who_left(
    field_workspace,  # noqa: F811
    cli,
    engine,
):
    """userID-based projects: two profiles share an email. One leaves the list by a link;
    the other is removed later by reconciler. Keyed by the email alone, the removal was
    taken for the first one's latest unsubscribe, and they were re-added."""
    ws, _server, proj = field_workspace("userId", engine)
    csv_audience(ws, "vip", "userId", ["keep", "left", "twin"])
    proj.add_user(email="shared@example.com", user_id="left")
    proj.add_user(email="shared@example.com", user_id="twin")
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (list_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    left = proj.user_by_user_id("left")
    assert left is not None
    proj.self_unsubscribe(left, list_id=list_id)
    csv_audience(ws, "vip", "userId", ["keep", "left"])  # twin removed by reconciler
    assert cli("apply", ws.manifests, "--yes", "--allow-removals").exit_code == 0
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["summary"]["members_to_add"] == 0
    assert plan.json()["summary"]["members_left_themselves"] == 1
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    assert sorted(proj.members(list_id, True)) == ["keep"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_member_reconciler_removed_after_their_profile_gained_an_email_comes_back(
    field_workspace,  # noqa: F811
    cli,
    engine,
):
    """Hybrid: left by a link while known by a userId alone (the event names the userId),
    put back by hand, given an email, then removed by reconciler (the event names both):
    that removal is their latest unsubscribe, yet they were held back for good."""
    ws, _server, proj = field_workspace("hybrid", engine)
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    person = proj.subscribe_direct(list_id, user_id="ux")
    proj.self_unsubscribe(person, list_id=list_id)
    # Left a minute before the removal: in one second, her own unsubscribe is the later.
    proj.unsubscribe_events[-1]["createdAt"] -= 60_000
    proj.set_email(person, "x@example.com")
    proj.subscribe(person, list_id)
    csv_audience(ws, "vip", "userId", ["keep"], policy={"maxRemovalPercent": 100})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    csv_audience(ws, "vip", "userId", ["keep", "ux"])
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["summary"]["members_left_themselves"] == 0
    assert plan.json()["summary"]["members_to_add"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_resubscribe_allowed_re_adds_them_flagged_in_bold(
    field_workspace,  # noqa: F811
    cli,
    engine,
):
    ws, server, proj = field_workspace("hybrid", engine)
    csv_audience(ws, "vip", "email", ["a@example.com", "b@example.com"])
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (list_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    httpx.post(
        f"{server.base_url}/_emulator/self-unsubscribe",
        json={"email": "b@example.com", "listId": list_id, "unsubSource": "WebApp"},
    ).raise_for_status()
    csv_audience(ws, "vip", "email", ["a@example.com", "b@example.com"], resubscribe="allowed")

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 1
    assert body["summary"]["members_left_themselves"] == 0
    assert body["summary"]["members_resubscribed"] == 1
    (lp,) = body["destinations"][0]["lists"]
    assert lp["consent"]["resubscribe"] == "allowed"
    assert lp["consent"]["resubscribed"]["count"] == 1
    text = cli("plan", ws.manifests)
    assert "!!! resubscribe: allowed for vip" in text.stdout
    assert "1 of the added members had left this list" in text.stdout
    markdown = cli("plan", ws.manifests, "--format", "markdown")
    assert "**resubscribe: allowed**" in markdown.stdout
    assert "b@example.com" not in text.stdout + markdown.stdout

    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    assert "b@example.com" in proj.members(list_id)


def test_the_re_added_who_had_left_are_listed_alike_by_both_engines(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    # One who left the list, one who left its channel: the Python engine listed those
    # who left the list first, DuckDB every one in key order.
    ws, _server, proj = field_workspace("hybrid")
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="c@example.com")
    proj.self_unsubscribe(proj.subscribe_direct(list_id, email="b@example.com"), list_id=list_id)
    proj.self_unsubscribe(proj.add_user(email="a@example.com"), channel=True)
    people = ["a@example.com", "b@example.com", "c@example.com"]
    csv_audience(ws, "vip", "email", people, resubscribe="allowed")
    samples = {}
    for engine in ENGINES:
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        plan = cli("plan", ws.manifests, "--format", "json", "--show-members")
        assert plan.exit_code == 0, plan.output
        (lp,) = plan.json()["destinations"][0]["lists"]
        samples[engine] = lp["consent"]["resubscribed"]["sample"]
    assert samples["python"] == samples["duckdb"] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("profile_read", ["lookups", "export"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_saved_plan_holds_back_who_opted_out_after_it_was_made(
    field_workspace,  # noqa: F811
    cli,
    engine,
    profile_read,
    tmp_path,
    monkeypatch,
):
    """A plan can wait days for review: a member of its adds who unsubscribes from the
    channel meanwhile (which leaves the list as it was, so the plan is not stale) is held
    back by `apply --plan`, and the rest of the reviewed plan is applied."""
    _members_by_get_users(monkeypatch)
    if profile_read == "export":
        _force_profile_export(monkeypatch)
    if engine == "duckdb":
        # The saved plan's adds are read back into DuckDB and held back there.
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    ws, server, proj = field_workspace("hybrid", engine)
    a, b, c, d = (f"{n}@example.com" for n in "abcd")
    csv_audience(ws, "vip", "email", [a])
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (list_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    for who in (b, c, d):
        proj.add_user(email=who)
    csv_audience(ws, "vip", "email", [a, b, c, d])
    saved = tmp_path / "plan.gz"
    made = cli("plan", ws.manifests, "--out", str(saved))
    assert made.exit_code == 0, made.output
    assert "+3 / -0" in made.stdout

    # Between review and apply: b unsubscribes from the email channel, c is unsubscribed
    # from the list by an unsubscribe link (they were never on it: the list is unchanged).
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": b, "channel": True}).raise_for_status()
    proj.record_unsubscribe(proj.find_user(c, None), "EmailLink", list_ids=(list_id,))

    server.emulator.clear_log()
    applied = cli("apply", "--plan", str(saved), "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    sent = [s.get("email") for s in accepted(server, "/api/lists/subscribe")]
    assert sent == [d]
    assert sorted(proj.members(list_id)) == [a, d]
    report = applied.json()
    assert report["members_held_back"] == 2
    (held,) = report["held_back"]
    assert (held["audience"], held["list_id"]) == ("vip", list_id)
    assert held["since_the_plan"]["count"] == 2
    assert held["channel_unsubscribed"]["count"] == 1
    assert held["left_themselves"]["count"] == 1
    assert held["left_themselves"]["by_source"] == {"EmailLink": 1}
    assert len(held["left_themselves"]["sample"]) == 1
    for who in (b, c):
        assert who not in applied.output
    # No read beyond those the stale check's plan makes: one export of the events, and
    # the profiles' channel unsubscribes from the stale check's one export of the members
    # (whichever way the plan read them: `profile_read`).
    exports = requests_to(server, "/api/export/data.json")
    assert len([r for r in exports if "dataTypeName=emailUnSubscribe" in r.query]) == 1
    (members,) = [r for r in exports if "dataTypeName=user" in r.query]
    assert "ListIds" in members.query and "unsubscribedChannelIds" in members.query
    assert not _user_reads(server)


@pytest.mark.parametrize("output", ["text", "markdown", "json"])
def test_the_apply_report_names_who_was_held_back(
    field_workspace,  # noqa: F811
    cli,
    output,
    tmp_path,
):
    """The report of the run that applied (what a scheduled sync's log and job summary
    keep) says who was held back, counted and masked, as the plan does."""
    ws, server, proj = field_workspace("hybrid", "python")
    a, b, c, d = (f"{n}@example.com" for n in "abcd")
    csv_audience(ws, "vip", "email", [a, b])
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (list_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": b, "listId": list_id}).raise_for_status()
    proj.add_user(email=c)
    httpx.post(control, json={"email": c, "channel": True}).raise_for_status()
    csv_audience(ws, "vip", "email", [a, b, c, d])

    summary, record = tmp_path / "summary.md", tmp_path / "run.json"
    applied = cli(
        "apply",
        ws.manifests,
        "--yes",
        "--format",
        output,
        "--summary-file",
        str(summary),
        "--summary-json",
        str(record),
    )
    assert applied.exit_code == 0, applied.output
    # The run record counts them, without identities.
    (counted,) = json.loads(record.read_text())["held_back"]
    assert (counted["left_themselves"], counted["channel_unsubscribed"]) == (1, 1)
    assert "example.com" not in record.read_text()
    assert sorted(proj.members(list_id)) == [a, d]
    if output == "json":
        report = applied.json()
        assert report["members_held_back"] == 2
        (held,) = report["held_back"]
        assert held["left_themselves"]["count"] == 1
        assert held["left_themselves"]["by_source"] == {"EmailLink": 1}
        assert held["channel_unsubscribed"]["count"] == 1
        assert held["since_the_plan"]["count"] == 0
        samples = held["left_themselves"]["sample"] + held["channel_unsubscribed"]["sample"]
        assert len(samples) == 2 and all("***" in s for s in samples)
    else:
        # The report follows the plan; it says it in its own words.
        report = applied.stdout.split("Plan: ")[-1] if output == "text" else applied.stdout
        heading = "Held back for consent (not re-added; no failure): 2 members"
        assert heading in report
        assert "left the list themselves: 1 (EmailLink 1)" in report
        assert "unsubscribed from the channel: 1" in report
    # The job summary has the report in markdown, whatever the format printed.
    assert "<summary>Held back for consent (not re-added; no failure): 2 members" in (
        summary.read_text()
    )
    for who in (b, c):
        assert who not in applied.output + summary.read_text()

    # Nothing left to do: the JSON report and the run record still say who stays held back.
    again = cli("apply", ws.manifests, "--yes", "--format", "json", "--summary-json", record)
    assert again.exit_code == 0, again.output
    assert again.json()["members_held_back"] == 2
    assert json.loads(record.read_text())["outcome"] == "no_changes"
    assert len(json.loads(record.read_text())["held_back"]) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_channels_that_cannot_be_read_hold_back_every_channel_unsubscribe(
    field_workspace,  # noqa: F811
    cli,
    engine,
):
    """GET /api/channels fails: which channel is the list's is unknown, so a profile
    unsubscribed from any channel (the email one, or SMS) is held back, never re-added."""
    ws, server, proj = field_workspace("email", engine)
    csv_audience(ws, "vip", "email", ["a@example.com"])
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    for email, channel in (
        ("mail@example.com", DEFAULT_CHANNEL_ID),
        ("sms@example.com", SMS_CHANNEL_ID),
    ):
        user = proj.add_user(email=email)
        user.unsubscribed_channel_ids = {channel}
    csv_audience(
        ws,
        "vip",
        "email",
        ["a@example.com", "mail@example.com", "sms@example.com", "new@example.com"],
    )
    server.emulator.faults.update({"paths": ["/api/channels"], "script": [404, 404, 404]})

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 1  # new@ only
    assert body["summary"]["members_channel_unsubscribed"] == 2
    assert "channels could not be read" in " ".join(body["destinations"][0]["other_reads"])


@pytest.mark.parametrize("project_type", ["email", "userId", "hybrid"])
def test_channel_unsubscribe_and_campaign_id_go_with_removals_in_every_project_type(
    field_workspace,  # noqa: F811
    cli,
    project_type,
):
    """An audience that opts in to channelUnsubscribe unsubscribes its removed members from
    the list's channel whatever the project identifies users by (in hybrid projects, a
    member known by a userId that is not shaped like an email, sent as that userId)."""
    ws, server, proj = field_workspace(project_type)
    column = "email" if project_type == "email" else "userId"
    keep, gone = ("a@example.com", "b@example.com") if column == "email" else ("u-A", "u-B")
    # The unsubscribes are attributed to the audience's campaign (Iterable's campaignId).
    campaign = proj.add_campaign("Goodbye")
    unsubscribe = {"channelUnsubscribe": True, "campaignId": campaign}
    spec = {"policy": {"maxRemovalPercent": 100}, "unsubscribe": unsubscribe}
    csv_audience(ws, "vip", column, [keep, gone], **spec)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    csv_audience(ws, "vip", column, [keep], **spec)
    server.emulator.clear_log()
    applied = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    (listed,) = applied.json()["destinations"][0]["lists"]
    assert (listed["removed"], listed["channel_unsubscribed"]) == (1, 1)
    (sent,) = [r.body for r in requests_to(server, "/api/lists/unsubscribe") if r.status == 200]
    assert (sent["channelUnsubscribe"], sent["campaignId"]) == (True, campaign)
    assert sent["subscribers"] == [{column: gone}]
    assert proj.unsubscribe_events[-1]["campaignId"] == campaign
    user = proj.find_user(**({"email": gone} if column == "email" else {"user_id": gone}))
    assert user is not None and user.unsubscribed_channel_ids
    (list_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    assert proj.members(list_id, column == "userId") == [keep]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_changed_list_name_does_not_re_add_who_left_the_old_list(
    field_workspace,  # noqa: F811
    cli,
    engine,
    tmp_path,
):
    """A changed listName is a new list (Iterable's API cannot rename one). The new list's
    adds were never consent-checked, as no existing list was added to: who had left the
    old list by an unsubscribe link was put on the new one, the same audience."""
    ws, _server, proj = field_workspace("hybrid", engine)
    people = ["a@example.com", "b@example.com", "c@example.com"]
    csv_audience(ws, "vip", "email", people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    proj.self_unsubscribe(proj.add_user(email="d@example.com"), channel=True)
    csv_audience(ws, "vip", "email", [*people, "d@example.com"], listName="VIP customers")

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_left_themselves"] == 1
    assert body["summary"]["members_channel_unsubscribed"] == 1
    assert body["summary"]["members_to_add"] == 2
    (lp,) = body["destinations"][0]["lists"]
    assert lp["not_sent"]["left_themselves"]["by_source"] == {"EmailLink": 1}
    # Saved, then c leaves the old list too before the plan is applied: apply re-checks.
    saved = tmp_path / "rename.plan"
    assert cli("plan", ws.manifests, "--out", saved).exit_code == 0
    proj.self_unsubscribe(proj.user_by_email("c@example.com"), list_id=old_id)
    applied = cli("apply", "--plan", saved, "--yes")
    assert applied.exit_code == 0, applied.output
    (new_id,) = [i for i, r in proj.lists.items() if r.name == "VIP customers"]
    assert sorted(proj.members(new_id)) == ["a@example.com"]
    again = cli("plan", ws.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "held back: left the list themselves: 2" in again.stdout


def test_prune_keeps_the_old_list_of_a_changed_list_name_while_it_holds_anyone_back(
    field_workspace,  # noqa: F811
    cli,
):
    """Who left the old list is held back from the new one only while the old list is
    there to read (Iterable keeps no link between the two): prune deleted it in the plan
    that created the new list, and the next plan added them. It is kept, and said, until
    nobody it holds back is in the source."""
    ws, _server, proj = field_workspace("hybrid", "python")
    ws.destination(prune=True, policy={"allowListDeletion": True})
    people = ["a@example.com", "b@example.com"]
    csv_audience(ws, "vip", "email", people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    csv_audience(ws, "vip", "email", people, listName="VIP customers")

    for run in range(2):
        plan = cli("plan", ws.manifests, "--format", "json")
        assert plan.exit_code == 0, plan.output
        body = plan.json()
        assert body["summary"]["members_left_themselves"] == 1
        assert body["summary"]["lists_to_delete"] == 0
        said = (
            f"list 'vip' (list {old_id}) is not deleted, prune or not: it was made for "
            "audience 'vip', and 1 member who left it (or 'VIP customers') themselves is "
            "held back from 'VIP customers' because of it"
        )
        assert any(n.startswith(said) for n in body["destinations"][0]["notes"]), body
        assert not any("prune is off" in n for n in body["destinations"][0]["notes"]), body
        assert "b@example.com" not in plan.output
        # The changed listName's note (until the new list is made) sends the reader below,
        # to the note on why the old list stays: text and markdown print it after it.
        for layout in ("text", "markdown") if run == 0 else ():
            shown = " ".join(cli("plan", ws.manifests, "--format", layout).stdout.split())
            below = shown.index("it stays, holding back who left it themselves (below)")
            assert below < shown.index(f"(list {old_id}) is not deleted, prune or not")
        applied = cli("apply", ws.manifests, "--yes")
        assert applied.exit_code == 0, applied.output
    (new_id,) = [i for i, r in proj.lists.items() if r.name == "VIP customers"]
    assert proj.members(new_id) == ["a@example.com"]
    assert old_id in proj.lists

    # Out of the source, they are held back by nothing: prune deletes the old list.
    csv_audience(ws, "vip", "email", ["a@example.com"], listName="VIP customers")
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.json()["summary"]["lists_to_delete"] == 1
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    assert old_id not in proj.lists


def _renamed_key(ws, people: list[str], **spec) -> None:
    """Audience `vip` renamed `vip-customers` in the manifests (its file with it)."""
    (ws.manifests / "aud-vip.yaml").unlink(missing_ok=True)
    csv_audience(ws, "vip-customers", "email", people, **spec)


@pytest.mark.field_profile
@pytest.mark.parametrize("engine", ENGINES)
def test_a_renamed_audience_keys_new_list_holds_back_who_left_the_old_one(
    field_workspace,  # noqa: F811
    cli,
    engine,
):
    """A renamed key (vip -> vip-customers, no listName) is another audience to the
    marker, so nothing tied the new list to the old: who had left 'vip' themselves was
    added to 'vip-customers', and prune deleted 'vip' in that apply. Now a list created
    while a list of an audience no manifest declares is there is held to its departures:
    on that plan, and on the plans after (the new list's marker names the old one); the
    old list is kept while it holds anyone back."""
    ws, _server, proj = field_workspace("hybrid", engine)
    ws.destination(prune=True, policy={"allowListDeletion": True})
    people = ["a@example.com", "b@example.com", "c@example.com"]
    csv_audience(ws, "vip", "email", people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    _renamed_key(ws, people)

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_left_themselves"] == 1
    assert body["summary"]["lists_to_delete"] == 0
    (lp,) = body["destinations"][0]["lists"]
    assert (lp["list_name"], lp["resulting_members"]) == ("vip-customers", 2)
    notes = body["destinations"][0]["notes"]
    assert (
        f"list 'vip' (list {old_id}) was created for audience 'vip', which no manifest "
        "declares any more, and this plan creates list 'vip-customers': it stays, holding "
        "back who left it themselves (below). Who left it themselves is held back from the "
        "new list, on this plan and those after"
    ) in notes[0]
    assert notes[1].startswith(
        f"list 'vip' (list {old_id}) is not deleted, prune or not: its audience is declared "
        "no more, and 1 member who left it (or 'vip-customers') themselves is held back "
        "from 'vip-customers' because of it"
    )
    assert "b@example.com" not in plan.output

    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (new_id,) = [i for i, r in proj.lists.items() if r.name == "vip-customers"]
    assert sorted(proj.members(new_id)) == ["a@example.com", "c@example.com"]
    assert old_id in proj.lists
    assert f"; after {old_id}; run " in proj.lists[new_id].description
    # The plans after hold b back too: the new list's marker ties the old one to it.
    again = cli("plan", ws.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "held back: left the list themselves: 1" in again.stdout
    assert "description of list" not in again.stdout


@pytest.mark.field_profile
def test_a_renamed_key_that_kept_its_list_by_list_name_holds_back_when_it_changes_list(
    field_workspace,  # noqa: F811
    cli,
    tmp_path,
):
    """The rename in two steps: vip -> vip-customers with listName: vip (the list kept),
    then the listName dropped. The second step creates 'vip-customers' while list 'vip'
    names audience 'vip', declared no more: not the audience's former list to the
    marker, so who had left 'vip' was added; now held back."""
    ws, _server, proj = field_workspace("hybrid", "python")
    people = ["a@example.com", "b@example.com"]
    csv_audience(ws, "vip", "email", people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    _renamed_key(ws, people, listName="vip")
    kept = cli("plan", ws.manifests, "--format", "json").json()
    assert kept["summary"]["members_left_themselves"] == 1
    assert kept["summary"]["lists_to_create"] == 0

    _renamed_key(ws, people)
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["summary"]["members_left_themselves"] == 1
    # Applied from a saved plan, which keeps no list ids but its adds: the new list's
    # marker still names the old list, so the plans after hold b back too.
    saved = tmp_path / "rename.plan"
    assert cli("plan", ws.manifests, "--out", saved).exit_code == 0
    applied = cli("apply", "--plan", saved, "--yes")
    assert applied.exit_code == 0, applied.output
    (new_id,) = [i for i, r in proj.lists.items() if r.name == "vip-customers"]
    assert proj.members(new_id) == ["a@example.com"]
    again = cli("plan", ws.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "held back: left the list themselves: 1" in again.stdout


def test_every_list_created_beside_a_renamed_keys_old_list_holds_back_on_every_plan(
    field_workspace,  # noqa: F811
    cli,
):
    """Two lists created in the plan that follows a renamed key (vip -> vip-customers,
    and a new audience 'news'): both are held to list 'vip', and both stay so on the plans
    after, though one old list's departures then bear on two lists' (their consent read
    counted them for one of the two only, and the next plan added who left 'vip' to the
    other)."""
    ws, _server, proj = field_workspace("hybrid", "python")
    people = ["a@example.com", "b@example.com"]
    csv_audience(ws, "vip", "email", people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    _renamed_key(ws, people)
    csv_audience(ws, "news", "email", people)

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.json()["summary"]["members_left_themselves"] == 2, plan.output
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    for name in ("vip-customers", "news"):
        (new_id,) = [i for i, r in proj.lists.items() if r.name == name]
        assert proj.members(new_id) == ["a@example.com"], name
    again = cli("plan", ws.manifests, "--format", "json")
    assert again.json()["summary"]["members_left_themselves"] == 2, again.output
    assert again.json()["summary"]["members_to_add"] == 0


def test_the_note_on_a_renamed_keys_old_list_does_not_say_to_declare_it_again(
    field_workspace,  # noqa: F811
    cli,
):
    """After a renamed key (vip -> vip-customers) was applied with prune off, the plans
    after noted list 'vip' as declared no more and said "declare it again to keep managing
    it": declared again, 'vip' no longer holds back who left it themselves from
    'vip-customers', and the next plan adds them there. The note now says so and to leave
    it undeclared."""
    ws, _server, proj = field_workspace("hybrid", "python")
    people = ["a@example.com", "b@example.com"]
    csv_audience(ws, "vip", "email", people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    _renamed_key(ws, people)
    assert cli("apply", ws.manifests, "--yes").exit_code == 0

    plan = cli("plan", ws.manifests, "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    (note,) = plan.json()["destinations"][0]["notes"]
    assert "declare it again" not in note
    assert note == (
        f"list 'vip' (list {old_id}) was created by reconciler for audience 'vip' and no "
        "manifest declares it any more: prune is off, so it stays in Iterable as it is, "
        "no longer kept in line. It holds back who left it themselves from list "
        "'vip-customers': leave it undeclared (declared again, the next plan adds them "
        "there; `prune: true` deletes it once it holds nobody back)."
    )
    # What the note warns of: declared again, who left 'vip' is added to 'vip-customers'.
    csv_audience(ws, "vip", "email", people)
    again = cli("plan", ws.manifests, "--format", "json").json()
    assert again["summary"]["members_to_add"] == 1, again
