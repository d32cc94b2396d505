"""Iterable's OpenAPI (Swagger 2.0) description, loaded once per process, and validators
for its `definitions`.

The spec is 388 KB, so it is read lazily on first use and every compiled validator is
cached. Swagger 2.0 schemas are JSON Schema Draft 4 (with extra keywords Draft 4 ignores).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_FILE = "iterable-openapi.json"
_SPEC_URI = "urn:reconciler:iterable-openapi"


@functools.cache
def openapi() -> dict[str, Any]:
    """The whole spec as shipped beside this module."""
    text = resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(openapi(), default_specification=DRAFT4)
    return Registry().with_resource(_SPEC_URI, resource)


# The integer formats the spec uses: a number outside its range (a campaignId of 21
# digits) is a value Iterable's JSON reader cannot hold, so the body is refused.
_FORMATS = FormatChecker(())


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@_FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@functools.cache
def _validator_for_ref(ref: str) -> Draft4Validator:
    """A validator for a local `$ref` such as `#/definitions/SubscribeRequest`."""
    return Draft4Validator(
        {"$ref": f"{_SPEC_URI}{ref}"}, registry=_registry(), format_checker=_FORMATS
    )


def definition_validator(name: str) -> Draft4Validator:
    """A validator for `#/definitions/<name>`; KeyError when the spec has no such name."""
    if name not in openapi()["definitions"]:
        raise KeyError(f"the OpenAPI has no definition {name!r}")
    return _validator_for_ref(f"#/definitions/{name}")


def schema_validator(schema: dict[str, Any]) -> Draft4Validator:
    """A validator for an inline schema from the spec (its `$ref`s resolve in the spec)."""
    if set(schema) == {"$ref"}:
        return _validator_for_ref(schema["$ref"])
    return Draft4Validator(schema, registry=_registry(), format_checker=_FORMATS)


def body_problem(definition: str, body: Any) -> str | None:
    """Why `body` does not satisfy the definition, in one line; None when it does."""
    error = best_match(definition_validator(definition).iter_errors(body))
    if error is None:
        return None
    where = error.json_path
    return error.message if where == "$" else f"{error.message} at {where}"


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    """The schema the spec gives for a response, or None when it documents none."""
    operation = openapi()["paths"][path][method.lower()]
    response = operation.get("responses", {}).get(str(status))
    if response is None:
        return None
    schema: dict[str, Any] | None = response.get("schema")
    return schema
