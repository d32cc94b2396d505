"""The log of a GitHub Actions step: no line reconciler prints is a workflow command unless
reconciler means it to be (its own annotations, cli/annotate.py).

The runner reads every line a step prints, on stdout and on stderr (a line ends at LF, CR
or CRLF), and takes it as a command when, its leading whitespace trimmed, it starts with
`::NAME` and holds another `::` (`::add-mask::x`), or when it holds `##[NAME` anywhere
(`##[set-output name=exitcode;]0`), NAME being one of its commands in any case. Much of
what reconciler prints is other people's text: manifests arrive by pull request (keys,
list names, file names, a query's text quoted in a database's error, which may hold line
breaks), and Iterable's list and field names and messages are written by anyone with a
login there. Printed as they are, they could hide any text in the rest of the job's log
(`add-mask`), silence every later command and so reconciler's own annotations
(`stop-commands`), fold lines out of sight (`group`) or put forged errors on the pull
request.

So on a runner (GITHUB_ACTIONS=true, or wherever annotations are asked for: `--annotations
github`) stderr, and stdout when it is not a regular file (a pipe is the runner's log, or
a program's that may pass it on), break every such line as
GitHub's runner breaks its own markers in a step's output (`##[start-action` is shown as
`##[\\start-action`): a `\\` goes after `##[`, and after the `::` that starts a line, so
that NAME can never be a command's. The runner looks NAME up as it is spelt (ordinal,
case aside), so the `\\` always breaks it. An invisible zero-width space between `##` and
`[` would not: the runner finds `##[` with .NET's culture-aware IndexOf, which on Linux
(ICU) skips zero-width and other format characters, so it still finds `##\\u200b[`; that
is no command today only because the runner then reads NAME from a fixed offset. For the
same reason those characters count as whitespace before a line's `::` here. A stdout that
is a regular file (`plan --format markdown > plan.md`) is left byte for byte as written,
and JSON never meets the `\\`: its strings spell `##[` as `##\\u005b`
(render/json_text.py), the same value once parsed, so it is safe wherever it is printed
later. Outside Actions nothing changes.

GitHub's own answer for printing untrusted text, `::stop-commands::TOKEN` before it and
`::TOKEN::` after, does not fit a process: the runner reads stdout and stderr as two pipes,
so it may see a line of one before the other's `stop-commands` or after its `TOKEN`; the
annotations reconciler prints would need commands back on in between, while the other
pipe goes on printing; and a process killed midway (an out-of-memory kill, a job's
timeout) never prints `TOKEN`, so every command after it in the step (the workflow's own
`echo "::error::..."`) would be lost. Breaking each line needs no order and no ending.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
from collections.abc import Mapping
from typing import TypeGuard

# Characters .NET's ICU comparison skips as if absent (format characters: soft hyphen,
# zero-width spaces and joiners, direction marks, the byte-order mark): between the `#`s
# and `[` of `##[`, or before a line's `::`, they may still be read as none.
_INVISIBLE = "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_INVISIBLE_CHARACTERS = "".join(
    chr(code)
    for first, last in re.findall(r"(.)(?:-(.))?", _INVISIBLE)
    for code in range(ord(first), ord(last or first) + 1)
)
# What may come before a line's `::`: whitespace but a line break (the runner trims .NET's
# whitespace, which Python's `\s` holds) and the invisible characters. Never a line break:
# each line's start is then scanned once, however many lines are blank.
_LEADING = rf"(?:[^\S\r\n]|[{_INVISIBLE}])*"
# `##[` anywhere, or `::` at the start of a line (after a line break: the text given to
# `escaped` always starts with its context, see _Breaker).
_COMMAND = re.compile(rf"#[{_INVISIBLE}]*#[{_INVISIBLE}]*\[|(?<=[\r\n]){_LEADING}::")
_ANY_INVISIBLE = re.compile(f"[{_INVISIBLE}]")
_LAST_LINE_BLANK = re.compile(_LEADING)
_LAST_LINE_ONE_COLON = re.compile(rf"{_LEADING}:")
# Enough of a line's end to finish a `##[` split between two writes.
_CARRIED = 64
# The streams protect_streams replaced (see _protected).
_REPLACED: list[io.TextIOWrapper] = []


def on_runner(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process prints to a GitHub Actions runner's log (or one that reads its
    workflow commands: Gitea's and Forgejo's runners set the same variable)."""
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


