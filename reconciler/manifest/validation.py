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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import Problem, quoted
from reconciler.manifest.location import PathElement, YamlPositions
from reconciler.manifest.model import AT, PATTERN_DESCRIPTIONS, TEMPLATE_LINE
from reconciler.manifest.yaml_file import WRITTEN_AS
from reconciler.render.masking import source_value

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
    error = _Error(
        kind=details["type"],
        msg=details["msg"],
        context=details.get("ctx") or {},
        value=details.get("input"),
        path=path,
        resolved=resolved,
        secret=secret,
    )
    key_message = _key_message(error)
    if key_message is not None:
        return key_message
    # Our own checks (PydanticCustomError) and anything rarer take pydantic's message.
    return _VALUE_MESSAGES.get(error.kind, _own_message)(error)


@dataclass(frozen=True)
class _Error:
    """One pydantic error, with what every message about it is made of."""

    kind: str
    msg: str
    context: dict[str, Any]
    value: Any
    path: list[PathElement]
    resolved: _Resolved
    secret: bool  # the value may be an API key: it is never quoted back

    @property
    def where(self) -> str:
        return format_path(self.path)

    @property
    def got(self) -> str:
        if self.secret:
            return ""
        if _member_identity(self.path) and _is_number(self.value):
            # A userId written bare (`- 4915112345678`, `userId: 00123`) is a member's
            # identity, shown as every output shows one: masked unless --show-members.
            return f"; got the number {source_value(written(self.value))}"
        return f"; got {describe(self.value)}"

    @property
    def parent(self) -> str:
        """The mapping the path's last element is in, for messages about a key."""
        return format_path(self.path[:-1]) if self.path[:-1] else "the document"


def _key_message(error: _Error) -> str | None:
    """The message for an error about a mapping's key, or None when it is about a value."""
    owner = error.resolved.parent
    if error.kind == "invalid_key" and _allows_other_keys(owner):
        # Other keys are allowed here (an inline member's traits): not an unknown key, a
        # key YAML read as something other than text.
        hint = _key_quote_hint(error.value) or _braces_hint({error.value: None})
        return f"{error.parent}: keys must be strings; got {_quote_key(error.value)}{hint}"
    if error.kind in ("extra_forbidden", "invalid_key") and owner is not None:
        return _unknown_key(error, owner)
    if error.resolved.dict_key:
        return _bad_key(error)
    return None


def _unknown_key(error: _Error, owner: type[BaseModel]) -> str:
    """A key the model `owner` does not name, with the key it was likely meant to be."""
    allowed = ", ".join(yaml_names(owner))
    # An unknown key's input is its value, which may be a secret; a non-string key's
    # input is the key itself.
    key = error.value if error.kind == "invalid_key" else error.path[-1]
    hint = (
        did_you_mean(key, yaml_names(owner))
        or _belongs_under(key, owner, error.parent)
        or _braces_hint({key: None})
    )
    return f"unknown key {_quote_key(key)} in {error.parent}{hint}; allowed: {allowed}"


def _bad_key(error: _Error) -> str:
    """A key of a free-form mapping (labels, traits) that its own checks refuse."""
    if error.kind == "string_pattern_mismatch":
        return f"{error.parent}: key {_quote_key(error.value)}: expected {_pattern(error)}"
    if error.kind != "string_type":
        # Our own checks on keys (PydanticCustomError): a message written for people.
        return f"{error.parent}: key {_quote_key(error.path[-1])}: {error.msg}"
    hint = _key_quote_hint(error.value)
    return f"{error.parent}: keys must be strings; got {_quote_key(error.value)}{hint}"


def _pattern(error: _Error) -> str:
    """What a field's pattern accepts, in words where the model has them."""
    pattern = str(error.context.get("pattern", ""))
    return PATTERN_DESCRIPTIONS.get(pattern, f"text matching {pattern}")


def _required(error: _Error) -> str:
    choices = _literal_choices(error.resolved.annotation)
    return f"{error.where}: required" + (f"; expected {choices}" if choices else "")


