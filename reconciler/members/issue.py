"""A member that could not be used, and where it came from: sources, trait mappings and the
planner report them, and the plan carries them (so it lives beside the member model, with
no dependency on how members are read)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.errors import line_safe_path
from reconciler.render.masking import masks, reveal


@dataclass(frozen=True)
class MemberIssue:
    """A source row that was skipped, with where it is (file:line[:col] or file:row).

    The offending identifier is kept apart from the reason so published output can mask it.
    """

    where: str
    message: str
    value: str | None = None

    def describe(self, show: Callable[[str], str] = repr) -> str:
        value = f" {show(self.value)}" if self.value is not None else ""
        # A line of the log starts here: a file named `::...` must not start a command.
        return f"{line_safe_path(self.where)}: {self.reason(show)}{value}"

    def reason(self, show: Callable[[str], str] = repr) -> str:
        """The message, with any source data it quotes masked as `show` masks members."""
        return reveal(self.message, not masks(show))

    def __str__(self) -> str:
        return self.describe()
