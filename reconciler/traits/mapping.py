"""A TraitMapping compiled once, then applied to every member's source row.

`CompiledMapping.values(row)` gives the Iterable fields for one row and, for each field
whose value cannot be made, a FieldError naming the field, the column or template, the
value and why. The caller reports those like invalid members and leaves that field alone
for that member; nothing here aborts a run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.iterable.batching import encode
from reconciler.iterable.settings import REQUEST_MAX_BYTES
from reconciler.manifest import Location
from reconciler.manifest.manifests import TraitMapping
from reconciler.members.identity import (
    MOJIBAKE_PATTERN,
    SPREADSHEET_ERROR_PATTERN,
    SPREADSHEET_ERROR_STARTS,
)
from reconciler.traits.convert import CONVERTERS, ConversionError, describe_value
from reconciler.traits.field_names import PHONE_FIELD
from reconciler.traits.limits import (
    FIELD_TEXT_MAX_CHARS,
    LONG_MAX,
    LONG_MIN,
    beyond_long,
    fits_request,
    over_limits,
    over_request,
)
from reconciler.traits.template import (
    ROW_VARIABLE,
    Template,
    TemplateBudgetExceeded,
    TemplateRenderError,
    template_context,
)
from reconciler.traits.types import mixed_types


@dataclass(frozen=True)
class FieldError:
    """One value that could not be made; the member's other fields are unaffected."""

    field: str
    source: str  # "column 'plan'" or "template at FILE:LINE:COL"
    reason: str

    @property
    def message(self) -> str:
        return (
            f"field {self.field!r} ({self.source}): {self.reason}; the field is not written "
            "for this member"
        )


@dataclass(frozen=True)
class CompiledField:
    name: str
    column: str | None
    template: Template | None
    type: str | None
    location: Location  # where the field is declared in the mapping
    # The field_changes guard's limit for this field, over the audience's policy.
    max_change_percent: float | None = None

    @property
    def source(self) -> str:
        if self.column is not None:
            return f"column {self.column!r}"
        return f"template at {self.location}"

    def columns(self) -> set[str]:
        """The source columns this field reads."""
        if self.column is not None:
            return {self.column}
        assert self.template is not None
        from reconciler.traits.template import template_variables

        return template_variables(self.template.text) - {ROW_VARIABLE}

    def value(self, row: Mapping[str, Any], context: dict[str, Any] | None = None) -> Any:
        """The value to send; raises FieldValueError (or FieldAbsent: no such column).
        `context`: the row's template_context, when the caller made it for many fields."""
        convert = CONVERTERS[self.type]
        if self.column is not None:
            if self.column not in row:
                # An inline member without this key (a bare `- a@example.com`, or a mapping
                # that leaves it out) says nothing about the field: it is left as it is in
                # Iterable. Only an empty cell or an explicit null clears it.
                raise FieldAbsent
            raw = row[self.column]
            if raw == "":
                # An empty cell is no value: the field is cleared (sent as null).
                return None
            if raw is None:
                return None
            if isinstance(raw, str):
                not_a_value = _not_a_value(raw)
                if not_a_value is not None:
                    reason = f"{describe_value(raw)} {not_a_value}"
                    raise FieldValueError(FieldError(self.name, self.source, reason))
            try:
                value = _whole(convert(raw))
            except ConversionError as error:
                reason = f"{error.reason}{self._list_hint(raw)}"
                if isinstance(raw, bytes | bytearray | memoryview):
                    reason = _bytes_refused(self.column)
                raise FieldValueError(
                    FieldError(self.name, self.source, f"{describe_value(raw)} {reason}")
                ) from None
            return self._stored(value)
        assert self.template is not None
        try:
            text = self.template.render_context(
                context if context is not None else template_context(row)
            )
        except TemplateRenderError as error:
            raise FieldValueError(FieldError(self.name, self.source, error.reason)) from None
        except TemplateBudgetExceeded as error:
            raise FieldBudgetError(self, error.reason) from None
        if self.type not in (None, "string") and not text.strip():
            # No text (a template of a NULL) is no number, date or true/false: the field
            # is cleared, as an empty cell of a column is (text stays the text it is).
            return None
        try:
            value = _whole(convert(text))
        except ConversionError as error:
            reason = f"the template gave {describe_value(text)}, which {error.reason}"
            if self.type == "list" and text.lstrip().startswith("[") and "'" in text:
                # Python's text of a list (['vip', 'beta']), printed without tojson.
                reason += "; a template writes a list as JSON with | tojson"
            raise FieldValueError(FieldError(self.name, self.source, reason)) from None
        return self._stored(value)

    def _stored(self, value: Any) -> Any:
        """`value`, if Iterable would store it in this field (raises FieldValueError)."""
        if (
            self.name == PHONE_FIELD
            and value is not None
            and not (isinstance(value, str) and _E164.fullmatch(value))
        ):
            reason = f"{describe_value(value)} {_NOT_E164}"
            if self.type not in (None, "string"):
                # The type made the value this (`type: number` drops the +): say so.
                reason += f" (its type: {self.type} makes it no text; leave the type out)"
            raise FieldValueError(FieldError(self.name, self.source, reason))
        return value

    def _list_hint(self, raw: Any) -> str:
        """How to send a column of comma-separated text (`vip, beta`) as a list."""
        if self.type != "list" or not isinstance(raw, str):
            return ""
        if raw.lstrip().startswith(("[", "{", '"')):
            return ""  # JSON gone wrong, not a comma list (one item has no comma)
        name = self.column if (self.column or "").isidentifier() else f"row[{self.column!r}]"
        return (
            f"; for text separated by commas, write a template: {{{{ {name}.split(',') | "
            "map('trim') | list | tojson }}"
        )


