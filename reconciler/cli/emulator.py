"""`reconciler emulator serve`: the emulator on a local port until Ctrl-C.

It lives in cli/ rather than emulator/ so that registering the command costs nothing:
every `reconciler` process builds the whole command tree, and only `serve` needs the
emulator itself (its OpenAPI document and schema validator, about a tenth of a second)."""

from __future__ import annotations

import json
import signal
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType

import typer

API_KEY_ENV = "RECONCILER_EMULATOR_API_KEY"

emulator_app = typer.Typer(
    help="A local stand-in for Iterable's API, for tests and trying reconciler out.",
    no_args_is_help=True,
    # Typer's pretty tracebacks print local variables, and `serve` holds the API key in one.
    pretty_exceptions_show_locals=False,
)


class ProjectTypeOption(StrEnum):
    hybrid = "hybrid"
    userId = "userId"
    email = "email"


class ProfileOption(StrEnum):
    field = "field"


@emulator_app.callback()
def _group() -> None:
    """A local stand-in for Iterable's API, for tests and trying reconciler out."""
    # A callback keeps `serve` a subcommand even while it is the only one.


@emulator_app.command()
def serve(
    port: int = typer.Option(
        8080,
        "--port",
        min=0,
        max=65535,
        metavar="PORT",
        help="TCP port to listen on (0 picks a free one).",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="HOST", help="Address to bind; keep it on loopback."
    ),
    state: Path | None = typer.Option(
        None,
        "--state",
        metavar="FILE",
        help="JSON file holding the emulator's state; loaded if present, saved after each "
        "change (a state that takes long to write, at most a tenth of the time) and on "
        "stopping. Without it the state lives in memory only.",
        dir_okay=False,
    ),
    project_type: ProjectTypeOption | None = typer.Option(
        None,
        "--project-type",
        help="How the project identifies users, set when the project is created "
        "(default: hybrid). A project's type never changes.",
        show_default=False,
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        metavar="KEY",
        envvar=API_KEY_ENV,
        help=f"API key the project accepts. Prefer the {API_KEY_ENV} environment variable: "
        "a command-line argument is visible to other local users. Optional when --state "
        "already holds the project.",
        show_default=False,
    ),
    project: str = typer.Option(
        "default", "--project", metavar="NAME", help="Name of the project to serve."
    ),
    unlimited: bool = typer.Option(
        False, "--unlimited", help="Disable rate limits (by default Iterable's are enforced)."
    ),
    profile: ProfileOption | None = typer.Option(
        None,
        "--profile",
        help="field: behave as the real Iterable does in the field (an absent "
        "channelUnsubscribe unsubscribes from the channel, new lists reject writes for 30 s, "
        "reads lag writes by 60 s). Off by default: answers are immediate and consistent.",
        show_default=False,
    ),
    time_scale: float = typer.Option(
        1.0,
        "--time-scale",
        min=0.001,
        metavar="FACTOR",
        help="With --profile: divide every modelled duration by this (100: 60 s of lag "
        "becomes 0.6 s, 5 getUsers a minute becomes 5 per 0.6 s), for tests and benchmarks.",
    ),
    lost_replies_every: int = typer.Option(
        0,
        "--lost-replies-every",
        min=0,
        metavar="N",
        help="With --profile: lose the answer to every N-th request after doing its work.",
    ),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        metavar="NAME=VALUE",
        help="Repeatable: set one fault knob after the profile, VALUE in JSON "
        "(e.g. failing_list_ids=[12,13], streams_to_cut=1, get_users_stream_seconds=0.5); "
        "durations as given, not divided by --time-scale. GET /_emulator/faults lists them.",
        show_default=False,
    ),
) -> None:
    """Serve the emulator over HTTP until interrupted (Ctrl-C), then stop cleanly.

    To try reconciler's HTTP path against it, point a destination at it: region: us,
    baseUrl: http://127.0.0.1:PORT, apiKey: {env: ITERABLE_API_KEY}, with ITERABLE_API_KEY
    set to the key given here. (region: sandbox needs no server: it runs this emulator
    inside reconciler.)

    Example: RECONCILER_EMULATOR_API_KEY=dev-key reconciler emulator serve --port 8080"""
    # Imported here: no other command needs the emulator (see the module's docstring).
    from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
    from reconciler.emulator.store import DAMAGED_STATE_ERRORS

    # The time scale divides the rate limits' windows too, so a scaled run keeps the shape
    # of one that waits on them (5 getUsers a minute is 5 a second at K = 60).
    limits = Limits.unlimited() if unlimited else Limits.iterable().scaled(time_scale)
    if profile is None and (time_scale != 1.0 or lost_replies_every):
        # Named as given: the message named --time-scale for --lost-replies-every too.
        given = "--time-scale" if time_scale != 1.0 else "--lost-replies-every"
        raise typer.BadParameter("only with --profile", param_hint=given)
    faults = (
        Faults.field(time_scale, lost_replies_every=lost_replies_every)
        if profile is not None
        else Faults()
    )
    try:
        faults.update(_fault_settings(fault))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--fault") from None
    try:
        emulator = Emulator(limits=limits, faults=faults, state_path=state)
    except (OSError, *DAMAGED_STATE_ERRORS) as error:
        message = f"cannot read the state file: {str(error) or type(error).__name__}"
        raise typer.BadParameter(message, param_hint="--state") from None

    if api_key and not _sendable(api_key):
        # reconciler strips the key it reads and refuses one with spaces inside: a project
        # answering to " dev-key" rejected every plan, the key looking the same on both sides.
        raise typer.BadParameter(
            "the key has spaces around or inside it, or characters an HTTP header cannot "
            "carry; reconciler could never send it (the key itself is not shown)",
            param_hint=f"--api-key / {API_KEY_ENV}",
        )
    existing = emulator.projects.get(project)
    if existing is None:
        if not api_key:
            raise typer.BadParameter(
                f"give --api-key or set {API_KEY_ENV} to create project {project!r}",
                param_hint="--api-key",
            )
        try:
            chosen = project_type or ProjectTypeOption.hybrid
            existing = emulator.add_project(project, chosen.value, api_key)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--api-key") from None
    else:
        if project_type is not None and existing.project_type != project_type.value:
            raise typer.BadParameter(
                f"project {project!r} in the state file is {existing.project_type}; "
                "a project's type never changes",
                param_hint="--project-type",
            )
        if api_key:
            try:
                emulator.set_api_key(project, api_key)
            except ValueError as error:
                raise typer.BadParameter(str(error), param_hint="--api-key") from None

    server = EmulatorServer(emulator, host=host, port=port)
    try:
        server.start()
    except OSError as error:
        typer.echo(f"error: cannot listen on {host}:{port}: {error.strerror}", err=True)
        raise typer.Exit(1) from None

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        shown = f", profile {profile.value} at time scale {time_scale:g}" if profile else ""
        typer.echo(
            f"Iterable emulator listening on {server.base_url} "
            f"(project {existing.name!r}, type {existing.project_type}{shown})"
        )
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        emulator.save()


def _fault_settings(items: list[str]) -> dict[str, object]:
    """--fault NAME=VALUE options as a JSON object of fault settings."""
    settings: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        try:
            settings[name.strip()] = json.loads(text)
        except ValueError:
            raise ValueError(f"the value of {name.strip()} is not JSON: {text!r}") from None
    return settings


def _sendable(key: str) -> bool:
    """A key reconciler can send as it reads one (manifest/api_key.py): printable ASCII,
    no whitespace anywhere."""
    return key.isascii() and key.isprintable() and not any(c.isspace() for c in key)
