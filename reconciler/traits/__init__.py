"""Trait mappings: Iterable user fields kept in line with an audience's source columns.

    compiled = compile_mapping(manifests.trait_mappings["crm"])
    values, errors = compiled.values(row)          # one member's fields, and bad values
    same_value(desired, live)                       # equal after normalisation?
    check_types(get_fields(), sent_values)          # type conflicts with Iterable's fields

A mapping owns exactly the fields it lists: fields it does not list are never written.
"""

from reconciler.traits.compare import normalise, same_value
from reconciler.traits.convert import ConversionError, to_date
from reconciler.traits.mapping import CompiledField, CompiledMapping, FieldError, compile_mapping
from reconciler.traits.types import FieldTypes, SentValue, TypeConflict, check_types
from reconciler.traits.values import DesiredFields, desired_fields

__all__ = [
    "CompiledField",
    "CompiledMapping",
    "ConversionError",
    "DesiredFields",
    "FieldError",
    "FieldTypes",
    "SentValue",
    "TypeConflict",
    "check_types",
    "compile_mapping",
    "desired_fields",
    "normalise",
    "same_value",
    "to_date",
]
