"""The command line: the typer app, its commands (one module each) and `main`.

Exit codes (stable, documented in the README): 0 success (plan: no changes, or changes
without --detailed-exitcode), 1 error (including members skipped or rejected), 2 changes
present (plan --detailed-exitcode only), 3 blocked by the safety policy, 4 stale plan.
Everything for people goes to stderr except the plan/report itself, so `--format json`
leaves exactly one JSON object on stdout.

Each command module parses its options, calls the core, renders the result and leaves
the exit code to `exits`, the one map from errors to exit codes.
"""

from __future__ import annotations

import codecs
import importlib
import inspect
import io
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, NamedTuple

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    # mypy checks against the typer the constraints pin, which carries its own copy of
    # click; click itself may not be installed at all (typer from 0.2x does not pull it in).
    from typer._click.exceptions import UsageError
else:
    try:  # typer from 0.2x carries its own copy of click
        from typer._click.exceptions import UsageError
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click.exceptions import UsageError

if TYPE_CHECKING:
    # The context class typer's group and options are typed with (its copy of click's).
    from typer._click.core import Context as ClickContext

from reconciler.apply.interrupt import terminate_as_interrupt
from reconciler.cli import exits
from reconciler.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from reconciler.cli.stderr import never_failing_stderr
from reconciler.cli.stdout import writing
from reconciler.cli.workflow_commands import on_runner, protect_streams
from reconciler.errors import OutputError

# The commands that take --format: with `--format json`, their usage errors are the one
# JSON object on stdout too.
_FORMATTED = ("plan", "apply", "status")
_ARGV = "reconciler.argv"


class _Command(NamedTuple):
    module: str
    attribute: str
    # What `reconciler --help` says of it: the first paragraph of its docstring (a group's
    # help), kept here so that the list needs no command's module (test_startup checks
    # that each is still the command's own).
    summary: str
    group: bool = False  # a sub-app (typer.Typer), whose help is `summary`


# Every command by name, in the order `--help` lists them. A command's module is imported
# when that command is run or its help shown, not on every start-up: each brings what it
# needs (the manifest models, httpx, DuckDB, jinja2, the GitHub client), and `--version`,
# `--help` or `validate` paid for all of them.
_COMMANDS: dict[str, _Command] = {
    "validate": _Command(
        "reconciler.cli.validate",
        "validate",
        "Check manifests and member sources without contacting Iterable.",
    ),
    "plan": _Command(
        "reconciler.cli.plan",
        "plan",
        "Show what apply would change in Iterable. Reads only; writes nothing to Iterable.",
    ),
    "apply": _Command(
        "reconciler.cli.apply",
        "apply",
        "Make Iterable match the manifests: create lists, add and remove members, prune.",
    ),
    "status": _Command(
        "reconciler.cli.status",
        "status",
        "One screen per audience: list id, members in Iterable, desired members, pending "
        "adds, removes and updates, and desired members held back (who left the list or its "
        "channel themselves, forgotten users, users updateExistingUsersOnly does not create); "
        "and a row per list prune deletes. Reads only (it is a plan, summarised).",
    ),
    "import": _Command(
        "reconciler.cli.import_",
        "import_",
        "Adopt lists that already exist in Iterable: write an Audience manifest and a CSV of "
        "its current members for each Standard list no manifest manages yet. Reads only; a "
        "plan right after shows no changes. Member CSVs hold personal data: review before "
        "committing.",
    ),
    "schema": _Command(
        "reconciler.cli.schema",
        "schema",
        "Print the manifests' JSON Schema (for editors: yaml-language-server, VS Code).",
    ),
    "version": _Command("reconciler.cli.schema", "version", "Print reconciler's version."),
    "emulator": _Command(
        "reconciler.cli.emulator", "emulator_app", "Run the local Iterable emulator.", group=True
    ),
    "github": _Command(
        "reconciler.cli.github",
        "github_app",
        "Post plans to GitHub pull requests and drift issues (for the shipped workflows).",
        group=True,
    ),
}


