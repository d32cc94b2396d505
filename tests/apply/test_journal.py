"""The run journal's step outcomes (reconciler.apply.journal): each way a request's block
ends is recorded as a reader of .reconciler/runs needs it, and nothing it records quotes a
member or an internal error's text."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.journal import Journal, journal_files, last_unfinished, recorded_list_ids
from reconciler.errors import ReconcilerError, WriteNotSent


def _journal(tmp_path: Path) -> tuple[Journal, Path]:
    path = tmp_path / "apply.jsonl"
    return Journal(path, path.open("w", encoding="utf-8")), path


def _outcomes(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [
        {k: v for k, v in line.items() if k not in ("at", "event")}
        for line in lines
        if line["event"] == "outcome"
    ]


def test_each_way_a_step_ends_is_recorded_as_what_happened(tmp_path: Path) -> None:
    journal, path = _journal(tmp_path)

    with journal.step("subscribe", "prod", "vip", members=2):
        pass  # answered: done, though the block did not say so
    with pytest.raises(WriteNotSent), journal.step("subscribe", "prod", "vip"):
        raise WriteNotSent()
    with pytest.raises(ValueError), journal.step("subscribe", "prod", "vip"):
        raise ValueError("row of ann@example.com and userId u-123")
    with pytest.raises(KeyboardInterrupt), journal.step("unsubscribe", "prod", "vip"):
        raise KeyboardInterrupt

    assert _outcomes(path) == [
        {"step": 1, "status": "done"},
        {"step": 2, "status": "not_sent"},  # never sent: not failed
        {"step": 3, "status": "failed", "error": "internal error: ValueError"},
        {"step": 4, "status": "unknown", "error": "stopped at once while in flight"},
    ]
    assert journal.failed == 1 and journal.in_flight == 0


def test_a_failed_step_and_the_runs_end_mask_the_emails_their_errors_quote(
    tmp_path: Path,
) -> None:
    journal, path = _journal(tmp_path)

    with pytest.raises(ReconcilerError), journal.step("subscribe", "prod", "vip"):
        raise ReconcilerError("Iterable refused ann@example.com")
    journal.finish("failed", "stopped: Iterable refused bob@example.com")

    text = path.read_text(encoding="utf-8")
    assert "ann@example.com" not in text and "bob@example.com" not in text
    assert "Iterable refused" in _outcomes(path)[0]["error"]
    assert '"outcome":"failed"' in text.splitlines()[-1]


def test_a_journal_starts_with_its_format_version_beside_the_reconciler_that_wrote_it(
    tmp_path: Path,
) -> None:
    """Every build of a release writes the same reconciler_version: a reader of journals
    kept across upgrades tells their shape by the format version of the first line."""
    from reconciler import __version__
    from reconciler.apply.journal import JOURNAL_FORMAT
    from reconciler.plan import Plan

    journal = Journal.start(tmp_path, Plan())
    journal.finish("success")
    assert journal.path is not None
    first = json.loads(journal.path.read_text(encoding="utf-8").splitlines()[0])

    assert first["event"] == "run_started"
    assert first["format_version"] == JOURNAL_FORMAT == 1
    assert first["reconciler_version"] == __version__


class _Clock:
    """datetime as the journal reads it, its now() the `at` set (the machine's clock)."""

    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return cls.at


def _run(state: Path, list_id: int) -> Journal:
    from reconciler.plan import DestinationPlan, Plan
    from tests.apply.support import list_plan, member

    adds = (member("a@example.com"),)
    return Journal.start(
        state,
        Plan((DestinationPlan("prod", "hybrid", (list_plan("vip", list_id=list_id, add=adds),)),)),
    )


def test_runs_keep_their_order_when_the_clock_is_set_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Journals were ordered by the clock time in their names: after the machine's clock
    was set back (NTP stepping a clock that ran fast, a VM restored from a snapshot), the
    next run's journal sorted before the one it followed, so an apply killed then went
    without its note (last_unfinished read the earlier, finished run) and plan held the
    project's lists to the earlier run's ids (recorded_list_ids)."""
    monkeypatch.setattr("reconciler.apply.journal.datetime", _Clock)
    # A journal named before runs were numbered, then a run with the clock an hour fast.
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o700)
    older = runs / "apply-20261207T100000.000000Z-1.jsonl"
    older.write_text(json.dumps({"event": "run_started", "lists": []}) + "\n")
    _Clock.at = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    _run(tmp_path, 11).finish("success")
    _Clock.at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # set back an hour
    killed = _run(tmp_path, 22)  # never finishes: killed

    assert journal_files(tmp_path)[0] == older
    assert journal_files(tmp_path)[-1] == killed.path
    unfinished = last_unfinished(tmp_path)
    assert unfinished is not None and unfinished.pid == os.getpid()
    assert recorded_list_ids(tmp_path, "prod") == {22}
