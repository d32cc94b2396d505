"""Manifests with several destinations (a US and an EU project, each with its own key):
what each command says of each, and how one destination's trouble touches the others;
and destinations that name one project (a team's each), which read it once."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from reconciler.emulator import Limits
from reconciler.emulator.replies import EmulatorResponse
from tests.integration.conftest import API_KEY_VAR, Workspace


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
        "not sent after the destination's host could not be reached: 3 of 5 additions were not sent"
    )
    assert by_name["prod"][0]["added"] == 2 and by_name["prod"][0]["errors"] == []


def test_a_destination_whose_iterable_answers_503_is_not_sent_the_rest(
    workspace, eu, cli, emulator_server, monkeypatch
):
    # eu's Iterable goes down behind its load balancer after the first request: every
    # write is answered 503. Each request after it spent its whole retry budget (about
    # 30 s apiece with the default backoff: hours for a large list) while the
    # destinations after it waited; as for a host gone, the first request to give up on
    # it stops the destination, and the other destinations are applied.
    monkeypatch.setenv("RECONCILER_BATCH_SIZE", "1")
    monkeypatch.setenv("RECONCILER_CONCURRENCY", "1")
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "2")
    workspace.audience(
        "eu-vip", {"inline": [{"userId": f"u{i}"} for i in range(5)]}, "eu", listName="vip"
    )
    eu.emulator.project("default").add_list("vip")
    original = eu.emulator.handle
    subscribes: list[int] = []

    def down_after_the_first_subscribe(request: httpx.Request) -> EmulatorResponse:
        if request.url.path != "/api/lists/subscribe":
            return original(request)
        subscribes.append(1)
        if len(subscribes) == 1:
            return original(request)
        return EmulatorResponse(503, {"Content-Type": "text/html"}, b"<h1>503</h1>")

    eu.emulator.handle = down_after_the_first_subscribe  # type: ignore[method-assign]
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    by_name = {d["name"]: d["lists"] for d in result.json()["destinations"]}
    (eu_list,) = by_name["eu"]
    assert eu_list["added"] == 1
    # The second request's three tries, then nothing more.
    assert len(subscribes) == 1 + 3, len(subscribes)
    (failed, not_sent) = eu_list["errors"]
    assert "HTTP 503" in failed, failed
    assert not_sent == (
        "not sent after the destination's Iterable answered every try of a request with "
        "HTTP 503: 3 of 5 additions were not sent"
    ), not_sent
    assert by_name["prod"][0]["added"] == 2 and by_name["prod"][0]["errors"] == []


def test_a_destination_whose_iterable_answers_503_to_creates_creates_no_more(
    workspace, eu, cli, monkeypatch
):
    # A create is not sent again blindly: after each 503 the list index is read (waiting
    # out its lag: 7 minutes in all by default) to learn whether it was made. Each list
    # after the first spent all that again in a destination whose Iterable is down.
    monkeypatch.setenv("RECONCILER_CONCURRENCY", "1")
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "2")
    for name in ("a", "b", "c"):
        workspace.audience(f"eu-{name}", {"inline": [{"userId": "u1"}]}, "eu", listName=name)
    original = eu.emulator.handle
    creates: list[int] = []

    def down_for_creates(request: httpx.Request) -> EmulatorResponse:
        if request.method == "POST" and request.url.path == "/api/lists":
            creates.append(1)
            return EmulatorResponse(503, {"Content-Type": "text/html"}, b"<h1>503</h1>")
        return original(request)

    eu.emulator.handle = down_for_creates  # type: ignore[method-assign]
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    assert len(creates) == 3, len(creates)  # the first list's three tries, then none
    by_name = {
        d["name"]: {lst["list_name"]: lst for lst in d["lists"]}
        for d in result.json()["destinations"]
    }
    assert "HTTP 503" in by_name["eu"]["a"]["errors"][0]
    for later in ("b", "c", "vip"):
        assert "answered every try of a request with HTTP 503" in " ".join(
            by_name["eu"][later]["errors"]
        ), by_name["eu"][later]
    assert by_name["prod"]["vip"]["added"] == 2


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
        "not sent after the list was found deleted in Iterable: 3 of 5 additions were not sent"
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


def test_a_target_naming_a_destination_says_so_and_names_its_audiences(workspace, eu, cli):
    # A team with a staging and a production project reaches for `--target eu` to plan one
    # project; --target takes audiences, so it is told which ones, not only that 'eu' is
    # unknown beside every audience of every destination.
    result = cli("plan", workspace.manifests, "--target", "eu")
    assert result.exit_code == 1
    assert (
        "--target names unknown audience eu (a destination; its audiences are eu-vip: "
        "give each with --target)"
    ) in result.stderr, result.stderr


def test_a_misspelt_target_among_many_audiences_is_one_short_line(workspace, eu, cli):
    # 300 audiences (150 per destination) named every one of them after a one-letter slip:
    # about 4,000 characters on one line. Now the near miss, then the first 20 and the count.
    for n in range(150):
        workspace.audience(f"us-{n:03}", {"inline": ["a@example.com"]})
        workspace.audience(f"eu-{n:03}", {"inline": [{"userId": "u1"}]}, "eu")
    result = cli("plan", workspace.manifests, "--target", "eu-vpi", "--target", "zzz")
    assert result.exit_code == 1
    error = result.stderr.strip()
    assert error.startswith(
        "error: --target names unknown audiences eu-vpi (did you mean 'eu-vip'?), zzz; "
        "audiences are: "
    ), error
    assert error.endswith(" and 282 more"), error
    assert len(error) < 600, len(error)


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


# -- two destinations naming one project ----------------------------------------------

MEMBER_EXPORT = "/api/export/data.json"
EXPORT_START = "/api/export/start"


def _mapping(name: str, field: str) -> str:
    return json.dumps(
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": name},
            "spec": {"fields": {field: field}},
        }
    )


@pytest.fixture
def teams(workspace: Workspace, emulator_server, monkeypatch):
    """Destination "prod" and a team's destination "growth" naming the same project (the
    same host and key): "vip" (prod) knows members by userId and maps field `plan`;
    "trial" (growth) knows them by email and maps `tier`, and wants a profile that left
    the email channel. Both lists need removals, adds and field updates, and each
    audience wants back a person who left its list themselves."""
    monkeypatch.setenv("RECONCILER_EXPORTS_PER_MINUTE", "100000")  # the emulator has none
    monkeypatch.setenv("RECONCILER_EXPORT_POLL", "0.02")
    monkeypatch.setenv("RECONCILER_EXPORT_JOBS_PER_SECOND", "1000")
    workspace.destination("growth")
    proj = emulator_server.emulator.project("default")
    vip, trial = proj.add_list("vip"), proj.add_list("trial")
    proj.subscribe_direct(vip, user_id="u1", email="a@example.com", data_fields={"plan": "old"})
    proj.subscribe_direct(vip, email="b@example.com")
    proj.subscribe_direct(trial, user_id="u3", email="c@example.com", data_fields={"tier": "x"})
    proj.subscribe_direct(trial, email="d@example.com")
    proj.add_user(email="e@example.com")
    control = f"{emulator_server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": "e@example.com", "channel": True}).raise_for_status()
    for email, list_id in (("f@example.com", trial), ("g@example.com", vip)):
        proj.subscribe_direct(list_id, email=email)
        httpx.post(control, json={"email": email, "listId": list_id}).raise_for_status()
    workspace.write("traits.yaml", _mapping("crm", "plan") + "\n---\n" + _mapping("team", "tier"))
    workspace.csv(
        "vip.csv", "user_id,email,plan", ["u1,a@example.com,gold", "u9,,gold", ",g@example.com,"]
    )
    workspace.csv(
        "trial.csv",
        "email,tier",
        [
            "c@example.com,y",
            "d@example.com,x",
            "e@example.com,x",
            "f@example.com,",
            "y@example.com,x",
        ],
    )
    loose = {"maxRemovalPercent": 100}
    workspace.audience(
        "vip", {"csv": "vip.csv", "userId": "user_id", "email": "email"}, traits="crm", policy=loose
    )
    workspace.audience(
        "trial", {"csv": "trial.csv", "email": "email"}, "growth", traits="team", policy=loose
    )
    return emulator_server


def _member_reads(server) -> int:
    """The project's member reads: export jobs started, and user exports of list
    memberships (one per date window of the export read in windows)."""
    return sum(
        1
        for r in server.emulator.request_log
        if r.path == EXPORT_START
        or (r.path == MEMBER_EXPORT and "dataTypeName=user" in r.query and "ListIds" in r.query)
    )


def _consent_reads(server) -> int:
    """The consent guard's exports of the project's emailUnSubscribe events."""
    return sum(
        1
        for r in server.emulator.request_log
        if r.path == MEMBER_EXPORT and "dataTypeName=emailUnSubscribe" in r.query
    )


def _destinations(result) -> dict[str, dict]:
    """Each destination of a JSON plan, without how its members were read, nor where its
    consent guard's events came from."""
    assert result.exit_code == 0, result.output
    out = {}
    for destination in result.json()["destinations"]:
        destination.pop("member_read")
        destination["other_reads"] = [
            _as_if_events_own(text)
            for text in destination["other_reads"]
            if not re.search(r"taken from the user export of destination .*", text)
            # A destination's own reads that took one export between them: alone, its
            # reads take it; with another, the other's may.
            and "read from one user export of the project" not in text
        ]
        out[destination["name"]] = destination
    return out


