"""The alert webhook's pure parts (issue 19 section 4): the Slack JSON, the URL's settings,
and the scrubbing of the URL from any text. Sending is tested over real HTTP in
tests/integration/test_alerts.py."""

from __future__ import annotations

import email.utils
import re
import time

import httpx
import pytest

from reconciler import alerts
from reconciler.alerts import Alert, configured_url, payload, scrub
from reconciler.apply.executor import FieldUpdateResult

SLACK_URL = "https://hooks.slack.com/services/T000AAAA/B000BBBB/XXXXsecretXXXXsecret"


def test_the_payload_is_slack_json_with_text_and_blocks():
    alert = Alert(
        "apply",
        "blocked",
        3,
        "the safety policy blocks this plan",
        guards=("prod/vip: removes 7 of 10 members",),
        lists=("prod/vip: +0 / -7 applied",),
    )
    body = payload(alert, "https://github.test/acme/audiences/actions/runs/42")
    assert body["text"] == (
        "reconciler apply blocked by the safety policy (exit 3): the safety policy blocks this plan"
    )
    blocks = body["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "reconciler apply blocked by the safety policy (exit 3)",
        },
    }
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert sections == [
        "the safety policy blocks this plan",
        "*Safety policy*\n• prod/vip: removes 7 of 10 members",
        "*Lists*\n• prod/vip: +0 / -7 applied",
    ]
    (context,) = [b for b in blocks if b["type"] == "context"]
    assert (
        "<https://github.test/acme/audiences/actions/runs/42|workflow run>"
        in (context["elements"][0]["text"])
    )


def test_a_plan_gone_stale_while_its_confirmation_waited_is_not_called_a_saved_plan():
    # apply without --plan, its question answered late (RECONCILER_CONFIRM_WAIT): the header
    # said "refused a stale saved plan" for a run that had no saved plan.
    message = (
        "stale plan: list 'vip' changed (1 -> 2 members) while the confirmation waited "
        "1 h 02 min; nothing was applied: run apply again for a plan of Iterable as it is now"
    )
    body = payload(alerts.for_error("apply", 4, message))
    header = body["blocks"][0]["text"]["text"]
    assert header == "reconciler apply refused a stale plan (exit 4)"
    assert body["text"].startswith(f"{header}: stale plan: list 'vip' changed")


def test_text_from_manifests_cannot_ping_a_channel_or_link():
    alert = Alert("plan", "failed", 1, "list '<!channel> & <https://evil.test|click>' broke")
    body = payload(alert)
    text = body["blocks"][1]["text"]["text"]
    assert text == "list '&lt;!channel&gt; &amp; &lt;https://evil.test|click&gt;' broke"
    assert "<!channel>" not in str(body)


def test_a_list_name_from_iterable_stays_on_its_bullet():
    """Prune deletes a list under the name it has in Iterable, which anyone may have
    given it there: a newline in it started a bullet of the name's own choosing."""
    named = "prod/Old\n• prod/vip: nothing to see\r\u202e"
    body = payload(Alert("plan", "blocked", 3, "", guards=(f"{named}: deletes the list",)))
    text = body["blocks"][1]["text"]["text"]
    assert (
        text
        == "*Safety policy*\n• prod/Old\\n• prod/vip: nothing to see\\r\\u202e: deletes the list"
    )


def test_long_lists_are_cut_with_a_count():
    lines = tuple(f"prod/list-{i}: +1 / -0 / ~0" for i in range(45))
    body = payload(Alert("plan", "blocked", 3, "", lists=lines))
    text = body["blocks"][1]["text"]["text"]
    assert text.count("•") == 20
    assert text.endswith("… and 25 more (see the job summary)")
    assert all(len(b["text"]["text"]) <= 3000 for b in body["blocks"] if b["type"] == "section")


def test_messages_are_masked_and_scrubbed(monkeypatch):
    monkeypatch.setenv(alerts.URL_VAR, SLACK_URL)
    alert = alerts.for_error("apply", 4, f"jane.doe@example.com at {SLACK_URL}")
    assert alert.outcome == "stale"
    assert alert.message == f"j***@*** at {alerts.REDACTED}"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.net/services/x",  # clear text over a network
        "ftp://hooks.example.net/x",
        "https:///no-host",
        "https://hooks.example.net/a b",
        "not a url",
        "https://hooks.example.net:port/x",
    ],
)
def test_a_url_that_cannot_be_used_is_refused_without_quoting_it(url):
    with pytest.raises(alerts._NotConfigured) as raised:
        configured_url({alerts.URL_VAR: url})
    assert url not in str(raised.value)
    assert "hooks.example.net" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [SLACK_URL, "http://127.0.0.1:8080/hook", "http://[::1]:9/x", "http://localhost/x"],
)
def test_https_and_loopback_http_are_taken(url):
    assert configured_url({alerts.URL_VAR: f"  {url}\n"}) == url


