"""The tool against what the real Iterable does in the field (issue 16, points 1, 2, 3, 9):
an absent channelUnsubscribe taken as true, new lists refusing writes for a while, reads
lagging writes, and the size limit on subscribe bodies. Each test turns on only the knob
it is about (the whole suite also runs under the full profile, see conftest.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator import EmulatorResponse
from reconciler.emulator.emulator import MAX_BATCH_BYTES
from reconciler.emulator.replies import fault_reply
from reconciler.errors import ConfigError
from reconciler.iterable import ClientSettings, IterableClient
from tests.integration.reliability import lists_by_name, members_of


def project(server):
    return server.emulator.project("default")


def only_list(server, name: str) -> int:
    ids = lists_by_name(server)[name]
    assert len(ids) == 1, ids
    return ids[0]


def test_removing_members_never_unsubscribes_them_from_the_channel(workspace, cli, emulator_server):
    """Point 1: Iterable takes an absent channelUnsubscribe as true; it is always sent."""
    emulator_server.emulator.faults.absent_channel_unsubscribe_is_true = True
    workspace.audience(
        "vip", {"inline": ["a@example.com", "b@example.com"]}, policy={"maxRemovalPercent": 100}
    )
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.audience("vip", {"inline": ["a@example.com"]}, policy={"maxRemovalPercent": 100})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    proj = project(emulator_server)
    assert proj.members(only_list(emulator_server, "vip")) == ["a@example.com"]
    removed = proj.find_user(email="b@example.com")
    assert removed is not None
    assert set(removed.unsubscribed_channel_ids) == set()  # consent kept


def test_an_audience_that_opts_in_does_unsubscribe_from_the_channel(
    workspace, cli, emulator_server
):
    emulator_server.emulator.faults.absent_channel_unsubscribe_is_true = True
    spec = {"policy": {"maxRemovalPercent": 100}, "unsubscribe": {"channelUnsubscribe": True}}
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]}, **spec)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.audience("vip", {"inline": ["a@example.com"]}, **spec)
    record = workspace.root / "run.json"
    result = cli("apply", workspace.manifests, "--yes", "--summary-json", record)
    assert result.exit_code == 0, result.output
    removed = project(emulator_server).find_user(email="b@example.com")
    assert removed is not None and removed.unsubscribed_channel_ids
    # The report and the run record (the audit trail) say consent was taken, not only
    # that a member left the list.
    assert "1 of the removed also unsubscribed from the list's channel" in result.stdout
    (listed,) = json.loads(record.read_text())["lists"]
    assert (listed["removed"], listed["channel_unsubscribed"]) == (1, 1)


def test_a_new_list_is_written_to_once_iterable_accepts_it(
    workspace, cli, emulator_server, monkeypatch
):
    """Point 2: a new list refuses writes (400 invalidListId) for a while after its create;
    the first apply waits that out (bounded, and says so) instead of failing."""
    emulator_server.emulator.faults.fresh_list_seconds = 1.0
    monkeypatch.setenv("RECONCILER_FRESH_LIST_WAIT", "10")
    workspace.audience("fresh", {"inline": ["a@example.com", "b@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert "does not accept writes to it yet (invalidListId)" in result.stderr
    assert "up to 10 s" in result.stderr
    members = project(emulator_server).members(only_list(emulator_server, "fresh"))
    assert sorted(members) == ["a@example.com", "b@example.com"]


def test_a_new_list_that_stays_refused_fails_clearly_within_the_bound(
    workspace, cli, emulator_server, monkeypatch
):
    emulator_server.emulator.faults.fresh_list_seconds = 30.0
    monkeypatch.setenv("RECONCILER_FRESH_LIST_WAIT", "0.3")
    workspace.audience("fresh", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1
    assert "still refused writes to the list" in result.stdout
    assert "RECONCILER_FRESH_LIST_WAIT" in result.stdout


def lose_the_first_create_answer(server) -> dict[str, int]:
    """The create is done, then a gateway answers 504: the client cannot know it happened."""
    emulator = server.emulator
    original = emulator.handle
    calls = {"creates": 0}

    def handle(request: httpx.Request) -> EmulatorResponse:
        answer = original(request)
        if request.method == "POST" and request.url.path == "/api/lists":
            calls["creates"] += 1
            if calls["creates"] == 1:
                return fault_reply(504, None)
        return answer

    emulator.handle = handle  # type: ignore[method-assign]
    return calls


def test_a_lost_create_answer_under_read_lag_never_creates_the_list_twice(
    workspace, cli, emulator_server, monkeypatch
):
    """Point 3: the list index lags the create; the client watches it (bounded) and knows
    its own list by the run token in its description."""
    emulator_server.emulator.faults.read_lag_seconds = 0.5
    monkeypatch.setenv("RECONCILER_READ_LAG", "5")
    calls = lose_the_first_create_answer(emulator_server)
    workspace.audience("once", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert calls["creates"] == 1
    assert (
        "creating list 'once': POST /api/lists failed (HTTP 504; try 1 of 7), so the list may "
        "or may not have been created; waiting up to 5 s for Iterable's list index"
    ) in result.stderr
    list_id = only_list(emulator_server, "once")
    assert project(emulator_server).members(list_id) == ["a@example.com"]
    description = project(emulator_server).lists[list_id].description
    assert description is not None
    assert description.startswith("[managed-by: reconciler; audience: once; run ")


def test_creates_refused_with_503s_say_what_failed_and_which_try_each_wait_is(
    workspace, cli, emulator_server, monkeypatch
):
    """A create answered 503 may have been done (a gateway can time out after the work),
    so each try is followed by a wait of up to the read lag for the list index, 7 minutes
    in all by default. Each wait said 'the answer was lost', seven times alike, where
    Iterable had answered 503, and the retries after them were silent."""
    monkeypatch.setenv("RECONCILER_READ_LAG", "0.2")
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "3")
    emulator = emulator_server.emulator
    original = emulator.handle
    refused = {"creates": 0}

    def handle(request: httpx.Request) -> EmulatorResponse:
        if request.method == "POST" and request.url.path == "/api/lists" and refused["creates"] < 2:
            refused["creates"] += 1
            return fault_reply(503, None)  # refused before anything was done
        return original(request)

    emulator.handle = handle  # type: ignore[method-assign]
    workspace.audience("twice", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    for n in (1, 2):
        assert (
            f"creating list 'twice': POST /api/lists failed (HTTP 503; try {n} of 4), so the "
            "list may or may not have been created; waiting up to 0.2 s"
        ) in result.stderr
        assert (
            f"POST /api/lists: HTTP 503, and Iterable's lists show it was not done; retry {n} "
            "of 3 in"
        ) in result.stderr
    assert "answer was lost" not in result.stderr
    list_id = only_list(emulator_server, "twice")
    assert project(emulator_server).members(list_id) == ["a@example.com"]


def test_someone_elses_list_of_the_same_name_is_not_taken_for_ours(
    workspace, cli, emulator_server, monkeypatch
):
    """A list of the same name without this run's token appears: ours was not created
    (the lag has passed), so the create is sent again, and Iterable then has two. The
    other is not marked for the audience, so it is someone else's: this run keeps and
    fills its own, and says that the next plan leaves the audience out until the other
    is deleted or renamed (it said "Apply complete" before)."""
    emulator_server.emulator.faults.read_lag_seconds = 0.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "0.2")
    emulator = emulator_server.emulator
    original = emulator.handle
    state = {"creates": 0}

    def handle(request: httpx.Request) -> EmulatorResponse:
        if request.method == "POST" and request.url.path == "/api/lists":
            state["creates"] += 1
            if state["creates"] == 1:
                # Refused by a gateway before it reached Iterable; meanwhile a person made a
                # list of that name by hand.
                project(emulator_server).add_list("once", "made by hand")
                return fault_reply(504, None)
        return original(request)

    emulator.handle = handle  # type: ignore[method-assign]
    workspace.audience("once", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output
    assert "another list named 'once' (list " in result.stdout
    assert "delete or rename it in Iterable" in result.stdout
    assert state["creates"] == 2
    ours = [
        r
        for r in project(emulator_server).lists.values()
        if r.name == "once" and r.description and "managed-by" in r.description
    ]
    assert len(ours) == 1 and project(emulator_server).members(ours[0].id) == ["a@example.com"]


def test_a_plan_right_after_an_apply_waits_out_the_read_lag(
    workspace, cli, emulator_server, monkeypatch
):
    """Point 3: right after an apply, Iterable's reads do not show it yet; the plan waits
    (bounded) instead of planning the apply again, and says so in its output. An apply
    waits that out itself before it ends, unless its wait is cut short (Ctrl-C): then a
    plan from this checkout waits out the rest by its run journal. Here the apply runs
    without the lag, as one whose wait was cut short."""
    emulator_server.emulator.faults.read_lag_seconds = 1.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "0")
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0

    # Well beyond the emulator's lag: on a loaded machine the plan may start over a second
    # after the apply's last write.
    monkeypatch.setenv("RECONCILER_READ_LAG", "4")
    result = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "Waiting" in result.stderr and "RECONCILER_READ_LAG" in result.stderr
    note = result.json()["destinations"][0]["read_note"]
    assert "the plan waited" in note
    text = cli("plan", workspace.manifests)
    assert "the plan waited" not in text.stdout  # the lag has passed by now
    # A second apply at once neither creates the list again nor resends the members.
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert len(lists_by_name(emulator_server)["vip"]) == 1


def test_an_apply_started_elsewhere_right_after_an_apply_does_not_create_its_lists_again(
    workspace, cli, emulator_server, monkeypatch, tmp_path
):
    """Iterable's list index lags creates. A run that has not got the last apply's journal
    (a CI runner, another machine, another --state-dir) cannot wait out the lag, so the
    apply that created the lists waits, before it ends, until the index shows them."""
    emulator_server.emulator.faults.read_lag_seconds = 1.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "3")
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    first = cli("apply", workspace.manifests, "--yes", "--state-dir", tmp_path / "here")
    assert first.exit_code == 0, first.output
    assert "list index to show" in first.stderr
    # Counted in words: one list is "1 list" and "it", never "1 list(s)" and "them".
    said = " ".join(first.stderr.split())
    assert "the 1 list this run created" in said and "does not create it again" in said

    again = cli("apply", workspace.manifests, "--yes", "--state-dir", tmp_path / "elsewhere")
    # Its members may still lag: then the list is left out of that plan (exit 1), never
    # planned from a read that shows nobody.
    if again.exit_code != 0:
        assert again.exit_code == 1 and "left out of this plan" in again.stdout, again.output
    assert 'create list "vip"' not in again.stdout
    assert len(lists_by_name(emulator_server)["vip"]) == 1


def test_a_sync_on_another_runner_right_after_an_apply_finds_nothing_to_do(
    workspace, cli, emulator_server, monkeypatch, tmp_path
):
    """A CI runner is fresh each time: the sync queued behind the merge's apply plans on
    another, without that apply's run journal. Started within Iterable's read lag, it read
    the list as it was before the apply, planned its removals again, and the guard the
    apply had been told to override (--allow-removals) blocked it (exit 3, an alert). The
    apply waits, before it ends, until its writes show."""
    emulator_server.emulator.faults.read_lag_seconds = 1.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "2")
    members = ["a@example.com", "b@example.com", "c@example.com"]
    policy = {"maxRemovalPercent": 50}
    workspace.audience("vip", {"inline": members}, policy=policy)
    merge = tmp_path / "merge-runner"
    assert cli("apply", workspace.manifests, "--yes", "--state-dir", merge).exit_code == 0
    workspace.audience("vip", {"inline": members[:1]}, policy=policy)
    first = cli("apply", workspace.manifests, "--yes", "--allow-removals", "--state-dir", merge)
    assert first.exit_code == 0, first.output

    sync = cli("apply", workspace.manifests, "--yes", "--state-dir", tmp_path / "sync-runner")
    assert sync.exit_code == 0, sync.output
    assert "No changes" in sync.stdout
    assert members_of(emulator_server, "vip") == members[:1]
    said = " ".join(first.stderr.split())
    assert "for Iterable's reads to show this apply's changes to 'prod'" in said
    assert "RECONCILER_READ_LAG" in said and "Ctrl-C ends the wait" in said


def test_an_apply_told_not_to_wait_for_the_read_lag_ends_at_once_and_says_what_that_leaves(
    workspace, cli, emulator_server, monkeypatch
):
    """A pipeline no other run follows within the lag paid the end wait on every merge,
    with no way to skip it but RECONCILER_READ_LAG=0, which also drops the waits that keep
    a list from being created twice. --no-read-lag-wait skips only the end wait, saying
    what it leaves; a plan from this checkout still waits by the run journal and finds
    nothing to do."""
    emulator_server.emulator.faults.read_lag_seconds = 1.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "5")
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    applied = cli("apply", workspace.manifests, "--yes", "--no-read-lag-wait")
    assert applied.exit_code == 0, applied.output
    said = " ".join(applied.stderr.split())
    assert "before ending" not in said
    assert "Not waiting for Iterable's reads to show this apply's changes to 'prod'" in said
    assert "(--no-read-lag-wait): a plan started elsewhere in the next" in said
    # The wait for the list index, which keeps a run elsewhere from creating it again, stays.
    assert "list index to show" in said

    # It waits out the rest of the lag by the journal (unless it started after the lag).
    plan = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_a_drift_check_on_another_runner_right_after_an_apply_finds_no_drift(
    workspace, cli, emulator_server, monkeypatch, tmp_path
):
    """The drift check skips while an apply runs; one started just after it ended, on
    another runner, read Iterable without the apply's adds and its prune, and opened a
    drift issue for changes already made."""
    emulator_server.emulator.faults.read_lag_seconds = 1.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "2")
    workspace.destination(prune=True, policy={"allowListDeletion": True})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("old", {"inline": ["b@example.com"]})
    merge = tmp_path / "merge-runner"
    assert cli("apply", workspace.manifests, "--yes", "--state-dir", merge).exit_code == 0
    workspace.audience("vip", {"inline": ["a@example.com", "c@example.com"]})
    (workspace.manifests / "aud-old.yaml").unlink()
    applied = cli("apply", workspace.manifests, "--yes", "--state-dir", merge)
    assert applied.exit_code == 0, applied.output

    drift = cli(
        "plan", workspace.manifests, "--detailed-exitcode", "--state-dir", tmp_path / "drift"
    )
    assert drift.exit_code == 0, drift.output
    assert "Waiting" not in drift.stderr  # no journal there: nothing to wait by
    assert "old" not in lists_by_name(emulator_server)


def test_the_plan_note_shows_in_text_and_markdown(workspace, cli, emulator_server, monkeypatch):
    """After an apply whose own wait for the lag was cut short (here: run without it)."""
    emulator_server.emulator.faults.read_lag_seconds = 0.2

    def apply() -> None:
        monkeypatch.setenv("RECONCILER_READ_LAG", "0")
        assert cli("apply", workspace.manifests, "--yes").exit_code == 0
        # The note shows only when the plan starts within the lag of the apply: 0.3 s was
        # too short on a loaded machine (the plan started later and rightly said nothing).
        monkeypatch.setenv("RECONCILER_READ_LAG", "2")

    workspace.audience("vip", {"inline": ["a@example.com"]})
    apply()
    text = cli("plan", workspace.manifests)
    assert "! the last apply to this destination was" in text.stdout
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    apply()
    markdown = cli("plan", workspace.manifests, "--format", "markdown")
    assert "> [!NOTE]\n> the last apply to this destination was" in markdown.stdout


@pytest.fixture
def client(emulator_server):
    settings = ClientSettings(backoff_base=0.001, backoff_cap=0.01)
    with IterableClient(emulator_server.base_url, "test-key", settings=settings) as c:
        yield c


def test_subscribe_bodies_are_split_by_encoded_size(client, emulator_server):
    """Point 9: a thousand members with their fields can be over Iterable's 4 MB."""
    list_id = project(emulator_server).add_list("big fields")
    note = "ü" * 2500  # 5,000 bytes in UTF-8
    subscribers = [
        {"email": f"user{i}@example.com", "dataFields": {"note": note}} for i in range(1000)
    ]
    result = client.subscribe(list_id, subscribers)
    assert result.failed == {}
    assert result.success_count == 1000
    sent = [
        r
        for r in emulator_server.emulator.request_log
        if r.path == "/api/lists/subscribe" and r.status == 200
    ]
    assert len(sent) == 2
    assert len(project(emulator_server).members(list_id)) == 1000


