"""Progress of long steps (reading, diffing, batches of writes) for people watching stderr.

The core reports through the small `Progress`/`Task` protocols and defaults to
`NULL_PROGRESS`; only the CLI makes a real one with `console_progress`. On a terminal that is
a set of rich bars; anywhere else (CI logs, `2>log.txt`) it is plain lines, one when a task
starts, at most one every `interval` seconds while it advances, and one when it finishes, so a
log shows a 10-million-member run moving without a line per batch.

Lines carry only descriptions, counts, rates and times: callers describe tasks by phase and
list name, never by member, because logs are read by more people than plans.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, TaskID, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.progress import Task as RichTask
from rich.table import Column
from rich.text import Text

from reconciler.threads import StopSignalsHeldLock, start_thread, stop_signals_blocked

Clock = Callable[[], float]


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def set_total(self, total: int | None) -> None: ...
    def finish(self) -> None: ...  # idempotent; the task is done


class Progress(Protocol):
    def task(self, description: str, total: int | None = None, unit: str = "members") -> Task: ...
    def note(self, message: str) -> None: ...  # a one-off status line


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def finish(self) -> None:
        pass


class _NullProgress:
    def task(self, description: str, total: int | None = None, unit: str = "members") -> Task:
        return _NULL_TASK

    def note(self, message: str) -> None:
        pass


_NULL_TASK = _NullTask()
NULL_PROGRESS: Progress = _NullProgress()


class _Labelled:
    """A progress whose tasks and notes start with a label: which destination a read is
    of, when a plan reads several (two projects each holding a list named "vip")."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress, self._label = progress, label

    def task(self, description: str, total: int | None = None, unit: str = "members") -> Task:
        return self._progress.task(f"{self._label}{description}", total, unit)

    def note(self, message: str) -> None:
        self._progress.note(f"{self._label}{message}")


def labelled(progress: Progress, label: str) -> Progress:
    """`progress` with `label` before every task's description and every note."""
    return progress if progress is NULL_PROGRESS else _Labelled(progress, label)


def console_progress(
    console: Console,
    *,
    interval: float = 10.0,
    clock: Clock = time.monotonic,
    bars: bool | None = None,
) -> AbstractContextManager[Progress]:
    """Bars when `bars` (by default: when rich calls `console` a terminal), otherwise plain
    lines at most every `interval` seconds per task. `clock` is injectable so tests need
    not sleep."""
    if console.is_terminal if bars is None else bars:
        return _bars(console, clock)
    return _lines(console, interval, clock)


# Columns a bar needs: its numbers take about 40, and the list's name the rest. Narrower,
# the name was cut to "reading a…" and, under about 35, each line wrapped, so every redraw
# left lines behind instead of replacing them.
MIN_BAR_WIDTH = 60


def redraws_in_place(console: Console) -> bool:
    """Whether `console` writes to a terminal that bars can redraw in place. Not rich's
    `is_terminal`: FORCE_COLOR (set in many CI jobs for coloured logs) makes rich call any
    stream a terminal, and a CI log then got every redraw, ten a second, as carriage
    returns and escape codes. A terminal with TERM=dumb (an Emacs shell, some IDE consoles)
    cannot redraw, and rich shows bars there only once they end: a long read was silent.
    A very narrow one (a split pane) gets lines too, which wrap and keep names whole."""
    try:
        tty = console.file.isatty()
    except (AttributeError, ValueError, OSError):  # a closed or descriptor-less stream
        return False
    return tty and not console.is_dumb_terminal and console.width >= MIN_BAR_WIDTH


# Formatting shared by both modes.


def _count(n: int | float) -> str:
    return f"{int(n):,}"


def _rate(done: int | float, seconds: float | None) -> str | None:
    # Nothing done yet says more without a "0/s" beside it.
    if not done or not seconds or seconds <= 0:
        return None
    rate = done / seconds
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def _left(done: int | float, total: int | float | None, seconds: float | None) -> str | None:
    """`3 min 10 s left`: the rest at the average rate so far (the rate shown beside it),
    for a task with a known total that has begun and not reached it. An apply of millions
    of members runs for half an hour and more: its count and rate alone left the reader
    to work out when it ends."""
    if total is None or not done or done >= total or not seconds or seconds <= 0:
        return None
    return f"{_duration((total - done) * seconds / done)} left"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _amount(done: int, total: int | None, unit: str) -> str:
    """`3,200/10,000 members (32%)`, or `3,200 members` when the total is unknown."""
    if total is None:
        return f"{_count(done)} {_units(done, unit)}"
    percent = f" ({done * 100 // total}%)" if total else ""
    return f"{_count(done)}/{_count(total)} {_units(total, unit)}{percent}"


def _units(n: int | float, unit: str) -> str:
    """`1 member`, `2 members`: units are given in the plural."""
    return unit[:-1] if n == 1 and unit.endswith("s") else unit


def duration(seconds: float) -> str:
    """`4.2 s`, `42 s`, `3 min 05 s`, `1 h 20 min`: how long a step took, for people."""
    return _duration(seconds)


