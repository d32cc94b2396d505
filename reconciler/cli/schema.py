"""`reconciler schema` and `reconciler version`: what editors and scripts ask of the tool."""

from __future__ import annotations

import json

from reconciler import __version__
from reconciler.cli import exits
from reconciler.cli.stdout import emit
from reconciler.errors import OutputError


def schema() -> None:
    """Print the manifests' JSON Schema (for editors: yaml-language-server, VS Code)."""
    # Here, not above: `version` and `--version` need none of the manifest models.
    from reconciler.manifest import manifest_json_schema

    _print(json.dumps(manifest_json_schema(), indent=2), "the schema")


def version() -> None:
    """Print reconciler's version."""
    _print(__version__, "the version")


def _print(text: str, what: str) -> None:
    try:
        emit(text, what)
    except OutputError as exc:
        raise exits.fail(exc) from None
