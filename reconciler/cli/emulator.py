"""`reconciler emulator serve`: the emulator on a local port until Ctrl-C.

It lives in cli/ rather than emulator/ so that registering the command costs nothing:
every `reconciler` process builds the whole command tree, and only `serve` needs the
emulator itself (its OpenAPI document and schema validator, about a tenth of a second).
What `serve` does with its options is reconciler/emulator/serving.py; this module reads
them, calls it, and turns its refusals into usage errors."""

from __future__ import annotations

import errno
from enum import StrEnum
from pathlib import Path

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
    from reconciler.emulator import EmulatorServer
    from reconciler.emulator.serving import (
        ServeOptionError,
        ServeOptions,
        listening_line,
        open_emulator,
        serve_until_stopped,
    )

    options = ServeOptions(
        key_env=API_KEY_ENV,
        state=state,
        project_type=project_type.value if project_type is not None else None,
        api_key=api_key,
        project=project,
        unlimited=unlimited,
        profile=profile.value if profile is not None else None,
        time_scale=time_scale,
        lost_replies_every=lost_replies_every,
        faults=tuple(fault),
    )
    try:
        emulator, served = open_emulator(options)
    except ServeOptionError as error:
        raise typer.BadParameter(str(error), param_hint=error.option) from None
    server = EmulatorServer(emulator, host=host, port=port)
    try:
        server.start()
    except OSError as error:
        typer.echo(
            f"error: cannot listen on {host}:{port}: {error.strerror}; {_bind_advice(error)}",
            err=True,
        )
        raise typer.Exit(1) from None
    serve_until_stopped(
        server, emulator, lambda: typer.echo(listening_line(server, served, options))
    )


def _bind_advice(error: OSError) -> str:
    """What to do when the address cannot be bound: the error alone said no more than
    'Address already in use'."""
    if error.errno == errno.EADDRINUSE:
        return (
            "another process listens there (an emulator started before?): stop it, or "
            "choose another --port (0 picks a free one)"
        )
    if error.errno == errno.EACCES:
        return "ports below 1024 need privileges: choose another --port (0 picks a free one)"
    if error.errno == errno.EADDRNOTAVAIL:
        return "no interface of this machine has that address: choose another --host"
    return "choose another --host or --port"
