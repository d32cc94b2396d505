"""Turn pydantic's validation errors into problems a person editing YAML can act on.

pydantic's `loc` is almost the path into the document, but not quite: tagged unions add
their tag to it and dict key errors add "[key]". `_resolve` walks the model types along
`loc` in step with it, which tells the two apart and also yields what the messages need
(the model that forbade an unknown key, the literal values a field accepts).
"""

from __future__ import annotations

import datetime
import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import Problem, quoted
from reconciler.manifest.location import PathElement, YamlPositions
from reconciler.manifest.model import AT, PATTERN_DESCRIPTIONS, TEMPLATE_LINE

# Paths whose input may be an API key: their values are never quoted back.
SECRET_PATHS: tuple[tuple[str, ...], ...] = (("spec", "apiKey"),)


def problems_from_error(
    error: ValidationError, model: type[BaseModel], positions: YamlPositions
) -> list[Problem]:
    """One problem per pydantic error, located in the document `positions` describes.

    A required key reported missing beside an unknown key that is its near miss
    (`regoin:` for `region:`) is one mistake: only the unknown key is reported, with the
    key it was meant to be."""
    found = error.errors()
    misspelt = {_misspelt(details, model) for details in found} - {None}
    return [
        _problem(details, model, positions)
        for details in found
        if not (details["type"] == "missing" and _missing(details, model) in misspelt)
    ]


def _misspelt(details: ErrorDetails, model: type[BaseModel]) -> tuple[PathElement, ...] | None:
    """The path of the key an unknown key was most likely meant to be."""
    if details["type"] != "extra_forbidden":
        return None
    resolved = _resolve(model, details["loc"])
    if resolved.parent is None or not resolved.path:
        return None
    meant = closest(resolved.path[-1], yaml_names(resolved.parent))
    return None if meant is None else (*resolved.path[:-1], meant)


def _missing(details: ErrorDetails, model: type[BaseModel]) -> tuple[PathElement, ...]:
    return tuple(_resolve(model, details["loc"]).path)


@dataclass
class _Resolved:
    path: list[PathElement]  # the path into the data, tags and "[key]" removed
    parent: type[BaseModel] | None  # the model whose field the path's last element is
    annotation: Any  # the type expected at the path
    dict_key: bool  # the error is about a mapping key, not its value


def _problem(details: ErrorDetails, model: type[BaseModel], positions: YamlPositions) -> Problem:
    resolved = _resolve(model, details["loc"])
    kind = details["type"]
    context = details.get("ctx") or {}
    path = list(resolved.path)
    if isinstance(context.get(AT), str):
        path.append(context[AT])
    is_key_error = kind in ("extra_forbidden", "invalid_key") or resolved.dict_key
    location = positions.locate(path, key=is_key_error)
    if isinstance(context.get(TEMPLATE_LINE), int):
        location = positions.block_line(path, context[TEMPLATE_LINE]) or location
    secret = any(tuple(path[: len(p)]) == p for p in SECRET_PATHS)
    message = _message(details, resolved, path, secret=secret)
    return location.problem(message)


