"""Every member Iterable rejected, in full, in an owner-only CSV beside the run journals:
output masks members, and someone has to be able to fix the ones that failed."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reconciler.apply.executor import ApplyReport
from reconciler.apply.journal import KEEP, next_number, runs_dir
from reconciler.leftovers import IDLE_SECONDS
from reconciler.owner_only import owner_only_directories

PREFIX, SUFFIX = "rejected-", ".csv"
# Written first under this name and renamed into place (see write_rejected).
PARTIAL = ".rejected-"


def write_rejected(report: ApplyReport, state_dir: Path) -> str | None:
    """Write `<state dir>/runs/rejected-n<number>-<UTC time>-<pid>.csv`; its path, or None
    when nothing was rejected (then no file is written). The newest KEEP such files are
    kept, as the journals are, whether or not this run writes one: a member Iterable
    refuses on every run (an email another userId's profile holds) made one a run, each a
    copy of members' identities, for ever. Numbered as the journals are: by the clock's
    time alone, a file written after the clock was set back sorted first and was the one
    removed, the file the apply had just named."""
    rows = [
        (d.destination, lr.list_name, member, reason)
        for d in report.destinations
        for lr in d.lists
        for member, reason in sorted(lr.rejected.items())
    ] + [
        (d.destination, "(user fields)", member, reason)
        for d in report.destinations
        if d.fields is not None
        for member, reason in sorted(d.fields.rejected.items())
    ]
    runs = runs_dir(state_dir)
    if not rows:
        # Pruned all the same: the files an earlier version wrote, one an apply and none
        # removed, would otherwise stay until a member is rejected again.
        with contextlib.suppress(OSError):  # no file was to be written: nothing failed
            _prune(runs)
        return None
    owner_only_directories(state_dir, runs)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = runs / f"{PREFIX}{next_number(runs, PREFIX, SUFFIX)}{stamp}-{os.getpid()}{SUFFIX}"
    # Owner-only from the first byte (the file holds personal data), and written under
    # another name first: a run killed, or a disk filled, while writing leaves no file
    # that looks whole and is not.
    fd, temporary = tempfile.mkstemp(prefix=PARTIAL, suffix=SUFFIX, dir=runs)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["destination", "list", "member", "reason"])
            writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _prune(runs)
    return str(path)


def _prune(runs: Path, now: float | None = None) -> None:
    """Keep the newest KEEP files (their names sort by number, those named before numbers
    first, by their time), and remove what a run killed while writing one left under its
    partial name (a write takes moments, so one untouched for IDLE_SECONDS is no other
    run's)."""
    now = time.time() if now is None else now
    files = sorted(runs.glob(f"{PREFIX}*{SUFFIX}"))
    # The new file is written: a removal that fails (another run's, gone meanwhile; a file
    # of another owner) is no failure of this one.
    for old in files[: max(0, len(files) - KEEP)]:
        with contextlib.suppress(OSError):
            old.unlink()
    for partial in runs.glob(f"{PARTIAL}*{SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime >= IDLE_SECONDS:
                partial.unlink()


def spreadsheet_safe(cell: str) -> str:
    """A userId such as `=cmd|' /C calc'!A0` is a formula to a spreadsheet that opens this
    file; a leading apostrophe makes it text (OWASP's advice for CSV injection)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
