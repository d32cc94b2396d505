"""apply/rejected.py: every member Iterable rejected, in full, in an owner-only CSV that
opens safely in a spreadsheet, with the newest KEEP files kept."""

from __future__ import annotations

import csv
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import ApplyReport, DestinationResult, FieldUpdateResult, ListResult
from reconciler.apply.journal import KEEP, runs_dir
from reconciler.apply.rejected import PARTIAL, PREFIX, SUFFIX, spreadsheet_safe, write_rejected
from reconciler.leftovers import IDLE_SECONDS


def _report(rejected: dict[str, str], fields: dict[str, str] | None = None) -> ApplyReport:
    lists = [
        ListResult("vip", "VIP", 7, planned_add=3, planned_remove=0, rejected=rejected),
        ListResult("all", "All", 8, planned_add=1, planned_remove=0),
    ]
    field_result = None if fields is None else FieldUpdateResult(planned=2, rejected=fields)
    return ApplyReport([DestinationResult("prod", lists, fields=field_result)])


def test_every_rejected_member_is_written_in_full_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    report = _report(
        {"z@x.io": "email taken by another userId", "=cmd|' /C calc'!A0": "invalid"},
        fields={"u-9": "field type mismatch"},
    )
    written = write_rejected(report, state)
    assert written is not None
    path = Path(written)
    assert path.parent == runs_dir(state)
    assert path.name.startswith(PREFIX) and path.name.endswith(f"-{os.getpid()}{SUFFIX}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["destination", "list", "member", "reason"],
        # Sorted by member within a list; a formula is made text.
        ["prod", "VIP", "'=cmd|' /C calc'!A0", "invalid"],
        ["prod", "VIP", "z@x.io", "email taken by another userId"],
        ["prod", "(user fields)", "u-9", "field type mismatch"],
    ]
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(runs_dir(state).stat().st_mode) & 0o077 == 0
    assert list(runs_dir(state).glob(f"{PARTIAL}*")) == []


def test_a_run_without_rejections_writes_nothing_but_still_prunes(tmp_path: Path) -> None:
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    old = [runs / f"{PREFIX}2020{n:04d}T000000Z-1{SUFFIX}" for n in range(KEEP + 2)]
    for path in old:
        path.write_text("x")
    stale = runs / f"{PARTIAL}stale{SUFFIX}"
    stale.write_text("half")
    long_ago = time.time() - IDLE_SECONDS - 60
    os.utime(stale, (long_ago, long_ago))
    fresh = runs / f"{PARTIAL}writing{SUFFIX}"  # another run's, being written now
    fresh.write_text("half")
    journal = runs / "20200101T000000Z-1.jsonl"  # not this module's to remove
    journal.write_text("{}")

    assert write_rejected(_report({}), tmp_path) is None
    left = sorted(runs.glob(f"{PREFIX}*{SUFFIX}"))
    assert left == old[2:]  # the oldest two (their names sort by time) are gone
    assert not stale.exists() and fresh.exists() and journal.exists()


class _Clock:
    """datetime as rejected.py reads it, its now() the `at` set (the machine's clock)."""

    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return cls.at


def test_the_file_just_written_is_kept_when_the_clock_is_set_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files were ordered by the clock's time in their names: with KEEP of them kept,
    an apply after the clock was set back (NTP stepping a clock that ran fast, a VM
    restored from a snapshot) wrote its file, which sorted first, removed it as the
    oldest, and named a file that was not there. Files named before numbers sort first
    and are removed first, as the journals' are."""
    monkeypatch.setattr("reconciler.apply.rejected.datetime", _Clock)
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True, mode=0o700)
    unnumbered = runs / f"{PREFIX}20261207T100000Z-1{SUFFIX}"  # an earlier version's
    unnumbered.write_text("x")
    earlier = []
    for second in range(KEEP):  # an hour fast, a run a second
        _Clock.at = datetime(2026, 12, 7, 13, 0, tzinfo=UTC) + timedelta(seconds=second)
        earlier.append(write_rejected(_report({"a@x.io": "invalid"}), tmp_path))
    _Clock.at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # set back an hour

    written = write_rejected(_report({"b@x.io": "invalid"}), tmp_path)

    assert written is not None and Path(written).exists()
    assert "b@x.io" in Path(written).read_text(encoding="utf-8")
    left = sorted(runs.glob(f"{PREFIX}*{SUFFIX}"))
    assert left == sorted(Path(p) for p in [*earlier[1:], written] if p is not None)
    assert not unnumbered.exists() and not Path(str(earlier[0])).exists()


def test_only_cells_a_spreadsheet_reads_as_formulas_are_quoted() -> None:
    for cell in ("=1+1", "+1", "-1", "@sum", "\tx", "\rx"):
        assert spreadsheet_safe(cell) == "'" + cell
    for cell in ("a@x.io", "", "1-2", "u=1"):
        assert spreadsheet_safe(cell) == cell