def _message(
    details: ErrorDetails, resolved: _Resolved, path: list[PathElement], *, secret: bool
) -> str:
    kind = details["type"]
    context = details.get("ctx") or {}
    value = details.get("input")
    got = "" if secret else f"; got {describe(value)}"
    where = format_path(path)

    if kind == "invalid_key" and _allows_other_keys(resolved.parent):
        # Other keys are allowed here (an inline member's traits): not an unknown key, a
        # key YAML read as something other than text.
        parent = format_path(path[:-1]) if path[:-1] else "the document"
        hint = _key_quote_hint(value) or _braces_hint({value: None})
        return f"{parent}: keys must be strings; got {_quote_key(value)}{hint}"
    if kind in ("extra_forbidden", "invalid_key") and resolved.parent is not None:
        allowed = ", ".join(yaml_names(resolved.parent))
        parent = format_path(path[:-1]) if path[:-1] else "the document"
        # An unknown key's input is its value, which may be a secret; a non-string key's
        # input is the key itself.
        key = value if kind == "invalid_key" else path[-1]
        hint = (
            did_you_mean(key, yaml_names(resolved.parent))
            or _belongs_under(key, resolved.parent, parent)
            or _braces_hint({key: None})
        )
        return f"unknown key {_quote_key(key)} in {parent}{hint}; allowed: {allowed}"
    if resolved.dict_key:
        parent = format_path(path[:-1]) if path[:-1] else "the document"
        if kind == "string_pattern_mismatch":
            pattern = str(context.get("pattern", ""))
            expected = PATTERN_DESCRIPTIONS.get(pattern, f"text matching {pattern}")
            return f"{parent}: key {_quote_key(value)}: expected {expected}"
        if kind != "string_type":
            # Our own checks on keys (PydanticCustomError): a message written for people.
            return f"{parent}: key {_quote_key(path[-1])}: {details['msg']}"
        return f"{parent}: keys must be strings; got {_quote_key(value)}{_key_quote_hint(value)}"
    if kind == "missing":
        choices = _literal_choices(resolved.annotation)
        return f"{where}: required" + (f"; expected {choices}" if choices else "")
    if kind == "literal_error":
        accepted = [str(v) for v in get_args(resolved.annotation)]
        # One choice is already spelled out in full; a secret's value is never echoed.
        hint = "" if secret or len(accepted) < 2 else did_you_mean(value, accepted)
        return f"{where}: expected {_literal_choices(resolved.annotation)}{got}{hint}"
    if kind == "string_type":
        return f"{where}: expected a string{got}{_quote_hint(value)}{_braces_hint(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{where}: expected a whole number{got}{_unquote_hint(value, secret)}"
    if kind in ("float_type", "float_parsing"):
        return f"{where}: expected a number{got}{_unquote_hint(value, secret)}"
    if kind == "bool_type":
        return f"{where}: expected true or false{got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where}: expected a mapping{got}"
    if kind == "list_type":
        return f"{where}: expected a list{got}"
    if kind == "greater_than":
        return f"{where}: expected a number greater than {_bound(context.get('gt'))}{got}"
    if kind == "less_than":
        return f"{where}: expected a number less than {_bound(context.get('lt'))}{got}"
    if kind == "greater_than_equal":
        return f"{where}: expected a number of at least {_bound(context.get('ge'))}{got}"
    if kind == "less_than_equal":
        return f"{where}: expected a number of at most {_bound(context.get('le'))}{got}"
    if kind in ("string_too_short", "too_short"):
        return f"{where}: must not be empty"
    if kind == "string_too_long":
        return f"{where}: expected at most {context.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        expected = PATTERN_DESCRIPTIONS.get(pattern, f"text matching {pattern}")
        return f"{where}: expected {expected}{got}"
    if kind == "inline_entry_type":
        return f"{where}: {details['msg']}{got}{_quote_hint(value)}"
    if kind == "identity_missing":
        return f"{where}: {details['msg']}{_identity_hint(value)}"
    # Our own checks (PydanticCustomError) and anything rarer: pydantic's message is a
    # template filled from context, never from the input, so it cannot leak a key.
    return f"{where}: {details['msg']}"


def value_path(details: ErrorDetails, model: type[BaseModel]) -> list[PathElement] | None:
    """The path into the data of the value a pydantic error is about (its loc without
    union tags), or None when the error is about a mapping's key."""
    resolved = _resolve(model, details["loc"])
    return None if resolved.dict_key else resolved.path


def _resolve(model: type[BaseModel], loc: Sequence[PathElement]) -> _Resolved:
    path: list[PathElement] = []
    parent: type[BaseModel] | None = None
    current: Any = model
    dict_key = False
    for element in loc:
        if element == "[key]":
            # pydantic's marker for "the key just named is wrong", after the key itself.
            dict_key = True
            continue
        current = _unwrap(current)
        tags = _union_tags(current)
        if tags is not None:
            if element in tags:
                current = tags[element]
                continue
            current = Any
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent = current
            field = _field_by_yaml_name(current, element)
            current = field.annotation if field is not None else Any
            path.append(element)
            continue
        parent = None
        origin = get_origin(current)
        if origin is list and isinstance(element, int):
            current = get_args(current)[0]
        elif origin is dict:
            current = get_args(current)[1]
        else:
            current = Any
        path.append(element)
    return _Resolved(path, parent, _unwrap(current), dict_key)


def yaml_names(model: type[BaseModel]) -> list[str]:
    """A model's keys as written in YAML: a field's alias (`from`) where it has one."""
    return [field.alias or name for name, field in model.model_fields.items()]


def _field_by_yaml_name(model: type[BaseModel], element: PathElement) -> Any:
    if not isinstance(element, str):
        return None
    for name, field in model.model_fields.items():
        if (field.alias or name) == element:
            return field
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional and plain Annotated metadata, keeping tagged unions recognisable."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            if any(isinstance(m, Discriminator) for m in annotation.__metadata__):
                return annotation
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _union_tags(annotation: Any) -> dict[str, Any] | None:
    if get_origin(annotation) is not Annotated:
        return None
    union = get_args(annotation)[0]
    tags: dict[str, Any] = {}
    for member in get_args(union):
        if get_origin(member) is Annotated:
            for meta in member.__metadata__:
                if isinstance(meta, Tag):
                    tags[meta.tag] = get_args(member)[0]
    return tags


def _literal_choices(annotation: Any) -> str:
    if get_origin(annotation) is not Literal:
        return ""
    values = [str(v) for v in get_args(annotation)]
    if len(values) == 1:
        return values[0]
    return "one of " + ", ".join(values)


