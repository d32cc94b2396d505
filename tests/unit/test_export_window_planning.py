"""The user export read in date windows (issue 18): planning, splitting and merging the
windows, and the route model that chooses them. Pure: no server, no clock."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.iterable import ClientSettings
from reconciler.state.routes import (
    WINDOWS_MARGIN,
    choose_member_read,
    export_job_seconds,
    export_seconds,
    windowed_export_seconds,
)
from reconciler.state.windows import (
    BEGINNING,
    OPEN_WINDOW_MARGIN,
    Window,
    merge_rows,
    merge_window_files,
    plan_windows,
    rows_per_stream,
    split_window,
    window_count,
)

NOW = datetime(2026, 12, 5, 12, 0, 0, 500_000, tzinfo=UTC)
SPAN = timedelta(days=730)
FIELD = ClientSettings()
MILLION = 1_000_000


def contains(window: Window, moment: datetime) -> bool:
    return (window.start or BEGINNING) <= moment and (window.end is None or moment < window.end)


def test_planned_windows_cover_all_time_once_the_newest_narrowest_and_the_open_one_last():
    windows = plan_windows(NOW, 5, SPAN)
    assert len(windows) == 6
    assert windows[0].start is None  # from the beginning
    assert windows[-1].end is None and windows[-1].late  # the open window
    assert windows[-1].start == (NOW - OPEN_WINDOW_MARGIN).replace(microsecond=0)
    for earlier, later in itertools.pairwise(windows):
        assert earlier.end == later.start  # contiguous: nothing between, nothing twice
    widths = [w.end - w.start for w in windows[1:-1] if w.start and w.end]
    assert widths == sorted(widths, reverse=True)  # older windows are wider
    assert widths[0] == pytest.approx(widths[-1] * 8, abs=timedelta(seconds=8))
    assert all(
        b.microsecond == 0 for w in windows for b in (w.start, w.end) if b is not None
    )  # the parameters' precision is a second
    moments = [NOW - timedelta(days=d) for d in (0, 1, 30, 400, 729, 731, 20_000)]
    for moment in moments:
        assert sum(contains(w, moment) for w in windows) == 1


def test_window_parameters_are_utc_seconds_and_the_open_window_ends_after_now():
    closed, open_window = plan_windows(NOW, 1, SPAN)
    assert closed.params(NOW) == [
        ("startDateTime", "1970-01-01 00:00:00"),
        ("endDateTime", "2026-12-05 11:50:00"),
    ]
    (_, start), (_, end) = open_window.params(NOW)
    assert start == "2026-12-05 11:50:00"
    assert end > NOW.strftime("%Y-%m-%d %H:%M:%S")


def test_a_window_splits_into_two_halves_and_a_second_does_not_split():
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    first, second = split_window(window, NOW) or pytest.fail("did not split")
    assert (first.start, first.end, second.start, second.end) == (
        window.start,
        datetime(2026, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        window.end,
    )
    one_second = Window(window.start, window.start + timedelta(seconds=1))  # type: ignore[operator]
    assert split_window(one_second, NOW) is None


def test_the_open_window_splits_in_the_past_and_its_second_half_stays_open():
    open_window = plan_windows(NOW, 1, SPAN)[-1]
    first, second = split_window(open_window, NOW) or pytest.fail("did not split")
    assert first.end is not None and first.end <= NOW  # later updates land in the open half
    assert second.is_open and second.late and first.late


def test_window_count_keeps_each_window_within_half_a_stream():
    per_stream = rows_per_stream(FIELD)
    assert per_stream == pytest.approx((1800 - 2) * 2000 * 0.5)
    assert window_count(10, FIELD) == 1
    assert window_count(int(per_stream * 3) + 1, FIELD) == 4
    assert window_count(10**9, dataclasses.replace(FIELD, export_stream_limit=0)) == 1


def row(email: str | None, user_id: str | None, lists: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"userListIds": lists}
    if email is not None:
        out["email"] = email
    if user_id is not None:
        out["userId"] = user_id
    return out


def test_a_profile_read_twice_is_kept_once_from_the_later_window():
    old, open_window = plan_windows(NOW, 1, SPAN)
    # Updated during the read, after its window was read: it moved to the open window,
    # off list 2 and given a userId.
    before = row("a@example.com", None, [1, 2])
    after = row("a@example.com", "user-a", [1])
    stays = row("b@example.com", "user-b", [2])
    merged = list(merge_rows([(old, [before, stays]), (open_window, [after])], "hybrid"))
    assert merged == [after, stays]
    # By userId alone, too (the email changed during the read).
    renamed = row("new@example.com", "user-b", [])
    merged = list(merge_rows([(old, [before, stays]), (open_window, [renamed])], "hybrid"))
    assert merged == [renamed, before]


def test_profiles_that_share_an_email_in_a_userid_project_are_not_merged():
    old, open_window = plan_windows(NOW, 1, SPAN)
    one, other = row("shared@example.com", "u1", [1]), row("shared@example.com", "u2", [1])
    merged = list(merge_rows([(old, [one]), (open_window, [other])], "userId"))
    assert merged == [other, one]
    # In an email project the email is the profile.
    merged = list(merge_rows([(old, [one]), (open_window, [other])], "email"))
    assert merged == [other]


def test_merged_files_hold_what_merge_rows_gives(tmp_path: Path):
    windows = plan_windows(NOW, 3, SPAN)
    content = [
        [row("a@example.com", "ua", [1]), row("b@example.com", "ub", [1, 2])],
        [row("c@example.com", None, [2])],
        [row("d@example.com", "ud", [])],
        [row("b@example.com", "ub", [2]), row("e@example.com", "ue", [1])],
    ]
    paths = []
    for i, (window, rows) in enumerate(zip(windows, content, strict=True)):
        path = tmp_path / f"w{i}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append((window, path))
    target = tmp_path / "merged.jsonl"
    written = merge_window_files(paths, target, "hybrid")
    got = [json.loads(line) for line in target.read_text().splitlines()]
    assert got == list(merge_rows(list(zip(windows, content, strict=True)), "hybrid"))
    assert written == len(got) == 5
    # A window whose last line has no newline is still one line per profile once merged.
    for _window, path in paths:
        path.write_text(path.read_text().rstrip("\n"))
    assert merge_window_files(paths, target, "hybrid") == 5
    assert [json.loads(line) for line in target.read_text().splitlines()] == got
    only_old = [(windows[0], paths[0][1]), (windows[1], paths[1][1])]  # copied whole
    assert merge_window_files(only_old, target, "hybrid") == 3
    assert len([json.loads(line) for line in target.read_text().splitlines()]) == 3


def simulate(seed: int) -> None:
    """A project whose profiles are updated while its windows are read, in any order,
    the open window last: every profile is read exactly once, in its latest read state."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = start + timedelta(days=300)
    profiles = {
        f"p{i}@example.com": (start + timedelta(seconds=rng.randrange(300 * 86_400)), i % 3)
        for i in range(60)
    }
    windows = plan_windows(clock, 4, timedelta(days=200))
    pending = [w for w in windows if not w.is_open]
    rng.shuffle(pending)
    reads: list[tuple[Window, list[dict[str, Any]]]] = []
    last_read: dict[str, int] = {}

    def read(window: Window) -> None:
        rows = []
        for email, (updated, lists) in profiles.items():
            if contains(window, updated):
                rows.append(row(email, None, [lists]))
                last_read[email] = lists
        reads.append((window, rows))

    def update_some() -> None:
        nonlocal clock
        for email in rng.sample(sorted(profiles), 5):
            clock += timedelta(seconds=rng.randrange(1, 30))
            profiles[email] = (clock, rng.randrange(3))

    for window in pending:
        update_some()
        if rng.random() < 0.3:  # its stream died: read again as two halves
            for half in split_window(window, clock) or (window,):
                update_some()
                read(half)
        else:
            read(window)
    update_some()
    read(windows[-1])
    merged = list(merge_rows(reads, "email"))
    emails = [r["email"] for r in merged]
    assert sorted(emails) == sorted(profiles)  # nobody lost, nobody twice
    assert {r["email"]: r["userListIds"][0] for r in merged} == last_read