class _Breaker:
    """Breaks the command lines of one stream written piece by piece: a `##[` or a line's
    leading `::` may be split between two writes, so the end of what was written is carried
    as the context of the next (a line break, a line's lone `:`, or trailing `#`s)."""

    def __init__(self) -> None:
        self._context = "\n"  # the stream starts a line

    def escaped(self, text: str) -> str:
        if not text:
            return text
        context = self._context
        written = context + text
        if _may_hold_a_command(written):
            written = _COMMAND.sub(_broken, written)
        self._carry(written)
        return written[len(context) :]

    def passed(self, text: str) -> None:
        """`text` was written as it is (a command reconciler means): carry its end."""
        self._carry(self._context + text)

    def at_line_start(self) -> bool:
        return self._context == "\n"

    def _carry(self, written: str) -> None:
        line = written[max(written.rfind("\n"), written.rfind("\r")) + 1 :]
        if _LAST_LINE_BLANK.fullmatch(line):
            self._context = "\n"
        elif _LAST_LINE_ONE_COLON.fullmatch(line):
            self._context = "\n:"
        else:
            # A line already under way: only `#`s at its end can begin a command.
            tail = line[-_CARRIED:]
            self._context = "x" + tail[len(tail.rstrip("#" + _INVISIBLE_CHARACTERS)) :]


def _may_hold_a_command(text: str) -> bool:
    # Most output holds neither: then it is not scanned character by character (a plan
    # of a million lines is a string search, not a regular expression's 1.7 s).
    if "##[" in text or "::" in text:
        return True
    return not text.isascii() and _ANY_INVISIBLE.search(text) is not None


def _broken(match: re.Match[str]) -> str:
    # After the `[` or the `::`: the runner then reads the name as `\NAME`, no command's.
    return match.group() + "\\"


def escaped(text: str) -> str:
    """`text` (whole lines) with no line a runner would take as a workflow command."""
    return _Breaker().escaped(text)


class CommandSafeText(io.TextIOWrapper):
    """A text stream that breaks command lines in what is written to it (see the module's
    docstring), except what `write_command` writes."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._breaker = _Breaker()

    def write(self, text: str, /) -> int:
        super().write(self._breaker.escaped(text))
        return len(text)

    def write_command(self, lines: str) -> None:
        """Write workflow commands reconciler means (`::error file=...::...` lines, escaped
        already), each on a line of its own."""
        if not self._breaker.at_line_start():
            lines = "\n" + lines
        super().write(lines)
        self._breaker.passed(lines)


def write_commands(lines: str) -> None:
    """Print workflow commands reconciler means on stderr, unbroken."""
    stream = sys.stderr
    if isinstance(stream, CommandSafeText):
        stream.write_command(lines)
    else:
        stream.write(lines)
    stream.flush()


def protect_streams() -> None:
    """Make stderr, and stdout unless it is a regular file, break command lines (a file,
    `> plan.md`, is kept as written, byte for byte): on a runner, or wherever annotations
    are asked for. A stream that is closed, not a file at all (a test's capture) or
    protected already is left as it is."""
    if _protectable(sys.stderr, keep_files=False):
        sys.stderr = _protected(sys.stderr)
    if _protectable(sys.stdout, keep_files=True):
        sys.stdout = _protected(sys.stdout)


def _protectable(stream: object, *, keep_files: bool) -> TypeGuard[io.TextIOWrapper]:
    if type(stream) is not io.TextIOWrapper:
        return False
    try:
        if keep_files and stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return False
        stream.flush()
    except (OSError, ValueError):
        return False
    return True


def _protected(stream: io.TextIOWrapper) -> CommandSafeText:
    # Over the same buffer (stderr's never-failing file, cli/stderr.py), as it was: stdout
    # block-buffered on a pipe, unbuffered under PYTHONUNBUFFERED. The wrapper it replaces
    # has nothing left in it, and is kept: collected, it would close the buffer they share.
    _REPLACED.append(stream)
    return CommandSafeText(
        stream.buffer,
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=stream.write_through,
    )