def test_unset_or_empty_means_off():
    assert configured_url({}) is None
    assert configured_url({alerts.URL_VAR: ""}) is None  # an unset GitHub secret
    assert configured_url({alerts.URL_VAR: "  "}) is None


def test_the_url_file_must_be_a_small_regular_file(tmp_path):
    good = tmp_path / "url"
    good.write_text(SLACK_URL + "\n")
    assert configured_url({alerts.URL_FILE_VAR: str(good)}) == SLACK_URL
    big = tmp_path / "big"
    big.write_text("x" * 5000)
    for path in (big, tmp_path, tmp_path / "missing", "/dev/zero"):
        with pytest.raises(alerts._NotConfigured):
            configured_url({alerts.URL_FILE_VAR: str(path)})
    with pytest.raises(alerts._NotConfigured, match="set one"):
        configured_url({alerts.URL_VAR: SLACK_URL, alerts.URL_FILE_VAR: str(good)})


def test_scrub_cuts_the_url_raw_encoded_and_its_secret_path(tmp_path):
    env = {alerts.URL_VAR: SLACK_URL}
    encoded = (
        "https%3A%2F%2Fhooks.slack.com%2Fservices%2FT000AAAA%2FB000BBBB%2FXXXXsecretXXXXsecret"
    )
    text = f"a {SLACK_URL} b {encoded} c /services/T000AAAA/B000BBBB/XXXXsecretXXXXsecret d"
    assert scrub(text, env) == f"a {alerts.REDACTED} b {alerts.REDACTED} c {alerts.REDACTED} d"
    assert scrub("hooks.slack.com is fine", env) == "hooks.slack.com is fine"
    assert scrub("nothing set", {}) == "nothing set"
    url_file = tmp_path / "url"
    url_file.write_text(SLACK_URL)
    assert scrub(f"x {SLACK_URL}", {alerts.URL_FILE_VAR: str(url_file)}) == (f"x {alerts.REDACTED}")


def test_notify_without_a_url_does_nothing():
    said: list[str] = []
    alerts.notify(Alert("plan", "blocked", 3), said.append, env={})
    assert said == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-2", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date already past: now
        ("nan", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, seconds):
    headers = httpx.Headers({"Retry-After": value} if value else {})
    assert alerts._retry_after(headers) == seconds


def test_retry_after_as_a_future_http_date_is_the_time_until_it():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = alerts._retry_after(httpx.Headers({"Retry-After": when}))
    assert waited is not None and 25 <= waited <= 31


def test_a_url_httpx_cannot_send_to_is_said_without_a_traceback(monkeypatch, capfd):
    # Taken by the URL check (https, a host), refused by the IDNA encoding of the host: the
    # failure happens in the sending thread, before any connection.
    monkeypatch.setenv(alerts.URL_VAR, "https://a..b/services/T000AAAA/B000BBBB/XXXXsecret")
    said: list[str] = []
    alerts.notify(Alert("plan", "error", 1, "it failed"), said.append)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "XXXXsecret" not in out + err
    # The IDNA codec raises UnicodeError up to Python 3.12 and its UnicodeEncodeError
    # from 3.13 (requires-python allows both).
    assert len(said) == 1 and re.fullmatch(
        "the error alert was not sent to the webhook in RECONCILER_ALERT_WEBHOOK_URL: the "
        r"request failed \((UnicodeError|UnicodeEncodeError)\); the run's exit code is "
        "unchanged",
        said[0],
    ), said


@pytest.mark.parametrize("value", ["90", "0", "-1", "soon", "nan"])
def test_an_alert_timeout_that_cannot_be_used_is_said_on_every_run(value):
    """It was replaced by 5 s in silence: RECONCILER_ALERT_TIMEOUT=90 gave a slow webhook
    5 s, and nothing said the setting was not taken."""
    said: list[str] = []
    env = {alerts.URL_VAR: SLACK_URL, alerts.TIMEOUT_VAR: value}
    alerts.notify(Alert("apply", "success", 0), said.append, env=env)  # a clean run
    assert said == [
        f"RECONCILER_ALERT_TIMEOUT must be a number of seconds above 0 and at most 60; got "
        f"{value!r}, so alerts are given 5 s"
    ]
    said.clear()
    alerts.notify(Alert("apply", "success", 0), said.append, env={**env, alerts.TIMEOUT_VAR: "60"})
    assert said == []


def test_a_failed_user_field_phase_counts_its_errors_in_words():
    """The alert's user-fields line said "1 error(s)"; it says "1 error", "2 errors"."""
    one = FieldUpdateResult(planned=3, updated=2, errors=["boom"])
    assert alerts._fields_failed(one) == "~2/3 updated, 1 error"
    two = FieldUpdateResult(planned=3_000, updated=1_000, errors=["a", "b"], not_attempted=1_998)
    assert alerts._fields_failed(two) == "~1,000/3,000 updated, 2 errors, 1,998 not sent"
