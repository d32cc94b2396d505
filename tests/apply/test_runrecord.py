"""How an apply's run record (--summary-json) says it ended."""

from __future__ import annotations

import json

import pytest

from reconciler.apply.executor import ApplyReport, DestinationResult, ListResult
from reconciler.apply.runrecord import RUN_RECORD_FORMAT, RunRecord
from reconciler.errors import IterableError, StalePlanError, UnsafePlanError
from tests.apply.limits import file_size_limit


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


def test_a_failed_runs_message_says_what_failed_and_how_to_finish() -> None:
    # It said "some changes failed or source data could not be used; see the report": a
    # sync's history keeps the record, not the job log the report was printed in.
    record = RunRecord()
    record.applied(_report(rejected={"a@example.com": "invalid email"}, errors=["HTTP 503"]))
    assert record.message == (
        "Apply finished with failures: 1 member rejected, 1 error. Run apply again to retry "
        "what failed: it reads Iterable afresh and sends only what is left. Members Iterable "
        "rejected are rejected again until their rows in the source are fixed."
    )
    unusable = RunRecord()
    unusable.applied(ApplyReport(source_problems="1 member could not be used"), "Re-run")
    assert unusable.message == (
        "Applied everything planned. Not complete: 1 member could not be used; `reconciler "
        "plan --format json` says which (skipped_members, field_issues, unread)."
    )


def test_an_interrupted_runs_message_says_what_was_not_done_and_how_to_finish() -> None:
    # It said "stopped by Ctrl-C or SIGTERM after the requests in flight", not how much
    # was left, nor that a saved plan must not be applied again.
    result = ListResult("vip", "vip", 1, 5, 0, added=2, not_attempted_add=3)
    record = RunRecord()
    record.applied(
        ApplyReport([DestinationResult("prod", [result])], not_attempted=1),
        "Run `reconciler apply` on the manifests again (not --plan)",
    )
    assert record.outcome == "interrupted"
    assert record.message is not None
    assert "Not done: 3 additions, 0 removals" in record.message
    assert record.message.endswith(
        "Run `reconciler apply` on the manifests again (not --plan) to finish: it reads "
        "Iterable afresh and sends only what is left."
    )


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


def _finished(outcome: str) -> RunRecord:
    record = RunRecord()
    record.applied(_report())
    record.finish(outcome)  # type: ignore[arg-type]
    return record


def test_a_record_that_cannot_be_written_whole_leaves_the_last_one_as_it_was(tmp_path) -> None:
    # A kill or a full disk mid-write: the file was truncated first, then written in part,
    # leaving neither the last run's record nor this one's.
    path = tmp_path / "run.json"
    _finished("success").write(path)
    before = path.read_text()
    with pytest.raises(OSError), file_size_limit(64):
        _finished("failed").write(path)
    assert path.read_text() == before
    assert json.loads(before)["outcome"] == "success"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_record_goes_through_a_link_and_keeps_the_files_mode(tmp_path) -> None:
    target = tmp_path / "history" / "last.json"
    target.parent.mkdir()
    target.write_text("{}")
    target.chmod(0o640)
    link = tmp_path / "run.json"
    link.symlink_to(target)
    _finished("success").write(link)
    assert link.is_symlink()
    assert json.loads(target.read_text())["outcome"] == "success"
    assert target.stat().st_mode & 0o777 == 0o640


def test_an_interrupted_run_records_per_list_what_was_planned_and_never_sent() -> None:
    # The report says "300 of 1500 additions were not sent"; the record kept only "added",
    # so a sync history could not tell a finished list from one cut short.
    result = ListResult("vip", "vip", 1, 1500, 40, added=1200, removed=0)
    result.not_attempted_add, result.not_attempted_remove = 300, 40
    record = RunRecord()
    record.applied(ApplyReport([DestinationResult("prod", [result])], not_attempted=340))
    (entry,) = record.to_dict()["lists"]
    assert record.outcome == "interrupted"
    assert (entry["planned_add"], entry["added"], entry["not_attempted_add"]) == (1500, 1200, 300)
    assert (entry["planned_remove"], entry["removed"], entry["not_attempted_remove"]) == (40, 0, 40)


def test_a_record_says_its_format_version_beside_the_reconciler_that_wrote_it() -> None:
    # Records are kept for months (90 days in the shipped workflows) and read across
    # upgrades, and every build of a release says the same reconciler_version: the
    # format's own number is what tells a reader which keys to expect.
    record = RunRecord()
    record.applied(_report())
    written = record.to_dict()
    assert written["format_version"] == RUN_RECORD_FORMAT == 1
    assert list(written)[:2] == ["format_version", "reconciler_version"]
