"""Turn a Destination into a client: Iterable's US or EU host, a baseUrl, or the sandbox."""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import ConfigError, display_path
from reconciler.iterable import REGION_URLS, ClientSettings, IterableClient
from reconciler.manifest import Destination, resolve_api_key

SANDBOX_URL = "https://sandbox.reconciler.invalid"
# The in-process sandbox needs a key per project on the wire; it is not a secret and never leaves
# the process.
_SANDBOX_KEY_PREFIX = "sandbox:"

_sandboxes: dict[Path, object] = {}  # one emulator per state file per process


def sandbox_state_path(state_dir: Path) -> Path:
    return state_dir / "sandbox.json"


def open_client(
    destination: Destination, settings: ClientSettings, state_dir: Path
) -> IterableClient:
    spec = destination.spec
    if spec.region == "sandbox" and spec.baseUrl is None:
        return _sandbox_client(destination, settings, state_dir)
    key = resolve_api_key(destination)
    if not key:
        raise ConfigError(
            f"{destination.location}: destination {destination.name!r} needs an apiKey "
            "({env: VARIABLE} or {file: PATH}) to reach " + (spec.baseUrl or spec.region)
        )
    base_url = spec.baseUrl or REGION_URLS[spec.region]
    return IterableClient(base_url, key, settings=settings)


def _sandbox_client(
    destination: Destination, settings: ClientSettings, state_dir: Path
) -> IterableClient:
    # Imported here: the emulator (and its OpenAPI document) is only needed for sandbox.
    from reconciler.emulator import Emulator, EmulatorTransport

    path = sandbox_state_path(state_dir).resolve()
    emulator = _sandboxes.get(path)
    if emulator is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            emulator = Emulator(state_path=path)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # JSON that does not parse (ValueError), or parses into the wrong shape.
            reason = exc.args[0] if isinstance(exc, ValueError) and exc.args else "bad content"
            raise ConfigError(
                f"the sandbox state file {display_path(path)} is damaged ({reason}); it holds "
                "only the sandbox's emulated Iterable: delete it to start the sandbox afresh"
            ) from None
        _sandboxes[path] = emulator
    assert isinstance(emulator, Emulator)
    project_type = destination.spec.projectType
    try:
        project = emulator.project(destination.name)
    except KeyError:
        project = emulator.add_project(
            destination.name, project_type, _SANDBOX_KEY_PREFIX + destination.name
        )
    if project.project_type != project_type:
        raise ConfigError(
            f"{destination.location}: the sandbox project {destination.name!r} in {path} is "
            f"{project.project_type}, but the manifest says projectType {project_type}; "
            "Iterable never changes a project's type: delete the sandbox file to start over"
        )
    return IterableClient(
        SANDBOX_URL,
        _SANDBOX_KEY_PREFIX + destination.name,
        settings=settings,
        transport=EmulatorTransport(emulator),
    )
