"""Find a destination's API key at run time, from the environment or a file.

Manifests only say where a key lives. Errors name the variable or the file and the
destination, never the key, so they are safe to print and to keep in CI logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.manifest.manifests import Destination


def resolve_api_key(destination: Destination) -> str | None:
    """The API key for `destination`, or None for a sandbox destination without one.

    Raises `ConfigError` when the variable is unset or empty, or the file cannot be read.
    """
    ref = destination.spec.apiKey
    if ref is None:
        return None
    if ref.env is not None:
        value = os.environ.get(ref.env, "").strip()
        if not value:
            state = "is not set" if ref.env not in os.environ else "is empty"
            raise ConfigError(
                f"destination {destination.name!r}: environment variable {ref.env} {state}; "
                "it must hold the Iterable API key"
            )
        return _checked(value, destination, f"environment variable {ref.env}")
    assert ref.file is not None  # ApiKeyRef guarantees exactly one of env, file
    path = Path(ref.file).expanduser()
    if not path.is_absolute():
        path = destination.base_dir / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"destination {destination.name!r}: API key file {path} is not UTF-8 text"
        ) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"destination {destination.name!r}: cannot read API key file {path}: {reason}"
        ) from None
    if not value:
        raise ConfigError(f"destination {destination.name!r}: API key file {path} is empty")
    return _checked(value, destination, f"API key file {path}")


def _checked(value: str, destination: Destination, where: str) -> str:
    # An HTTP header carries printable ASCII only; anything else fails deep inside the HTTP
    # library, with a message that may quote part of the key.
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise ConfigError(
            f"destination {destination.name!r}: the key in {where} has characters an API key "
            "cannot have (non-ASCII, control characters or spaces); check it was copied whole"
        )
    return value
