"""GET /api/campaigns as Iterable documents it (paginated CampaignsResponse), with campaigns
seeded by a test-only control route, since Iterable creates them in its web app."""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler.emulator import Emulator, EmulatorServer, Limits, Project
from reconciler.iterable import IterableClient
from tests.conftest import EMULATOR_API_KEY
from tests.emulator.support import client_for

SECRET = "campaign-test-key"


def test_control_route_seeds_campaigns_that_the_api_pages_through(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("vip")
    for i in range(3):
        seeded = client.post(
            "/_emulator/campaigns",
            json={
                "name": f"c{i}",
                "type": "Triggered",
                "campaignState": "Running",
                "listIds": [list_id],
                "suppressionListIds": [],
            },
        )
        assert seeded.status_code == 200, seeded.text

    first = client.get("/api/campaigns", params={"page": 1, "pageSize": 2}).json()
    assert [c["name"] for c in first["campaigns"]] == ["c0", "c1"]
    assert first["totalCampaignsCount"] == 3
    assert "page=2" in first["nextPageUrl"]
    second = client.get("/api/campaigns", params={"page": 2, "pageSize": 2}).json()
    assert [c["name"] for c in second["campaigns"]] == ["c2"]
    assert "nextPageUrl" not in second
    assert second["campaigns"][0]["listIds"] == [list_id]
    assert second["campaigns"][0]["type"] == "Triggered"
    assert second["campaigns"][0]["campaignState"] == "Running"
    assert client.get("/api/campaigns", params={"pageSize": 1001}).status_code == 400


def test_the_client_reads_every_page(emulator_server: EmulatorServer, project: Project) -> None:
    for i in range(1002):
        project.add_campaign(f"c{i}", suppression_list_ids=[7])
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY) as iterable:
        campaigns = iterable.get_campaigns()
    assert len(campaigns) == 1002
    assert campaigns[-1].suppression_list_ids == (7,)
    pages = [r for r in emulator_server.emulator.request_log if r.path == "/api/campaigns"]
    assert len(pages) == 2


def test_campaigns_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "emulator.json"
    first = Emulator(limits=Limits.unlimited(), state_path=state)
    first.add_project("default", "email", SECRET)
    with EmulatorServer(first) as server, client_for(server, SECRET) as client:
        client.post("/_emulator/campaigns", json={"name": "Welcome", "listIds": [5]})
    second = Emulator.load(state, limits=Limits.unlimited())
    (campaign,) = second.project("default").campaigns.values()
    assert campaign["name"] == "Welcome"
    assert campaign["listIds"] == [5]
