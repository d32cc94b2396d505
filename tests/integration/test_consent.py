"""Never fight a person's own choice (issue 19, point 1): members who left a list by their
own action, or whose profile is unsubscribed from the list's channel, are not re-added
unless the audience says `resubscribe: allowed` (and then every plan says so in bold).

Through the CLI against the emulator over HTTP; the person's own unsubscribe goes through
the emulator's test-only control route, which records it as Iterable reports it.
"""

from __future__ import annotations

import httpx
import pytest

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


@pytest.mark.parametrize("engine", [*ENGINES, "duckdb-many"])
@pytest.mark.parametrize("project_type", ["hybrid", "userId"])
def test_people_who_left_are_held_back_and_api_removals_are_not(
    field_workspace,  # noqa: F811
    cli,
    engine,
    project_type,
    monkeypatch,
):
    many = engine == "duckdb-many"
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
    # The adds' channel unsubscribes: one user export, however many the adds.
    channel_exports = [r for r in exports if "unsubscribedChannelIds" in r.query]
    assert len(channel_exports) == 1

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