SHARED_EVENTS = re.compile(
    r"; the emailUnSubscribe events taken from .*? the same Iterable project"
)
EVENTS = "1 export (emailUnSubscribe events"


def _as_if_events_own(text: str) -> str:
    """A consent line whose emailUnSubscribe events were taken from another destination's
    export, as it reads where the destination exported them itself: it counts no export
    of events (it said "2 exports" for one), and says whose it took."""
    if not SHARED_EVENTS.search(text):
        return text
    text = SHARED_EVENTS.sub("", text)
    assert "emailUnSubscribe events" not in text, text
    said = text.removeprefix("consent read with ")
    if said.startswith("1 export (profiles'"):
        said = said.replace("1 export (", "2 exports (emailUnSubscribe events, ", 1)
    elif said.startswith("profiles' ") and " from the members' " in said.split(";")[0]:
        said = re.sub(r"^(.*?)(; then,| and 1 read of the channels)", rf"{EVENTS}; \1)\2", said)
    else:
        said = f"{EVENTS}) and {said}"
    return f"consent read with {said}"


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("route", ["asyncExport", "export", "windowedExport"])
def test_two_destinations_of_one_project_read_it_once_and_plan_as_if_alone(
    workspace, teams, cli, monkeypatch, route, engine
):
    """Two exports of one project, one per destination, spent twice Iterable's budget of
    4 export starts a minute and twice the read of a large project. Each destination's
    plan (lists, members, fields, consent) is the one it makes alone."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", route)
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    alone, reads_alone = {}, []
    for audience in ("vip", "trial"):
        teams.emulator.clear_log()
        result = cli(
            "plan", workspace.manifests, "--target", audience, "--format", "json", "--show-members"
        )
        alone |= _destinations(result)
        reads_alone.append((_member_reads(teams), _consent_reads(teams)))
    teams.emulator.clear_log()

    both = cli("plan", workspace.manifests, "--format", "json", "--show-members")

    assert (_member_reads(teams), _consent_reads(teams)) == reads_alone[0] == reads_alone[1]
    assert reads_alone[0][1] == 1
    # Alone, each counts its one export of the events once (the profiles of who left
    # named by one identifier, read after, counted it again).
    for plan in alone.values():
        (consent,) = [t for t in plan["other_reads"] if t.startswith("consent read with ")]
        assert consent.count("emailUnSubscribe events") == 1, consent
    # Each holds back the one who left its own list, from the one read of the events.
    for name, person in (("prod", "g@example.com"), ("growth", "f@example.com")):
        (plan,) = alone[name]["lists"]
        assert plan["not_sent"]["left_themselves"]["sample"] == [person]
    said = {d["name"]: d["member_read"] for d in both.json()["destinations"]}
    assert _destinations(both) == alone
    # One destination read it; the other says whose export it took.
    shared = [
        name for name, text in said.items() if "which names the same Iterable project" in text
    ]
    assert len(shared) == 1, said
    other = ({"prod", "growth"} - set(shared)).pop()
    assert f"taken from the export of destination {other!r}" in said[shared[0]]


@pytest.mark.parametrize("route", ["asyncExport", "export", "windowedExport"])
def test_a_saved_plan_of_two_destinations_of_one_project_checks_it_with_one_read(
    workspace, teams, cli, monkeypatch, tmp_path, route
):
    monkeypatch.setenv("RECONCILER_MEMBER_READS", route)
    saved = tmp_path / "teams.plan"
    assert cli("plan", workspace.manifests, "--out", saved).exit_code == 0
    teams.emulator.clear_log()
    cli("plan", workspace.manifests, "--target", "vip")
    one_read = _member_reads(teams)
    teams.emulator.clear_log()

    applied = cli("apply", "--plan", saved, "--yes")

    assert applied.exit_code == 0, applied.output  # not stale: both read as when planned
    assert _member_reads(teams) == one_read
    proj = teams.emulator.project("default")
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
    assert proj.user_by_user_id("u1").data_fields["plan"] == "gold"


def test_status_of_two_destinations_of_one_project_reads_it_once(
    workspace, teams, cli, monkeypatch
):
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    teams.emulator.clear_log()
    result = cli("status", workspace.manifests)
    assert result.exit_code in (0, 2), result.output
    assert _member_reads(teams) == 1


@pytest.mark.parametrize("other", ["another key", "another project type"])
def test_destinations_not_known_to_be_one_project_each_read_their_own(
    workspace, teams, cli, monkeypatch, other
):
    """Only the same host, key and project type are one read: another key may be another
    project (or the same one: it is not known), and a destination that takes the project
    for another type reads it as that type says."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    if other == "another key":
        teams.emulator.add_project("other", "hybrid", "other-key")
        monkeypatch.setenv("OTHER_KEY", "other-key")
        workspace.destination("growth", apiKey={"env": "OTHER_KEY"})
        teams.emulator.project("other").add_list("trial")
    else:
        workspace.destination("growth", projectType="userId")
        workspace.csv("trial.csv", "user_id,tier", ["u3,y"])
        workspace.audience(
            "trial",
            {"csv": "trial.csv", "userId": "user_id"},
            "growth",
            traits="team",
            policy={"maxRemovalPercent": 100},
        )
    teams.emulator.clear_log()

    result = cli("plan", workspace.manifests, "--format", "json")

    assert result.exit_code in (0, 3), result.output  # blocked or not, it was read
    assert _member_reads(teams) == 2
    said = " ".join(d["member_read"] for d in result.json()["destinations"])
    assert "which names the same Iterable project" not in said


