"""A machine-readable record of one apply run (`apply --summary-json FILE`), so a team can
keep the history of its syncs: when, what changed per list, how many requests, how long
it waited on rate limits, and how it ended."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from reconciler import __version__
from reconciler.apply.executor import RUN_AGAIN, ApplyReport, FieldUpdateResult
from reconciler.errors import StalePlanError, UnsafePlanError
from reconciler.open_flags import BINARY
from reconciler.owner_only import chmod_open_file
from reconciler.render.json_text import json_text

# The record's format: raised when a key goes or changes its meaning (a key added keeps
# it), so a reader of records kept across upgrades knows what to expect; every build of a
# release writes the same reconciler_version. Records without it were written before it.
RUN_RECORD_FORMAT = 1

# "aborted": stopped at once by a second Ctrl-C, leaving the requests in flight unknown.
Outcome = Literal[
    "success", "no_changes", "failed", "blocked", "stale", "error", "interrupted", "aborted"
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    started_at: str = field(default_factory=_now)
    finished_at: str | None = None
    outcome: Outcome = "error"
    message: str | None = None
    report: ApplyReport | None = None
    # The requests sent so far, for a run stopped before it applied (blocked, stale, an
    # error, Ctrl-C): its plan read Iterable all the same, and a sync's history counts them.
    sent_so_far: Callable[[], ApplyReport] | None = None

    def finish(self, outcome: Outcome, message: str | None = None) -> None:
        self.outcome = outcome
        self.message = message
        self.finished_at = _now()

    def applied(self, report: ApplyReport, again: str = RUN_AGAIN) -> None:
        """The run applied its plan: success only when every change succeeded and the
        plan used all of its source data. `again`: how to finish what it left (the
        message says what that is, and how much: a history read later has no report)."""
        self.report = report
        if report.interrupted:
            self.finish("interrupted", report.describe_not_done(again))
        elif report.ok and not report.source_problems:
            self.finish("success")
        else:
            self.finish("failed", report.describe_failed(again))

    def stopped(self, exc: BaseException, message: str | None = None) -> None:
        """The run was stopped by `exc` before it applied anything, or by a second Ctrl-C
        (KeyboardInterrupt) while it did. `message`: the error as output may show it."""
        outcome: Outcome = "error"
        # By exit code, as the alert judges it: a guard that refuses the sources (a file
        # changed while it was read, exit 3) blocks the run as the policy does.
        if isinstance(exc, UnsafePlanError) or getattr(exc, "exit_code", None) == 3:
            outcome = "blocked"
        elif isinstance(exc, StalePlanError):
            outcome = "stale"
        elif isinstance(exc, KeyboardInterrupt):
            outcome, message = "interrupted", message or "stopped by Ctrl-C or SIGTERM"
        self.finish(outcome, message)

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        if report is None:
            report = self.sent_so_far() if self.sent_so_far is not None else ApplyReport()
        lists = []
        user_fields = []
        for d in report.destinations:
            if d.fields is not None:
                user_fields.append(
                    {
                        "destination": d.destination,
                        "planned": d.fields.planned,
                        "updated": d.fields.updated,
                        "rejected": len(d.fields.rejected),
                        "not_attempted": d.fields.not_attempted,
                        "errors": len(d.fields.errors),
                    }
                )
            for lr in d.lists:
                lists.append(
                    {
                        "destination": d.destination,
                        "list_name": lr.list_name,
                        "list_id": lr.list_id,
                        "created": lr.created,
                        "added": lr.added,
                        "removed": lr.removed,
                        # What the plan asked for, and what an interrupted run never sent
                        # (as user_fields has them): a history shows what a run left over.
                        "planned_add": lr.planned_add,
                        "planned_remove": lr.planned_remove,
                        "not_attempted_add": lr.not_attempted_add,
                        "not_attempted_remove": lr.not_attempted_remove,
                        # Field updates are per user (a user can be on several lists):
                        # see user_fields for what was actually written.
                        "updated": _updated_in_list(lr.field_update_keys, d.fields),
                        "rejected": len(lr.rejected),
                        "errors": len(lr.errors),
                        # Members whose outcome Iterable's answers left unknown (exit 1).
                        "unconfirmed": lr.unconfirmed_add + lr.unconfirmed_remove,
                        # Expected, no failure: off the list already, not created
                        # (updateExistingUsersOnly), forgotten in Iterable (GDPR).
                        "already_gone": lr.already_gone,
                        "not_created": lr.not_created,
                        "forgotten": lr.forgotten,
                        # Removed with channelUnsubscribe: their consent for the list's
                        # channel is gone (the audit trail of a consent change).
                        "channel_unsubscribed": lr.channel_unsubscribed,
                    }
                )
        return {
            "format_version": RUN_RECORD_FORMAT,
            "reconciler_version": __version__,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "message": self.message,
            "requests": report.requests,
            "retries": report.retries,
            "rate_limited_responses": report.rate_limited,
            "rate_limit_wait_seconds": round(report.rate_limit_wait_seconds, 3),
            "lists": lists,
            "user_fields": user_fields,
            "deleted_lists": [
                {
                    "destination": d.destination,
                    "list_name": x.list_name,
                    "list_id": x.list_id,
                    "deleted": x.deleted,
                }
                for d in report.destinations
                for x in d.deletions
            ],
            # The safety policy's verdicts this run was told to override (an audit trail).
            "overridden": [v.to_dict() for v in report.overridden],
            # Members not re-added for consent: counts, no identities.
            "held_back": [
                {
                    "destination": h.destination,
                    "list_name": h.list_name,
                    "list_id": h.list_id,
                    "left_themselves": len(h.left_themselves),
                    "channel_unsubscribed": len(h.channel_unsubscribed),
                    "since_the_plan": len(h.since_the_plan),
                }
                for h in report.held_back
            ],
        }

    def write(self, path: Path) -> None:
        """Write the record whole or not at all: it goes to a file beside `path` and is
        renamed over it, so a run killed (or a disk filled) while writing never leaves a
        record cut short, nor the previous run's record half overwritten. What is not a
        regular file (/dev/stdout, a pipe) is written to as it is."""
        text = json_text(self.to_dict()) + "\n"
        real = Path(os.path.realpath(path))  # through a link, as a plain write goes
        if real.exists() and not real.is_file():
            with real.open("w", encoding="utf-8") as handle:
                handle.write(text)
            return
        real.parent.mkdir(parents=True, exist_ok=True)
        temporary = real.parent / f".{real.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            # A new record is owner-only whatever the umask, as a saved plan and a summary
            # file are; one it replaces keeps its mode.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | BINARY, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                if real.exists():
                    chmod_open_file(fd, temporary, real.stat().st_mode & 0o7777)
                handle.write(text)
            os.replace(temporary, real)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _updated_in_list(keys: Sequence[str], fields: FieldUpdateResult | None) -> int | None:
    """The list's members whose field update went through; None when the bulkUpdate phase
    had failed requests, since then which users were written is not known."""
    if not keys:
        return 0
    if fields is None or fields.errors or fields.not_attempted:
        return None
    return sum(1 for k in keys if k not in fields.rejected)
