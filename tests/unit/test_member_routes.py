"""How a destination's list members are read (issue 18): the route model, pure."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from reconciler.errors import ConfigError
from reconciler.iterable import ClientSettings
from reconciler.progress import heartbeat
from reconciler.state.live import LiveDestination
from reconciler.state.routes import (
    _starts,
    choose_member_read,
    choose_route,
    expected_size_checks,
    export_job_seconds,
    export_seconds,
    get_users_seconds,
)

FIELD = ClientSettings()  # Iterable's limits and the field's inferred speeds
MILLION = 1_000_000


def test_few_huge_lists_stream_in_parallel_so_the_longest_sets_the_time():
    sizes = [MILLION] * 3
    one = get_users_seconds([MILLION], FIELD)
    assert get_users_seconds(sizes, FIELD) == one  # three at once, not one after another
    sequential = dataclasses.replace(FIELD, list_read_concurrency=1)
    assert get_users_seconds(sizes, sequential) == pytest.approx(3 * one)


def test_many_small_lists_are_paced_by_five_starts_a_minute():
    sizes = [10] * 23
    seconds = get_users_seconds(sizes, FIELD)
    # 23 starts at 5 a minute: the last four start in the fifth minute.
    assert 4 * 60 < seconds < 5 * 60


def test_an_export_is_chosen_when_modelled_faster_and_says_why():
    sizes = [MILLION] * 3 + [10_000] * 20
    route = choose_member_read(sizes, FIELD)
    assert route.name == "asyncExport"
    assert route.seconds == export_job_seconds(sizes, FIELD)
    assert route.reason == (
        "chosen as faster: about 11 min 15 s by one asynchronous export job against "
        "26 min 42 s by one user export and 1 h 23 min by getUsers (23 lists, 5 starts a minute)"
    )
    no_jobs = dataclasses.replace(FIELD, export_job_queue=10**9)
    route = choose_member_read(sizes, no_jobs)
    assert route.name == "export"
    assert route.seconds == export_seconds(sizes, FIELD)


def test_a_list_of_millions_is_read_by_an_export_job_not_one_that_outlasts_its_connection():
    route = choose_member_read([4 * MILLION], FIELD)
    assert route.name == "asyncExport"  # 14 min against 5 h 33 min by getUsers
    no_jobs = dataclasses.replace(FIELD, export_job_queue=10**9)
    route = choose_member_read([4 * MILLION], no_jobs)
    assert route.name == "windowedExport"  # in date windows: each stream stays short
    slow_exports = dataclasses.replace(no_jobs, export_rate=50.0)
    route = choose_member_read([4 * MILLION], slow_exports)
    assert route.name == "getUsers"
    assert "longer than the 30 min 00 s Iterable lets an export stream" in route.reason


def test_with_few_lists_an_export_must_be_far_faster_than_getusers():
    # One list of 150: every getUsers starts at once; the export reads the whole project.
    assert choose_member_read([150], FIELD).name == "getUsers"
    assert choose_member_read([20_000] * 3, FIELD).name == "getUsers"
    assert choose_member_read([MILLION] * 3, FIELD).name == "asyncExport"


def test_a_few_small_lists_stay_on_get_users():
    # The export's time is a lower bound: a first byte's worth is no reason to take it.
    assert choose_member_read([30, 20, 10], FIELD).name == "getUsers"


def test_unknown_sizes_count_calls_and_a_forced_route_is_kept():
    assert choose_member_read([None] * 5, FIELD).name == "getUsers"
    assert choose_member_read([None] * 6, FIELD).name == "export"
    forced = dataclasses.replace(FIELD, member_reads="getUsers")
    assert choose_member_read([MILLION] * 3 + [10_000] * 20, forced).name == "getUsers"


def test_bulk_read_settings_come_from_the_environment():
    settings = ClientSettings.from_env(
        {
            "RECONCILER_BULK_READ_TIMEOUT": "7200",
            "RECONCILER_BULK_READ_RETRIES": "5",
            "RECONCILER_LIST_READ_CONCURRENCY": "3",
        }
    )
    assert (settings.bulk_read_timeout, settings.bulk_read_retries) == (7200, 5)
    assert settings.list_read_concurrency == 3
    with pytest.raises(ConfigError, match="RECONCILER_LIST_READ_CONCURRENCY"):
        ClientSettings.from_env({"RECONCILER_LIST_READ_CONCURRENCY": "0"})
    with pytest.raises(ConfigError, match="RECONCILER_BULK_READ_TIMEOUT"):
        ClientSettings.from_env({"RECONCILER_BULK_READ_TIMEOUT": "0"})


class _Counting:
    def __init__(self) -> None:
        self.ticks = 0
        self.ticked = threading.Event()

    def advance(self, n: int = 1) -> None:
        assert n == 0
        self.ticks += 1
        if self.ticks >= 3:
            self.ticked.set()

    def set_total(self, total: int | None) -> None:
        pass

    def finish(self) -> None:
        pass


def test_a_heartbeat_ticks_its_tasks_until_it_stops():
    task = _Counting()
    with heartbeat(task, period=0.001) as beat:
        assert task.ticked.wait(timeout=60)
        beat.discard(task)
        stopped = task.ticks
    assert task.ticks <= stopped + 1  # at most the tick under way when it was discarded


def test_size_checks_of_empty_lists_share_get_users_budget_and_are_counted():
    """Each list expected to read empty is proven by lists/{id}/size, from getUsers' 5
    starts a minute: 4 reads and 2 checks are 6 starts, the 6th in the next minute."""
    sizes = [5, 5, 0, 0]
    assert expected_size_checks(sizes) == 2
    assert expected_size_checks([5, None, 0]) == 1
    assert get_users_seconds(sizes, FIELD) < 60
    assert get_users_seconds(sizes, FIELD, 2) > 60
    assert get_users_seconds(sizes, FIELD, 1) < 60  # the 5th start is free
    assert export_seconds(sizes, FIELD, 2) < 60  # an export leaves all 5 to the checks
    route = choose_route(sizes, FIELD)
    assert route.name == "export"
    assert "(4 lists and 2 size checks of lists expected empty, 5 starts a minute)" in (
        route.reason
    )
    assert choose_route([5, 5, 5, 0], FIELD).name == "getUsers"
    # Told that no check will be made (sizes asked of Iterable already): as before.
    assert choose_route(sizes, FIELD, size_checks=0).name == "getUsers"


def test_a_plan_of_thousands_of_lists_says_how_they_were_read_with_thousands_separators():
    """ "members of 2000 lists read with 2000 getUsers calls" in a plan of 2,000 audiences:
    counts people read have thousands separators (README)."""
    said = LiveDestination([], {f"l{i}": None for i in range(2_000)}, 2_000).describe_reads()
    assert said == "members of 2,000 lists read with 2,000 getUsers calls in parallel"
    assert _starts(2_000, 1_500, 5) == (
        "2,000 lists and 1,500 size checks of lists expected empty, 5 starts a minute"
    )
    # One is singular: "1 lists" was said of a single list.
    assert _starts(1, 1, 5) == "1 list and 1 size check of lists expected empty, 5 starts a minute"
    route = choose_member_read([10] * 1_200 + [None], FIELD)
    assert "one export rather than 1,201 getUsers" in route.reason