def _load_command(name: str) -> Any:
    """The click command `name`, built by typer from its function (or sub-app) as
    `app.command()` / `app.add_typer` would build it, its module imported now."""
    import typer.main

    command = _COMMANDS[name]
    target = getattr(importlib.import_module(command.module), command.attribute)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    if command.group:
        holder.add_typer(target, name=name, help=command.summary)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class _Commands(MutableMapping[str, Any]):
    """A group's commands by name: every name of _COMMANDS (for the list in `--help` and
    typer's "Did you mean" on a typo), each command built when it is first looked up."""

    def __init__(self, given: Mapping[str, Any]) -> None:
        self._built: dict[str, Any] = dict(given)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built and name in _COMMANDS:
            self._built[name] = _load_command(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in _COMMANDS or name in self._built

    def __iter__(self) -> Iterator[str]:
        return iter([*_COMMANDS, *(name for name in self._built if name not in _COMMANDS)])

    def __len__(self) -> int:
        return len(list(iter(self)))


class _Group(TyperGroup):
    """The commands of _COMMANDS, each built when first asked for (see there).

    Usage errors (a mistyped option, a bad --format) exit 1, not click's 2: 2 means
    "changes present" to `plan --detailed-exitcode`, so a typo in a workflow would pass
    as a plan with changes. Under `--format json` they are also the JSON object the
    README promises on stdout "whatever the outcome": a script reading it got nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)
        self._listing = False

    def list_commands(self, ctx: ClickContext) -> list[str]:
        return list(self.commands)  # the names alone: typer's own list builds every command

    def format_help(self, ctx: ClickContext, formatter: Any) -> None:
        # `reconciler --help` (and `reconciler` alone) lists each command by its summary:
        # building the commands for it imported every command's module (all of httpx,
        # DuckDB, jinja2, the planner), about 0.45 s of CPU for a screen of text.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: ClickContext, cmd_name: str) -> Any:
        if self._listing and cmd_name in _COMMANDS:
            return TyperCommand(cmd_name, help=_COMMANDS[cmd_name].summary)
        return super().get_command(ctx, cmd_name)

    def make_context(self, *args: Any, **kwargs: Any) -> ClickContext:
        given = kwargs.get("args", args[1] if len(args) > 1 else [])
        argv = list(given)  # parsing consumes the list it is given
        try:
            ctx = super().make_context(*args, **kwargs)
        except UsageError as exc:
            _usage_error(exc, argv)
            raise
        ctx.meta[_ARGV] = argv
        return ctx

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _usage_error(exc, ctx.meta.get(_ARGV, []))
            raise


# What pydantic puts before a validator's ValueError, which typer 0.29's options pass on
# whole: "Invalid value for '--format' / '-f': Value error, 'yaml' is not one of ...".
_PYDANTIC_PREFIX = "Value error, "


def _usage_error(exc: UsageError, argv: list[str]) -> None:
    exc.exit_code = EXIT_ERROR
    if isinstance(exc.message, str) and exc.message.startswith(_PYDANTIC_PREFIX):
        exc.message = exc.message.removeprefix(_PYDANTIC_PREFIX)
    if argv and argv[0] in _FORMATTED and _asks_for_json(argv[1:]):
        exits.json_error(exits.shown(exc.format_message(), False), EXIT_ERROR)


def _asks_for_json(argv: list[str]) -> bool:
    """Whether a command line gives `--format json` (or -f json, --format=json, -fjson)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg in ("--format=json", "-fjson"):
            return True
        if arg in ("--format", "-f") and argv[i + 1 : i + 2] == ["json"]:
            return True
    return False


def _display_type_rich(self: Any, ctx: ClickContext) -> str | None:
    """typer 0.2x shows a Python type beside every option: `<bool>` for a flag, which
    takes no value, and `<list[str]>` for a repeatable option. Flags show nothing, and
    every other option names its value with the metavar it declares."""
    if getattr(self, "is_flag", False) and self.metavar is None:
        return None
    return _typer_display_type_rich(self, ctx)


def _patched(owner: Any, name: str, replacement: Any) -> Any:
    """Put `replacement` in place of typer's `owner.name`, returning what was there; leave
    typer as it is when it has no such attribute. These are typer's internals, changed in
    its 0.2x releases without notice, and pyproject sets no upper bound on typer (the
    README's `pip install .` takes the newest): a typer that renamed one should show its
    help a little less tidily, not fail every command on import with an AttributeError."""
    original = getattr(owner, name, None)
    if original is not None:
        setattr(owner, name, replacement)
    return original


_typer_display_type_rich = _patched(TyperOption, "display_type_rich", _display_type_rich)


def _argument_type_rich(self: Any, ctx: ClickContext) -> str | None:
    """An argument that declares its metavar (PATH) is named by it already: its Python
    type beside it (`<path>`) says nothing more."""
    return None if self.metavar is not None else _typer_argument_type_rich(self, ctx)


_typer_argument_type_rich = _patched(TyperArgument, "display_type_rich", _argument_type_rich)


def _reflowed(paragraphs: list[str], markup_mode: Any) -> str:
    """typer 0.2x keeps the line breaks of a docstring's later paragraphs, so at 80
    columns each source line wraps on its own ("invalid members" alone on a line);
    they flow as the first paragraph does. A paragraph marked with \\b keeps its lines."""
    return "\n\n".join(p if p.startswith("\b") else p.replace("\n", " ") for p in paragraphs)


def _command_help(*, help_text: str, markup_mode: Any) -> Any:
    """The same for a command's line in its group's list (`reconciler --help`), which
    shows the docstring's first paragraph with its line breaks in rich markup mode."""
    first = inspect.cleandoc(help_text).split("\n\n")[0]  # all typer shows there
    if not first.startswith("\b"):
        first = first.replace("\n", " ")
    return _typer_command_help(help_text=first, markup_mode=markup_mode)


_typer_command_help: Any = None
_help_reflowed = False


def _reflow_typer_help() -> None:
    """Put _reflowed and _command_help in typer's help formatting, once. typer.rich_utils
    imports rich's markdown, syntax and traceback modules (markdown-it, pygments' plug-ins,
    attrs: about 0.05 s): typer imports it only to format help, and so is it patched only
    then, not in every command's start-up."""
    global _typer_command_help, _help_reflowed
    if _help_reflowed:
        return
    _help_reflowed = True
    import typer.rich_utils as typer_rich_utils

    _patched(typer_rich_utils, "_fix_linebreaks", _reflowed)
    _typer_command_help = _patched(typer_rich_utils, "_make_command_help", _command_help)
    # A word too long for its column of the help (an option's name, an environment
    # variable, a manifest key) is folded onto the next line: rich cuts it with "…" by
    # default, and at 80 columns (a CI log's, a pipe's width) the help named
    # RECONCILER_EMULATOR_API_… and maxRemovalPercent/maxR…, which no one can type.
    _patched(typer_rich_utils, "Table", _folding_table())
    global _typer_parameter_help
    _typer_parameter_help = _patched(typer_rich_utils, "_get_parameter_help", _parameter_help)


def _folding_table() -> type:
    """rich's Table, its columns folding (the options' names and the commands' list)."""
    from rich.table import Table

    class FoldingTable(Table):
        def add_row(self, *args: Any, **kwargs: Any) -> None:
            super().add_row(*args, **kwargs)  # which makes the columns a row needs
            for column in self.columns:
                column.overflow = "fold"

    return FoldingTable


_typer_parameter_help: Any = None


def _parameter_help(**kwargs: Any) -> Any:
    """An option's help, folding: its texts sit in rich Columns, whose own grid cuts."""
    from rich.text import Text

    cell = _typer_parameter_help(**kwargs)
    for item in getattr(cell, "renderables", ()):
        if isinstance(item, Text):
            item.overflow = "fold"
    return cell


def _reflowing(format_help: Any) -> Any:
    def format_help_reflowed(self: Any, ctx: ClickContext, formatter: Any) -> Any:
        _reflow_typer_help()
        # rich prints the help to stdout itself: a full or closed one is said as such, not
        # as a bug in reconciler (a full disk) or an exit 0 with nothing written (closed).
        try:
            with writing("the help"):
                return format_help(self, ctx, formatter)
        except OutputError as exc:
            raise exits.fail(exc) from None

    return format_help_reflowed


# Every group's and command's help (the emulator's and github's included) goes through these.
for _typer_class in (TyperGroup, TyperCommand):
    _patched(_typer_class, "format_help", _reflowing(_typer_class.format_help))


app = typer.Typer(
    cls=_Group,
    name="reconciler",
    help=(
        "Keep Iterable lists (audiences) in line with YAML manifests in git.\n\n"
        "validate checks manifests, plan shows what would change in Iterable, apply makes "
        "exactly those changes. Nothing is written to Iterable except by apply.\n\n"
        "Start with: reconciler validate manifests; reconciler plan manifests; "
        "reconciler apply manifests (the README's example manifests use region: sandbox, "
        "which needs no Iterable account). Each command's --help gives its options and exit "
        "codes."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, and a local can be an API key.
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from reconciler.cli import schema

        schema.version()  # which says a stdout that would not take it
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print reconciler's version and exit.",
    ),
) -> None:
    """Keep Iterable lists (audiences) in line with YAML manifests in git.

    validate checks manifests, plan shows what would change in Iterable, apply makes
    exactly those changes. Nothing is written to Iterable except by apply."""

    exits.started()  # nothing of a previous command in this process carries over


# The commands are _Group's, from _COMMANDS: none is registered here.


def _tolerate_narrow_encodings() -> None:
    """Plans and reports are the same bytes on every machine: a stream that is not a
    terminal (a file, a pipe: `plan --format markdown > plan.md`, which `github comment`
    reads as UTF-8) is written in UTF-8 whatever the locale's encoding (ISO-8859-1 under a
    legacy `LANG=de_DE`, a Windows code page), which wrote other bytes and `?` for what it
    lacked (a dotless i, `·`), so one plan differed by machine and its markdown could not be
    posted. A terminal, or an encoding asked for with PYTHONIOENCODING, keeps its encoding,
    with `?` for the few characters it cannot encode (the report's check marks) instead of
    failing: an apply would otherwise fail after applying, as an internal error."""
    chosen = bool(os.environ.get("PYTHONIOENCODING"))
    for stream in (sys.stdout, sys.stderr):
        if (
            not isinstance(stream, io.TextIOWrapper)
            or codecs.lookup(stream.encoding).name == "utf-8"
        ):
            continue
        if not chosen and not _is_terminal(stream):
            stream.reconfigure(encoding="utf-8")
        elif stream.errors == "strict":
            stream.reconfigure(errors="replace")


def _is_terminal(stream: io.TextIOWrapper) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):  # closed: nothing reaches it either way
        return False


def main() -> None:
    _tolerate_narrow_encodings()
    never_failing_stderr()  # after: it keeps the stream's encoding and error handler
    if on_runner():  # after too: no line printed is a workflow command unless meant
        protect_streams()
    try:
        # SIGTERM (a cancelled CI job, `docker stop`, `timeout`) stops every command as
        # Ctrl-C does, so plan, status and import also remove members' private copies and
        # say they were interrupted, instead of dying with them left behind.
        with terminate_as_interrupt():
            app()
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:
            # Ctrl-C may have left reads streaming on worker threads (threads.reading_pool);
            # a normal exit would wait for them, an hour for a big getUsers.
            exits.exit_now(EXIT_INTERRUPTED)
        raise
    except Exception as exc:
        from reconciler.members.model import interrupted_by_signal

        if interrupted_by_signal(exc):
            # A Ctrl-C DuckDB took into its own error outside a plan (planning.make_plan
            # says it as one): said and ended as every Ctrl-C is, not as a bug.
            exits.fail(KeyboardInterrupt())
            exits.exit_now(EXIT_INTERRUPTED)
        # What escapes a command: out of memory, or a bug (reported as one, masked).
        raise SystemExit(exits.fail(exc).exit_code) from None
