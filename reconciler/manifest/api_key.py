"""Find a destination's API key at run time, from the environment or a file.

Manifests only say where a key lives. Errors name the variable or the file and the
destination, never the key, so they are safe to print and to keep in CI logs.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path

from reconciler.env_names import case_hint
from reconciler.errors import ConfigError, quoted, variable_name
from reconciler.manifest.location import Location
from reconciler.manifest.manifests import Destination
from reconciler.open_flags import BINARY, NONBLOCK


def resolve_api_key(destination: Destination) -> str | None:
    """The API key for `destination`, or None for a sandbox destination without one.

    Raises `ConfigError` when the variable is unset or empty, or the file cannot be read.
    """
    ref = destination.spec.apiKey
    if ref is None:
        return None
    if ref.env is not None:
        at = destination.field_location("apiKey", "env")
        # A byte-order mark comes with `$(cat key.txt)` of a file Notepad saved "UTF-8 with
        # BOM", which {file: key.txt} reads as the key.
        value = os.environ.get(ref.env, "").strip().removeprefix("\ufeff").strip()
        name = variable_name(ref.env)
        if not value:
            state = "is empty" if ref.env in os.environ else f"is not set{case_hint(ref.env)}"
            raise ConfigError(
                f"{at}: destination {quoted(destination.name)}: environment variable {name} "
                f"{state}; it must hold the Iterable API key ({_how_to_set(ref.env, name)})"
            )
        return _checked(value, destination, at, f"environment variable {name}")
    path = key_file_path(destination)
    assert path is not None  # ApiKeyRef guarantees exactly one of env, file
    at = destination.field_location("apiKey", "file")
    raw = _read_key_file(path, f"{at}: destination {quoted(destination.name)}")
    try:
        value = _key_file_text(raw).strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"{at}: destination {quoted(destination.name)}: API key file {path} is not UTF-8 text"
        ) from None
    if not value:
        raise ConfigError(
            f"{at}: destination {quoted(destination.name)}: API key file {path} is empty"
        )
    return _checked(value, destination, at, f"API key file {path}")


def _how_to_set(variable: str, name: str) -> str:
    # In GitHub Actions `${{ secrets.X }}` reads as empty when there is no such secret or
    # the run is given none, and the variable is set all the same: "is empty" alone sent
    # users looking for what emptied it.
    if variable in os.environ and os.environ.get("GITHUB_ACTIONS") == "true":
        return (
            "in GitHub Actions a secret that is not set, or not given to this run, reads "
            "as empty: add the secret the workflow passes as this variable under Settings > "
            "Secrets and variables > Actions, or to the environment the job names; pull "
            "requests from forks and Dependabot's runs get no secrets"
        )
    return f"`export {name}=...` in your shell; in CI, from a secret"


def key_file_path(destination: Destination) -> Path | None:
    """The file `destination` takes its API key from (relative to its manifest), if any."""
    ref = destination.spec.apiKey
    if ref is None or ref.file is None:
        return None
    path = Path(ref.file).expanduser()
    return path if path.is_absolute() else destination.base_dir / path


# An Iterable API key is 32 hex characters; anything much larger is not a key file.
MAX_KEY_FILE_BYTES = 4096


def _read_key_file(path: Path, who: str) -> bytes:
    """At most MAX_KEY_FILE_BYTES of a regular file. A device (/dev/zero), a FIFO or a
    directory is refused before any read: opened non-blocking, so a FIFO cannot hang the
    open, and checked with fstat, so /dev/zero is never read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | NONBLOCK | BINARY)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{who}: cannot read API key file {path}: {reason}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigError(
                f"{who}: API key file {path} is not a regular file (a device, pipe or "
                "directory); refused"
            )
        data = b""
        while len(data) <= MAX_KEY_FILE_BYTES and (
            chunk := os.read(descriptor, MAX_KEY_FILE_BYTES + 1 - len(data))
        ):
            data += chunk
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{who}: cannot read API key file {path}: {reason}") from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(
            f"{who}: API key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes; an API "
            "key file holds the key alone"
        )
    return data


def _key_file_text(raw: bytes) -> str:
    """A key file's text: UTF-8, with or without a byte-order mark, or UTF-16 with one.
    Windows editors save UTF-8 with a BOM (Notepad's "UTF-8 with BOM"), and Windows
    PowerShell's `"key" > file` writes UTF-16: a key refused as "characters an API key
    cannot have" or "not UTF-8 text" when its file held it whole."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


# `NAME=value` or `export NAME=value`: a line of a .env file or a shell script, copied
# whole into a secret or a key file. A '=' that only pads (base64's `abc==`) is not one.
_ASSIGNMENT = re.compile(r"(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*[^=\s]")


def _how_written(value: str) -> str | None:
    """What is wrong with a key's text as people write it, or None. Each of these was
    sent as it stood, and Iterable's 401 sent the user to a key that looked right."""
    lines = value.splitlines()
    if len(lines) > 1:
        return (
            f"has {len(lines)} lines; an API key is one line: keep the key alone, without "
            "a comment or another key"
        )
    if _ASSIGNMENT.match(value):
        return (
            "is a line of a .env file (NAME=value); write the key alone, without the "
            "name, '=', 'export' or quotes"
        )
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return (
            "is in quotes; write the key without them (a secret or a key file holds the "
            "key as it is, and quotes would be sent as part of it)"
        )
    return None


def _checked(value: str, destination: Destination, at: Location, where: str) -> str:
    problem = _how_written(value)
    if problem is not None:
        raise ConfigError(
            f"{at}: destination {quoted(destination.name)}: the key in {where} {problem}"
        )
    # An HTTP header carries printable ASCII only; anything else fails deep inside the HTTP
    # library, with a message that may quote part of the key.
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise ConfigError(
            f"{at}: destination {quoted(destination.name)}: the key in {where} has characters an "
            "API key cannot have (non-ASCII, control characters or spaces); check it was "
            "copied whole"
        )
    return value
