"""Progress on stderr: plain periodic lines off a terminal (CI logs), rich bars on one."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

from rich.console import Console

from reconciler.progress import _SHOWN, NULL_PROGRESS, console_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain_console() -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(file=out, force_terminal=False, width=80), out


def lines(out: StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_plain_lines_when_a_task_starts_every_interval_and_when_it_finishes():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=10.0, clock=clock) as progress:
        task = progress.task("adding members", total=10_000)
        assert lines(out) == ["adding members: started (10,000 members)"]

        clock.now += 4
        task.advance(1_000)
        assert len(lines(out)) == 1  # within the interval: silent

        clock.now += 6
        task.advance(3_000)
        # The rest (6,000) at the rate so far: 15 s.
        assert lines(out)[-1] == (
            "adding members: 4,000/10,000 members (40%), 400/s, 10 s, 15 s left"
        )

        clock.now += 5
        task.advance(6_000)
        assert len(lines(out)) == 2  # the last line was 5 s ago

        task.finish()
    assert lines(out)[-1] == "adding members: finished, 10,000 members, 667/s, 15 s"
    assert len(lines(out)) == 3


def test_plain_lines_with_an_unknown_total_show_the_count_and_rate():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=5.0, clock=clock) as progress:
        task = progress.task("reading list 'vip'")
        clock.now += 8
        task.advance(3_280_000)
    assert lines(out) == [
        "reading list 'vip': started",
        "reading list 'vip': 3,280,000 members, 410,000/s, 8.0 s",
    ]


def test_many_advances_within_an_interval_write_at_most_one_line_each_interval():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=10.0, clock=clock) as progress:
        task = progress.task("removing members", total=None)
        for _ in range(100):  # a batch every second for 100 s
            clock.now += 1
            task.advance(1_000)
    periodic = lines(out)[1:]
    assert len(periodic) == 10
    assert periodic[-1] == "removing members: 100,000 members, 1,000/s, 1 min 40 s"


def test_finish_is_idempotent_and_later_advances_write_nothing():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=0.0, clock=clock) as progress:
        task = progress.task("updating user fields", total=2, unit="users")
        clock.now += 1
        task.advance(2)
        task.finish()
        task.finish()
        clock.now += 1
        task.advance(5)
    # no periodic line at exactly the total: the finish line says the same
    assert lines(out) == [
        "updating user fields: started (2 users)",
        "updating user fields: finished, 2 users, 2.0/s, 1.0 s",
    ]


def test_a_task_that_finishes_short_of_its_total_says_how_far_it_got():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, clock=clock) as progress:
        task = progress.task("adding members", total=1_000)
        clock.now += 2
        task.advance(300)
        task.finish()
    assert lines(out)[-1] == "adding members: finished, 300/1,000 members (30%), 150/s, 2.0 s"


def test_set_total_changes_what_the_lines_show():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=1.0, clock=clock) as progress:
        task = progress.task("reading list 'a'")
        task.set_total(50)
        clock.now += 1
        task.advance(10)
        task.set_total(None)
        clock.now += 1
        task.advance(10)
    assert lines(out)[1:] == [
        "reading list 'a': 10/50 members (20%), 10/s, 1.0 s, 4.0 s left",
        "reading list 'a': 20 members, 10/s, 2.0 s",
    ]


def test_names_with_brackets_print_as_written_and_notes_are_plain_lines():
    console, out = plain_console()
    with console_progress(console, clock=FakeClock()) as progress:
        progress.note("diffing [bold]in DuckDB[/bold]")
        progress.task("reading list '[vip]'").finish()
    assert lines(out)[0] == "diffing [bold]in DuckDB[/bold]"
    assert lines(out)[1] == "reading list '[vip]': started"
    assert "\x1b[" not in out.getvalue()


def test_advances_from_a_thread_pool_are_all_counted():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=0.0, clock=clock) as progress:
        task = progress.task("adding members", total=8_000)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda _: task.advance(1), range(8_000)))
        clock.now += 1
        task.finish()
    assert lines(out)[-1] == "adding members: finished, 8,000 members, 8,000/s, 1.0 s"
    # every advance short of the total wrote one whole line (interval 0), in order
    counts = [int(line.split(": ")[1].split("/")[0].replace(",", "")) for line in lines(out)[1:-1]]
    assert counts == list(range(1, 8_000))


def test_one_member_is_singular():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, clock=clock) as progress:
        task = progress.task("removing members", total=1)
        clock.now += 0.5
        task.advance()
        task.finish()
    assert lines(out) == [
        "removing members: started (1 member)",
        "removing members: finished, 1 member, 2.0/s, 0.5 s",
    ]


def test_the_null_progress_accepts_every_call():
    task = NULL_PROGRESS.task("anything", total=3)
    task.advance(2)
    task.set_total(None)
    task.finish()
    NULL_PROGRESS.note("nothing")
    assert NULL_PROGRESS.task("other") is task  # one shared do-nothing task


def test_terminal_mode_draws_bars_with_counts_rate_and_elapsed():
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    clock = FakeClock()
    with console_progress(console, clock=clock) as progress:
        progress.note("diffing in DuckDB")
        reading = progress.task("reading list 'vip'")
        clock.now += 2
        reading.advance(5_000)
        reading.finish()
        adding = progress.task("adding members", total=1_000)
        clock.now += 4
        adding.advance(400)
        adding.finish()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn as a terminal, not as plain lines
    assert "diffing in DuckDB" in text
    assert "reading list 'vip'" in text and "5,000/5,000" in text
    assert "2,500 members/s" in text
    assert "400/1,000" in text and "100 members/s" in text
    assert "started" not in text


def test_bars_say_how_long_is_left_at_the_rate_so_far_until_the_task_ends():
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    clock = FakeClock()
    with console_progress(console, clock=clock) as progress:
        adding = progress.task("adding members", total=1_000_000)
        clock.now += 600
        adding.advance(200_000)  # a fifth in 10 minutes: 40 to go at this rate
        _SHOWN[-1].refresh()  # as rich's own thread does ten times a second
        assert "40 min 00 s left" in out.getvalue()
        mark = len(out.getvalue())
        adding.advance(100_000)
        adding.finish()  # stopped short (Ctrl-C): nothing is left to wait for
    assert "left" not in out.getvalue()[mark:].split("\r")[-1]


def test_a_line_says_how_long_is_left_only_while_there_is_a_rate_and_a_total():
    console, out = plain_console()
    clock = FakeClock()
    with console_progress(console, interval=10.0, clock=clock) as progress:
        unknown = progress.task("reading list 'vip'")
        clock.now += 10
        unknown.advance(5_000)
        waiting = progress.task("adding members", total=2_000_000)
        clock.now += 10
        waiting.advance(0)  # a heartbeat before the first batch: no rate, no estimate
        clock.now += 3590
        waiting.advance(500_000)  # an hour for a quarter: three more
        waiting.finish()
    assert lines(out)[1:] == [
        "reading list 'vip': 5,000 members, 500/s, 10 s",
        "adding members: started (2,000,000 members)",
        "adding members: 0/2,000,000 members (0%), 10 s",
        "adding members: 500,000/2,000,000 members (25%), 139/s, 1 h 00 min, 3 h 00 min left",
        "adding members: finished, 500,000/2,000,000 members (25%), 139/s, 1 h 00 min",
    ]


def test_on_a_narrow_terminal_a_long_name_is_cut_and_the_numbers_stay_whole():
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    clock = FakeClock()
    name = "reading list 'Churn risk model, weekly, all regions, paying customers'"
    with console_progress(console, clock=clock) as progress:
        task = progress.task(name)
        clock.now += 190
        task.advance(9_880_000)
        task.finish()
    last_frame = out.getvalue().split("\r")[-1]
    assert "9,880,000/9,880,000" in last_frame and "52,000/s" in last_frame
    assert "0:03:10" in last_frame
    assert name not in last_frame and "…" in last_frame


def test_terminal_mode_leaves_stdout_alone(capsys):
    # stdout carries plans (`--format json`); rich would otherwise reroute it into the bars.
    console = Console(file=StringIO(), force_terminal=True)
    with console_progress(console, clock=FakeClock()) as progress:
        progress.task("reading list 'vip'").advance(3)
        sys.stdout.write('{"plan": 1}\n')
    assert capsys.readouterr().out == '{"plan": 1}\n'


def test_many_finished_bars_leave_the_live_display_so_each_redraw_stays_small(monkeypatch):
    # rich redraws every bar it holds on each refresh; a plan of 200 audiences kept all 200
    # (and took 30 s of CPU drawing them). Finished bars are printed once and let go.
    from rich.progress import Progress as RichProgress

    from reconciler.progress import LIVE_FINISHED_BARS

    drawn: list[int] = []
    make_table = RichProgress.make_tasks_table

    def counting(self, tasks):
        tasks = list(tasks)
        drawn.append(len(tasks))
        return make_table(self, tasks)

    monkeypatch.setattr(RichProgress, "make_tasks_table", counting)
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    clock = FakeClock()
    names = [f"reading audience 'aud-{i:03d}'" for i in range(200)]
    with console_progress(console, clock=clock) as progress:
        running = progress.task("reading members of 200 lists (one user export)")
        for name in names:
            task = progress.task(name, unit="rows")
            clock.now += 1
            task.advance(5)
            task.finish()
            task.advance(0)  # a heartbeat's tick after the finish changes nothing
        running.advance(1_000)
        running.finish()
    assert len(drawn) >= len(names)  # one redraw per finish at least
    assert max(drawn) <= LIVE_FINISHED_BARS + 2
    text = out.getvalue()
    assert all(name in text for name in names)  # every finished bar is still on screen
    assert text.count("5/5") >= len(names)
