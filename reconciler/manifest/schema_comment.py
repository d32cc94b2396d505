"""A saved copy of the manifests' JSON Schema that another reconciler made.

Manifests point editors at a schema with `# yaml-language-server: $schema=PATH`; in a
repository of one's own that file is `reconciler schema`'s output saved once (README,
"Editors and pre-commit"). After an upgrade it is the older reconciler's: the editor then
marks a key this one accepts as an error, and passes values this one refuses, with nothing
to say why. So loading the manifests compares each such local file with this reconciler's
schema and warns, once per file, naming the manifest line that points at it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from reconciler.errors import Problem
from reconciler.manifest.repository import is_inside
from reconciler.manifest.schema import manifest_json_schema
from reconciler.open_flags import BINARY, NONBLOCK

# Ten times the schema's size today: a larger file is no saved schema, and is not read.
MAX_SCHEMA_BYTES = 1 << 20

# yaml-language-server's modeline: a comment line of its own, anywhere in the file.
_MODELINE = re.compile(r"\s*#\s*yaml-language-server:\s*\$schema=(\S+)")


def stale_schema_warnings(
    files: Iterable[Path], repository: Path, shown: Callable[[Path], str]
) -> list[Problem]:
    """A warning for each local schema file a manifest's schema comment names that is not
    what `reconciler schema` prints. A URL, or a file that is missing or cannot be read,
    is not judged: the editor says so itself, and no run is held up by it. Manifests are
    untrusted: only a regular file in the repository, of a schema's size, is read (never
    a device, a FIFO or a file elsewhere on the machine)."""
    current: dict[str, Any] | None = None
    judged: set[Path] = set()
    warnings: list[Problem] = []
    for file in files:
        found = _schema_comment(file)
        if found is None:
            continue
        line, column, reference = found
        if "://" in reference:
            continue
        try:
            schema = (file.parent / reference).resolve()
            if schema in judged or not is_inside(schema, repository):
                continue
        except (OSError, ValueError, RuntimeError):  # a NUL, a loop of links
            continue
        judged.add(schema)
        text = _read_schema(schema)
        if text is None:
            continue
        try:
            saved = json.loads(text)
        except (ValueError, RecursionError):
            saved = None  # not JSON: no schema of any reconciler
        if current is None:
            current = manifest_json_schema()
        if saved == current:
            continue
        where = shown(schema)
        warnings.append(
            Problem(
                shown(file),
                line,
                column,
                f"the schema comment names {where}, which is not this reconciler's schema "
                "(saved by another version?), so editors judge the manifests by other rules; "
                f"save it again with: reconciler schema > {where}",
            )
        )
    return warnings


def _read_schema(path: Path) -> bytes | None:
    """A regular file's bytes, up to MAX_SCHEMA_BYTES; None for anything else. Opened
    non-blocking, so a FIFO cannot hang the open, and checked with fstat before a read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | NONBLOCK | BINARY)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        data = b""
        while len(data) <= MAX_SCHEMA_BYTES and (
            chunk := os.read(descriptor, MAX_SCHEMA_BYTES + 1 - len(data))
        ):
            data += chunk
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return data if len(data) <= MAX_SCHEMA_BYTES else None


def _schema_comment(file: Path) -> tuple[int, int, str] | None:
    """Where a manifest file's schema comment is (line, column) and the schema it names."""
    try:
        with file.open(encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, 1):
                found = _MODELINE.match(text)
                if found is not None:
                    return number, text.index("#") + 1, found.group(1)
    except OSError:
        return None
    return None
