"""The command's result on stdout (a plan, a report, a JSON object, the status table): the
one way it is written, so that a stdout which cannot take it is an error that says so.

Scripts meet three such stdouts: a pipe whose reader left (`reconciler plan | head -1`), a
full disk (`> /dev/full`, a log volume filling up) and a closed one (`>&-`). Without this, the
first exited 1 in silence, the second was reported as a bug in reconciler (and with
`--format json` as a traceback, from writing the error object to the same full stdout), and
the third exited 0 having written nothing, so `plan --format json >&-` passed for a plan
read by a script.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from reconciler.errors import OutputError


def emit(text: str, what: str, *, nl: bool = True, consequence: str | None = None) -> None:
    """Write `text` (`what` names it for the error: "the plan") to stdout, or raise
    OutputError; `consequence` says what the failure means for the run ("nothing was
    applied")."""
    with writing(what, consequence=consequence):
        typer.echo(text, nl=nl)  # which flushes, so a full disk is found here


@contextmanager
def writing(what: str, *, consequence: str | None = None) -> Iterator[None]:
    """Around a block that writes `what` to stdout and flushes it (typer.echo, or rich
    printing typer's help): a stdout that would not take it raises OutputError."""
    then = f"; {consequence}" if consequence else ""
    if sys.stdout is None:  # Python's stdout when the process started with it closed
        raise OutputError(f"standard output is closed, so {what} was not written{then}")
    try:
        yield
    except OSError as exc:
        _discard_the_rest()
        raise OutputError(
            f"could not write {what} to standard output ({_reason(exc)}){then}"
        ) from None


def _reason(exc: OSError) -> str:
    if isinstance(exc, BrokenPipeError):
        return "the pipe was closed: whatever reads it stopped reading"
    return exc.strerror or type(exc).__name__


def _discard_the_rest() -> None:
    """What the failed write left in stdout's buffer is flushed once more as Python exits,
    which would fail again with a traceback ("Exception ignored ... BrokenPipeError") and
    exit 120. Python's documented remedy: stdout's descriptor becomes /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # a stdout without a descriptor (a test's capture) keeps nothing to flush
