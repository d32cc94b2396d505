"""A machine-readable record of one apply run (`apply --summary-json FILE`), so a team can
keep the history of its syncs: when, what changed per list, how many requests, how long
it waited on rate limits, and how it ended."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from reconciler import __version__
from reconciler.apply import ApplyReport

Outcome = Literal["success", "no_changes", "failed", "blocked", "stale", "error", "interrupted"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    started_at: str = field(default_factory=_now)
    finished_at: str | None = None
    outcome: Outcome = "error"
    message: str | None = None
    report: ApplyReport | None = None

    def finish(self, outcome: Outcome, message: str | None = None) -> None:
        self.outcome = outcome
        self.message = message
        self.finished_at = _now()

    def to_dict(self) -> dict[str, Any]:
        report = self.report or ApplyReport()
        lists = []
        for d in report.destinations:
            for lr in d.lists:
                lists.append(
                    {
                        "destination": d.destination,
                        "list_name": lr.list_name,
                        "list_id": lr.list_id,
                        "created": lr.created,
                        "added": lr.added,
                        "removed": lr.removed,
                        "updated": 0,
                        "rejected": len(lr.rejected),
                        "errors": len(lr.errors),
                    }
                )
        return {
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
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
