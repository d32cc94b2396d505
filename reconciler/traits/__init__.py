"""Trait mappings: Iterable user fields kept in line with an audience's source columns.

    compiled = mapping.compile_mapping(manifests.trait_mappings["crm"])
    values, errors = compiled.values(row)          # one member's fields, and bad values
    same_value(desired, live)                       # equal after normalisation?
    check_types(get_fields(), sent_values)          # type conflicts with Iterable's fields

A mapping owns exactly the fields it lists: fields it does not list are never written.

This package re-exports only its pure parts (values, conversions, comparison, types):
the planner compares field values with them, and must not load the manifest model or
jinja2 to do so. Compiling a mapping and reading its values are in `traits.mapping` and
`traits.values`.
"""

from reconciler.traits.compare import normalise, same_value
from reconciler.traits.convert import ConversionError, to_date
from reconciler.traits.types import FieldTypes, SentValue, TypeConflict, check_types

__all__ = [
    "ConversionError",
    "FieldTypes",
    "SentValue",
    "TypeConflict",
    "check_types",
    "normalise",
    "same_value",
    "to_date",
]
