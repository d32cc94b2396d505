"""Alerts where people look (issue 19): a plan or apply that the safety policy blocks (exit
3), that refuses a stale plan (exit 4: a saved one, or one Iterable changed under while its
confirmation waited), or that fails (exit 1) posts a short summary to a webhook, in the
JSON of Slack's incoming webhooks (`{"text": ..., "blocks": [...]}`), which Mattermost,
Rocket.Chat, Discord's `/slack` endpoint and most chat relays take too.

The URL comes from the environment (RECONCILER_ALERT_WEBHOOK_URL, or a file named by
RECONCILER_ALERT_WEBHOOK_URL_FILE), never from a manifest: manifests arrive by pull request.
A webhook URL is a credential (anyone holding it can post to the channel), so it is treated
like an API key: never printed, and cut out of every message the CLI shows (`scrub`).

The summary is masked whatever the command line said (no --show-members here: a channel is
read by more people than a job log), and carries counts, guard results and the error, never
a member's identity.

Sending never hangs the run and never changes its exit code: a POST in a daemon thread,
retried (a dropped connection, 5xx, 429 after its Retry-After) up to MAX_ATTEMPTS times
with backoff, all of it waited for at most RECONCILER_ALERT_TIMEOUT seconds (default 5);
any failure is a warning line that names the variable, never the URL.
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, urlsplit

from reconciler import __version__
from reconciler.env_numbers import NumberRule, env_float
from reconciler.errors import ConfigError
from reconciler.layout import one_line
from reconciler.render.masking import mask_emails
from reconciler.threads import start_thread
from reconciler.words import quantity

if TYPE_CHECKING:
    # Annotations only: a plan sends its alert without loading the apply executor, and
    # every command loads this module (see _post).
    import httpx

    from reconciler.apply.executor import FieldUpdateResult
    from reconciler.apply.runrecord import RunRecord
    from reconciler.plan import Plan, Violation

URL_VAR = "RECONCILER_ALERT_WEBHOOK_URL"
URL_FILE_VAR = "RECONCILER_ALERT_WEBHOOK_URL_FILE"
TIMEOUT_VAR = "RECONCILER_ALERT_TIMEOUT"
DEFAULT_TIMEOUT = 5.0
REDACTED = "[alert webhook url]"

# The outcomes (RunRecord's words) that alert. `interrupted`/`aborted` are a person's Ctrl-C
# at a terminal; `success`, `no_changes` and a plan with changes are the normal run.
ALERTED = {
    "blocked": "blocked by the safety policy",
    "stale": "refused a stale plan",
    "failed": "failed",
    "error": "stopped on an error",
}
_FILE_LIMIT = 4096  # as for API key files: a URL, not a stream
_LINES_SHOWN = 20  # per section; Slack takes at most 3,000 characters in one
_SECTION_LIMIT = 2900
# A failed list's first error, quoted for this many lists at most and clipped to this many
# characters: 20 lines of a full section then fit Slack's 3,000 characters.
_ERRORS_QUOTED = 5
_ERROR_CHARS = 240
_LOOPBACK_NAMES = {"localhost"}

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Alert:
    """What one run says about itself, already masked: no member identity in any field."""

    command: str  # plan | apply
    outcome: str  # a key of ALERTED, or any other outcome (then nothing is sent)
    exit_code: int
    message: str = ""
    guards: tuple[str, ...] = ()  # the safety policy's reasons, one per line
    lists: tuple[str, ...] = ()  # per list: counts planned or applied

    @property
    def alerts(self) -> bool:
        return self.outcome in ALERTED


# -- what a run says ------------------------------------------------------------------------


def for_error(command: str, exit_code: int, message: str) -> Alert:
    """A run stopped by an error: exit 3 is a policy block, 4 a stale plan."""
    outcome = {3: "blocked", 4: "stale"}.get(exit_code, "error")
    return Alert(command, outcome, exit_code, _masked(message))


def for_plan(the_plan: Plan) -> Alert:
    """A finished plan: blocked when the policy refuses it (exit 3), failed when source data
    could not be used or a list could not be read (exit 1), as the CLI decides."""
    violations = the_plan.violations()
    s = the_plan.summary
    outcome, exit_code = (
        ("blocked", 3) if violations else ("failed", 1) if s.problems else ("success", 0)
    )
    problems = [
        f"{quantity(n, one)} {what}"
        for n, one, what in (
            (s.members_skipped, "member", "skipped as invalid"),
            (s.field_values_skipped, "field value", "that cannot be sent"),
            (s.lists_unread, "audience", f"left out: {s.left_out_why}"),
        )
        if n
    ]
    message = (
        "the safety policy blocks this plan; apply would change nothing"
        if outcome == "blocked"
        else "; ".join(problems)
    )
    lists = tuple(
        f"{d.destination}/{lp.list_name}: +{len(lp.add):,} / -{len(lp.remove):,} / "
        f"~{len(lp.field_update_keys):,}" + (" (new list)" if lp.create else "")
        for d in the_plan.destinations
        for lp in d.lists
        if lp.has_changes
    )
    guards = tuple(
        f"{v.destination}/{v.list_name}: {v.message} (override: {_override(v)})" for v in violations
    )
    return Alert(
        "plan", outcome, exit_code, _masked(message), _masked_all(guards), _masked_all(lists)
    )


def for_record(record: RunRecord, exit_code: int) -> Alert:
    """A finished apply, from its run record (apply --summary-json's contents)."""
    lists: list[str] = []
    report = record.report
    quoted = 0  # lists whose first error the alert quotes (_ERRORS_QUOTED)
    for d in report.destinations if report is not None else ():
        for lr in d.lists:
            parts = [f"+{lr.added:,} / -{lr.removed:,} applied"]
            if lr.rejected:
                parts.append(f"{len(lr.rejected):,} rejected")
            if lr.errors:
                parts.append(quantity(len(lr.errors), "error"))
            unconfirmed = lr.unconfirmed_add + lr.unconfirmed_remove
            if unconfirmed:
                parts.append(f"{unconfirmed:,} unconfirmed")
            not_sent = lr.not_attempted_add + lr.not_attempted_remove
            if not_sent:
                parts.append(f"{not_sent:,} not sent")
            line = f"{d.destination}/{lr.list_name}: " + ", ".join(parts)
            # What failed, not only that something did: '2 errors' sent the person woken at
            # night to a job log to learn it was Iterable's 503s (apply later) or a 400
            # (fix something). Its msg may quote members back.
            if lr.errors and quoted < _ERRORS_QUOTED:
                quoted += 1
                first = "first error" if len(lr.errors) > 1 else "error"
                # Masked before it is clipped: a cut could split a marked value's marks.
                line += f"; {first}: {_clipped(one_line(_masked(lr.errors[0])))}"
            lists.append(line)
        # A run can fail on user fields or a deletion alone: the lists' lines would then
        # all read as done, and the alert not say what failed.
        if d.fields is not None and not d.fields.ok:
            lists.append(f"{d.destination}/user fields: " + _fields_failed(d.fields))
        lists.extend(
            f"{d.destination}/{x.list_name}: deleting the list failed"
            for x in d.deletions
            if x.error is not None
        )
    message = record.message or ""
    # A failed run's message says the source problems already (describe_failed).
    if report is not None and report.source_problems and report.source_problems not in message:
        message = f"{message}; {report.source_problems}" if message else report.source_problems
    return Alert(
        "apply", record.outcome, exit_code, _masked(message), (), _masked_all(tuple(lists))
    )


def _clipped(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def _fields_failed(fields: FieldUpdateResult) -> str:
    """The bulkUpdate phase's counts, as a list's line gives them."""
    parts = [f"~{fields.updated:,}/{fields.planned:,} updated"]
    for count, what in (
        (len(fields.rejected), "rejected"),
        (len(fields.errors), "error" if len(fields.errors) == 1 else "errors"),
        (fields.unconfirmed, "unconfirmed"),
        (fields.not_attempted, "not sent"),
    ):
        if count:
            parts.append(f"{count:,} {what}")
    return ", ".join(parts)


def _override(v: Violation) -> str:
    from reconciler.render.plans import override_flag  # here: see _post

    flag = override_flag(v)
    return flag if flag == "--allow-unsafe" else f"{flag} or --allow-unsafe"


def _masked(text: str) -> str:
    return mask_emails(scrub(text))


def _masked_all(lines: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_masked(line) for line in lines)


# -- the webhook's JSON (pure) ----------------------------------------------------------------


def payload(alert: Alert, run_url: str | None = None) -> dict[str, object]:
    """Slack's incoming-webhook JSON: `text` for notifications and clients without blocks,
    `blocks` for the message itself."""
    what = ALERTED.get(alert.outcome, alert.outcome)
    title = f"reconciler {alert.command} {what} (exit {alert.exit_code})"
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
    ]
    if alert.message:
        blocks.append(_section(_escape(alert.message)))
    if alert.guards:
        blocks.append(_section("*Safety policy*\n" + _bullets(alert.guards)))
    if alert.lists:
        heading = "Planned changes" if alert.command == "plan" else "Lists"
        blocks.append(_section(f"*{heading}*\n" + _bullets(alert.lists)))
    context = [f"reconciler {__version__}"]
    if run_url:
        context.append(f"<{_escape(run_url)}|workflow run>")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    text = title + (f": {alert.message}" if alert.message else "")
    return {"text": _escape(text)[:_SECTION_LIMIT], "blocks": blocks}


def _section(text: str) -> dict[str, object]:
    if len(text) > _SECTION_LIMIT:
        text = text[: _SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _bullets(lines: tuple[str, ...]) -> str:
    # One bullet a line: a list's name comes from Iterable (prune deletes lists by the
    # name they have there), where a newline in it would start a bullet of its own.
    shown = [f"• {_escape(one_line(line))}" for line in lines[:_LINES_SHOWN]]
    if len(lines) > _LINES_SHOWN:
        shown.append(f"… and {len(lines) - _LINES_SHOWN:,} more (see the job summary)")
    return "\n".join(shown)


def _escape(text: str) -> str:
    # Slack's three control characters: a list name like `<!channel>` must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The GitHub Actions run's page, when running in one."""
    parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return None
    server, repo, run_id = parts
    return f"{server}/{repo}/actions/runs/{run_id}"


# -- the URL: where it comes from, and where it never goes ---------------------------------------


class _NotConfigured(Exception):
    """The URL settings are wrong; the text says how without quoting the URL."""


def configured_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The webhook URL, None when alerts are off (unset or empty, as an unset GitHub secret
    arrives). Raises _NotConfigured for a URL that cannot be used."""
    raw = env.get(URL_VAR, "")
    path = env.get(URL_FILE_VAR, "")
    if raw and path:
        raise _NotConfigured(f"both {URL_VAR} and {URL_FILE_VAR} are set; set one")
    source = URL_VAR
    if path:
        source = URL_FILE_VAR
        raw = _read_url_file(Path(path))
    url = raw.strip()
    if not url:
        return None
    _check_url(url, source)
    return url


def _read_url_file(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        raise _NotConfigured(f"the file {URL_FILE_VAR} names cannot be read") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _FILE_LIMIT:
        raise _NotConfigured(
            f"the file {URL_FILE_VAR} names must be a regular file of at most {_FILE_LIMIT} bytes"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise _NotConfigured(f"the file {URL_FILE_VAR} names cannot be read") from None


def _check_url(url: str, source: str) -> None:
    """https, or http to this computer (a local relay, the tests' receiver): the summary
    and the URL's own secret path never cross a network in clear."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _NotConfigured(f"{source} holds spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise _NotConfigured(f"{source} is not a URL") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and _loopback(host):
        return
    raise _NotConfigured(
        f"{source} must be an https:// URL (http:// only to this computer: 127.0.0.1, ::1, "
        "localhost)"
    )


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrub(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with the alert webhook's URL, and its secret path, cut out (as sent, or URL-
    encoded), wherever it came from: a message quoting an environment variable, a library's
    error. Every message the CLI prints passes through here."""
    forms = _secret_forms(*_url_settings(os.environ if env is None else env))
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def _url_settings(env: Mapping[str, str]) -> tuple[str, str]:
    return env.get(URL_VAR, ""), env.get(URL_FILE_VAR, "")


@lru_cache(maxsize=8)
def _secret_forms(raw: str, path: str) -> tuple[str, ...]:
    url = raw.strip()
    if path and not url:
        try:
            url = _read_url_file(Path(path)).strip()
        except _NotConfigured:
            url = ""
    if not url:
        return ()
    # The path and query carry the secret (Slack: /services/T.../B.../XXXX); the host alone
    # does not, and cutting it would mangle harmless text.
    parts = urlsplit(url)
    secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
    candidates = {url, url.rstrip("/")}
    if len(secret_part.strip("/")) >= 8:
        candidates.add(secret_part)
    forms = {f for c in candidates for f in (c, quote(c, safe=""), quote_plus(c), quote(c))}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


# -- sending ----------------------------------------------------------------------------------


def notify(alert: Alert, warn: Warn, env: Mapping[str, str] = os.environ) -> None:
    """Post `alert` to the configured webhook when its outcome alerts. Never raises, never
    waits longer than the timeout; says what went wrong through `warn`, without the URL.
    A URL that cannot be used is reported on every run, clean ones too, so a typo is seen
    before the day an alert is needed."""
    try:
        try:
            url = configured_url(env)
        except _NotConfigured as exc:
            warn(f"alerts are off: {scrub(str(exc), env)}")
            return
        if url is None:
            return
        timeout, unusable = _timeout(env)
        if unusable:
            # Said on every run, as an unusable URL is: silently waiting 5 s for a webhook
            # someone gave 90 is found out only on the day it is slow.
            warn(unusable)
        if not alert.alerts:
            return
        body = payload(alert, run_url(env))
        outcome = _post_within(url, body, timeout)
        if outcome is not None:
            source = URL_VAR if env.get(URL_VAR, "").strip() else URL_FILE_VAR
            warn(
                f"the {alert.outcome} alert was not sent to the webhook in {source}: "
                f"{outcome}; the run's exit code is unchanged"
            )
    except Exception as exc:  # an alert must never turn a run into a crash
        warn(f"the alert was not sent: {type(exc).__name__}; the run's exit code is unchanged")


MAX_TIMEOUT = 60.0  # seconds: an alert must not hold a run (and its CI job) for longer
TIMEOUT_RULE = NumberRule(above=True, most=MAX_TIMEOUT, unit="seconds")


def _timeout(env: Mapping[str, str]) -> tuple[float, str | None]:
    """The seconds a send may take, and why the variable's value was not used, if not."""
    try:
        return env_float(env, TIMEOUT_VAR, DEFAULT_TIMEOUT, TIMEOUT_RULE), None
    except ConfigError as exc:
        # A warning, not an error: an alert must never turn a run into a failure.
        return DEFAULT_TIMEOUT, f"{exc}, so alerts are given {DEFAULT_TIMEOUT:g} s"


def _post_within(url: str, body: dict[str, object], timeout: float) -> str | None:
    """POST (and retry) in a daemon thread and wait for it at most `timeout` (+ a little):
    httpx's timeouts bound each read, not a server that trickles its answer. None when it
    was taken (2xx), else why not, in words that never quote the URL."""
    result: list[str | None] = []
    deadline = time.monotonic() + timeout

    def send() -> None:
        try:
            result.append(_send(url, body, deadline, timeout))
        except Exception as exc:
            # Not httpx's own errors (a host IDNA cannot encode, say): uncaught here, the
            # thread's traceback would go to stderr unmasked, and the alert be called late.
            result.append(f"the request failed ({type(exc).__name__})")

    thread = threading.Thread(target=send, name="reconciler-alert", daemon=True)
    start_thread(thread)
    thread.join(timeout + 0.5)
    if not result:
        return f"no answer within {timeout:g} s ({TIMEOUT_VAR})"
    return result[0]


# A failed send is tried again: chat webhooks drop connections, answer 5xx while they
# deploy, and 429 when a channel gets more than about one message a second (Slack). The
# whole send stays within RECONCILER_ALERT_TIMEOUT: a retry that would not fit is not made.
MAX_ATTEMPTS = 4
_FIRST_BACKOFF = 0.5  # seconds; doubled after each retry
_MIN_ATTEMPT = 0.2  # seconds an attempt needs at least, or it is not started


@dataclass(frozen=True)
class _Attempt:
    failure: str | None  # None: the webhook took it
    retry: bool = False  # whether trying again can help
    retry_after: float | None = None  # seconds the webhook asked to wait (429, 503)


def _send(
    url: str,
    body: dict[str, object],
    deadline: float,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Up to MAX_ATTEMPTS POSTs before `deadline` (time.monotonic()), waiting between them
    as the webhook asks (Retry-After) or with a doubling backoff. Not retried: a timeout
    (the post may have arrived, and the time is spent anyway) and answers that will not
    change (404, 403, a redirect: the URL is wrong)."""
    attempts = 0
    while True:
        attempts += 1
        attempt = _post(url, body, max(deadline - time.monotonic(), _MIN_ATTEMPT), timeout)
        if attempt.failure is None:
            return None
        failure = attempt.failure
        if not attempt.retry or attempts >= MAX_ATTEMPTS:
            break
        wait = attempt.retry_after
        if wait is None:
            wait = _FIRST_BACKOFF * 2 ** (attempts - 1)
        if time.monotonic() + wait + _MIN_ATTEMPT > deadline:
            if attempt.retry_after is not None:
                failure += (
                    f", asking to be retried after {wait:g} s, later than {TIMEOUT_VAR} allows"
                )
            break
        sleep(wait)
    return failure + (f" ({attempts} attempts)" if attempts > 1 else "")


def _post(url: str, body: dict[str, object], budget: float, timeout: float) -> _Attempt:
    """One POST, given at most `budget` seconds per phase; `timeout` is the setting's value,
    which the words name."""
    # Imported here, as OVERRIDES (jinja2) is in _override: every command loads this module
    # (exits sends its alerts, annotations scrub with it), `--version` and `--help` too.
    import httpx

    try:
        with httpx.Client(timeout=httpx.Timeout(budget), follow_redirects=False) as client:
            response = client.post(
                url, json=body, headers={"User-Agent": f"reconciler/{__version__}"}
            )
    except httpx.TimeoutException:
        return _Attempt(f"no answer within {timeout:g} s ({TIMEOUT_VAR})")
    except httpx.ConnectError:
        return _Attempt("could not connect", retry=True)
    except httpx.TransportError as exc:
        # A dropped connection: a duplicate message is better than a lost alert. The
        # message of an httpx error quotes the URL: only its kind is said.
        return _Attempt(f"the request failed ({type(exc).__name__})", retry=True)
    except httpx.HTTPError as exc:
        return _Attempt(f"the request failed ({type(exc).__name__})")
    status = response.status_code
    if 200 <= status < 300:
        return _Attempt(None)
    failure = f"the webhook answered HTTP {status}"
    if status == 429 or status >= 500:
        return _Attempt(failure, retry=True, retry_after=_retry_after(response.headers))
    return _Attempt(failure)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After in seconds (RFC 9110: a number of seconds or an HTTP date), or None."""
    raw = (headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)  # a date already past: now