def test_a_shared_export_stops_with_the_plan_and_leaves_no_thread(
    workspace, teams, cli, monkeypatch
):
    # The export streams 2 users a second: only abandoning it ends its readers.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    teams.emulator.faults.export_members_per_second = 2.0
    workspace.csv("trial.csv", "email,tier", ['"c@example.com'])  # fails once parsed
    started = time.monotonic()

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert "trial.csv:2: not valid CSV" in result.stderr
    assert time.monotonic() - started < 20
    background = ("reconciler-prefetch", "reconciler-window")
    assert not [t.name for t in threading.enumerate() if t.name.startswith(background)]
    assert _member_reads(teams) == 1


def test_a_shared_export_that_fails_leaves_each_destination_to_read_by_getusers(
    workspace, teams, cli, monkeypatch
):
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    clean = cli("plan", workspace.manifests, "--format", "json", "--show-members")
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    # The shared export's request answers 500, and so does its one retry.
    teams.emulator.faults.update({"script": [500, 500], "paths": [MEMBER_EXPORT]})
    teams.emulator.clear_log()

    result = cli("plan", workspace.manifests, "--format", "json", "--show-members")

    got, want = _destinations(result), _destinations(clean)
    for plan in (*got.values(), *want.values()):
        # Consent and fields are read again, each destination alone, as without sharing.
        plan.pop("other_reads")
        plan["field_updates"].pop("read")
    assert got == want
    assert [r.status for r in teams.emulator.request_log if r.path == MEMBER_EXPORT][:2] == [
        500,
        500,
    ]
    said = [d["member_read"] for d in result.json()["destinations"]]
    assert all(text.startswith("members of 1 list read with 1 getUsers call") for text in said)
    getusers = [r for r in teams.emulator.request_log if r.path == "/api/lists/getUsers"]
    assert len(getusers) == 2