class Heartbeat:
    """Tasks that may wait a long time without advancing (a read waiting for its first
    byte, or for a slot of a rate limit), ticked every second so that their elapsed time
    keeps being shown: a plain-lines task writes its line every interval even at 0 members,
    so a read never waits in silence."""

    def __init__(self, period: float = 1.0) -> None:
        self._tasks: set[Task] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._period = period

    def add(self, task: Task) -> None:
        with self._lock:
            self._tasks.add(task)

    def discard(self, task: Task) -> None:
        with self._lock:
            self._tasks.discard(task)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            with self._lock:
                tasks = list(self._tasks)
            for task in tasks:
                task.advance(0)


@contextmanager
def heartbeat(*tasks: Task, period: float = 1.0) -> Iterator[Heartbeat]:
    """A Heartbeat ticking `tasks` (and any added later) until the block ends."""
    beat = Heartbeat(period)
    for task in tasks:
        beat.add(task)
    thread = threading.Thread(target=beat._run, name="reconciler-heartbeat", daemon=True)
    start_thread(thread)
    try:
        yield beat
    finally:
        beat._stop.set()
        thread.join()


# Plain lines (not a terminal).


@contextmanager
def _lines(console: Console, interval: float, clock: Clock) -> Iterator[Progress]:
    yield _LineProgress(console, interval, clock)


class _LineProgress:
    def __init__(self, console: Console, interval: float, clock: Clock) -> None:
        self._console = console
        self._interval = interval
        self._clock = clock
        self._write_lock = threading.Lock()

    def task(self, description: str, total: int | None = None, unit: str = "members") -> Task:
        return _LineTask(self, description, total, unit)

    def note(self, message: str) -> None:
        self.write(message)

    def write(self, line: str) -> None:
        # markup off: a list name such as "[vip]" must print as written.
        with self._write_lock:
            self._console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


class _LineTask:
    def __init__(
        self, owner: _LineProgress, description: str, total: int | None, unit: str
    ) -> None:
        self._owner = owner
        self._description = description
        self._total = total
        self._unit = unit
        self._done = 0
        self._finished = False
        self._lock = threading.Lock()
        self._started = self._last_line = owner._clock()
        owner.write(
            f"{description}: started"
            + (f" ({_count(total)} {_units(total, unit)})" if total is not None else "")
        )

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._done += n
            if self._finished:
                return
            now = self._owner._clock()
            # At exactly its total the finish line is due, and says the same.
            if now - self._last_line < self._owner._interval or self._done == self._total:
                return
            self._last_line = now
            # Written under the task's lock, so lines from a pool of threads come out in
            # order and never after the task's last line.
            self._owner.write(self._line(now))

    def set_total(self, total: int | None) -> None:
        with self._lock:
            self._total = total

    def finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._owner.write(self._line(self._owner._clock(), finished=True))

    def _line(self, now: float, *, finished: bool = False) -> str:
        elapsed = now - self._started
        # A finished task shows its total only when it fell short (errors, Ctrl-C): then
        # "300/1,000" says what was left; otherwise "1,000 members" says it all.
        total = self._total if not finished or self._done != self._total else None
        parts = [_amount(self._done, total, self._unit)]
        rate = _rate(self._done, elapsed)
        if rate is not None:
            parts.append(f"{rate}/s")
        parts.append(_duration(elapsed))
        left = None if finished else _left(self._done, self._total, elapsed)
        if left is not None:
            parts.append(left)
        return f"{self._description}: {'finished, ' if finished else ''}{', '.join(parts)}"


# Bars (a terminal).


class _DescriptionColumn(ProgressColumn):
    """The task's description as written (a list name like "[vip]" is not markup). On a
    narrow terminal this column gives way, cut short with an ellipsis, and the numbers stay
    whole: rich narrows only the columns that may wrap, so the others are no_wrap."""

    def render(self, task: RichTask) -> Text:
        return Text(task.description, no_wrap=True, overflow="ellipsis")


class _CountColumn(ProgressColumn):
    """`3,200/10,000`, or `3,200` while the total is unknown; the rate beside it names the
    unit, which keeps the line short enough for an 80-column terminal."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: RichTask) -> Text:
        done = _count(task.completed)
        text = done if task.total is None else f"{done}/{_count(task.total)}"
        return Text(text, style="progress.download")


class _RateColumn(ProgressColumn):
    """The average since the task started: batches land in bursts (and rate-limit waits
    sit between them), so a short-window speed would jump about."""

    def __init__(self, *, with_unit: bool) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._with_unit = with_unit

    def render(self, task: RichTask) -> Text:
        rate = _rate(task.completed, task.elapsed)
        if rate is None:
            return Text("")
        unit = f" {task.fields['unit']}" if self._with_unit else ""
        return Text(f"{rate}{unit}/s", style="progress.data.speed")


class _LeftColumn(ProgressColumn):
    """`3 min 10 s left` while a task with a known total runs (_left); empty otherwise."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: RichTask) -> Text:
        if task.finished or task.stop_time is not None:  # done, or stopped short (Ctrl-C)
            return Text("")
        left = _left(task.completed, task.total, task.elapsed)
        return Text(left or "", style="progress.remaining")