@pytest.mark.parametrize("seed", range(40))
def test_updates_during_the_read_lose_nobody_and_keep_the_latest_read(seed: int):
    simulate(seed)


def test_windows_are_chosen_when_one_export_outlasts_its_connection_and_are_faster():
    # Jobs slow (a long queue): 8M users cannot stream in one export (30 min at most).
    slow_jobs = dataclasses.replace(FIELD, export_job_queue=3 * 3600.0)
    sizes = [4 * MILLION, 4 * MILLION]
    assert export_seconds(sizes, slow_jobs) > slow_jobs.export_stream_limit
    route = choose_member_read(sizes, slow_jobs)
    assert route.name == "windowedExport"
    assert route.seconds == windowed_export_seconds(sizes, slow_jobs)
    assert route.seconds * WINDOWS_MARGIN < export_job_seconds(sizes, slow_jobs)
    assert "by the user export in date windows" in route.reason
    assert "longer than the 30 min 00 s Iterable lets an export stream" in route.reason
    # Five windows, four in flight: the fifth after the first four, then the open window.
    assert route.seconds < export_seconds(sizes, slow_jobs) / 2


def test_windows_are_not_chosen_when_one_export_fits_or_a_job_is_clearly_faster():
    sizes = [MILLION] * 3 + [10_000] * 20  # one export fits in its connection
    assert choose_member_read(sizes, FIELD).name == "asyncExport"
    slow_jobs = dataclasses.replace(FIELD, export_job_queue=3 * 3600.0)
    assert choose_member_read(sizes, slow_jobs).name == "export"
    # Too long for one export, but a job at the field's speeds is faster than windows.
    assert choose_member_read([8 * MILLION], FIELD).name == "asyncExport"


def test_windowed_route_can_be_forced():
    forced = dataclasses.replace(FIELD, member_reads="windowedExport")
    assert choose_member_read([10], forced).name == "windowedExport"
    env = {"RECONCILER_MEMBER_READS": "windowedExport", "RECONCILER_EXPORT_WINDOWS_IN_FLIGHT": "2"}
    settings = ClientSettings.from_env(env)
    assert (settings.member_reads, settings.export_windows_in_flight) == ("windowedExport", 2)
