"""The exception tree. The CLI maps each branch to a message and an exit code in one place.

    ReconcilerError                 anything written for the user (message is safe to print)
    ├── ManifestError               one or more problems, each with file, line and column
    ├── ConfigError                 environment or configuration is wrong (missing key, ...)
    ├── SourceError                 a member source could not be read at all (missing file, ...)
    │   ├── SourceChangedError      a source file changed while it was read (exit 3)
    │   └── SourceUnreachable       a `url:` source's database server could not be connected to
    ├── LiveStateError              live state is ambiguous (two lists with one name, ...)
    ├── UnsafePlanError             the safety policy blocks the plan (exit 3)
    ├── StalePlanError              a saved plan no longer matches manifests or Iterable (exit 4)
    ├── LockedError                 another apply holds the destination's lock
    ├── OutputError                 stdout would not take the command's result (`| head`, full disk)
    ├── SummaryFileError            --summary-file could not be written (stdout still can be)
    └── IterableError               Iterable answered with an error, or could not be reached
        ├── AuthError               401 BadApiKey
        ├── ListInUseError          409 on delete
        ├── RetryExhaustedError     retryable failures went on past the retry budget
        │   ├── UnreachableError    ... the last of them: the host could not be connected to
        │   └── UnavailableError    ... the last of them: 502, 503 or 504 (Iterable down),
        │                               or 429 with no request of its kind taken meanwhile
        └── FieldTypeRefusal        400 RequestFieldsTypesMismatched on a bulk write

Messages never contain an API key: keys are only ever held by the client and the
emulator, and neither puts request headers into an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from reconciler.layout import one_line


def display_path(path: Path | str) -> str:
    """A path as messages show it: relative to the working directory when it is under it
    (messages end up in pull-request comments, where a runner's absolute path is noise)."""
    path = Path(path)
    if not path.is_absolute():
        return line_safe_path(str(path))
    try:
        return line_safe_path(str(path.relative_to(Path.cwd())))
    except ValueError:
        return str(path)


def line_safe_path(shown: str) -> str:
    """`shown`, a relative path, as `./shown` when it starts with `::`: a message starts
    with its file (FILE:LINE:COL: ...), and GitHub's runner takes a log line that starts
    with `::` (spaces aside) as a workflow command, so a manifest a pull request names
    `::error title=Approved::x.yaml` (or `::add-mask::...`, `::stop-commands::...`) would
    forge an annotation, hide text or silence the real annotations after it."""
    return f"./{shown}" if shown.lstrip().startswith("::") else shown


# Longer than any name a manifest may give (metadata.name allows 200 characters), so only
# values nobody meant as names are cut.
QUOTED_LIMIT = 300


def quoted(value: object) -> str:
    """A user-given name or value as messages quote it: repr(value), but a text of more
    than QUOTED_LIMIT characters (a 70,000-character destination) cut, with an ellipsis
    and its length, so that one slip is not a screen of one letter per problem."""
    if not isinstance(value, str) or len(value) <= QUOTED_LIMIT:
        return repr(value)
    return f"{value[:QUOTED_LIMIT] + '...'!r} ({len(value):,} characters)"


def variable_name(name: str) -> str:
    """An environment variable's name from a manifest as messages show it: bare, as a
    shell writes it (`export NAME=...`), but cut as `quoted` cuts a name: a manifest's
    `apiKey: {env: <70,000 characters>}` was echoed whole in every message naming it."""
    if len(name) <= QUOTED_LIMIT:
        return name
    return f"{name[:QUOTED_LIMIT]}... ({len(name):,} characters)"


class ReconcilerError(Exception):
    """An error whose message is written for the user."""

    exit_code: int = 1
    # The destination it happened in, when the message alone would not say (a wrong key,
    # an unreachable baseUrl): set where the destination is known, shown before the text.
    destination: str | None = None
    # Whether the message needs no "destination 'NAME': " before it although it does not
    # name the destination: a stale plan's says it when the project has several.
    destination_said: bool = False

    def in_destination(self, name: str, *, said: bool = False) -> Self:
        if self.destination is None:
            self.destination = name
            self.destination_said = said
        return self


class OutputError(ReconcilerError):
    """Standard output would not take the command's result: closed (`>&-`), a pipe whose
    reader left (`| head -1`), or a full disk. Said on stderr only: stdout is gone."""


class SummaryFileError(ReconcilerError):
    """`--summary-file` could not be added to (a runner's full disk). Not an OutputError:
    stdout still takes the result, so with `--format json` the error is said in its object."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the manifests, located in a file."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    message: str

    def __str__(self) -> str:
        # FILE:LINE:COL as compilers write it; the parts not known are left out, not 0.
        # The file's name on one line: git lets a pull request add a name holding a newline,
        # whose next line would start a CI log's line (a `::` workflow command) of its own.
        where = one_line(self.file)
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.message}"


class ManifestError(ReconcilerError):
    """Every problem found in the manifests, reported together, with the warnings found
    beside them: said in the same run, a warning is not first seen a push after its
    manifest's errors are fixed (validate in pre-commit and CI). Not in the message: it is
    the errors'."""

    def __init__(self, problems: list[Problem], warnings: Iterable[Problem] = ()):
        self.problems = sorted(problems)
        # Each once, and none that repeats an error word for word.
        self.warnings = sorted(set(warnings) - set(self.problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ReconcilerError):
    pass


class SourceError(ReconcilerError):
    pass


class SourceChangedError(SourceError):
    """A source file changed while it was read: nothing is planned from it (a guard)."""

    exit_code = 3


class SourceUnreachable(SourceError):
    """A `url:` source's database server could not be connected to: running its query
    again (for its row count, then its rows) would wait as long and fail alike."""


class LiveStateError(ReconcilerError):
    pass


class UnsafePlanError(ReconcilerError):
    exit_code = 3


class StalePlanError(ReconcilerError):
    exit_code = 4


class LockedError(ReconcilerError):
    pass


class IterableError(ReconcilerError):
    """Iterable refused a request or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        endpoint: str | None = None,
    ):
        self.status = status
        self.code = code
        self.endpoint = endpoint
        super().__init__(message)


class AuthError(IterableError):
    pass


class ListInUseError(IterableError):
    pass


class RetryExhaustedError(IterableError):
    pass


class OutcomeUnknown(RetryExhaustedError):
    """A create or deletion whose answer was lost, given up when the run was interrupted
    before Iterable's list index showed whether it was done: the run counts as interrupted,
    and the next apply reads the index afresh."""


class UnreachableError(RetryExhaustedError):
    """The retries ran out on a host that could not be connected to (down, or its address
    gone): every other request to it would spend its retry budget the same way."""


class UnavailableError(RetryExhaustedError):
    """The retries ran out on 502, 503 or 504 answers: Iterable (or the gateway before it)
    is down, not refusing this request, so every other request to the project would spend
    its retry budget the same way. Likewise on 429s while Iterable took no request of their
    kind (`status` 429): its rate limit refuses them all, not this one's turn."""


class FieldTypeRefusal(IterableError):
    """400 RequestFieldsTypesMismatched on a bulk write: Iterable refused the whole request
    because some user's value has another type than its field. `fields` maps each field
    path the answer names to the type it has in Iterable ("" when the answer does not say)."""

    def __init__(self, message: str, *, fields: dict[str, str], endpoint: str | None = None):
        super().__init__(
            message, status=400, code="RequestFieldsTypesMismatched", endpoint=endpoint
        )
        self.fields = fields


class WriteNotSent(Exception):
    """A write given up before it was sent: the run was interrupted (Ctrl-C) while the write
    waited for a list created moments ago to take writes, or to be retried after an answer
    saying Iterable did nothing with it (a 429). Not sent, so not failed."""


class ReadStopped(WriteNotSent):
    """A read of an apply step (a profile read before a channel removal, or after a removal
    Iterable answered short) given up once the run was interrupted, before it was sent:
    while it waited for its turn under the rate limit, or to be retried. Before the step's
    write, that write is not sent (a WriteNotSent); after it, the caller keeps what the
    write's answer said and leaves the rest unconfirmed for the next apply."""