@contextmanager
def _bars(console: Console, clock: Clock) -> Iterator[Progress]:
    # Below 100 columns the bar and the rate's unit give way, so list names stay readable.
    narrow = console.width < 100
    bars = RichProgress(
        _DescriptionColumn(),
        BarColumn(bar_width=10 if narrow else 20),
        _CountColumn(),
        _RateColumn(with_unit=not narrow),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        _LeftColumn(),
        console=console,
        get_time=clock,
        # Finished bars stay on screen: in a long plan they are the record of what was read.
        transient=False,
        # stdout carries plans (`--format json | jq`): it must never be drawn into the bars.
        redirect_stdout=False,
    )
    hold_stop_signals(console)
    # Before the first task, which shares the bars' lock.
    bars._lock = bars.live._lock = StopSignalsHeldLock()  # type: ignore[assignment]
    with stop_signals_blocked():
        bars.start()  # rich's refresh thread starts here: Ctrl-C is the main thread's
    with bars:
        _SHOWN.append(bars)
        try:
            yield _BarProgress(bars)
        finally:
            _SHOWN.remove(bars)


def hold_stop_signals(console: Console) -> Console:
    """`console`, its lock holding the stop signals back from the main thread while that
    holds it (StopSignalsHeldLock): a Ctrl-C handler that prints or ends the bars, run
    while the main thread was printing, waited for the bars' refresh thread, itself
    waiting for the console. Best made so before any other thread can print on it (the
    CLI's on import); otherwise it is swapped under the lock it had."""
    if not isinstance(console._lock, StopSignalsHeldLock):
        with console._lock:
            console._lock = StopSignalsHeldLock()  # type: ignore[assignment]
    return console


# The bars on screen now, for stop_bars.
_SHOWN: list[RichProgress] = []


def stop_bars() -> None:
    """End the bars on screen now, for a process about to end with os._exit (a second
    Ctrl-C during apply), which skips the `with` that would: the terminal was left with
    its cursor hidden (rich hides it while bars are drawn) and the last bars' line
    unended, the shell's prompt written on it."""
    for bars in list(_SHOWN):
        try:
            bars.stop()
        except Exception:  # the process ends next, whatever this does
            continue


# Finished bars the live display keeps before they are printed above it, once each: rich
# redraws every bar it holds on each refresh (ten a second, and once per finish), so bars
# kept to the end made a plan of 200 small audiences spend 30 s of CPU drawing them (1 s
# without a terminal), four times as long for twice the audiences.
LIVE_FINISHED_BARS = 10


class _BarProgress:
    def __init__(self, bars: RichProgress) -> None:
        self._bars = bars
        self._finished: list[TaskID] = []
        self._finished_lock = threading.Lock()

    def task(self, description: str, total: int | None = None, unit: str = "members") -> Task:
        task_id = self._bars.add_task(description, total=total, unit=unit)
        return _BarTask(self._bars, task_id, self._retire)

    def note(self, message: str) -> None:
        self._bars.console.print(message, markup=False, highlight=False, emoji=False)

    def _retire(self, task_id: TaskID) -> None:
        """Past LIVE_FINISHED_BARS finished bars, print them (as the rows they were, in the
        order they finished) above the live display and drop them from it."""
        with self._finished_lock:
            self._finished.append(task_id)
            if len(self._finished) <= LIVE_FINISHED_BARS:
                return
            retired, self._finished = self._finished, []
            with self._bars._lock:
                tasks = [self._bars._tasks[i] for i in retired]
            rows = self._bars.make_tasks_table(tasks)
            for i in retired:
                self._bars.remove_task(i)
            self._bars.console.print(rows)


class _BarTask:
    def __init__(
        self, bars: RichProgress, task_id: TaskID, retire: Callable[[TaskID], None]
    ) -> None:
        self._bars = bars
        self._id = task_id
        self._retire = retire
        self._finished = False
        self._lock = threading.Lock()

    def _task(self) -> RichTask:
        return self._bars._tasks[self._id]  # rich keeps no public lookup by id

    def advance(self, n: int = 1) -> None:
        # A finished bar is final (and may have left the live display): later advances, a
        # heartbeat's included, change nothing, as a finished plain-lines task writes nothing.
        with self._lock:
            if not self._finished:
                self._bars.advance(self._id, n)

    def set_total(self, total: int | None) -> None:
        with self._lock:
            if self._finished:
                return
            if total is not None:
                self._bars.update(self._id, total=total)
                return
            # rich's update() reads total=None as "leave it"; unknown again means a pulsing bar.
            with self._bars._lock:
                task = self._task()
                task.total = None
                task.finished_time = None

    def finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        task = self._task()
        # Stopping freezes the elapsed time; an unknown total becomes the count, so the bar
        # completes. A known total that was not reached (errors, Ctrl-C) keeps the bar short.
        self._bars.stop_task(self._id)
        if task.total is None:
            self._bars.update(self._id, total=task.completed)
        if task.total is not None and task.completed >= task.total:
            with self._bars._lock:
                task.finished_time = task.elapsed
        self._bars.refresh()
        self._retire(self._id)
