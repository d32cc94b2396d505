"""Manifests with several destinations (a US and an EU project, each with its own key):
what each command says of each, and how one destination's trouble touches the others."""

from __future__ import annotations

import httpx
import pytest

from reconciler.emulator.replies import EmulatorResponse
from tests.integration.conftest import Workspace


@pytest.fixture
def eu(workspace: Workspace, make_emulator_server, monkeypatch):
    """A second destination, "eu": a userID-based project on a server of its own, with a
    key of its own; each destination holds a list named "vip"."""
    server = make_emulator_server(project_type="userId", api_key="eu-key")
    monkeypatch.setenv("EU_KEY", "eu-key")
    workspace.destination(
        "eu", region="eu", projectType="userId", baseUrl=server.base_url, apiKey={"env": "EU_KEY"}
    )
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    workspace.audience(
        "eu-vip", {"inline": [{"userId": "u1"}, {"userId": "u2"}]}, "eu", listName="vip"
    )
    return server


def test_progress_names_the_destination_each_read_is_of(workspace, eu, cli, emulator_server):
    for server in (emulator_server, eu):
        project = server.emulator.project("default")
        project.subscribe_direct(project.add_list("vip"), user_id="u1", email="a@example.com")
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 0, result.output
    # Two reads of a list named "vip": each says which project it is reading.
    assert "destination 'prod': reading list 'vip': started" in result.stderr
    assert "destination 'eu': reading list 'vip': started" in result.stderr


def test_progress_of_an_export_names_the_destination_and_counts_one_list(
    workspace, eu, cli, emulator_server, monkeypatch
):
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    for server in (emulator_server, eu):
        project = server.emulator.project("default")
        project.subscribe_direct(project.add_list("vip"), user_id="u1", email="a@example.com")
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 0, result.output
    for name in ("prod", "eu"):
        assert f"destination '{name}': reading members of 1 list (one user export)" in (
            result.stderr
        )


def test_an_overridden_policy_warning_names_the_destination_and_list(
    workspace, eu, cli, emulator_server
):
    # Both destinations hold a list "vip"; only eu's removes more than the policy allows.
    for server in (emulator_server, eu):
        project = server.emulator.project("default")
        list_id = project.add_list("vip")
        project.subscribe_direct(list_id, user_id="u1", email="a@example.com")
    eu.emulator.project("default").subscribe_direct(1000001, user_id="gone")
    result = cli("apply", workspace.manifests, "--yes", "--allow-removals", "--format", "json")
    assert result.exit_code == 0, result.output
    # With JSON on stdout this line is all stderr says of it: it must say where.
    assert "warning: applying despite the safety policy: eu/vip: removes 1 of 2 members" in (
        result.stderr
    )


def test_a_destination_that_goes_unreachable_midway_is_not_sent_the_rest(
    workspace, eu, cli, emulator_server, monkeypatch
):
    # One member a request, one at a time: eu's five adds are five requests. Its server
    # goes away once the first is answered; every request after it would spend its whole
    # retry budget (about 30 s each with the default backoff, minutes with timeouts)
    # while the destinations after it wait.
    monkeypatch.setenv("RECONCILER_BATCH_SIZE", "1")
    monkeypatch.setenv("RECONCILER_CONCURRENCY", "1")
    workspace.audience(
        "eu-vip", {"inline": [{"userId": f"u{i}"} for i in range(5)]}, "eu", listName="vip"
    )
    eu.emulator.project("default").add_list("vip")
    original = eu.emulator.handle

    def go_away_after_the_first_subscribe(request: httpx.Request) -> EmulatorResponse:
        answer = original(request)
        if request.url.path == "/api/lists/subscribe":
            eu.emulator.handle = original  # type: ignore[method-assign]
            server = eu._server
            assert server is not None and eu._thread is not None
            server.wake()  # no more connections accepted, and none refused by a backlog
            eu._thread.join(5)
            server.socket.close()
            answer.headers["Connection"] = "close"
        return answer

    eu.emulator.handle = go_away_after_the_first_subscribe  # type: ignore[method-assign]
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    by_name = {d["name"]: d["lists"] for d in result.json()["destinations"]}
    (eu_list,) = by_name["eu"]
    assert eu_list["added"] == 1
    # The request that found the host gone says so; the three after it were not sent.
    (failed, not_sent) = eu_list["errors"]
    assert "could not connect to 127.0.0.1" in failed
    assert not_sent == (
        "not sent after the destination's host could not be reached: 3 of 5 additions and "
        "0 of 0 removals were not sent"
    )
    assert by_name["prod"][0]["added"] == 2 and by_name["prod"][0]["errors"] == []