def _bytes_refused(column: str) -> str:
    """Why a column's bytes are not sent, and how to send their text: also where there is
    no query to cast them in, a Parquet file whose text was written without a string
    annotation (as Impala and Hive write it), which reads as bytes."""
    variable = column if column.isidentifier() else f"{ROW_VARIABLE}[{column!r}]"
    return (
        "is bytes (a BLOB or bytea), which Iterable cannot store; for the text they hold, "
        f"map a template, {{{{ {variable}.decode('utf-8') }}}}, or make it text in the query"
    )


# Text that stands for no value, which an untyped field sent as it is: `\\N`, how MySQL
# and Snowflake's COPY INTO write NULL, and a spreadsheet's error value (a failed lookup's
# `#N/A`), which overwrote every such member's field with it. (`NULL`, `None`, `NaN` may be
# someone's text: a surname, a plan's name.) The field is left as it is, never guessed
# cleared; both engines make values here.
_SPREADSHEET_ERROR = re.compile(SPREADSHEET_ERROR_PATTERN)
_NOT_A_VALUE_STARTS = ("\\", *SPREADSHEET_ERROR_STARTS)


# Text that is UTF-8 misread as Windows-1252 and saved again (identity.MOJIBAKE_PATTERN:
# `Ã©lise` for `Élise`, as Excel saves a UTF-8 file it opened as ANSI), which was sent over
# the member's name as it is.
_MOJIBAKE = re.compile(MOJIBAKE_PATTERN)


def _not_a_value(raw: str) -> str | None:
    """Why a cell's text is no value to send, or None when it is one."""
    if not raw.isascii() and _MOJIBAKE.search(raw):
        return (
            "is UTF-8 text misread as Windows-1252 and saved again (Ã© for é, as Excel saves "
            "a UTF-8 file it opened as ANSI); import the original export as UTF-8 and save "
            "it again"
        )
    if not raw.startswith(_NOT_A_VALUE_STARTS):
        return None
    if raw == "\\N":
        return (
            "is how an export writes a missing value (NULL), not a value; export missing "
            "values as empty cells (Snowflake: NULL_IF = (''))"
        )
    if _SPREADSHEET_ERROR.fullmatch(raw):
        return "is a spreadsheet's error value, a formula that failed; fix it and export again"
    return None


# Iterable keeps phoneNumber, where its SMS go, only "in the proper format and include a
# country code", +16503926753 (its SMS overview), and does not save another form (Segment's
# Iterable docs): such a value went out on every run, was stored never, and each next plan
# planned it again. E.164: a +, a country code not starting with 0, at most 15 digits.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_NOT_E164 = (
    "is not a phone number as Iterable stores one (E.164: a +, the country code and the "
    "number's digits, +16503926753), and Iterable would not save it; write it so in the "
    "source, or with a template"
)


# Values whose JSON is short whatever they hold (a 4,096-bit integer is 1,234 digits;
# a bool is an int).
_SMALL = (int, float)