def _not_a_choice(error: _Error) -> str:
    accepted = [str(v) for v in get_args(error.resolved.annotation)]
    # One choice is already spelled out in full; a secret's value is never echoed.
    hint = "" if error.secret or len(accepted) < 2 else did_you_mean(error.value, accepted)
    return f"{error.where}: expected {_literal_choices(error.resolved.annotation)}{error.got}{hint}"


def _not_a_string(error: _Error) -> str:
    hints = _quote_hint(error.value) + _braces_hint(error.value)
    return f"{error.where}: expected a string{error.got}{hints}"


def _not_a_number(what: str) -> Callable[[_Error], str]:
    """A number field's message: `what` it takes, and a hint when the number was quoted."""

    def message(error: _Error) -> str:
        hint = _unquote_hint(error.value, error.secret)
        return f"{error.where}: expected {what}{error.got}{hint}"

    return message


def _expected(what: str) -> Callable[[_Error], str]:
    """The message of a value that is not `what` the field takes."""
    return lambda error: f"{error.where}: expected {what}{error.got}"


def _out_of_bounds(words: str, bound: str) -> Callable[[_Error], str]:
    """A number beyond the field's bound, which pydantic's context names `bound`."""
    return lambda error: (
        f"{error.where}: expected a number {words} {_bound(error.context.get(bound))}{error.got}"
    )


def _empty(error: _Error) -> str:
    return f"{error.where}: must not be empty"


def _too_long(error: _Error) -> str:
    return f"{error.where}: expected at most {error.context.get('max_length')} characters"


def _no_match(error: _Error) -> str:
    return f"{error.where}: expected {_pattern(error)}{error.got}"


def _inline_entry(error: _Error) -> str:
    return f"{error.where}: {error.msg}{error.got}{_quote_hint(error.value)}"


def _no_identity(error: _Error) -> str:
    return f"{error.where}: {error.msg}{_identity_hint(error.value)}"


def _own_message(error: _Error) -> str:
    # pydantic's message is a template filled from context, never from the input, so it
    # cannot leak a key.
    return f"{error.where}: {error.msg}"


# The message of an error about a value, by pydantic's error type.
_VALUE_MESSAGES: dict[str, Callable[[_Error], str]] = {
    "missing": _required,
    "literal_error": _not_a_choice,
    "string_type": _not_a_string,
    "int_type": _not_a_number("a whole number"),
    "int_parsing": _not_a_number("a whole number"),
    "int_from_float": _not_a_number("a whole number"),
    "float_type": _not_a_number("a number"),
    "float_parsing": _not_a_number("a number"),
    "bool_type": _expected("true or false"),
    "model_type": _expected("a mapping"),
    "model_attributes_type": _expected("a mapping"),
    "dict_type": _expected("a mapping"),
    "list_type": _expected("a list"),
    "greater_than": _out_of_bounds("greater than", "gt"),
    "less_than": _out_of_bounds("less than", "lt"),
    "greater_than_equal": _out_of_bounds("of at least", "ge"),
    "less_than_equal": _out_of_bounds("of at most", "le"),
    "string_too_short": _empty,
    "too_short": _empty,
    "string_too_long": _too_long,
    "string_pattern_mismatch": _no_match,
    "inline_entry_type": _inline_entry,
    "identity_missing": _no_identity,
}


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
    # Compared in one case: a case slip beside a typo ("vip customer" for "VIP customers")
    # is as near as either alone.
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(choice.lower(), choice)
    near = difflib.get_close_matches(typed.lower(), list(folded), n=1, cutoff=0.75)
    close = by_case or swapped or [folded[n] for n in near]
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
        return written(value)
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


def written(number: int | float) -> str:
    """A number as the file writes it (`0777`, `1e3`), not as Python does (777, 1000.0):
    the text a message quotes is the text the reader looks for in the file."""
    text = getattr(number, WRITTEN_AS, None)
    return text if isinstance(text, str) else str(number)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _member_identity(path: Sequence[PathElement]) -> bool:
    """Whether `path` is an inline member's entry (`inline[3]`) or its email or userId."""
    if tuple(path[:3]) != ("spec", "members", "inline") or len(path) < 4:
        return False
    return len(path) == 4 or (len(path) == 5 and path[4] in ("email", "userId"))


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