def test_a_list_deleted_by_hand_during_apply_is_sent_nothing_more(
    workspace, eu, cli, emulator_server, monkeypatch
):
    monkeypatch.setenv("RECONCILER_BATCH_SIZE", "1")
    monkeypatch.setenv("RECONCILER_CONCURRENCY", "1")
    workspace.audience(
        "eu-vip", {"inline": [{"userId": f"u{i}"} for i in range(5)]}, "eu", listName="vip"
    )
    project = eu.emulator.project("default")
    list_id = project.add_list("vip")
    original = eu.emulator.handle

    def delete_after_the_first_subscribe(request: httpx.Request) -> EmulatorResponse:
        answer = original(request)
        if request.url.path == "/api/lists/subscribe":
            eu.emulator.handle = original  # type: ignore[method-assign]
            project.delete_list(list_id)  # someone deletes it in Iterable's web app
        return answer

    eu.emulator.handle = delete_after_the_first_subscribe  # type: ignore[method-assign]
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    by_name = {d["name"]: d["lists"] for d in result.json()["destinations"]}
    (eu_list,) = by_name["eu"]
    assert eu_list["added"] == 1
    # One request learns the list is gone; it says so, and the rest are not sent to it.
    (failed, not_sent) = eu_list["errors"]
    assert "invalidListId" in failed and "no longer exists in Iterable" in failed
    assert not_sent == (
        "not sent after the list was found deleted in Iterable: 3 of 5 additions and 0 of 0 "
        "removals were not sent"
    )
    subscribes = [r for r in eu.emulator.request_log if r.path == "/api/lists/subscribe"]
    assert len(subscribes) == 2
    assert by_name["prod"][0]["added"] == 2 and by_name["prod"][0]["errors"] == []
    # The next plan makes the list again, with every member.
    again = cli("plan", workspace.manifests, "--format", "json").json()["summary"]
    assert again["lists_to_create"] == 1 and again["members_to_add"] == 5


def test_a_json_error_names_the_destination_for_machines(workspace, eu, cli, monkeypatch):
    # A scheduled job with a US and an EU project routes the failure to whoever owns the
    # destination: in the JSON object as a field, not only inside the message.
    monkeypatch.setenv("EU_KEY", "revoked")
    for command in ("plan", "status"):
        result = cli(command, workspace.manifests, "--format", "json")
        assert result.exit_code == 1
        error = result.json()
        assert error["destination"] == "eu"
        assert error["error"].startswith("destination 'eu': GET /api/lists: Iterable rejected")


def test_a_json_error_names_the_destination_whose_key_is_not_set(workspace, eu, cli, monkeypatch):
    # The commonest failure of a job with two projects: one secret missing. The README
    # promises `destination` for an error in one destination, its key included.
    monkeypatch.delenv("EU_KEY")
    for command in (("plan",), ("status",), ("apply", "--yes")):
        result = cli(*command, workspace.manifests, "--format", "json")
        assert result.exit_code == 1, result.output
        error = result.json()
        assert error["destination"] == "eu", error
        assert "environment variable EU_KEY is not set" in error["error"]
        # Named once, where the message already names it.
        assert error["error"].count("destination 'eu'") == 1, error["error"]


def test_a_stale_plan_in_json_names_the_destination_whose_list_changed(
    workspace, eu, cli, tmp_path
):
    # Each destination holds a list "vip": the field says which changed, and the message
    # names it once.
    eu_project = eu.emulator.project("default")
    vip = eu_project.add_list("vip", None)
    eu_project.subscribe_direct(vip, user_id="u1")
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    eu_project.subscribe_direct(vip, user_id="u9")

    result = cli("apply", "--plan", planfile, "--yes", "--format", "json")

    assert result.exit_code == 4, result.output
    out = result.json()
    assert out["destination"] == "eu", out
    assert out["error"].startswith("stale plan: list 'vip' in destination 'eu' changed")
    assert out["error"].count("destination 'eu'") == 1
