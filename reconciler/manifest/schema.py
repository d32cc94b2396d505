"""The JSON Schema of a manifest document, for editors (yaml-language-server) and CI.

Generated from the pydantic models, so it cannot drift from what the loader accepts.
Checks the models make in code (exactly one of env/file, apiKey required outside the
sandbox) are mirrored by `json_schema_extra` on the models themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from reconciler.manifest.model import API_VERSION, ManifestDocument

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def manifest_json_schema() -> dict[str, Any]:
    """A draft 2020-12 JSON Schema accepting any one manifest document."""
    schema = TypeAdapter(ManifestDocument).json_schema()
    for definition in schema.get("$defs", {}).values():
        # A model's title is its Python class name (ApiKeyRef, MembersSpec), which an
        # editor shows on hover in place of the key (`apiKey:`) a manifest has there.
        definition.pop("title", None)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"reconciler manifest ({API_VERSION})",
        "description": "One document of a reconciler manifest file; a file may hold "
        "several, separated by ---.",
        **schema,
    }