def test_a_subscriber_alone_over_the_limit_is_reported_not_sent(client, emulator_server):
    list_id = project(emulator_server).add_list("huge")
    huge = {"email": "huge@example.com", "dataFields": {"note": "x" * 4_100_000}}
    result = client.subscribe(list_id, [huge, {"email": "small@example.com"}])
    assert set(result.failed) == {"huge@example.com"}
    assert "over 4000000 bytes" in result.failed["huge@example.com"]
    assert project(emulator_server).members(list_id) == ["small@example.com"]


def test_the_largest_body_setting_allowed_is_one_iterable_takes_however_it_counts_4_mb():
    """Iterable's "4MB" may be decimal (RudderStack holds bodies to 4,000,000 bytes): a
    limit up to 4 MiB, which the setting once allowed, could send bodies Iterable refuses
    whole."""
    assert MAX_BATCH_BYTES == 4_000_000
    top = ClientSettings.from_env({"RECONCILER_BULK_UPDATE_MAX_BYTES": "4000000"})
    assert top.bulk_update_max_bytes == MAX_BATCH_BYTES
    with pytest.raises(ConfigError, match="a whole number from 1024 to 4000000"):
        ClientSettings.from_env({"RECONCILER_BULK_UPDATE_MAX_BYTES": str(4 * 1024 * 1024)})


@pytest.mark.parametrize("start", ["Flagged nightly by the churn model", "🔥🔥 Churn risk 🔥🔥"])
def test_a_long_description_is_cut_to_iterable_s_140_characters_keeping_the_marker(
    workspace, cli, emulator_server, start
):
    """Iterable holds a list description to 140 characters (the emulator's field profile
    refuses a create over it, counting as Java does: an emoji is two UTF-16 units): a
    manifest's long description is cut to fit beside the marker, so the list is created,
    stays reconciler's (prune), and plans after it see no difference in its description."""
    emulator_server.emulator.faults.list_description_max = 140
    long = f"{start}; owner data-team; see the runbook 🚀🚀🚀🚀🚀🚀🚀 " * 3
    workspace.audience("churn-risk", {"inline": ["a@example.com"]}, description=long.strip())
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    (list_id,) = lists_by_name(emulator_server)["churn-risk"]
    description = project(emulator_server).lists[list_id].description
    assert description is not None and len(description.encode("utf-16-le")) // 2 <= 140
    assert description.startswith(start)
    assert "[managed-by: reconciler; audience: churn-risk; run " in description
    plan = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["destinations"][0]["notes"] == []
