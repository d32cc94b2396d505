"""`reconciler github ...`: post a plan as a pull-request comment, or keep a drift issue.

Each command reads a markdown file that `reconciler plan --format markdown` wrote, so the
workflows stay a line per step and the same commands work from a laptop (`gh auth login`).
"""

from __future__ import annotations

import codecs
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import typer

from reconciler.cli import exits
from reconciler.errors import ReconcilerError
from reconciler.github.comment import Posted, mark_outdated, upsert_comment
from reconciler.github.current import Newer, newer_changes, repository_path
from reconciler.github.gh import Gh
from reconciler.github.identity import own_author
from reconciler.github.issue import close_issue, open_or_update_issue
from reconciler.github.message import marked_body
from reconciler.github.run_reads import RunReads, run_reads
from reconciler.github.runs import busy_runs, github_time

github_app = typer.Typer(
    help="Post plans to GitHub: a pull-request comment updated in place, a drift issue. "
    "Uses the gh CLI (GH_TOKEN).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# A repository as GitHub's REST paths take it: an owner and a name, neither `.` nor `..`.
_OWNER_NAME = re.compile(r"(?!\.\.?/)[A-Za-z0-9_.-]+/(?!\.\.?$)[A-Za-z0-9_.-]+")
# The OWNER/NAME inside a repository's URL, as one is pasted from the browser or a remote.
_IN_URL = re.compile(
    r"(?:https?://[^/]+/|git@[^:]+:)([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?"
)


def _owner_name(value: str | None) -> str | None:
    """--repo as GitHub's paths take it: a URL or a bare name went into `gh api
    repos/<it>/issues/...`, and GitHub's 404 said nothing of the option."""
    if value is None or _OWNER_NAME.fullmatch(value):
        return value
    found = _IN_URL.fullmatch(value)
    meant = f" (write {found[1]})" if found else ""
    raise typer.BadParameter(f"{value[:100]!r} is not the repository's OWNER/NAME{meant}")


def _pr_number(value: int) -> int:
    """--pr as GitHub numbers pull requests, from 1: 0 or a negative number went into `gh
    api repos/<repo>/issues/0/comments`, and GitHub's 404 said nothing of the option."""
    if value < 1:
        raise typer.BadParameter(f"{value} is not a pull request's number (1 or more)")
    return value


PrOpt = typer.Option(
    ..., "--pr", metavar="NUMBER", help="Pull request number.", callback=_pr_number
)
RepoOpt = typer.Option(
    ...,
    "--repo",
    metavar="OWNER/NAME",
    envvar="GITHUB_REPOSITORY",
    help="owner/name of the repository.",
    callback=_owner_name,
)
AuthorOpt = typer.Option(
    None,
    "--author",
    metavar="LOGIN",
    envvar="RECONCILER_GITHUB_AUTHOR",
    help="Login the token posts as (e.g. my-app[bot]); only comments and issues by it are "
    "edited or closed. Default: asked of GitHub (gh api user, else GraphQL viewer).",
)
BodyFileOpt = typer.Option(
    ...,
    "--body-file",
    metavar="FILE",
    help="Markdown to post, e.g. the output of `plan --format markdown` (UTF-8, or UTF-16 "
    "with a byte-order mark).",
)


def _marker_opt(default: str) -> str:
    return typer.Option(
        default,
        "--marker",
        metavar="NAME",
        help="Hidden marker (<!-- NAME -->) by which the comment or issue is found again.",
    )


# What reading GitHub's answers raises when one is JSON of another shape than its REST API
# gives (a list of numbers where issues were, an id that is not a number): a failure to
# report, not an internal error.
_UNEXPECTED_SHAPE = (LookupError, TypeError, AttributeError, ValueError)


def _unexpected_shape(exc: Exception) -> ReconcilerError:
    return ReconcilerError(
        f"gh api answered with JSON not of the shape reconciler expects ({type(exc).__name__}): "
        "something other than GitHub's REST API answered; look at the pull request or issue "
        "for what was posted, if anything"
    )


def _run_url() -> str | None:
    """This workflow run's page, from the variables GitHub Actions sets."""
    parts = [os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return None
    server, repo, run_id = parts
    return f"{server}/{repo}/actions/runs/{run_id}"


def _read(path: Path) -> str:
    """The body file's text: UTF-8 as plan writes it, or UTF-16 with a byte-order mark, as
    Windows PowerShell's `plan --format markdown > plan.md` saves it. Anything else is an
    error naming the file: it was an internal error, and a guess at its encoding could post
    a garbled plan."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise exits.fail(ReconcilerError(f"cannot read {path}: {exc.strerror}")) from None
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = (
            f"{path} is not UTF-8 text (byte {exc.start + 1} cannot be read as UTF-8): write "
            "it with `reconciler plan --format markdown > FILE`, or save it as UTF-8"
        )
        raise exits.fail(ReconcilerError(message)) from None


def _report(posted: Posted, what: str) -> None:
    typer.echo(f"{posted.action} {what} {posted.url or posted.number}")


@github_app.command()
def comment(
    pr: int = PrOpt,
    body_file: Path = BodyFileOpt,
    marker: str = _marker_opt("reconciler-plan"),
    commit: str | None = typer.Option(
        None,
        "--commit",
        metavar="SHA",
        help="The commit the plan is for, named in the comment's footer.",
    ),
    repo: str = RepoOpt,
    author: str | None = AuthorOpt,
) -> None:
    """Create or update the one pull-request comment carrying MARKER written by this token's
    account (others' comments are never edited, even with the marker).

    An empty or missing body file means no plan was made (validation or plan failed): the
    comment then says so, so reviewers never see the previous commit's plan as current."""
    run = _run_url()
    text = _read(body_file)
    if not text.strip():
        text = (
            "### reconciler plan: failed\n\nNo plan was made for this commit: the manifests "
            "did not validate or the plan failed. "
            + (f"See [the run log]({run})." if run else "See the run log.")
        )
    footer = " · ".join(
        part
        for part in (
            f"Plan for {commit[:12]}" if commit else None,
            f"[workflow run]({run})" if run else None,
        )
        if part
    )
    try:
        body = marked_body(marker, text, footer or None, full_at=run or "")
        gh = Gh()
        posted = upsert_comment(gh, repo, pr, marker, body, own_author(gh, author))
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    except _UNEXPECTED_SHAPE as exc:
        raise exits.fail(_unexpected_shape(exc)) from None
    _report(posted, "comment")


@github_app.command("mark-outdated")
def mark_outdated_command(
    pr: int = PrOpt,
    commit: str = typer.Option(
        ..., "--commit", metavar="SHA", help="The commit about to be planned."
    ),
    marker: str = _marker_opt("reconciler-plan"),
    repo: str = RepoOpt,
    author: str | None = AuthorOpt,
) -> None:
    """Mark this token's plan comment (MARKER) as outdated while COMMIT is being planned.

    Run before the plan: `github comment` replaces the mark with COMMIT's plan, and a run
    that stops before commenting (cancelled, timed out) leaves the older plan marked, not
    looking current. No comment yet, or one already for COMMIT: nothing is written."""
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit):
        raise exits.fail(ReconcilerError(f"--commit {commit[:50]!r}: give the commit's SHA (hex)"))
    run = _run_url()
    where = f" in [this workflow run]({run})" if run else ""
    try:
        gh = Gh()
        owner = own_author(gh, author)
        posted = mark_outdated(
            gh, repo, pr, marker, commit, _outdated_warning(commit, where), owner
        )
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    except _UNEXPECTED_SHAPE as exc:
        raise exits.fail(_unexpected_shape(exc)) from None
    if posted is None:
        typer.echo("no plan comment to mark outdated")
    else:
        _report(posted, "comment")


def _outdated_warning(commit: str, where: str) -> str:
    shown = commit[:12]
    return (
        "> [!WARNING]\n"
        f"> **Outdated: the plan below is for an older commit.** `{shown}` is being planned"
        f"{where}; this comment is replaced by its plan. If this warning is still here once "
        "that run has ended, it stopped before commenting (cancelled, timed out or failed): "
        "do not merge on the plan below; see the run's log, and run it again."
    )


@github_app.command()
def issue(
    title: str = typer.Option(..., "--title", metavar="TEXT", help="Issue title."),
    body_file: Path = BodyFileOpt,
    marker: str = _marker_opt("reconciler-drift"),
    repo: str = RepoOpt,
    author: str | None = AuthorOpt,
) -> None:
    """Open the one issue carrying MARKER, or update it if this token's account opened it."""
    text = _read(body_file)
    if not text.strip():
        raise exits.fail(ReconcilerError(f"{body_file} is empty or missing: nothing to post"))
    run = _run_url()
    checked = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"Last checked {checked}" + (f" by [this workflow run]({run})" if run else "")
    try:
        gh = Gh()
        posted = open_or_update_issue(
            gh,
            repo,
            marker,
            title,
            marked_body(marker, text, footer, full_at=run or ""),
            own_author(gh, author),
        )
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    except _UNEXPECTED_SHAPE as exc:
        raise exits.fail(_unexpected_shape(exc)) from None
    _report(posted, "issue")


@github_app.command("close-issue")
def close_issue_command(
    marker: str = _marker_opt("reconciler-drift"),
    comment_text: str | None = typer.Option(
        None, "--comment", metavar="TEXT", help="Said in a last comment before closing."
    ),
    repo: str = RepoOpt,
    author: str | None = AuthorOpt,
) -> None:
    """Close the open issue carrying MARKER that this token's account opened, if any."""
    run = _run_url()
    text = comment_text or "Resolved: no differences found" + (
        f" by [this run]({run})." if run else "."
    )
    try:
        gh = Gh()
        posted = close_issue(gh, repo, marker, own_author(gh, author), text)
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    except _UNEXPECTED_SHAPE as exc:
        raise exits.fail(_unexpected_shape(exc)) from None
    if posted is None:
        typer.echo("no open issue to close")
    else:
        _report(posted, "issue")


@github_app.command("check-current")
def check_current(
    commit: str = typer.Option(
        ..., "--commit", metavar="SHA", help="The run's commit (GITHUB_SHA)."
    ),
    branch: str = typer.Option(..., "--branch", metavar="NAME", help="The branch the run applies."),
    path: str = typer.Option(
        "manifests", "--path", metavar="DIR", help="The manifests' directory."
    ),
    repo: str = RepoOpt,
) -> None:
    """Exit 1 when PATH, or a file its manifests read, changed on BRANCH after COMMIT. A
    re-run keeps its first run's commit, so re-running an older apply or sync after a newer
    merge would apply the older manifests and member files and undo that merge; newer
    commits that leave them alone do not count. Run from the checkout's root: the
    manifests there (the run's own) say which files they read."""
    try:
        path = repository_path(path)
        newer = newer_changes(Gh(), repo, commit, branch, path)
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    except _UNEXPECTED_SHAPE as exc:
        raise exits.fail(_unexpected_shape(exc)) from None
    # Loaded only for a re-run (a first run's commit is the newest): which files the
    # manifests read matters only when newer commits changed some.
    reads = run_reads(path) if newer.others else RunReads(frozenset())
    read = tuple(name for name in newer.others if reads.counts(name))
    where = f"{path}/" if path else "the repository"
    if newer.changed or read or newer.unknown:
        message = _newer_message(newer, read, where, branch, commit, reads)
        raise exits.fail(ReconcilerError(message))
    if newer.commits:
        typer.echo(f"{where} unchanged on {branch} since {commit[:12]}{_also(reads, path)}")
    else:
        typer.echo(f"{commit[:12]} is the newest commit on {branch}")


# The changed files a refusal names; the others are counted.
NAMED_FILES = 3


def _newer_message(
    newer: Newer, read: tuple[str, ...], where: str, branch: str, commit: str, reads: RunReads
) -> str:
    what = where if not read else "files its manifests read"
    if newer.changed and read:
        what = f"{where} and files its manifests read"
    count = f"{newer.commits} newer commit{'s' if newer.commits != 1 else ''}"
    names = sorted(set(newer.changed + read))
    if names:
        count += ": " + ", ".join(names[:NAMED_FILES])
        if len(names) > NAMED_FILES:
            count += f" and {len(names) - NAMED_FILES} more"
    if newer.unknown:
        count += "; more files changed than GitHub lists"
    if read and reads.anything:
        count += f"; {reads.anything}"
    return (
        f"{what} changed on {branch} after {commit[:12]} ({count}): this run would "
        "apply the older manifests and member files and undo those changes. Start a new "
        "run (Run workflow) instead of re-running this one."
    )


def _also(reads: RunReads, path: str) -> str:
    """What else was found unchanged."""
    if reads.anything:
        return f", nor any other file but Markdown and .github/ ({reads.anything})"
    count = sum(1 for name in reads.files if not name.startswith(f"{path}/"))
    if path and count:
        return f", nor the {count} other file{'s' if count != 1 else ''} its manifests read"
    return ""


# `check-idle`'s answer when a run is busy: not an error (1), nor click's usage error (2).
EXIT_BUSY = 3


@github_app.command("check-idle")
def check_idle(
    workflows: list[str] = typer.Option(
        ...,
        "--workflow",
        metavar="FILE",
        help="A workflow whose runs write to Iterable, by file name (apply.yml); repeatable.",
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="TIME",
        help="Also count runs created at or after TIME (ISO 8601, UTC unless it gives an "
        "offset, e.g. 2026-01-31T06:17:00Z), even those already over: the time of the first "
        "check, when checking again after planning.",
    ),
    repo: str = RepoOpt,
) -> None:
    """Exit 3, naming the runs, when a run of a WORKFLOW is in progress, queued or waiting
    (for approval, or in its concurrency group), or with --since was created since TIME;
    exit 0 when none is. The drift check skips while one is: Iterable is half-applied
    while an apply or sync writes, and a plan of it would report false drift."""
    if since is not None:
        try:
            github_time(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    try:
        busy = busy_runs(Gh(), repo, workflows, since)
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    except _UNEXPECTED_SHAPE as exc:
        raise exits.fail(_unexpected_shape(exc)) from None
    names = " or ".join(workflows)
    if not busy:
        typer.echo(f"no {names} run in progress or waiting" + (f" since {since}" if since else ""))
        return
    for run in busy:
        status = run.status.replace("_", " ")
        typer.echo(f"{run.workflow} run {status}" + (f": {run.url}" if run.url else ""))
    raise typer.Exit(EXIT_BUSY)
