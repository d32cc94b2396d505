"""How an apply's run record (--summary-json) says it ended."""

from __future__ import annotations

import pytest

from reconciler.apply.executor import ApplyReport, DestinationResult, ListResult
from reconciler.apply.runrecord import RunRecord
from reconciler.errors import IterableError, StalePlanError, UnsafePlanError


def _report(**list_fields: object) -> ApplyReport:
    result = ListResult("vip", "vip", 1, 2, 0, added=2)
    for name, value in list_fields.items():
        setattr(result, name, value)
    return ApplyReport([DestinationResult("prod", [result])])


@pytest.mark.parametrize(
    ("report", "outcome"),
    [
        (_report(), "success"),
        (_report(rejected={"a@example.com": "invalid email"}), "failed"),
        (ApplyReport(source_problems="1 member could not be used"), "failed"),
        (ApplyReport(not_attempted=3), "interrupted"),
    ],
)
def test_an_applied_run_ends_by_its_report(report: ApplyReport, outcome: str) -> None:
    record = RunRecord()
    record.applied(report)
    assert (record.outcome, record.report) == (outcome, report)
    assert record.finished_at is not None
    assert (record.message is None) == (outcome == "success")


@pytest.mark.parametrize(
    ("exc", "outcome", "message"),
    [
        (UnsafePlanError("blocked"), "blocked", "shown"),
        (StalePlanError("stale"), "stale", "shown"),
        (IterableError("down"), "error", "shown"),
        (KeyboardInterrupt(), "interrupted", "stopped by Ctrl-C or SIGTERM"),
    ],
)
def test_a_stopped_run_ends_by_what_stopped_it(
    exc: BaseException, outcome: str, message: str
) -> None:
    record = RunRecord()
    record.stopped(exc, None if isinstance(exc, KeyboardInterrupt) else "shown")
    assert (record.outcome, record.message) == (outcome, message)
    assert record.to_dict()["outcome"] == outcome