def did_you_mean(typed: Any, choices: Sequence[str]) -> str:
    """ " (did you mean 'listName'?)" for a near miss (a case slip, a letter or two off), so
    a newcomer need not compare the typo with every allowed name; "" when nothing is close."""
    meant = closest(typed, choices)
    return f" (did you mean {quoted(meant)}?)" if meant is not None else ""


def closest(typed: Any, choices: Sequence[str]) -> str | None:
    """The choice `typed` is a near miss of (see did_you_mean), or None."""
    if not isinstance(typed, str) or not typed:
        return None
    by_case = [c for c in choices if c.lower() == typed.lower()]
    # Two letters swapped: in a short word (`cvs`, `su`) too many of its letters are out
    # of place for the similarity ratio below to find it.
    swapped = [c for c in choices if _swapped(typed.lower(), c.lower())]
    close = by_case or swapped or difflib.get_close_matches(typed, choices, n=1, cutoff=0.75)
    return close[0] if close else None


def _swapped(typed: str, choice: str) -> bool:
    """Whether `typed` is `choice` with two neighbouring letters swapped."""
    if len(typed) != len(choice):
        return False
    differ = [i for i, (a, b) in enumerate(zip(typed, choice, strict=True)) if a != b]
    return (
        len(differ) == 2
        and differ[1] == differ[0] + 1
        and typed[differ[0]] == choice[differ[1]]
        and typed[differ[1]] == choice[differ[0]]
    )


def _belongs_under(key: Any, model: type[BaseModel], where: str) -> str:
    """ " (it belongs under spec.members)" for a key written one level too high, e.g. `csv:`
    beside `members:` instead of inside it."""
    for name, field in model.model_fields.items():
        inner = _unwrap(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel) and key in yaml_names(inner):
            under = field.alias or name
            return f" (it belongs under {where + '.' if where != 'the document' else ''}{under})"
    return ""


def format_path(path: Sequence[PathElement]) -> str:
    """`spec.members.inline[2].email`: how a field is named in messages."""
    text = ""
    for element in path:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            text += ("." if text else "") + str(element)
    return text or "document"


def describe(value: Any) -> str:
    """A short, YAML-flavoured rendering of a value for 'got ...' in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, dict | Mapping):
        # A mapping used as a key (`{{ x }}` written bare) is ruamel's CommentedKeyMap.
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _quote_hint(value: Any) -> str:
    if isinstance(value, bool | int | float | datetime.date):
        return " (put it in quotes to make it text)"
    return ""


def _allows_other_keys(model: type[BaseModel] | None) -> bool:
    """Whether keys a model does not name are taken (an inline member's traits)."""
    return model is not None and model.model_config.get("extra") == "allow"


def _key_quote_hint(key: Any) -> str:
    """A key YAML read as a number, a boolean, null or a date is text once quoted."""
    return _quote_hint(key) or (" (put it in quotes to make it text)" if key is None else "")


def _braces_hint(value: Any) -> str:
    """`{{ first_name }}` written bare is a YAML mapping whose one key is a mapping (`{`
    opens one), not the template its writer meant."""
    if isinstance(value, dict) and any(isinstance(key, Mapping) for key in value):
        return " (YAML reads {{ ... }} written bare as a mapping: put the template in quotes)"
    return ""


def _identity_hint(member: Any) -> str:
    """ " (did you mean 'email' for 'Email'?)": an inline member's other keys are its
    traits, so a misspelt identity key is not an unknown key, only a missing identity.
    " (userId is null)" when the key is there but YAML read its value as null (`userId:`
    left empty, `~`), where the misspelling hint offered the key for itself."""
    if not isinstance(member, dict):
        return ""
    identity = ("email", "userId")
    for key in member:
        hint = "" if key in identity else did_you_mean(key, list(identity))
        if hint:
            return hint.replace("?)", f" for {_quote_key(key)}?)")
    null = [key for key in identity if key in member and member[key] is None]
    if null:
        return f" ({' and '.join(null)} {'are' if len(null) > 1 else 'is'} null)"
    return ""


def _bound(value: Any) -> str:
    # A float field's bound is a float: 100, not 100.0, as the manifest would write it.
    return f"{value:g}" if isinstance(value, float) else str(value)


def _unquote_hint(value: Any, secret: bool) -> str:
    """A number written in quotes is text in YAML; strict fields do not convert it."""
    if secret or not isinstance(value, str):
        return ""
    try:
        float(value.strip())
    except ValueError:
        return ""
    return " (remove the quotes to make it a number)"


def _quote_key(key: Any) -> str:
    if isinstance(key, str):
        return quoted(key)
    if isinstance(key, tuple):
        # A complex key (`? [a, b]`) arrives as a tuple.
        return "[" + ", ".join(_quote_key(k) for k in key) + "]"
    return describe(key)
