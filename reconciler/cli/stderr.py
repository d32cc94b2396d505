"""stderr carries progress and messages for people; losing it must never stop the work.

Scripts send stderr where it can go away mid-run: `apply --yes 2>&1 | tee -a log` whose
`tee` is killed by a log rotation, `2>>/var/log/sync.log` on a disk that fills up. Each
progress line was a write that could fail, and the first that did ended the command as it
stood: an apply stopped between its adds and its removes, without its run record. Here
stderr is a stream whose writes never fail: once its descriptor refuses one, the rest of
the run's messages are dropped, and the run goes on to its exit code (which says the
outcome whatever became of the messages).
"""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class _ForgivingFile(io.FileIO):
    """A descriptor whose writes never fail: after the first that does, writes are dropped."""

    lost = False

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view) and not self.lost:
            try:
                done += super().write(view[done:]) or 0
            except OSError:  # EPIPE, ENOSPC, EIO, EBADF, EAGAIN: nobody reads the rest
                self.lost = True
        return len(view)


def never_failing_stderr() -> None:
    """Make sys.stderr a stream whose writes never fail (see the module's docstring). Still a
    real text stream on the same descriptor, so rich, click and tracebacks see no difference;
    a stderr that is closed or is not a file (a test's capture) is left as it is."""
    stream = sys.stderr
    if not isinstance(stream, io.TextIOWrapper):
        return
    try:
        descriptor = stream.fileno()
        stream.flush()
    except (OSError, ValueError):
        return
    # Straight onto the descriptor, with no buffer between, as Python's own stderr under
    # PYTHONUNBUFFERED: a buffer refuses a write made while it is writing ("reentrant call"),
    # which is what a message said from a signal handler (Ctrl-C during apply) does.
    sys.stderr = io.TextIOWrapper(
        _ForgivingFile(descriptor, "w", closefd=False),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=True,
        write_through=True,  # messages come out as they are said
    )
