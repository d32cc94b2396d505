"""Manifest problems as GitHub Actions annotations: shown on the pull request's diff.

In a GitHub Actions step, a line `::error file=F,line=L,col=C,title=T::MESSAGE` (or
`::warning ...`) on stdout or stderr becomes an annotation on line L of file F, which the
pull request shows on its changed lines. `validate` and `plan` print one for each located
error and warning beside their usual `FILE:LINE:COL: message` lines (on stderr: stdout
keeps to the plan) when `--annotations github` is given, or by default (`auto`) when
`GITHUB_ACTIONS=true`, as on every Actions runner.

The messages quote the manifests, which arrive by pull request: untrusted text. The runner
takes every line of a step's output that starts with `::` as a command, so the message and
the properties are escaped exactly as GitHub's toolkit escapes them (`%`, CR and LF in
both; `:` and `,` in a property too): a manifest cannot start a line of its own
(`::add-mask::`, `::stop-commands::`, `::set-output`) or end the properties early to
annotate another file. Every other line printed on a runner is broken where it would be
a command (cli/workflow_commands.py); these lines alone are written whole. The text is
the one the log shows, masked (emails, source values), and masked even with
--show-members: annotations outlive the log on the check run.

GitHub shows at most 10 error and 10 warning annotations per step; beyond them it drops
the rest silently, so the first 10 of each are printed and the log says once that the
others are only in the text above.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler import alerts
from reconciler.cli.options import AnnotationsMode
from reconciler.cli.workflow_commands import protect_streams, write_commands
from reconciler.errors import Problem
from reconciler.members.issue import MemberIssue
from reconciler.render.masking import Show, mask_emails, masks, quoted, shower

Level = Literal["error", "warning"]

# What GitHub shows per step, of each level (docs: "Limitations" of annotations).
GITHUB_LIMIT = 10


@dataclass(frozen=True)
class Annotation:
    level: Level
    file: str  # as messages show it: relative to the working directory, or absolute
    line: int  # 1-based
    column: int  # 1-based; 0 when unknown
    message: str  # masked already


def escape_data(text: str) -> str:
    """A command's message as GitHub's toolkit escapes it (escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property's value as GitHub's toolkit escapes it (escapeProperty): also `:`, which
    would end the properties, and `,`, which would start another (`file=a,line=1`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def repository_path(file: str) -> str:
    """`file` (as messages show it) relative to the root of the git work tree that holds it,
    with `/`, as GitHub matches an annotation to the pull request's files: the command may
    run from a subdirectory, or be given one (`validate manifests/team-a`). Without git,
    relative to GITHUB_WORKSPACE when it is under it; otherwise as shown."""
    absolute = Path(os.path.abspath(file))
    root = _work_tree(absolute)
    if root is None:
        return Path(file).as_posix()
    return absolute.relative_to(root).as_posix()


def _work_tree(path: Path) -> Path | None:
    # Not resolving links: the pull request names a file by the path git tracks.
    for candidate in path.parents:
        if (candidate / ".git").exists():
            return candidate
    workspace = os.environ.get("GITHUB_WORKSPACE", "")
    if workspace and path.is_relative_to(os.path.abspath(workspace)):
        return Path(os.path.abspath(workspace))
    return None


def command_line(annotation: Annotation, title: str) -> str:
    """The workflow command for one annotation, on one line."""
    properties = [
        f"file={escape_property(repository_path(annotation.file))}",
        f"line={annotation.line}",
    ]
    if annotation.column:
        properties.append(f"col={annotation.column}")
    properties.append(f"title={escape_property(title)}")
    return f"::{annotation.level} {','.join(properties)}::{escape_data(annotation.message)}"


def masked(text: str) -> str:
    """A message as an annotation shows it: as the log does without --show-members."""
    return mask_emails(alerts.scrub(text))


# `:LINE[:COL]` after a file's name at the start of a message (a source's error names its
# manifest line, FILE:LINE:COL; a CSV row is FILE:LINE), then `:` or the end. A name may hold
# `:` and digits itself, so each place one could end is tried, and the file must exist.
_LINE_COLUMN = re.compile(r":(?P<line>[1-9]\d*)(?::(?P<column>[1-9]\d*))?(?=:|$)")


def _where(text: str) -> tuple[str, int, int, str] | None:
    """(file, line, column, rest) of a text starting with a location of an existing file."""
    first = text.split("\n", 1)[0]
    for at in (i for i, ch in enumerate(first) if ch == ":"):
        match = _LINE_COLUMN.match(first, at)
        file = first[:at]
        if match and file and os.path.isfile(file):
            rest = text[match.end() :].removeprefix(":").lstrip(" ")
            return file, int(match["line"]), int(match["column"] or 0), rest
    return None


def located(text: str, level: Level, *, shown: bool = False) -> Annotation | None:
    """An annotation for a message that starts FILE:LINE[:COL]: (None without one);
    `shown`: its members are masked already, numbered as the log numbers them."""
    where = _where(text)
    if where is None:
        return None
    file, line, column, rest = where
    return Annotation(level, file, line, column, alerts.scrub(rest) if shown else masked(rest))


def from_problem(problem: Problem, level: Level) -> Annotation | None:
    """A manifest problem's annotation; None when it has no line (a file that cannot be
    read, a directory with no manifests): those are said in the log only."""
    if not problem.line:
        return None
    return Annotation(level, problem.file, problem.line, problem.column, masked(problem.message))


def from_issue(issue: MemberIssue, level: Level, show: Show | None = None) -> Annotation | None:
    """A member issue's annotation (an invalid row, a value that cannot be sent), its
    source data shown by `show` when that masks, else masked."""
    shown = show if show is not None else quoted(shower(False))
    if not masks(shown):  # annotations are masked, whatever the log shows
        shown = quoted(shower(False))
    return located(issue.describe(shown), level, shown=True)


class _Annotator:
    """The annotations of the command being run (one process runs one command)."""

    def __init__(self, enabled: bool = False, title: str = "reconciler") -> None:
        self.enabled = enabled
        self.title = title
        self.printed: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.limit_said: set[str] = set()

    def emit(self, annotations: Iterable[Annotation | None]) -> None:
        if not self.enabled:
            return
        lines: list[str] = []
        for annotation in annotations:
            if annotation is None:
                continue
            self.found[annotation.level] += 1
            if self.printed[annotation.level] < GITHUB_LIMIT:
                self.printed[annotation.level] += 1
                lines.append(command_line(annotation, self.title))
        for level in ("error", "warning"):
            if self.found[level] > GITHUB_LIMIT and level not in self.limit_said:
                self.limit_said.add(level)
                lines.append(
                    f"note: {self.found[level]:,} {level}s have a file and line, and GitHub "
                    f"shows {GITHUB_LIMIT} {level} annotations per step: the first "
                    f"{GITHUB_LIMIT} are annotated; the output says the rest."
                )
        _write(lines)


def _write(lines: list[str]) -> None:
    if not lines:
        return
    # stderr gone: the messages are lost, never the run (cli/stderr.py).
    with contextlib.suppress(OSError, ValueError):
        # Unbroken: on a runner stderr breaks every other line that would be a command.
        write_commands("".join(f"{line}\n" for line in lines))


_current = _Annotator()


def start(mode: AnnotationsMode | None, command: str = "") -> None:
    """Set up the annotations of the command now running: `mode` None (a command without
    the option) prints none."""
    global _current
    if mode is AnnotationsMode.auto:
        enabled = os.environ.get("GITHUB_ACTIONS") == "true"
    else:
        enabled = mode is AnnotationsMode.github
    _current = _Annotator(enabled, f"reconciler {command}".strip())
    if enabled:
        # Printed for a runner (--annotations github without GITHUB_ACTIONS: a container, a
        # runner that sets no such variable), the rest of the output is read by it too.
        protect_streams()


def emit(annotations: Iterable[Annotation | None]) -> None:
    """Print these annotations (a None is a message without a location: skipped)."""
    _current.emit(annotations)
