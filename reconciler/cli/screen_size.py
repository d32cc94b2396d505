"""A terminal size of 0 in COLUMNS or LINES is no size.

rich takes COLUMNS and LINES as the screen's size whenever they are digits, 0 included:
COLUMNS=0 (a container's terminal before it is sized, `docker exec -t`; a shell variable
exported from such a one) drew every line 0 columns wide, so each error, warning, progress
line, usage error and --help printed nothing at all, and a failed plan exited 1 in silence;
LINES=0 showed a terminal's progress bars as one line of "..." for the whole read. rich
already takes a 0 the terminal itself reports as unknown (80 by 25); a 0 in the environment
is taken so too.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def ignore_zero_sizes(environ: MutableMapping[str, str] | None = None) -> None:
    """Remove COLUMNS and LINES when they say 0 (`0`, `00`), before any rich Console reads
    them; any other value is left to rich (which ignores what is not digits)."""
    environ = os.environ if environ is None else environ
    for name in ("COLUMNS", "LINES"):
        value = environ.get(name, "")
        if value.isdigit() and int(value) == 0:
            del environ[name]
