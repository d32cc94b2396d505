"""The one place that turns an exception into what people read and an exit code.

Exit codes (stable, documented in the README): 0 success (plan: no changes, or changes
without --detailed-exitcode), 1 error (including members skipped or rejected), 2 changes
present (plan --detailed-exitcode only), 3 blocked by the safety policy, 4 stale plan,
130 interrupted. Messages go to stderr; with `--format json` a failure is also the one JSON
object on stdout. Whether member identities in a message are shown or masked is decided by
the parsed `--show-members` of the command being run (`started`), never by scanning argv.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass

import typer
from rich.console import Console

from reconciler import alerts
from reconciler.apply.interrupt import SIGNALS
from reconciler.apply.lock import release_all
from reconciler.cli import annotate
from reconciler.cli.options import AnnotationsMode, OutputFormat
from reconciler.cli.screen_size import ignore_sizes_of_nothing
from reconciler.cli.stdout import emit
from reconciler.errors import ManifestError, OutputError, ReconcilerError, quoted
from reconciler.progress import hold_stop_signals, stop_bars
from reconciler.render.json_text import json_text
from reconciler.render.masking import mask_emails, mask_identifier, reveal

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a SIGINT

ignore_sizes_of_nothing()  # before the first Console reads them: this one, made on import
err = hold_stop_signals(Console(stderr=True, highlight=False, soft_wrap=True))

OUT_OF_MEMORY = (
    "error: out of memory. Large audiences are planned in DuckDB under "
    "RECONCILER_MEMORY_LIMIT (see the README's Large audiences section): lower it, "
    "set RECONCILER_ENGINE=duckdb for file and query sources, or use a larger machine.\n"
)


@dataclass
class Invocation:
    """The options of the command being run, as parsed: how its errors are reported,
    including those that escape it to `main`."""

    show_members: bool = False
    debug: bool = False
    output: OutputFormat | None = None
    # What Ctrl-C means for this command, for people and as the JSON error.
    interrupted: str = "Interrupted."
    interrupted_json: str = "interrupted"

    @property
    def json(self) -> bool:
        return self.output is OutputFormat.json


_current = Invocation()


def started(
    show_members: bool = False,
    debug: bool = False,
    output: OutputFormat | None = None,
    read_only: str | None = None,
    annotations_mode: AnnotationsMode | None = None,
) -> Invocation:
    """Record the parsed options of the command now running. `read_only` names a command
    that only reads, so Ctrl-C says nothing was changed. `annotations_mode` is the --annotations
    of a command that has it (validate, plan): its located errors as GitHub annotations."""
    global _current
    _current = Invocation(show_members, debug, output)
    annotate.start(annotations_mode, read_only or "")
    if read_only is not None:
        _current.interrupted = f"Interrupted: nothing was changed ({read_only} only reads)."
        _current.interrupted_json = "interrupted: nothing was changed"
    return _current


def current() -> Invocation:
    return _current


def fail(exc: BaseException, *, json_object: bool = True, alert: str | None = None) -> typer.Exit:
    """Report `exc` and return the exit that ends the command. `json_object=False` when the
    command already wrote its JSON object (a blocked apply prints its plan). `alert` names
    the command (plan, apply) whose failure (a ReconcilerError) goes to the alert webhook."""
    inv = _current
    # A stdout that would not take the result will not take the error object either.
    as_json = inv.json and json_object and not isinstance(exc, OutputError)
    if isinstance(exc, ReconcilerError):
        if as_json:
            json_error(safe_message(exc, inv.show_members), exc.exit_code, exc, inv.show_members)
        if isinstance(exc, ManifestError):
            # The warnings first, as a manifest that loads has them said (and validate's
            # sources' errors follow them); the count, last, is of the errors.
            for warning in exc.warnings:
                err.print(shown(f"warning: {warning}", inv.show_members), markup=False)
            for problem in exc.problems:
                err.print(shown(str(problem), inv.show_members), markup=False)
            n = len(exc.problems)
            err.print(f"{n} problem{'s' if n != 1 else ''} found.", markup=False)
            annotate.emit(
                [
                    *(annotate.from_problem(p, "error") for p in exc.problems),
                    *(annotate.from_problem(w, "warning") for w in exc.warnings),
                ]
            )
        else:
            err.print(f"error: {safe_message(exc, inv.show_members)}", markup=False)
            # A source's error names its manifest line: annotated there, masked as above.
            annotate.emit([annotate.located(safe_message(exc), "error", shown=True)])
        if alert is not None:
            send_alert(alerts.for_error(alert, exc.exit_code, safe_message(exc)))
        return typer.Exit(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        err.print(inv.interrupted)
        if as_json:
            json_error(inv.interrupted_json, EXIT_INTERRUPTED)
        return typer.Exit(EXIT_INTERRUPTED)
    if isinstance(exc, MemoryError):
        # Not a bug to report but a machine too small for what was asked.
        sys.stderr.write(OUT_OF_MEMORY)
        if as_json:
            json_error("out of memory", EXIT_ERROR)
        return typer.Exit(EXIT_ERROR)
    # Anything else is a bug. Without --debug show one line; with it, the traceback (no
    # locals). Either way emails in it are masked, as in every other output, unless
    # --show-members was given.
    text = (
        "".join(traceback.format_exception(exc))
        if inv.debug
        else f"internal error: {type(exc).__name__}: {exc} ({raised_at(exc)})\n"
        "This is a bug in reconciler; run again with --debug for the traceback.\n"
    )
    if not inv.show_members:
        text = _without_lookup_keys(text, exc)
    sys.stderr.write(shown(text, inv.show_members))
    if as_json:
        json_error(f"internal error: {type(exc).__name__}", EXIT_ERROR)
    return typer.Exit(EXIT_ERROR)


def internal_error(exc: BaseException) -> str:
    """An unexpected error for the run record: its type and where it was raised, never its
    text (which can quote a member)."""
    return f"internal error: {type(exc).__name__} ({raised_at(exc)})"


def raised_at(exc: BaseException) -> str:
    """Where `exc` was raised, for a bug report from a run that cannot be repeated with
    --debug (an apply at night in CI): 'at reconciler/apply/executor.py:512 in _step', and
    the library's line too when it came from one ('..., from httpx/_models.py:80 in read').
    Paths start at the package, so no home directory or runner's path is shown."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "at an unknown place"
    ours = [f for f in frames if _in_package(f.filename)]
    last = frames[-1]
    where = f"at {_frame(ours[-1] if ours else last)}"
    if ours and ours[-1] is not last:
        where += f", from {_frame(last)}"
    return where


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Where installed libraries live: site-packages, and dist-packages on Debian's and Ubuntu's
# Python (apt's packages, and pip's outside a virtual environment).
_LIBRARY_DIRECTORIES = frozenset({"site-packages", "dist-packages"})


