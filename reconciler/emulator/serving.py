"""What `reconciler emulator serve` does, apart from reading its options and printing.

The command (reconciler/cli/emulator.py) parses its options, calls `open_emulator` and
`serve_until_stopped`, and turns a ServeOptionError into a usage error naming the option.
Every refusal here names the option it is about, in the order the command checks them:
the profile's options, the fault settings, the state file, the key, the project.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from reconciler.emulator.emulator import Emulator
from reconciler.emulator.knobs import Faults, Limits
from reconciler.emulator.project import Project
from reconciler.emulator.server import EmulatorServer
from reconciler.emulator.store import DAMAGED_STATE_ERRORS


class ServeOptionError(ValueError):
    """An option `serve` cannot use: the message, and the option it names."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class ServeOptions:
    """`serve`'s options, as given (None: not given)."""

    key_env: str  # the environment variable --api-key may come from, to name in messages
    state: Path | None = None
    project_type: str | None = None
    api_key: str | None = None
    project: str = "default"
    unlimited: bool = False
    profile: str | None = None
    time_scale: float = 1.0
    lost_replies_every: int = 0
    faults: tuple[str, ...] = ()  # --fault NAME=VALUE, in the order given


def open_emulator(options: ServeOptions) -> tuple[Emulator, Project]:
    """The emulator the options describe, and the project it serves (created, or read
    from the state file). Raises ServeOptionError for an option it cannot use."""
    if not math.isfinite(options.time_scale):
        # Infinity (or 1e400) made every duration 0 and every rate limit none, and said
        # "at time scale inf": --unlimited does the second, and a large number the first.
        raise ServeOptionError("must be a finite number", "--time-scale")
    emulator = _read_state(options.state, _limits(options), _faults(options))
    if options.api_key and not sendable(options.api_key):
        # reconciler strips the key it reads and refuses one with spaces inside: a project
        # answering to " dev-key" rejected every plan, the key looking the same on both sides.
        raise ServeOptionError(
            "the key has spaces around or inside it, or characters an HTTP header cannot "
            "carry; reconciler could never send it (the key itself is not shown)",
            f"--api-key / {options.key_env}",
        )
    existing = emulator.projects.get(options.project)
    if existing is None:
        return emulator, _new_project(emulator, options)
    _reuse_project(emulator, existing, options)
    return emulator, existing


def _limits(options: ServeOptions) -> Limits:
    # The time scale divides the rate limits' windows too, so a scaled run keeps the shape
    # of one that waits on them (5 getUsers a minute is 5 a second at K = 60).
    if options.unlimited:
        return Limits.unlimited()
    return Limits.iterable().scaled(options.time_scale)


def _faults(options: ServeOptions) -> Faults:
    """The profile's faults (or none), then each --fault setting over them."""
    if options.profile is None and (options.time_scale != 1.0 or options.lost_replies_every):
        # Named as given: the message named --time-scale for --lost-replies-every too.
        given = "--time-scale" if options.time_scale != 1.0 else "--lost-replies-every"
        raise ServeOptionError("only with --profile", given)
    faults = (
        Faults.field(options.time_scale, lost_replies_every=options.lost_replies_every)
        if options.profile is not None
        else Faults()
    )
    try:
        faults.update(fault_settings(options.faults))
    except ValueError as error:
        raise ServeOptionError(str(error), "--fault") from None
    return faults


def _read_state(state: Path | None, limits: Limits, faults: Faults) -> Emulator:
    try:
        return Emulator(limits=limits, faults=faults, state_path=state)
    except (OSError, *DAMAGED_STATE_ERRORS) as error:
        message = f"cannot read the state file: {str(error) or type(error).__name__}"
        raise ServeOptionError(message, "--state") from None


def _new_project(emulator: Emulator, options: ServeOptions) -> Project:
    if not options.api_key:
        raise ServeOptionError(
            f"give --api-key or set {options.key_env} to create project {options.project!r}",
            "--api-key",
        )
    try:
        return emulator.add_project(
            options.project, options.project_type or "hybrid", options.api_key
        )
    except ValueError as error:
        raise ServeOptionError(str(error), "--api-key") from None


def _reuse_project(emulator: Emulator, existing: Project, options: ServeOptions) -> None:
    """A project the state file holds: its type stays; a key given replaces its key."""
    if options.project_type is not None and existing.project_type != options.project_type:
        raise ServeOptionError(
            f"project {options.project!r} in the state file is {existing.project_type}; "
            "a project's type never changes",
            "--project-type",
        )
    if options.api_key:
        try:
            emulator.set_api_key(options.project, options.api_key)
        except ValueError as error:
            raise ServeOptionError(str(error), "--api-key") from None


def fault_settings(items: tuple[str, ...] | list[str]) -> dict[str, object]:
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


def sendable(key: str) -> bool:
    """A key reconciler can send as it reads one (manifest/api_key.py): printable ASCII,
    no whitespace anywhere."""
    return key.isascii() and key.isprintable() and not any(c.isspace() for c in key)


def listening_line(server: EmulatorServer, project: Project, options: ServeOptions) -> str:
    """The line `serve` prints once it listens (tests read the address from it)."""
    shown = (
        f", profile {options.profile} at time scale {options.time_scale:g}"
        if options.profile
        else ""
    )
    return (
        f"Iterable emulator listening on {server.base_url} "
        f"(project {project.name!r}, type {project.project_type}{shown})"
    )


_BREAK: list[int] = [getattr(signal, name) for name in ("SIGBREAK",) if hasattr(signal, name)]


def serve_until_stopped(
    server: EmulatorServer, emulator: Emulator, announce: Callable[[], None]
) -> None:
    """Serve until SIGINT, SIGTERM or (Windows) SIGBREAK, then stop the server and save the
    state. `announce` runs once the signals are caught, so whoever reads its line may stop
    us at once."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Ctrl-Break, and a console window closed, end a Windows process at once by default:
    # the state would go unsaved.
    stopping = [signal.SIGINT, signal.SIGTERM, *_BREAK]
    previous = {sig: signal.signal(sig, request_stop) for sig in stopping}
    try:
        announce()
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    finally:
        # The handlers are given back only after the last save: a second Ctrl-C (or a
        # SIGTERM) while the server waits for its connections to close ended `serve` there,
        # and what the last requests changed went unsaved. Stopping is bounded (the
        # connections' timeout); SIGKILL still ends it at once.
        try:
            server.stop()
            emulator.save()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
