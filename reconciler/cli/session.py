"""What plan, apply and status share before any command-specific work: the manifests
(with --target checked), the state directory, a client per destination in play, and a plan
made once Iterable's reads have caught up with the last apply."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from reconciler.apply.journal import last_write_at, recorded_list_ids
from reconciler.cli import annotate
from reconciler.cli.exits import err
from reconciler.cli.output import progress_display
from reconciler.connect import open_client
from reconciler.errors import ConfigError, ReconcilerError, display_path
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.manifest import Manifests, load_manifests
from reconciler.manifest.repository import find_repository
from reconciler.manifest.validation import did_you_mean
from reconciler.owner_only import owner_only_directories
from reconciler.plan import Plan
from reconciler.planning import make_plan
from reconciler.words import named, some_names

STATE_DIR_NAME = ".reconciler"


def state_dir(option: Path | None, path: Path) -> Path:
    """Local state belongs to the manifests, not to the working directory: two applies of
    one repository started from different directories must find the same lock."""
    if option is None:
        default = find_repository(path) / STATE_DIR_NAME
        if os.path.lexists(default) and not default.is_dir():
            # A file (or a link to none) where the default directory goes ended every
            # plan, apply and status as "internal error: FileExistsError" at its first write.
            raise ConfigError(
                f"{display_path(default)} is not a directory, but reconciler keeps its local "
                "state there (the sandbox, apply locks, run journals); move that file away, "
                "or give the state another directory with --state-dir DIR"
            )
        return default
    if not str(option).strip():
        # " " was made as a directory of that name wherever the command ran: the sandbox,
        # the apply lock and the journals moved there silently.
        raise ConfigError(
            f"--state-dir {str(option)!r} (or RECONCILER_STATE_DIR): the state directory is "
            "blank; name a directory, or leave it unset (or empty) for the default"
        )
    # A directory named by hand (--state-dir, RECONCILER_STATE_DIR) may be mistyped or
    # unwritable: said here, once, rather than as whichever write reaches it first.
    try:
        owner_only_directories(option)
    except OSError as exc:
        raise ConfigError(
            f"{_state_dir_named(option)}: cannot be used as the state directory "
            f"({_why_not_a_directory(option, exc)}); give a directory reconciler can create "
            "and write to"
        ) from None
    return option


def _state_dir_named(option: Path) -> str:
    """How the state directory was named: RECONCILER_STATE_DIR's error said --state-dir,
    an option the user had not given. (The command runs in a worker thread, where click's
    context, which knows the value's source, is not current.)"""
    named = os.environ.get("RECONCILER_STATE_DIR", "")
    if named.strip() and Path(named) == option:
        return f"RECONCILER_STATE_DIR={option}"
    return f"--state-dir {option}"


def _why_not_a_directory(option: Path, exc: OSError) -> str:
    """Why `option` could not be made: a file in its place or above it is named (mkdir
    says "File exists" of a path under a file, which sent users looking for the path)."""
    for candidate in (option, *option.parents):
        if os.path.lexists(candidate) and not candidate.is_dir():
            if candidate == option:
                return "a file, not a directory"
            return f"{display_path(candidate)} is a file, not a directory"
    return exc.strerror or type(exc).__name__


def load(path: Path, targets: list[str] | None) -> Manifests:
    manifests = load_manifests(path)
    for warning in manifests.warnings:
        err.print(f"warning: {warning}", markup=False)
    # plan's, in GitHub Actions (apply and status print none).
    annotate.emit(annotate.from_problem(warning, "warning") for warning in manifests.warnings)
    unknown = sorted(set(targets or ()) - set(manifests.audiences))
    if unknown:
        said = [_unknown_target(name, manifests) for name in unknown]
        raise ReconcilerError(
            f"--target names unknown {named(said, 'audience')}; audiences are: "
            f"{some_names(list(manifests.audiences)) if manifests.audiences else '(none)'}"
        )
    return manifests


def _unknown_target(name: str, manifests: Manifests) -> str:
    """A --target that is no audience, with what it may have meant: a destination's name
    (a team with staging and production reaches for `--target production`, though --target
    takes audiences) or a near miss. The names listed are bounded, as hundreds of audiences
    made the message a line of thousands of characters."""
    if name in manifests.destinations:
        its = [
            a for a, audience in manifests.audiences.items() if audience.spec.destination == name
        ]
        if not its:
            return f"{name} (a destination, with no audiences)"
        return (
            f"{name} (a destination; its audiences are {some_names(its)}: give each with --target)"
        )
    return name + did_you_mean(name, list(manifests.audiences))


def open_clients(
    manifests: Manifests, stack: ExitStack, state: Path, targets: list[str] | None = None
) -> dict[str, IterableClient]:
    """Clients for the destinations in play; with --target, only those the targeted
    audiences use (an unrelated destination's missing key is not this run's problem)."""
    settings = ClientSettings.from_env()
    needed = (
        {manifests.audiences[t].spec.destination for t in targets}
        if targets
        else set(manifests.destinations)
    )
    clients: dict[str, IterableClient] = {}
    problems: list[ConfigError] = []
    for name, dest in manifests.destinations.items():
        if name not in needed:
            continue
        try:
            clients[name] = stack.enter_context(open_client(dest, settings, state))
        except ConfigError as exc:
            # Every destination's key and baseUrl are said at once: two secrets missing in
            # CI took two runs to find, one per destination.
            problems.append(exc.in_destination(name))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError(
            f"{len(problems)} destinations cannot be used:\n"
            + "\n".join(str(problem) for problem in problems)
        )
    # Destinations naming one project (the same host and key) pace their requests
    # together, as Iterable counts them, and know together that its whole user export is
    # too big for one stream (each would otherwise try it, minutes to the cut each).
    owners: dict[str, IterableClient] = {}
    for client in clients.values():
        owner = owners.setdefault(client.project_id, client)
        if owner is not client:
            client.share_rate_limits(owner)
            client.share_project_exports(owner)
    for name, client in clients.items():
        # Long rate-limit waits, retries and why a run waits (a new list Iterable does not
        # accept writes to yet, a lost answer checked against the lagging list index) are
        # said as they start, never silence.
        client.on_notice(functools.partial(_notice, name))
    return clients


def _notice(destination: str, text: str) -> None:
    err.print(f"destination {destination!r}: {text}", markup=False)


def read_plan(
    path: Path, targets: list[str] | None, state_option: Path | None
) -> tuple[Manifests, Plan]:
    """The manifests and a plan of them, reading only (plan, status)."""
    manifests = load(path, targets)
    with ExitStack() as stack:
        state = state_dir(state_option, path)
        clients = open_clients(manifests, stack, state, targets)
        return manifests, plan(manifests, clients, targets, state)


def plan(
    manifests: Manifests,
    clients: dict[str, IterableClient],
    targets: list[str] | None,
    state: Path,
    member_reads: str | None = None,
    for_apply: bool = False,
) -> Plan:
    """A plan, after waiting out Iterable's read lag; `member_reads` forces a read route
    ("export": one read per destination, for a saved plan's stale check); `for_apply`:
    an apply of it follows in this process (make_plan)."""
    lags = {name: client.settings.read_lag for name, client in clients.items()}
    notes = wait_for_read_lag(manifests, lags, state)
    with progress_display() as progress:
        the_plan = make_plan(
            manifests,
            clients,
            targets=set(targets) if targets else None,
            progress=progress,
            member_reads=member_reads,
            for_apply=for_apply,
            recorded={name: recorded_list_ids(state, name) for name in clients},
        )
    if not notes:
        return the_plan
    return dataclasses.replace(
        the_plan,
        destinations=tuple(
            dataclasses.replace(d, read_note=notes.get(d.destination))
            for d in the_plan.destinations
        ),
    )


def read_lags(manifests: Manifests, clients: Mapping[str, IterableClient]) -> dict[str, float]:
    """How long each destination's reads may lag its writes (settings.read_lag), for those
    whose reads lag at all."""
    return _lagging(manifests, {name: client.settings.read_lag for name, client in clients.items()})


def _lagging(manifests: Manifests, lags: Mapping[str, float]) -> dict[str, float]:
    """`lags` of the destinations whose reads lag at all."""
    return {
        name: lag
        for name, lag in lags.items()
        # the sandbox answers from its own state at once
        if lag > 0
        and not (
            manifests.destinations[name].spec.region == "sandbox"
            and manifests.destinations[name].spec.baseUrl is None
        )
    }


def wait_for_read_lag(manifests: Manifests, lags: dict[str, float], state: Path) -> dict[str, str]:
    """Iterable's reads lag its writes by up to about a minute, so a plan read right after
    an apply would plan that apply's changes again (and a list it created, a second time),
    and an import would adopt a list that apply deleted. The run journals say when the
    last apply to each destination (of `lags`: its settings.read_lag, bounded) was: wait
    until the lag has passed, say so, and return a note for the plan of each."""
    now = time.time()
    recent: dict[str, tuple[float, float]] = {}
    for name, lag in _lagging(manifests, lags).items():
        at = last_write_at(state, name, lag, now)
        if at is not None:
            recent[name] = (max(0.0, now - at), lag)
    if not recent:
        return {}
    wait = max(lag - ago for ago, lag in recent.values())
    if wait < 0.05:
        return {}  # what is left of the lag rounds to nothing: 'Waiting 0.0 s' said nothing
    err.print(
        f"Waiting {wait:.1f} s before reading Iterable: the last apply to "
        f"{', '.join(sorted(recent))} was {min(a for a, _ in recent.values()):.1f} s ago, and "
        "Iterable's reads can lag its writes by up to "
        f"{max(lag for _, lag in recent.values()):g} s (RECONCILER_READ_LAG).",
        markup=False,
    )
    time.sleep(wait)
    return {
        name: (
            f"the last apply to this destination was {ago:.1f} s before this plan and "
            f"Iterable's reads can lag writes by up to {lag:g} s, so the plan waited "
            f"{wait:.1f} s before reading Iterable"
        )
        for name, (ago, lag) in recent.items()
    }
