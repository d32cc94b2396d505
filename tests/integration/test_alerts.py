"""Alerts where people look (issue 19, section 4): a plan or apply that is blocked, refuses a
stale saved plan, or fails posts a masked, Slack-compatible summary to the webhook named by
RECONCILER_ALERT_WEBHOOK_URL; the URL itself never appears in any output, and sending never
changes the exit code or hangs the run. The webhook is a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from reconciler import alerts
from tests.integration.conftest import API_KEY_VAR
from tests.webhook import DROP, Receiver, alert_text

MEMBERS = [f"member{i}@example.com" for i in range(10)]


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as receiver:
        monkeypatch.setenv(alerts.URL_VAR, receiver.url)
        yield receiver


def seed_list(server, name: str, emails: list[str]) -> int:
    project = server.emulator.project("default")
    list_id = project.add_list(name)
    for email in emails:
        project.subscribe_direct(list_id, email=email)
    return list_id


def assert_url_hidden(receiver: Receiver, *outputs: str) -> None:
    for text in outputs:
        assert receiver.url not in text
        assert receiver.secret not in text


def assert_masked(post: dict) -> None:
    text = alert_text(post)
    assert "@example.com" not in text
    for email in MEMBERS:
        assert email.split("@")[0] not in text


# -- what alerts ---------------------------------------------------------------------------


def test_a_plan_the_policy_blocks_posts_a_masked_alert_and_still_exits_3(
    workspace, cli, emulator_server, hook
):
    seed_list(emulator_server, "vip", MEMBERS)
    workspace.audience("vip", {"inline": MEMBERS[:3]})  # removes 70%

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 3, result.output
    (post,) = hook.wait_for(1)
    assert post["text"].startswith("reconciler plan blocked by the safety policy (exit 3)")
    assert post["blocks"][0]["type"] == "header"
    text = alert_text(post)
    assert (
        "prod/vip: removes 7 of 10 members (70.0%), more than maxRemovalPercent 10% "
        "(override: --allow-removals or --allow-unsafe)"
    ) in text
    assert "prod/vip: +0 / -7 / ~0" in text
    assert_masked(post)
    assert_url_hidden(hook, result.output)
    assert hook.requests[0][2]["Content-Type"] == "application/json"


def test_an_apply_the_policy_blocks_posts_the_guard_and_changes_nothing(
    workspace, cli, emulator_server, hook
):
    seed_list(emulator_server, "vip", MEMBERS)
    workspace.audience("vip", {"inline": []})  # an empty source: guard empty_source
    emulator_server.emulator.clear_log()

    result = cli("apply", workspace.manifests, "--yes", "--allow-removals")

    assert result.exit_code == 3, result.output
    (post,) = hook.wait_for(1)
    assert post["text"].startswith("reconciler apply blocked by the safety policy (exit 3)")
    assert "guard empty_source" in alert_text(post)
    assert "allowEmpty" in alert_text(post)
    assert [r for r in emulator_server.emulator.request_log if r.method != "GET"] == []
    assert_masked(post)
    assert_url_hidden(hook, result.output)


def test_a_stale_saved_plan_posts_a_stale_alert(
    workspace, cli, emulator_server, hook, tmp_path, monkeypatch
):
    list_id = seed_list(emulator_server, "vip", MEMBERS[:1])
    workspace.audience("vip", {"inline": MEMBERS[:2]})
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    assert hook.posts == []  # a plan with changes is the normal case
    emulator_server.emulator.project("default").subscribe_direct(list_id, email=MEMBERS[5])

    result = cli("apply", "--plan", planfile, "--yes")

    assert result.exit_code == 4, result.output
    (post,) = hook.wait_for(1)
    assert post["text"].startswith("reconciler apply refused a stale plan (exit 4)")
    assert "list 'vip' changed (1 -> 2 members)" in alert_text(post)
    assert_masked(post)


def test_an_apply_with_invalid_rows_applies_the_rest_and_posts_failed(
    workspace, cli, emulator_server, hook
):
    workspace.csv("vip.csv", "email", [*MEMBERS[:3], "not-an-email", "member9@"])
    workspace.audience("vip", {"csv": "vip.csv"})

    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 1, result.output
    (post,) = hook.wait_for(1)
    assert post["text"].startswith("reconciler apply failed (exit 1)")
    text = alert_text(post)
    # Once: the run record's message says it, and the alert added it again.
    assert post["text"].count("2 members could not be used") == 1, post["text"]
    assert "prod/vip: +3 / -0 applied" in text
    assert "not-an-email" not in text
    assert_masked(post)


def test_an_apply_that_fails_on_iterable_says_what_failed_in_the_alert(
    workspace, cli, emulator_server, hook
):
    """A failed apply's alert said 'prod/vip: +0 / -0 applied, 1 error': the person woken
    by it had to find the job log to learn whether Iterable was down (apply later) or
    refused the request (fix something). It now quotes the list's first error, masked, and
    counts what was not sent."""
    seed_list(emulator_server, "vip", MEMBERS[:1])
    workspace.audience("vip", {"inline": MEMBERS[:3]}, policy={"maxRemovalPercent": 100})
    faults = emulator_server.emulator.faults
    faults.paths, faults.fail_every, faults.echo_request = ["/api/lists/subscribe"], 1, True
    faults.fail_status = 400

    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 1, result.output
    (post,) = hook.wait_for(1)
    text = alert_text(post)
    assert (
        "prod/vip: +0 / -0 applied, 1 error; error: subscribing 2 members failed: "
        "POST /api/lists/subscribe: HTTP 400 GenericError: " in text
    ), text
    assert_masked(post)  # the echoed request named both members


def test_a_plans_alert_counts_invalid_members_in_words(workspace, cli, emulator_server, hook):
    """The alert said "1 member(s) skipped as invalid" where the plan says "1 member"."""
    workspace.csv("vip.csv", "email", [*MEMBERS[:3], "not-an-email"])
    workspace.audience("vip", {"csv": "vip.csv"})
    assert cli("plan", workspace.manifests).exit_code == 1
    workspace.csv("vip.csv", "email", [*MEMBERS[:3], "not-an-email", "member9@"])
    assert cli("plan", workspace.manifests).exit_code == 1

    one, two = (alert_text(post) for post in hook.wait_for(2))
    assert "1 member skipped as invalid" in one
    assert "2 members skipped as invalid" in two
    assert "(s)" not in one + two


def test_an_apply_failing_on_user_fields_alone_says_so_in_the_alert(
    workspace, cli, emulator_server, hook
):
    emulator_server.emulator.faults.counts_only_answers = False  # a named failure
    project = emulator_server.emulator.project("default")
    seed_list(emulator_server, "vip", MEMBERS[:2])
    workspace.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"tier": "tier"}},
            }
        ),
    )
    workspace.csv("vip.csv", "email,tier", [f"{m},gold" for m in MEMBERS[:2]])
    workspace.audience("vip", {"csv": "vip.csv"}, traits="crm")
    original = emulator_server.emulator.handle

    def forgotten_meanwhile(request):
        # The user is forgotten (GDPR) between the plan's read and its bulkUpdate.
        if request.url.path == "/api/users/bulkUpdate":
            project.forget(email=MEMBERS[0])
        return original(request)

    emulator_server.emulator.handle = forgotten_meanwhile
    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 1, result.output
    (post,) = hook.wait_for(1)
    assert post["text"].startswith("reconciler apply failed (exit 1)")
    text = alert_text(post)
    # No list changed: without the fields' line the alert would name nothing that failed.
    assert "prod/user fields: ~1/2 updated, 1 rejected" in text
    assert_masked(post)


def test_a_plan_that_cannot_reach_iterable_posts_an_error(workspace, cli, hook, monkeypatch):
    monkeypatch.setenv(API_KEY_VAR, "a-key-iterable-refuses")
    workspace.audience("vip", {"inline": MEMBERS[:2]})

    result = cli("plan", workspace.manifests, "--format", "json")

    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["exit_code"] == 1  # still one JSON object on stdout
    (post,) = hook.wait_for(1)
    assert post["text"].startswith("reconciler plan stopped on an error (exit 1)")
    assert "a-key-iterable-refuses" not in alert_text(post)


def test_clean_runs_post_nothing(workspace, cli, emulator_server, hook):
    workspace.audience("vip", {"inline": MEMBERS[:3]})
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 2
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0  # no changes
    assert cli("validate", workspace.manifests).exit_code == 0
    assert hook.requests == []


def test_without_a_url_nothing_is_sent_and_nothing_is_said(
    workspace, cli, emulator_server, monkeypatch
):
    with Receiver() as receiver:
        monkeypatch.setenv(alerts.URL_VAR, "")  # an unset GitHub secret arrives empty
        seed_list(emulator_server, "vip", MEMBERS)
        workspace.audience("vip", {"inline": MEMBERS[:3]})
        result = cli("plan", workspace.manifests)
    assert result.exit_code == 3
    assert receiver.requests == []
    assert "alert" not in result.stderr


# -- a webhook that fails never fails the run, and never shows its URL --------------------------


@pytest.mark.parametrize(
    ("status", "attempts"), [(404, 1), (500, alerts.MAX_ATTEMPTS)], ids=["404", "500"]
)
def test_a_webhook_that_refuses_is_a_warning_without_the_url(
    workspace, cli, emulator_server, monkeypatch, status, attempts
):
    with Receiver(status=status) as receiver:
        monkeypatch.setenv(alerts.URL_VAR, receiver.url)
        seed_list(emulator_server, "vip", MEMBERS)
        workspace.audience("vip", {"inline": MEMBERS[:3]})
        result = cli("plan", workspace.manifests, "--debug")
    assert result.exit_code == 3  # the plan's own exit code
    # A wrong URL (404) is not tried again; a webhook in trouble (5xx) is, a bounded number
    # of times within RECONCILER_ALERT_TIMEOUT.
    assert len(receiver.posts) == attempts
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    assert (
        f"warning: the blocked alert was not sent to the webhook in {alerts.URL_VAR}: the "
        f"webhook answered HTTP {status}{tries}; the run's exit code is unchanged"
    ) in result.stderr
    assert_url_hidden(receiver, result.output)


@pytest.mark.parametrize(
    "first",
    [[500], [503, 502], [DROP], [(429, {"Retry-After": "1"})]],
    ids=["500", "503-502", "dropped", "429-retry-after"],
)
def test_a_webhook_that_fails_first_gets_the_alert_on_a_retry(
    workspace, cli, emulator_server, monkeypatch, first
):
    with Receiver(first=first) as receiver:
        monkeypatch.setenv(alerts.URL_VAR, receiver.url)
        seed_list(emulator_server, "vip", MEMBERS)
        workspace.audience("vip", {"inline": MEMBERS[:3]})  # blocked: removes 70%
        result = cli("plan", workspace.manifests)
    assert result.exit_code == 3, result.output
    posts = receiver.posts
    assert len(posts) == len(first) + 1
    assert all(post == posts[0] for post in posts)  # the same alert, sent again
    assert posts[-1]["text"].startswith("reconciler plan blocked by the safety policy")
    assert "warning" not in result.stderr
    gaps = [b - a for a, b in zip(receiver.times, receiver.times[1:], strict=False)]
    if first[0] == DROP or isinstance(first[0], int):
        assert all(gap >= 0.4 for gap in gaps)  # a backoff, not a tight loop
    else:
        assert gaps[0] >= 0.9  # as long as Retry-After asked
    assert_url_hidden(receiver, result.output)


def test_a_retry_after_beyond_the_timeout_is_not_waited_for(
    workspace, cli, emulator_server, monkeypatch
):
    with Receiver(first=[(429, {"Retry-After": "120"})]) as receiver:
        monkeypatch.setenv(alerts.URL_VAR, receiver.url)
        seed_list(emulator_server, "vip", MEMBERS)
        workspace.audience("vip", {"inline": MEMBERS[:3]})
        started = time.monotonic()
        result = cli("plan", workspace.manifests)
        took = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert len(receiver.posts) == 1
    assert (
        "the webhook answered HTTP 429, asking to be retried after 120 s, later than "
        f"{alerts.TIMEOUT_VAR} allows; the run's exit code is unchanged"
    ) in result.stderr
    assert took < 60  # not the 120 s asked (generous for a busy machine)
    assert_url_hidden(receiver, result.output)


def test_a_webhook_that_hangs_is_given_up_on_within_the_timeout(
    workspace, cli, emulator_server, monkeypatch
):
    monkeypatch.setenv(alerts.TIMEOUT_VAR, "0.5")
    with Receiver(delay=30) as receiver:
        monkeypatch.setenv(alerts.URL_VAR, receiver.url)
        workspace.csv("vip.csv", "email", [MEMBERS[0], "bad@"])
        workspace.audience("vip", {"csv": "vip.csv"})
        started = time.monotonic()
        result = cli("apply", workspace.manifests, "--yes")
        took = time.monotonic() - started
        assert result.exit_code == 1, result.output
        assert "no answer within 0.5 s (RECONCILER_ALERT_TIMEOUT)" in result.stderr
        # Bounded by the timeout, not by the receiver's 30 s (generous for a busy machine).
        assert took < 20
        assert_url_hidden(receiver, result.output)


def test_a_webhook_nobody_listens_on_is_a_warning_without_the_url(
    workspace, cli, emulator_server, monkeypatch, refused_port
):
    port = refused_port
    url = f"http://127.0.0.1:{port}/services/T0/B0/closed-port-secret"
    monkeypatch.setenv(alerts.URL_VAR, url)
    seed_list(emulator_server, "vip", MEMBERS)
    workspace.audience("vip", {"inline": MEMBERS[:3]})
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 3
    assert (
        f"could not connect ({alerts.MAX_ATTEMPTS} attempts); the run's exit code is unchanged"
    ) in result.stderr
    assert "closed-port-secret" not in result.output
    assert str(port) not in result.stderr


def test_a_url_that_cannot_be_used_is_reported_on_every_run_without_quoting_it(
    workspace, cli, emulator_server, monkeypatch
):
    monkeypatch.setenv(alerts.URL_VAR, "http://hooks.example.net/services/T0/B0/plain-secret")
    workspace.audience("vip", {"inline": MEMBERS[:1]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 0  # a clean run: nothing to alert, but the setting is wrong
    assert f"warning: alerts are off: {alerts.URL_VAR} must be an https:// URL" in result.stderr
    assert "plain-secret" not in result.output
    assert "hooks.example.net" not in result.output


def test_the_url_can_come_from_a_file(workspace, cli, emulator_server, monkeypatch, tmp_path):
    with Receiver() as receiver:
        secret_file = tmp_path / "webhook-url"
        secret_file.write_text(receiver.url + "\n")
        monkeypatch.setenv(alerts.URL_FILE_VAR, str(secret_file))
        seed_list(emulator_server, "vip", MEMBERS)
        workspace.audience("vip", {"inline": MEMBERS[:3]})
        result = cli("plan", workspace.manifests)
    assert result.exit_code == 3
    assert len(receiver.posts) == 1
    assert_url_hidden(receiver, result.output)


def test_a_message_quoting_the_url_shows_it_redacted(workspace, cli, monkeypatch, tmp_path):
    # The one place a run can quote the variable is a message naming a file or value that
    # happens to carry it; here, a source path the manifest took from the URL.
    with Receiver() as receiver:
        monkeypatch.setenv(alerts.URL_VAR, receiver.url)
        workspace.audience("vip", {"csv": f"data{receiver.path}.csv"})
        result = cli("plan", workspace.manifests)
    assert result.exit_code == 1
    assert alerts.REDACTED in result.stderr
    assert_url_hidden(receiver, result.output)
    (post,) = receiver.posts
    assert receiver.secret not in alert_text(post)
