"""`reconciler schema` and `reconciler version`: what editors and scripts ask of the tool."""

from __future__ import annotations

import json

import typer

from reconciler import __version__
from reconciler.manifest import manifest_json_schema


def schema() -> None:
    """Print the manifests' JSON Schema (for editors: yaml-language-server, VS Code)."""
    typer.echo(json.dumps(manifest_json_schema(), indent=2))


def version() -> None:
    """Print reconciler's version."""
    typer.echo(__version__)