def _in_package(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def _frame(frame: traceback.FrameSummary) -> str:
    path = os.path.abspath(frame.filename)
    parts = path.split(os.sep)
    if _in_package(path):
        shown = os.path.relpath(path, os.path.dirname(_PACKAGE_DIR))
    elif _LIBRARY_DIRECTORIES & set(parts):  # a library: from its package on
        last = max(i for i, part in enumerate(parts) if part in _LIBRARY_DIRECTORIES)
        shown = os.sep.join(parts[last + 1 :])
    else:
        shown = os.path.basename(path)  # the standard library, or a script
    return f"{shown.replace(os.sep, '/')}:{frame.lineno} in {frame.name}"


def _without_lookup_keys(text: str, exc: BaseException) -> str:
    """`text` with the key of every KeyError in `exc`'s chain masked: members are looked up
    by their identifiers, so a missing key is as likely a userId as anything (an email in
    it is masked anyway)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, KeyError) and len(current.args) == 1:
            key = current.args[0]
            if isinstance(key, str) and key:
                text = text.replace(repr(key), repr(mask_identifier(key)))
        pending += [current.__cause__, current.__context__]
    return text


def exit_now(code: int) -> None:
    """End the process at once (a second Ctrl-C during apply): worker threads blocked in a
    request or a retry cannot be stopped any other way. Files of members (DuckDB's
    workspace) go first: os._exit runs no cleanup, nor what ends the progress bars.

    Signals are ignored from here on: a Ctrl-C pressed twice as a run ended (the first let
    the requests in flight finish, the second came as their files were being removed)
    raised KeyboardInterrupt in the middle of this, with a traceback, the rest of the
    members' copies left on disk and the lock not removed."""
    _ignore_stop_signals()
    stop_bars()
    for stream in (sys.stdout, sys.stderr):
        # Either may be closed (None) or broken (`| head`): os._exit below must happen.
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    _remove_members_copies()
    # Last: until the process ends its requests may still be in flight, and the lock is
    # what keeps another apply from starting beside them.
    release_all()
    os._exit(code)


# The modules that keep members' private copies, and how each removes them.
_COPIES = (
    ("reconciler.members.engine.workspace", "remove_directories"),
    ("reconciler.sources.snapshot", "remove_snapshots"),
)


def _remove_members_copies() -> None:
    """Remove DuckDB's workspaces and the sources' snapshots. Only a module this process
    loaded can have made any: each is looked up, not imported, so that every command does
    not import DuckDB and the manifest models at start-up to end (`--version` did)."""
    for module, remove in _COPIES:
        if (loaded := sys.modules.get(module)) is not None:
            getattr(loaded, remove)()


def _ignore_stop_signals() -> None:
    """Ignore Ctrl-C, SIGTERM and SIGHUP for the rest of this process's short life (it is
    ending already); only the main thread may change how signals are handled."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def send_alert(alert: alerts.Alert) -> None:
    """Post a blocked, stale or failed run to the alert webhook (issue 19; nothing unless
    RECONCILER_ALERT_WEBHOOK_URL is set). Never raises and never changes the exit code."""
    alerts.notify(alert, lambda text: err.print(f"warning: {text}", markup=False))


def json_error(
    message: str, exit_code: int, exc: BaseException | None = None, show_members: bool = False
) -> None:
    """`--format json` promises exactly one JSON object on stdout, failures included."""
    payload: dict[str, object] = {"error": message, "exit_code": exit_code}
    if isinstance(exc, ReconcilerError) and exc.destination is not None:
        # For machines with several destinations: whose key, host or lists failed.
        payload["destination"] = exc.destination
    if isinstance(exc, ManifestError):
        payload["problems"] = [shown(str(problem), show_members) for problem in exc.problems]
    try:
        emit(json_text(payload), "the JSON error object")
    except OutputError as unwritten:
        # The error being reported decides the exit code; this one is said beside it.
        err.print(f"error: {unwritten}", markup=False)


def safe_message(exc: BaseException, show_members: bool = False) -> str:
    """An error's text for logs and summaries: an Iterable message can quote a member's
    email, so emails are masked like everywhere else unless --show-members was given."""
    text = str(exc)
    destination = getattr(exc, "destination", None)
    said = getattr(exc, "destination_said", False)
    # Not twice: a manifest's error names it after its FILE:LINE:COL (a key not set).
    if destination is not None and not said and f"destination {quoted(destination)}" not in text:
        text = f"destination {quoted(destination)}: {text}"
    return shown(text, show_members)


def shown(text: str, show_members: bool) -> str:
    """A message as output shows it: source data it quotes in full with --show-members,
    otherwise masked, with every email in it."""
    text = alerts.scrub(text)  # the alert webhook's URL is a credential, like an API key
    return reveal(text, True) if show_members else mask_emails(text)
