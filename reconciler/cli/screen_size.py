"""A terminal size of 0 (COLUMNS, LINES, typer's TERMINAL_WIDTH) is no size.

rich takes COLUMNS and LINES as the screen's size whenever they are digits, 0 included:
COLUMNS=0 (a container's terminal before it is sized, `docker exec -t`; a shell variable
exported from such a one) drew every line 0 columns wide, so each error, warning, progress
line, usage error and --help printed nothing at all, and a failed plan exited 1 in silence;
LINES=0 showed a terminal's progress bars as one line of "..." for the whole read. rich
already takes a 0 the terminal itself reports as unknown (80 by 25); a 0 in the environment
is taken so too. typer's own TERMINAL_WIDTH (the help's and usage errors' width) the same,
and one that is not a number (`TERMINAL_WIDTH=wide`) is dropped too: typer reads it with
int(), so it failed every --help and usage error as an internal error of reconciler.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def ignore_sizes_of_nothing(environ: MutableMapping[str, str] | None = None) -> None:
    """Remove COLUMNS and LINES when they say 0 (`0`, `00`), before any rich Console reads
    them, and TERMINAL_WIDTH unless it is a width; any other value of the first two is left
    to rich (which ignores what is not digits)."""
    environ = os.environ if environ is None else environ
    for name in ("COLUMNS", "LINES"):
        value = environ.get(name, "")
        if value.isdigit() and int(value) == 0:
            del environ[name]
    width = environ.get("TERMINAL_WIDTH")
    if width and not _positive(width):  # typer reads an empty one as unset
        del environ["TERMINAL_WIDTH"]


def _positive(value: str) -> bool:
    try:
        return int(value) > 0
    except ValueError:
        return False
