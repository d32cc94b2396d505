"""Turn a Destination into a client: Iterable's US or EU host, a baseUrl, or the sandbox."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import ConfigError, ReconcilerError, display_path
from reconciler.iterable import REGION_URLS, ClientSettings, IterableClient, project_identity
from reconciler.loopback import is_loopback
from reconciler.manifest import Destination, resolve_api_key
from reconciler.manifest.repository import real_path
from reconciler.owner_only import owner_only_directories

SANDBOX_URL = "https://sandbox.reconciler.invalid"
# Origins (scheme://host[:port], separated by spaces or commas) a destination's baseUrl may
# send the API key to besides Iterable's own hosts and this computer (check_base_url).
TRUSTED_BASE_URLS = "RECONCILER_TRUSTED_BASE_URLS"
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
    # Before the key is read: a manifest alone must not be able to send it anywhere.
    check_base_url(destination)
    key = resolve_api_key(destination)
    if not key:
        raise ConfigError(
            f"{destination.location}: destination {destination.name!r} needs an apiKey "
            "({env: VARIABLE} or {file: PATH}) to reach " + (spec.baseUrl or spec.region)
        )
    base_url = spec.baseUrl or REGION_URLS[spec.region]
    return IterableClient(base_url, key, settings=settings)


def destination_project(destination: Destination) -> str | None:
    """The project a destination names, as its client's `project_id` would say, without
    opening a client; None when that cannot be known here (its key is not set, or its
    baseUrl is one the key may not be sent to, so the key is not read)."""
    spec = destination.spec
    if spec.region == "sandbox" and spec.baseUrl is None:
        return project_identity(SANDBOX_URL, _SANDBOX_KEY_PREFIX + destination.name)
    try:
        check_base_url(destination)
        key = resolve_api_key(destination)
    except ReconcilerError:
        return None
    if not key:
        return None
    return project_identity(spec.baseUrl or REGION_URLS[spec.region], key)


def check_base_url(destination: Destination, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a baseUrl the API key may not be sent to (ConfigError at its line).

    The key goes to the region's own host; to this computer (a loopback address or
    localhost: `reconciler emulator serve`, a local proxy), since nothing a manifest can
    start listens there; or to an origin listed in RECONCILER_TRUSTED_BASE_URLS. That list
    lives where the key does (the CI secret's environment, the shell), not in a manifest:
    a pull request that changes baseUrl cannot also vouch for it."""
    spec = destination.spec
    if spec.baseUrl is None:
        return
    origin = _origin(spec.baseUrl)
    region_url = REGION_URLS.get(spec.region)
    if region_url is not None and origin == _origin(region_url):
        return
    # Another data center's own host: the region is what is wrong (a key works only in
    # its project's data center). Refused even when listed as trusted: a team with
    # destinations in both data centers may list both hosts, and an EU project's key must
    # still never go to the US host (nor the EU's no-email-projects check be skipped).
    other = next((r for r, url in REGION_URLS.items() if origin == _origin(url)), None)
    where = f"{destination.field_location('baseUrl')}: destination {destination.name!r}"
    if other is not None:
        raise ConfigError(
            f"{where}: the API key is not sent to baseUrl {_show(origin)}: a key works only in "
            f"its project's data center, and the destination says region: {spec.region}; "
            f"{_show(origin)} is Iterable's {other} host: for a project in that data center "
            f"set region: {other} and no baseUrl"
        )
    if is_loopback(origin[1]):
        return
    listed = (environ if environ is not None else os.environ).get(TRUSTED_BASE_URLS, "")
    if origin in {_origin(url) for url in re.split(r"[\s,]+", listed) if url}:
        return
    host = f"Iterable's {spec.region} host {region_url}" if region_url else "the emulator"
    raise ConfigError(
        f"{where}: the API key is not sent to baseUrl {_show(origin)}: a key goes only to "
        f"{host}, to this computer (127.0.0.1, ::1, localhost), or to an address listed in "
        f"{TRUSTED_BASE_URLS} where the key is set (e.g. "
        f"{TRUSTED_BASE_URLS}={_show(origin)}); a manifest alone cannot send it elsewhere"
    )


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _show(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def _sandbox_client(
    destination: Destination, settings: ClientSettings, state_dir: Path
) -> IterableClient:
    # Imported here: the emulator (and its OpenAPI document) is only needed for sandbox.
    from reconciler.emulator import Emulator, EmulatorTransport
    from reconciler.emulator.store import DAMAGED_STATE_ERRORS

    path = real_path(sandbox_state_path(state_dir))
    emulator = _sandboxes.get(path)
    if emulator is None:
        owner_only_directories(path.parent)  # the state directory
        try:
            emulator = Emulator(state_path=path)
        except OSError as exc:
            # A directory where the file should be, a file it may not read.
            raise ConfigError(
                f"the sandbox state file {display_path(path)} cannot be read "
                f"({exc.strerror or type(exc).__name__}); it holds only the sandbox's emulated "
                "Iterable: delete it to start the sandbox afresh"
            ) from None
        except DAMAGED_STATE_ERRORS as exc:
            reason = str(exc) if isinstance(exc, ValueError) else "bad content"
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