def _user_exports(server) -> dict[str, int]:
    """The project's user exports other than of list memberships, by what they read:
    mapped fields' values ('fields'), profiles' channel unsubscribes ('consent'), hybrid
    userIds' emails or whether users exist (both identifiers alone: 'lookup'), or all of
    these at once ('shared')."""
    counts = {"fields": 0, "consent": 0, "lookup": 0, "shared": 0}
    for r in server.emulator.request_log:
        if r.path != MEMBER_EXPORT or "dataTypeName=user" not in r.query or "ListIds" in r.query:
            continue
        asked = set(re.findall(r"onlyFields=([^&]+)", r.query)) - {"email", "userId"}
        if "unsubscribedChannelIds" in asked and asked & {"plan", "tier"}:
            counts["shared"] += 1
        elif "unsubscribedChannelIds" in asked:
            counts["consent"] += 1
        elif asked:
            counts["fields"] += 1
        else:
            counts["lookup"] += 1
    return counts


@pytest.fixture
def teams_by_getusers(workspace: Workspace, teams, monkeypatch):
    """`teams`, its lists read by getUsers; both audiences know members by userId and by
    email alone, and each list holds a profile with a userId whose email is looked up
    (the hybrid getUsers read reports it by userId). Every read of profiles is by an
    export: mapped fields' values, hybrid lookups, and the consent guard's profiles
    (too many per-user reads for the adds, at one in 100 s)."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "0.01")
    proj = teams.emulator.project("default")
    vip, trial = (next(i for i, x in proj.lists.items() if x.name == n) for n in ("vip", "trial"))
    proj.subscribe_direct(vip, user_id="u7", email="h@example.com")
    proj.subscribe_direct(trial, user_id="u8", email="i@example.com")
    workspace.csv(
        "trial.csv",
        "user_id,email,tier",
        [
            "u3,c@example.com,y",
            ",d@example.com,x",
            ",e@example.com,x",
            ",f@example.com,",
            ",y@example.com,x",
            ",i@example.com,x",
        ],
    )
    loose = {"maxRemovalPercent": 100}
    workspace.audience(
        "trial",
        {"csv": "trial.csv", "userId": "user_id", "email": "email"},
        "growth",
        traits="team",
        policy=loose,
    )
    return teams


@pytest.mark.parametrize("existing", [False, True], ids=["", "updateExistingUsersOnly"])
@pytest.mark.parametrize("engine", ["python", "duckdb", "duckdb-unheld"])
def test_two_destinations_read_by_getusers_share_the_project_user_export(
    workspace, teams_by_getusers, cli, monkeypatch, engine, existing, tmp_path
):
    """Read by getUsers, two destinations of one project each made their own exports of
    every profile: mapped fields' values, the consent guard's channel unsubscribes and the
    hybrid userIds' emails (and with updateExistingUsersOnly, whether the adds exist), 6
    (8) from Iterable's 4 a minute. The first to need one now exports the project once
    with every field, and each destination's plan is the one it makes alone.
    duckdb-unheld: adds too many to hold as members (over MAX_TABLE_CHECK), whose
    existence is matched in DuckDB; the taker's note named that read "mapped fields'
    values"."""
    server = teams_by_getusers
    temp = tmp_path / "temp"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(temp))
    if engine != "python":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    if engine == "duckdb-unheld":
        monkeypatch.setattr("reconciler.state.unsendable.MAX_TABLE_CHECK", 0)
    if existing:
        for name in ("aud-vip.yaml", "aud-trial.yaml"):
            path = workspace.manifests / name
            doc = json.loads(path.read_text())
            doc["spec"]["updateExistingUsersOnly"] = True
            path.write_text(json.dumps(doc))
    alone = {}
    for audience in ("vip", "trial"):
        server.emulator.clear_log()
        result = cli(
            "plan", workspace.manifests, "--target", audience, "--format", "json", "--show-members"
        )
        alone |= _destinations(result)
        # Alone, a destination makes one export for all of its reads (it made one each).
        assert _user_exports(server) == {"fields": 0, "consent": 0, "lookup": 0, "shared": 1}
        (said,) = [
            t
            for d in result.json()["destinations"]
            for t in d["other_reads"]
            if "read from one user export of the project" in t
        ]
        reads = "emails of userIds, users' existence, " if existing else "emails of userIds, "
        assert said.startswith(reads), said
    server.emulator.clear_log()

    both = cli("plan", workspace.manifests, "--format", "json", "--show-members")

    assert _user_exports(server) == {"fields": 0, "consent": 0, "lookup": 0, "shared": 1}
    assert not list(temp.glob("reconciler-shared-*"))  # the file (emails) went with the plan
    notes = {
        d["name"]: [t for t in d["other_reads"] if "taken from the user export" in t]
        for d in both.json()["destinations"]
    }
    # One read the export, for both; the other says whose it took, and for what.
    (reader,) = [name for name, said in notes.items() if not said]
    (taker,) = {"prod", "growth"} - {reader}
    # The export's request is counted once, in the reader's plan (each counted it, and the
    # taker's consent line said "2 exports"); the taker's reads say whose it took.
    plans = _destinations(both)
    assert plans[reader]["field_updates"]["read"]["requests"] == 1
    assert plans[taker]["field_updates"]["read"]["requests"] == 0
    plans[taker]["field_updates"]["read"]["requests"] = 1
    took = (
        f"1 export (emailUnSubscribe events) and profiles' unsubscribedChannelIds from the user "
        f"export destination {reader!r} made, which names the same Iterable project (1 request, "
        "counted there)"
    )
    consent = [t for t in plans[taker]["other_reads"] if t.startswith("consent read with ")]
    assert len(consent) == 1 and took in consent[0], consent
    export = took.split(" from ", 1)[1]
    if existing:
        assert f"2 users checked for existence with {export}" in plans[taker]["other_reads"]
    plans[taker]["other_reads"] = [
        t.replace(
            took, "2 exports (emailUnSubscribe events, profiles' unsubscribedChannelIds)"
        ).replace(export, "1 user export")
        for t in plans[taker]["other_reads"]
    ]
    assert plans == alone
    # In the order the plan reads them: whether the adds exist before the consent guard
    # reads who opted out (only of adds that are sent).
    taken = (
        "emails of userIds, users' existence, profiles' unsubscribedChannelIds and mapped "
        "fields' values"
        if existing
        else "emails of userIds, profiles' unsubscribedChannelIds and mapped fields' values"
    )
    assert notes[taker] == [
        f"{taken} taken from the user export of destination {reader!r}, which names the same "
        "Iterable project"
    ]
    if existing:  # the adds Iterable does not know are left out, as alone
        said = " ".join(t for d in alone.values() for t in d["other_reads"])
        assert "checked for existence with 1 user export" in said
    # The plans did their work: each holds back its leaver and updates its fields.
    for name, person in (("prod", "g@example.com"), ("growth", "f@example.com")):
        (plan,) = alone[name]["lists"]
        assert plan["not_sent"]["left_themselves"]["sample"] == [person]
        assert alone[name]["field_updates"]["count"] > 0


def test_destinations_of_one_project_pace_their_reads_together(
    tmp_path, make_emulator_server, monkeypatch, cli
):
    """Each destination's client paced itself to Iterable's 5 getUsers a minute, so two
    destinations of one project sent 10 in the first minute and 5 met 429s (retried,
    each costing retry budget and a wait). Iterable's limits at 30 times speed: a minute
    is 2 s."""
    server = make_emulator_server(limits=Limits.iterable().scaled(30))
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.setenv("RECONCILER_TIME_SCALE", "30")
    monkeypatch.setenv("RECONCILER_READ_LAG", "0")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "hybrid")
    ws.destination()
    ws.destination("growth")
    proj = server.emulator.project("default")
    for destination in ("prod", "growth"):
        for i in range(5):
            name = f"{destination}-{i}"
            proj.subscribe_direct(proj.add_list(name), email=f"{name}@example.com")
            ws.audience(name, {"inline": [f"{name}@example.com"]}, destination)

    result = cli("plan", ws.manifests, "--detailed-exitcode")

    assert result.exit_code == 0, result.output
    statuses = [r.status for r in server.emulator.request_log if r.path == "/api/lists/getUsers"]
    assert statuses == [200] * 10
