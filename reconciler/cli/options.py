"""Options shared by several commands, so each is spelled and explained once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class AnnotationsMode(StrEnum):
    auto = "auto"  # github when GITHUB_ACTIONS=true, else none
    github = "github"
    none = "none"


PathArg = typer.Argument(
    Path("manifests"),
    metavar="PATH",
    help="Manifest file or directory (all *.yaml / *.yml files under it, hidden ones aside).",
    show_default=True,
)
StateDirOpt = typer.Option(
    None,
    "--state-dir",
    metavar="DIR",
    envvar="RECONCILER_STATE_DIR",
    help="Where local state lives: the sandbox (sandbox.json), locks, run journals and "
    "rejected-member files. Default: .reconciler in the repository that holds the manifests "
    "(their git work tree; without git, the directory that holds the manifest directory), "
    "wherever the command is run from.",
    show_default=False,
)
TargetOpt = typer.Option(
    None,
    "--target",
    "-t",
    metavar="AUDIENCE",
    help=(
        "Limit to this audience (repeatable). Other audiences are not changed and their lists "
        "not read; the source of one mapping a field a target maps is read, so a value the two "
        "set differently is not written."
    ),
)
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors.")
ShowMembersOpt = typer.Option(
    False,
    "--show-members",
    help="Show member emails and userIds in full. By default they are masked "
    "(j***@***#1), because plans are posted where many people can read them.",
)
SummaryFileOpt = typer.Option(
    None,
    "--summary-file",
    metavar="FILE",
    help='Also append the markdown version to this file (e.g. "$GITHUB_STEP_SUMMARY"), '
    "made to fit a job step's summary (1 MiB).",
)


AnnotationsOpt = typer.Option(
    AnnotationsMode.auto,
    "--annotations",
    metavar="auto|github|none",
    envvar="RECONCILER_ANNOTATIONS",
    help="github: also print each located error and warning as a GitHub Actions workflow "
    "command (::error file=...,line=...::), which a pull request shows on its diff, and "
    "break any other line a runner would take as a command (README: Safety); auto "
    "(the default): github when GITHUB_ACTIONS=true, as on Actions runners; none: never.",
    show_default=False,
)


def format_option(help: str) -> OutputFormat:
    """`--format/-f`, text by default; each command says what its formats are for."""
    return typer.Option(OutputFormat.text, "--format", "-f", help=help)
