"""Moving off Segment's "Iterable Lists (Actions)" destination: its lists are adopted with
`reconciler import`, then kept in line by reconciler.

The Segment-made state is set up over HTTP as Segment's destination makes it
(segmentio/action-destinations, destinations/iterable-lists): a list created by
`POST /api/lists {name: <audience key>}` with no description (so no ownership marker),
members subscribed with the email and userId the profile had then and its dataFields (a
userID-based project's with `preferUserId`), audience exits sent to `/api/lists/unsubscribe`
with the audience's campaignId and channelUnsubscribe.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import EMULATOR_API_KEY
from tests.integration.test_iterable_answers import field_workspace  # noqa: F401 (a fixture)


class Segment:
    """What Segment's Iterable Lists destination sends, over the emulator's HTTP API."""

    def __init__(self, base_url: str, project_type: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Api-Key": EMULATOR_API_KEY})
        self.project_type = project_type

    def create_audience(self, key: str) -> int:
        """createAudience: the list is named by the audience key, with nothing else."""
        answer = self.http.post("/api/lists", json={"name": key})
        answer.raise_for_status()
        return int(answer.json()["listId"])

    def entered(self, list_id: int, *people: dict) -> None:
        subscribers = [
            {**p, "preferUserId": True} if self.project_type == "userId" else p for p in people
        ]
        answer = self.http.post(
            "/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers}
        )
        answer.raise_for_status()
        assert answer.json()["failCount"] == 0, answer.json()

    def exited(self, list_id: int, *people: dict, campaign_id: int | None = None) -> None:
        body: dict = {"listId": list_id, "subscribers": list(people), "channelUnsubscribe": False}
        if campaign_id is not None:
            body["campaignId"] = campaign_id
        self.http.post("/api/lists/unsubscribe", json=body).raise_for_status()

    def left_themselves(self, list_id: int, email: str) -> None:
        """A person's own unsubscribe (a link in an email), as the emulator's test route
        records it."""
        answer = self.http.post(
            "/_emulator/self-unsubscribe",
            json={"email": email, "listId": list_id, "unsubSource": "EmailLink"},
        )
        answer.raise_for_status()


def _import(cli, ws) -> Path:
    out = ws.manifests / "imported"
    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_a_listname_set_on_an_adopted_segment_list_keeps_who_left_it_off_the_new_list(
    field_workspace,  # noqa: F811
    cli,
):
    """Segment's lists carry no ownership marker, so a listName set on an adopted one (to
    give it a readable name) made a new list with nothing linking it to the old: who had
    left the Segment-made list by an unsubscribe link was put on the new list, and no note
    named the old list, which campaigns still send to."""
    ws, server, proj = field_workspace("hybrid", "python")
    segment = Segment(server.base_url, "hybrid")
    list_id = segment.create_audience("high_value_users")
    segment.entered(
        list_id,
        {"email": "ann@example.com", "userId": "u-ann", "dataFields": {"plan": "gold"}},
        {"email": "bob@example.com"},
    )
    segment.left_themselves(list_id, "bob@example.com")
    out = _import(cli, ws)
    # The team's warehouse still has bob in the audience.
    (out / "high_value_users.csv").write_text(
        "email,userId\nann@example.com,u-ann\nbob@example.com,\n"
    )
    manifest = out / "high_value_users.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "  destination: prod\n", "  destination: prod\n  listName: High value users\n"
        )
    )

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["lists_to_create"] == 1
    assert body["summary"]["members_left_themselves"] == 1
    assert body["summary"]["members_to_add"] == 1
    notes = body["destinations"][0]["notes"]
    assert any(f"list {list_id}" in n and "'high_value_users'" in n for n in notes), notes

    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (new_id,) = [i for i, r in proj.lists.items() if r.name == "High value users"]
    assert proj.members(new_id) == ["ann@example.com"]
    assert sorted(proj.members(list_id)) == ["ann@example.com"]