# Half of a UTF-16 surrogate pair: JSON text may write one alone ("\ud83d", as JavaScript's
# JSON.stringify writes a string cut inside an emoji), which json reads as a lone
# surrogate (a whole pair it reads as its character), and a template's '\ud83d' makes one.
# UTF-8 has no form for it, so no request can carry it: plan stopped with an internal error.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _half_pair(value: Any) -> str | None:
    """Why `value` cannot be sent for the surrogate it holds (in a text, a list's item,
    an object's key or value), or None."""
    pending = [value]
    while pending:  # no recursion, as limits._longest_text
        item = pending.pop()
        if isinstance(item, str):
            found = None if item.isascii() else _SURROGATE.search(item)
            if found is not None:
                return (
                    f"holds \\u{ord(found.group()):04x}, half of a UTF-16 surrogate pair, "
                    "which is no character on its own (text cut inside an emoji) and no "
                    "request can carry; fix it in the source"
                )
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
    return None


def _whole(value: Any) -> Any:
    """A converted value Iterable would take as a whole (traits.types.mixed_types) and
    within its size limits (traits.limits), which UTF-8 can carry."""
    # Text, numbers and null first: nearly every value, made for every row.
    if isinstance(value, str):
        if len(value) > FIELD_TEXT_MAX_CHARS:
            raise ConversionError(over_limits(value) or "")
        if not value.isascii():
            half = _half_pair(value)
            if half is not None:
                raise ConversionError(half)
        return value
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        if LONG_MIN <= value <= LONG_MAX:  # a bool is 0 or 1
            return value
        raise ConversionError(beyond_long(value) or "")
    mixed = mixed_types(value)
    if mixed is not None:
        raise ConversionError(mixed)
    too_large = over_limits(value) or beyond_long(value) or _half_pair(value)
    if too_large is not None:
        raise ConversionError(too_large)
    return value


class FieldAbsent(Exception):
    """The row has no such column at all: the field is not written for this member."""


class FieldBudgetError(Exception):
    """A field's template went over its work budget (traits.template): the run stops."""

    def __init__(self, field: CompiledField, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(reason)


class FieldValueError(Exception):
    def __init__(self, error: FieldError):
        self.error = error
        super().__init__(error.message)


@dataclass(frozen=True)
class CompiledMapping:
    name: str
    fields: tuple[CompiledField, ...]
    merge_nested_objects: bool
    location: Location  # of metadata.name

    @functools.cached_property
    def templated(self) -> bool:
        return any(f.template is not None for f in self.fields)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def columns(self) -> dict[str, set[str]]:
        """Field -> the source columns it reads."""
        return {f.name: f.columns() for f in self.fields}

    def values(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        """Every field's value for one row, and the errors of those that failed."""
        out: dict[str, Any] = {}
        errors: list[FieldError] = []
        # At least the bytes the values take in a request, without encoding text: enough
        # to tell that nearly every member fits one.
        bound = 0
        # What templates see of the row, made once for all of them.
        context = template_context(row) if self.templated else None
        for compiled in self.fields:
            try:
                value = compiled.value(row, context)
            except FieldAbsent:
                continue
            except FieldValueError as failure:
                errors.append(failure.error)
                continue
            out[compiled.name] = value
            if isinstance(value, str):
                bound += 6 * len(value)  # JSON spends at most 6 bytes on a character
            elif not (value is None or isinstance(value, _SMALL)):
                bound += len(encode(value))  # a list or an object
        if fits_request(bound, len(out)):
            return out, errors
        for name in over_request(out):
            # Sent whole or not at all: the member's entry must fit one request.
            size = len(encode(out.pop(name)))
            compiled = next(f for f in self.fields if f.name == name)
            reason = (
                f"its value ({size:,} bytes of JSON) and the member's other fields would be "
                f"over the {REQUEST_MAX_BYTES:,} bytes an Iterable request may carry"
            )
            errors.append(FieldError(name, compiled.source, reason))
        return out, errors


def compile_mapping(mapping: TraitMapping) -> CompiledMapping:
    fields = []
    for name, spec in mapping.spec.field_specs().items():
        fields.append(
            CompiledField(
                name=name,
                column=spec.from_,
                template=Template(spec.template) if spec.template is not None else None,
                type=spec.type,
                max_change_percent=spec.maxChangePercent,
                location=mapping.field_location(
                    "fields", name, *(("template",) if spec.template is not None else ())
                ),
            )
        )
    return CompiledMapping(
        mapping.name, tuple(fields), mapping.spec.mergeNestedObjects, mapping.location
    )
