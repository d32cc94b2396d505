"""Templates in trait mappings: jinja2 in a sandbox, strict about undefined variables.

A manifest comes from a pull request, so a template is untrusted code: the sandbox keeps it
from reaching Python internals (attributes such as `__class__`, unsafe callables), and
StrictUndefined makes a misspelt column an error instead of a silently empty field.

The sandbox does not bound a template's work, and `validate` renders templates in CI: a
template could hang the run (nested loops, exponential macros) or exhaust memory
(`'x' * 5e10`, `n ** 9 ** 9`, `s ~ s` doubled in a loop). So every render has a budget
(RenderBudget): the operations that make large values (`*`, `**`, `+`, `%`, `~`, the
padding, indenting, wrapping, joining, replacing and translating filters and methods) are
checked before they run, every value they make is measured after (a list by what it holds,
counted wherever it appears: `[a] * n` holds `a` n times) and counted towards MAX_MADE,
every value a filter, call or output turns into text is measured before, the output is
counted as it is produced, and the time is checked at each loop step, call, operator and
piece of output. A template over budget
raises TemplateBudgetExceeded, which stops the run (a template that hangs on one row would
hang on the next), except a format width or precision that the row's values made and
the template's text does not write: that one is refused before anything is made, and
fails only its row (TemplateRenderError). Checking time costs a clock read per step; no
signal or thread is used, so renders work in any thread.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
import string
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial, wraps
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from reconciler.traits.template_words import in_words, undefined_in_words

# The name under which a template sees the whole row, for columns whose names are not
# valid variable names (`{{ row["first name"] }}`).
ROW_VARIABLE = "row"

# A render's budget. A field value is a few hundred characters at most, and a template
# renders in microseconds: these leave thousands of times that room.
MAX_SECONDS = 1.0
MAX_TEXT = 100_000  # characters in any string a template makes, its output included
MAX_ITEMS = 100_000  # items in any list it makes (jinja's own cap on range())
MAX_INT_BITS = 4096  # integers beyond ~10**1233 are no field value
# Characters and items a render may make in all: each value above is within the limits, but
# `range(99999)|map('center', 99999)|list` makes 99,999 of them before anything measures
# the list (10 GB within the time budget).
MAX_MADE = 100 * MAX_TEXT
# `|sum(start=[])` over this many lists at most: each addition copies all before it.
MAX_SUMMED_SEQUENCES = 1_000

_GUARD = "_reconciler_bounded_iter"
# The row error of a format width or precision over MAX_TEXT that the row's values made.
WIDTH_FROM_ROW = (
    f"a format width or precision made from the row's values is over the {MAX_TEXT:,} "
    "characters a template may make"
)
_BATCH = 64
_NUMBERS = frozenset({int, float})
_SMALL = 2**62


class TemplateRenderError(Exception):
    """A template failed for one row; `reason` is written for people."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class TemplateBudgetExceeded(Exception):
    """A template took too long or made too large a value; `reason` says which."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class _Null:
    """A null (SQL NULL, a null in Parquet, YAML or JSON) as a template sees it: text of
    nothing wherever the template makes text of it, as an empty CSV cell is. jinja2 makes
    Python's None the text 'None', and not only where `{{ x }}` prints it: `~`, `| title`,
    `| join`, `%` and str.format made a greeting over a nullable column 'Hi None'. Tests
    (`is none`, `is sameas none`), `== none`, truth and `tojson` still see a null, and an
    operation None does not support fails as it does for None, in the same words."""

    __slots__ = ()

    def __str__(self) -> str:
        return ""

    def __repr__(self) -> str:
        return "None"  # in a printed list, as before

    def __format__(self, spec: str) -> str:
        return format("", spec)

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or other is self

    def __hash__(self) -> int:
        return hash(None)


# Python's own messages name the type ("unsupported operand type(s) for +: 'NoneType' and
# 'int'"): a row error reads as it did, and _without_data knows the word.
_Null.__name__ = _Null.__qualname__ = "NoneType"
_Null.__module__ = "builtins"  # jinja's "NoneType object has no element 0", not our module
NULL = _Null()


def _nulled(value: Any) -> Any:
    """A value a template reads, its None (or a list's or tuple's None items) made NULL."""
    if value is None:
        return NULL
    kind = type(value)
    if (kind is list or kind is tuple) and None in value:
        return kind(NULL if item is None else item for item in value)
    return value


def _is_none(value: Any) -> bool:
    return value is None or value is NULL


def _same_as(value: Any, other: Any) -> bool:
    if _is_none(value) and _is_none(other):
        return True
    return value is other


_NOT_READ = object()


def _number_filter(name: str, convert: Callable[..., Any]) -> Callable[..., Any]:
    """jinja2's int or float filter, giving its default only when the template gives one.
    jinja2's own gives 0 for text it cannot read and for no value at all, so an empty
    cell, a NULL or 'n/a' went to Iterable as a lifetime value of 0: no value stays a null
    (a typed field is cleared, as by the column itself), and other text fails its row."""

    def strict(value: Any, *args: Any, **kwargs: Any) -> Any:
        if args or "default" in kwargs:
            return convert(value, *args, **kwargs)
        if _is_none(value) or (isinstance(value, str) and not value.strip()):
            return NULL
        number = convert(value, _NOT_READ, **kwargs)
        if number is _NOT_READ:
            # Not quoting the value: it is a member's data.
            raise ValueError(
                f"the {name} filter was given a value that is not a number; give it a default "
                f"to use instead ({name}(0)) or test the value first"
            )
        return number

    return strict


def _json_default(value: Any) -> Any:
    if value is NULL:
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Clock(threading.local):
    deadline: float | None = None
    made: int = 0  # the weight of the values this render has made so far


_clock = _Clock()


def _tick() -> None:
    deadline = _clock.deadline
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateBudgetExceeded(f"the template ran longer than {MAX_SECONDS:g} s")


def _too_big(what: str) -> TemplateBudgetExceeded:
    return TemplateBudgetExceeded(
        f"the template would make {what} (limits: {MAX_TEXT:,} characters, {MAX_ITEMS:,} "
        f"items, {MAX_INT_BITS:,}-bit integers)"
    )


_SCALARS = frozenset({int, float, bool, type(None), _Null, range})
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_TEXTS = (str, bytes, bytearray)


def _holds(kind: type, value: Any) -> bool:
    """Whether `value` holds other values whose text counts (see _weight). Exact types
    first: an ABC isinstance check costs a microsecond, and every loop is a generator."""
    if kind in _CONTAINERS or kind is Namespace:
        return True
    return (
        kind not in _SCALARS
        and hasattr(kind, "__len__")
        and not issubclass(kind, _TEXTS)
        and isinstance(value, Collection)
    )


def _weight(value: Any, cap: int = MAX_TEXT + MAX_ITEMS) -> int:
    """How much text a value stands for, as far as `cap` (then more than `cap`): a string's
    or bytes' length; for a collection its items, and what each stands for, counted at
    every place it appears. A list can hold the same list 99,999 times (`[a] * n`, or a
    literal `[a, a, ...]` nested a few levels): its text is what str() or a filter would
    make of it, though it takes little memory itself. A range counts as nothing: its text
    is short, and what it makes when listed is counted then."""
    known: dict[int, int] = {}

    def visit(item: Any) -> int:
        kind = type(item)
        if kind in _SCALARS:
            return 0
        if isinstance(item, _TEXTS):
            return len(item)
        if not _holds(kind, item):
            return 0
        if id(item) in known:
            return known[id(item)]
        children: Iterable[Any]
        if kind is Namespace:
            children, total = (object.__getattribute__(item, "_Namespace__attrs"),), 0
        elif isinstance(item, Mapping):
            children, total = (part for pair in item.items() for part in pair), len(item)
        else:
            children, total = item, len(item)
        for child in children:
            if total > cap:
                break
            total += visit(child)
        known[id(item)] = total
        return total

    return visit(value)


def _check_value(value: Any) -> Any:
    kind = type(value)
    if kind is str:  # the usual case, quickly
        if len(value) > MAX_TEXT:
            raise _too_big(f"a string of {len(value):,} characters")
    elif kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise _too_big(f"an integer of {value.bit_length():,} bits")
    elif kind in _SCALARS:
        pass
    elif isinstance(value, _TEXTS):
        if len(value) > MAX_TEXT:
            raise _too_big(f"a string of {len(value):,} characters")
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise _too_big(f"an integer of {value.bit_length():,} bits")
    elif _holds(kind, value) and (
        (kind is not Namespace and len(value) > MAX_ITEMS) or _weight(value) > MAX_TEXT + MAX_ITEMS
    ):
        raise _too_big("a collection too large (counting what it holds)")
    return value


def _made(value: Any) -> Any:
    """`value`, checked, and counted towards MAX_MADE."""
    kind = type(value)
    if kind is str:  # the usual case, quickly
        size = len(value)
        if size > MAX_TEXT:
            raise _too_big(f"a string of {size:,} characters")
    elif kind in _SCALARS:
        return _check_value(value) if kind is int else value
    else:
        _check_value(value)
        if isinstance(value, _TEXTS):
            size = len(value)
        elif _holds(kind, value):
            size = _weight(value)
        else:
            return value  # a generator, a function: what it makes is counted then
    clock = _clock
    made = clock.made + size
    clock.made = made
    if made > MAX_MADE:
        raise _too_big(f"more than {MAX_MADE:,} characters and items in all")
    return value


def _finalize(value: Any) -> Any:
    # A string's pieces are counted as the output is produced (Template.render).
    if value is None or value is NULL:
        # A null column (SQL NULL, a null in Parquet or YAML) is no text, as an empty CSV
        # cell is: jinja2 would print Python's "None" into the profile ("Hi None").
        return ""
    return value if type(value) is str else _check_value(value)


def _check_inputs(values: Iterable[Any]) -> None:
    """Values about to be turned into text or taken apart, checked first: str() of a
    list that holds itself many times over would make gigabytes before any result is
    measured."""
    for value in values:
        if type(value) is not str:
            _check_value(value)


def _lines_times(text: Any, extra: int) -> None:
    """Refuse adding `extra` characters to each line of `text` when too long (indent)."""
    if isinstance(text, str) and len(text) + (text.count("\n") + 1) * extra > MAX_TEXT:
        raise _too_big("an indented string too long")


def _check_count(count: Any, what: str) -> None:
    # The count is not quoted: a template can make it of a member's numeric userId.
    if isinstance(count, int | float) and not isinstance(count, bool) and count > MAX_TEXT:
        raise _too_big(f"{what} over {MAX_TEXT:,}")


class _FormatWidthExceeded(TemplateBudgetExceeded):
    """A width or precision in a format over MAX_TEXT. `written` is its digits as the
    format (or a `*` argument) gave them: Template.render fails only the row when the
    template's own text does not write them (a spec made from a member's userId)."""

    def __init__(self, written: str):
        super().__init__(_too_big("a formatted value of unbounded width").reason)
        self.written = written


def _format_bound(written: str | None) -> int:
    """A width or precision as written in a format: its value, refused over MAX_TEXT."""
    if not written:
        return 0
    if len(written.lstrip("0")) > len(str(MAX_TEXT)) or int(written) > MAX_TEXT:
        raise _FormatWidthExceeded(written)
    return int(written)


def _argument_bound(argument: Any, precision: bool) -> int:
    """A width or precision a `*` takes from the arguments (Python refuses a non-integer):
    a negative width left-justifies by its size, a negative precision counts as none."""
    if not isinstance(argument, int):
        return 0
    if precision and argument < 0:
        return 0
    size = abs(argument)
    if size > MAX_TEXT:
        # Beyond ~10**4300 str() refuses to write an integer; no template wrote that.
        raise _FormatWidthExceeded(str(size) if size.bit_length() <= MAX_INT_BITS else "")
    return size


@dataclass(frozen=True)
class _PrintfSpec:
    """One conversion of a printf-style format: `%(key)#-08.3f`."""

    key: str | None
    width: int  # _TAKEN: from the arguments (`*`)
    precision: int
    conversion: str


_TAKEN = -1


_PRINTF_NUMBER = re.compile(r"\*|[0-9]*")  # Python reads ASCII digits only
_PRINTF_FLAGS = frozenset("-+ #0")
_PRINTF_CONVERSIONS = frozenset("diouxXeEfFgGcrsab")  # b: bytes only


@lru_cache(maxsize=64)
def _printf_specs(text: str) -> tuple[tuple[_PrintfSpec, ...], int, str | None] | None:
    """The conversions of a printf-style format, the length of its literal text (`%%` is
    one character) and the first width or precision it writes over MAX_TEXT, by Python's
    grammar: `%`, an optional `(key)` (parentheses nest), flags `-+ #0`, a width (`*` or
    digits), `.` and a precision (`*`, digits or none), one of the length modifiers `hlL`
    (ignored), the conversion. None when Python would refuse the format: the operation
    itself then fails the row, naming the mistake. Kept for the last formats: a template
    formats the same text for every row."""
    specs: list[_PrintfSpec] = []
    over: list[str] = []

    def bound(written: str) -> int:
        if written == "*":
            return _TAKEN
        try:
            return _format_bound(written)
        except _FormatWidthExceeded:
            over.append(written)
            return 0

    literal, at, end = 0, 0, len(text)
    while (percent := text.find("%", at)) >= 0:
        literal += percent - at
        at = percent + 1
        if at < end and text[at] == "%":
            literal, at = literal + 1, at + 1
            continue
        key = None
        if at < end and text[at] == "(":
            depth, start = 0, at + 1
            while at < end:
                depth += {"(": 1, ")": -1}.get(text[at], 0)
                at += 1
                if depth == 0:
                    break
            if depth:
                return None
            key = text[start : at - 1]
        while at < end and text[at] in _PRINTF_FLAGS:
            at += 1
        width, precision = _PRINTF_NUMBER.match(text, at), None
        assert width is not None  # the pattern matches the empty string
        at = width.end()
        if at < end and text[at] == ".":
            found = _PRINTF_NUMBER.match(text, at + 1)
            assert found is not None
            precision, at = found.group() or "0", found.end()
        if at < end and text[at] in "hlL":
            at += 1
        if at >= end or text[at] not in _PRINTF_CONVERSIONS:
            return None
        specs.append(_PrintfSpec(key, bound(width.group()), bound(precision or ""), text[at]))
        at += 1
    return tuple(specs), literal + end - at, over[0] if over else None


def _converted_size(value: Any, conversion: str, precision: int) -> int:
    """About how many characters a conversion writes for `value`: enough to foresee a
    format that would make gigabytes ('%(a)s' 20,000 times over one long value), not
    exact (what it makes is measured after, as every value is)."""
    if type(value) is str:  # the usual case, quickly
        return min(len(value), precision) if precision and conversion in "sra" else len(value)
    if conversion == "c":
        return 1
    if isinstance(value, int):
        bits = value.bit_length()
        # Octal's digits (decimal and hex have fewer), or binary's (str.format's `b`),
        # with a sign and a prefix.
        digits = (bits if conversion == "b" else bits // 3) + 3
        return digits if conversion in "sra" else max(digits, precision + 3)
    if isinstance(value, float):
        if conversion in "sra":
            return 24
        if conversion in "eEgG" or not math.isfinite(value):
            return precision + 10
        whole = len(f"{abs(value):.0f}")  # at most 309 digits
        return whole + (precision or 6) + 3
    size = max(_weight(value), 4)  # None, True
    return min(size, precision) if conversion in "sra" and precision else size


def _check_printf(text: Any, arguments: Any) -> None:
    """`text % arguments` (the `%` operator, the format filter), refused before it runs
    when a width or precision, or all it would write, is over MAX_TEXT. Digits in the
    literal text are only digits ('order 1234567: %s')."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("latin-1")
    if not isinstance(text, str) or "%" not in text:
        return
    parsed = _printf_specs(text)
    if parsed is None:
        return
    specs, total, over = parsed
    if over is not None:
        raise _FormatWidthExceeded(over)
    # As Python takes them: a tuple's items in turn, any other value as the only one.
    taken = iter(arguments if isinstance(arguments, tuple) else (arguments,))
    for spec in specs:
        width, precision = spec.width, spec.precision
        if width == _TAKEN:
            width = _argument_bound(next(taken, None), precision=False)
        if precision == _TAKEN:
            precision = _argument_bound(next(taken, None), precision=True)
        value = _mapped(arguments, spec.key) if spec.key is not None else next(taken, None)
        total += max(width, _converted_size(value, spec.conversion, precision))
        if total > MAX_TEXT:
            raise _too_big("a formatted string too long")


def _mapped(arguments: Any, key: str) -> Any:
    """The value `%(key)s` takes, or None when Python would fail the lookup itself."""
    if not isinstance(arguments, Mapping):
        return None
    try:
        return arguments[key]
    except (LookupError, TypeError):
        return None


# str.format's spec mini-language: [[fill]align][sign][z][#][0][width][,_][.precision][type]
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>[0-9]*)[,_]?(?:\.(?P<precision>[0-9]+))?[a-zA-Z%]?",
    re.DOTALL,
)
_FIELD_ROOT = re.compile(r"[^.\[]*")


def _check_format_fields(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """`text.format(*args, **kwargs)` (or format_map(kwargs)), refused before it runs when
    a field's width or precision, or all it would write, is over MAX_TEXT. Widths are in
    the fields' specs ('{:>999999999}', or '{:>{w}}' taking one from an argument), not in
    the literal text, where digits are only digits."""
    fields = _format_fields(text)
    if fields is None:
        return  # the call itself fails, naming the mistake
    total, automatic = 0, [0]
    for literal, name, spec, conversion in fields:
        total += len(literal)
        if name is None:
            continue
        # As Python numbers them: the field's own argument, then those its spec takes.
        value = _field_value(name, args, kwargs, automatic)
        width, precision, kind = _spec_bounds(_nested_spec(spec or "", args, kwargs, automatic))
        total += max(width, _converted_size(value, conversion or kind, precision))
        if total > MAX_TEXT:
            raise _too_big("a formatted string too long")


@lru_cache(maxsize=64)
def _spec_bounds(spec: str) -> tuple[int, int, str]:
    """A str.format spec's width, precision and type (`s` when it has none), its width
    or precision refused over MAX_TEXT."""
    parts = _FORMAT_SPEC.fullmatch(spec)
    if parts is None:
        # Another type's own spec: a date's strftime (a template meets no other; str and
        # the numbers refuse it), whose digits are text but after a `%`.
        return _strftime_bound(spec), 0, "s"
    kind = spec[-1:] if spec[-1:].isalpha() else "s"
    return _format_bound(parts["width"]), _format_bound(parts["precision"]), kind


# A strftime conversion as glibc reads it: `%`, flags, a width (it pads `%10Y` to 10
# characters), an E or O modifier, the conversion; `%%` is a percent sign.
_STRFTIME_CONVERSION = re.compile(r"%(?:%|[-_0^#+]*(?P<width>[0-9]*)[EO]?)")
# The most one conversion writes without a width: the C locale's date and time (%c) takes
# 24 characters; others fewer.
_STRFTIME_NATURAL = 64


def _strftime_bound(spec: str) -> int:
    """The most a date's strftime `spec` writes: its text, and each conversion its width or
    its natural size; a width over MAX_TEXT is refused. Digits outside a conversion are
    text, written as they are (`%Y-%m-%dT%H:%M:%S.000000Z`)."""
    total = len(spec)
    for conversion in _STRFTIME_CONVERSION.finditer(spec):
        if conversion.group() != "%%":
            total += max(_format_bound(conversion["width"]), _STRFTIME_NATURAL)
    return total


@lru_cache(maxsize=64)
def _format_fields(text: str) -> tuple[tuple[str, str | None, str | None, str | None], ...] | None:
    """str.format's fields of `text` (string.Formatter.parse), or None when Python would
    refuse it. Kept for the last formats: a template formats the same text for every row."""
    try:
        return tuple(string.Formatter().parse(text))
    except ValueError:
        return None


def _field_value(
    name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], automatic: list[int]
) -> Any:
    """The argument a str.format field names ('', '0', 'name', 'name.attr', 'name[key]'),
    or None when Python would fail to find it: an attribute or item is sized as the
    argument it is taken from, which holds it."""
    root = _FIELD_ROOT.match(name)
    assert root is not None  # the pattern matches the empty string
    key = root.group()
    if not key:
        index = automatic[0]
        automatic[0] += 1
    elif key.isdigit():
        index = int(key) if len(key) < 6 else len(args)
    else:
        return kwargs.get(key)
    return args[index] if index < len(args) else None


def _nested_spec(
    spec: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], automatic: list[int]
) -> str:
    """A field's spec with the fields nested in it ('{:>{w}}') replaced by the arguments
    they name, as str.format replaces them; one that is not a plain number or text
    argument ('{:{w.real}}', '{:{w!r}}') is refused as a width it cannot foresee."""
    if "{" not in spec:
        return spec
    try:
        fields = list(string.Formatter().parse(spec))
    except ValueError:
        return spec  # the call itself fails, naming the mistake
    resolved = []
    for literal, name, inner, conversion in fields:
        resolved.append(literal)
        if name is None:
            continue
        value = _field_value(name, args, kwargs, automatic)
        plain = _FIELD_ROOT.fullmatch(name) is not None and not inner and not conversion
        if not plain or type(value) not in (int, str):
            raise _too_big("a formatted value of unbounded width")
        resolved.append(str(value))
    return "".join(resolved)


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not isinstance(text, str | bytes) or not isinstance(new, str | bytes):
        return
    places = len(text) + 1 if not old else (len(text) // max(len(old), 1)) + 1
    if isinstance(count, int) and count >= 0:
        places = min(places, count)
    if len(text) + places * len(new) > MAX_TEXT:
        raise _too_big("a replaced string too long")


def _multiply(left: Any, right: Any) -> Any:
    if type(left) in _NUMBERS and type(right) in _NUMBERS and abs(left) < _SMALL > abs(right):
        return left * right  # the usual case, quickly
    for sequence, count in ((left, right), (right, left)):
        if (
            isinstance(sequence, str | bytes | bytearray | list | tuple)
            and isinstance(count, int)
            and count > 0
            and _weight(sequence) * count > MAX_TEXT + MAX_ITEMS
        ):
            # Neither number is quoted: the count can be a member's numeric userId.
            raise _too_big("a repetition too long")
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        raise _too_big("an integer product too large")
    return _made(left * right)


def _power(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and (abs(left).bit_length() - 1) * right > MAX_INT_BITS
    ):
        raise _too_big("an integer power too large")
    return _made(left**right)


def _add(left: Any, right: Any) -> Any:
    if _weight(left) + _weight(right) > MAX_TEXT + MAX_ITEMS:
        raise _too_big("a concatenation too long")
    return _made(left + right)


def _modulo(left: Any, right: Any) -> Any:
    _check_inputs((right,))
    _check_printf(left, right)
    return _made(left % right)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": _multiply,
    "**": _power,
    "+": _add,
    "%": _modulo,
}

# str, bytes and int methods whose numeric arguments are widths or lengths of the result.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "to_bytes"})
# Filters whose numeric arguments are widths or counts of what they make.
_WIDTH_FILTERS = frozenset({"center", "indent", "batch", "slice"})


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    name = getattr(obj, "__name__", "")
    if name in ("format", "format_map"):
        # The sandbox hands str.format and format_map out wrapped (wrap_str_format), the
        # bound method kept as __wrapped__: without it their width went unchecked.
        obj = getattr(obj, "__wrapped__", obj)
    owner = getattr(obj, "__self__", None)
    _check_inputs((owner, *args, *kwargs.values()))
    if isinstance(owner, str | bytes | int) and name in _WIDTH_METHODS:
        _check_widths(owner, name, args, kwargs)
    elif isinstance(owner, str | bytes):
        _check_text_method(owner, name, args, kwargs)


def _in_utc(obj: Any) -> Any:
    """`obj`, or in its place the same method with UTC as the machine's time zone where
    Python's datetime reads that zone: a naive value's timestamp() and astimezone() take it
    as local time, astimezone() converts to it, and now(), today() and fromtimestamp()
    (which a date or datetime value reaches: `ts.now()`) give it, and strftime's `%s`
    (str.format's too: `'{:%s}'.format(ts)`) counts from it. A time without an offset
    is UTC to reconciler (traits/convert.py), as to DuckDB's session (UTC_SESSION): an
    inline member's `ts: 2024-05-01 09:30:00` rendered `{{ ts.timestamp() | int }}` 50,400
    apart on a laptop in Pacific/Kiritimati and a CI runner in UTC, which then rewrote each
    other's field on every run."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if isinstance(owner, datetime.date | datetime.time) and name == "strftime":
        return partial(_utc_strftime, owner)
    if isinstance(owner, datetime.datetime):
        moment = owner if owner.tzinfo is not None else owner.replace(tzinfo=datetime.UTC)
        if name == "timestamp":
            return moment.timestamp
        if name == "astimezone":
            return partial(_astimezone, moment)
    elif name in ("format", "format_map") and isinstance(_wrapped_owner(obj), str):
        # The sandbox's str.format, which writes a date by its strftime ('{:%s}').
        return partial(_format_in_utc, obj, name)
    elif isinstance(owner, type) and issubclass(owner, datetime.datetime):
        if name in ("now", "today"):
            return partial(_now, owner)
        if name == "fromtimestamp":
            return partial(_from_timestamp, owner)
    elif isinstance(owner, type) and issubclass(owner, datetime.date):
        if name == "today":
            return lambda: datetime.datetime.now(datetime.UTC).date()
        if name == "fromtimestamp":
            return lambda t: datetime.datetime.fromtimestamp(t, datetime.UTC).date()
    return obj


# A strftime conversion as glibc reads it (_STRFTIME_CONVERSION): flags, a width, an E or O
# modifier and one character, `%s` (glibc's, and macOS's: seconds since the epoch) among
# them in every spelling (`%-s`, `%10s`, `%_012Es`), `%%` and `%5%` a percent sign, and a
# conversion it does not know (`%E8s`) written as its text.
_EPOCH_CONVERSION = re.compile(r"%(?P<flags>[-_0^#]*)(?P<width>[0-9]*)[EO]?(?P<kind>.)", re.S)
# Whole seconds from it, in integers: a float's timestamp() of 9999-12-31 23:59:59.999999
# rounds up to the next second.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _utc_strftime(value: datetime.date | datetime.time, spec: str) -> str:
    """value.strftime(spec) with `%s` the seconds since the epoch of `value` in UTC (a date's
    midnight, a naive time's as UTC, an aware one's own moment; a time of day's on
    1900-01-01, the date its strftime writes): glibc reads the fields as
    the machine's local time, whatever their offset, so `{{ ts.strftime('%s') }}` of
    2024-05-01 09:30:00 gave 1714555800 on a CI runner in UTC and 1714505400 on a laptop in
    Pacific/Kiritimati. Flags and a width pad it as glibc does in UTC."""
    if "s" in spec:
        seconds = str((_utc_moment(value) - _EPOCH) // datetime.timedelta(seconds=1))
        spec = _EPOCH_CONVERSION.sub(partial(_epoch_written, seconds), spec)
    # The plain type's own strftime: _UtcDateTime's, _UtcDate's and _UtcTime's call this.
    if isinstance(value, datetime.time):
        return datetime.time.strftime(value, spec)
    kind = datetime.datetime if isinstance(value, datetime.datetime) else datetime.date
    return kind.strftime(value, spec)


def _epoch_written(seconds: str, conversion: re.Match[str]) -> str:
    """A `%s` conversion as glibc writes `seconds`: padded to its width with zeros when its
    last padding flag is `0` (before a sign, as glibc 2.36 puts them), with spaces
    otherwise (`-` too, given a width); any other conversion as it stands. A width over
    MAX_TEXT is refused, as in a format (glibc's strftime gave up on it, writing nothing)."""
    if conversion["kind"] != "s":
        return conversion.group()
    width = _format_bound(conversion["width"])
    padding = next((flag for flag in reversed(conversion["flags"]) if flag in "-_0"), " ")
    return seconds.rjust(width, "0" if padding == "0" else " ")


def _wrapped_owner(obj: Any) -> Any:
    return getattr(getattr(obj, "__wrapped__", None), "__self__", None)


# The date a time of day's strftime writes (Python's datetime.time.strftime).
_TIME_OF_DAY_DATE = datetime.date(1900, 1, 1)


def _utc_moment(value: datetime.date | datetime.time) -> datetime.datetime:
    if isinstance(value, datetime.time):
        value = datetime.datetime.combine(_TIME_OF_DAY_DATE, value)
    if not isinstance(value, datetime.datetime):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


class _UtcDateTime(datetime.datetime):
    """A datetime that str.format (`'{:%s}'.format(ts)`, which calls strftime) writes as
    _utc_strftime does, and `{!r}` as the datetime it stands for."""

    def strftime(self, spec: str) -> str:
        return _utc_strftime(self, spec)

    def __repr__(self) -> str:
        fields = (self.hour, self.minute, self.second, self.microsecond, self.tzinfo)
        plain = datetime.datetime(self.year, self.month, self.day, *fields, fold=self.fold)
        return repr(plain)


class _UtcDate(datetime.date):
    """A date that str.format writes as _utc_strftime does, and `{!r}` as a date."""

    def strftime(self, spec: str) -> str:
        return _utc_strftime(self, spec)

    def __repr__(self) -> str:
        return repr(datetime.date(self.year, self.month, self.day))


class _UtcTime(datetime.time):
    """A time of day that str.format writes as _utc_strftime does, and `{!r}` as a time."""

    def strftime(self, spec: str) -> str:
        return _utc_strftime(self, spec)

    def __repr__(self) -> str:
        fields = (self.hour, self.minute, self.second, self.microsecond, self.tzinfo)
        return repr(datetime.time(*fields, fold=self.fold))


def _utc_formatted(value: Any) -> Any:
    """`value` as str.format should write it: a date, datetime or time of day as _UtcDate,
    _UtcDateTime or _UtcTime."""
    if type(value) is datetime.datetime:
        fields = (value.hour, value.minute, value.second, value.microsecond, value.tzinfo)
        return _UtcDateTime(value.year, value.month, value.day, *fields, fold=value.fold)
    if type(value) is datetime.date:
        return _UtcDate(value.year, value.month, value.day)
    if type(value) is datetime.time:
        fields = (value.hour, value.minute, value.second, value.microsecond, value.tzinfo)
        return _UtcTime(*fields, fold=value.fold)
    return value


def _format_in_utc(format_: Callable[..., str], name: str, *args: Any, **kwargs: Any) -> str:
    """The sandbox's str.format or format_map with its dates and times as _utc_formatted."""
    if name == "format_map" and len(args) == 1 and isinstance(args[0], Mapping):
        return format_({key: _utc_formatted(v) for key, v in args[0].items()})
    values = {key: _utc_formatted(v) for key, v in kwargs.items()}
    return format_(*map(_utc_formatted, args), **values)


def _astimezone(moment: datetime.datetime, tz: datetime.tzinfo | None = None) -> Any:
    return moment.astimezone(tz or datetime.UTC)


def _now(kind: type[datetime.datetime], tz: datetime.tzinfo | None = None) -> Any:
    return kind.now(tz) if tz is not None else kind.now(datetime.UTC).replace(tzinfo=None)


def _from_timestamp(
    kind: type[datetime.datetime], t: float, tz: datetime.tzinfo | None = None
) -> Any:
    if tz is not None:
        return kind.fromtimestamp(t, tz)
    return kind.fromtimestamp(t, datetime.UTC).replace(tzinfo=None)


def _check_widths(
    owner: str | bytes | int, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """A method whose numeric arguments are widths or lengths of what it makes."""
    for value in (*args, *kwargs.values()):
        _check_count(value, f"a width ({name})")
    if name == "expandtabs" and isinstance(owner, str | bytes):
        # Each tab becomes up to `tabsize` spaces.
        size = (args or tuple(kwargs.values()) or (8,))[0]
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        if isinstance(size, int) and len(owner) + tabs * size > MAX_TEXT:
            raise _too_big("an expanded string too long")


def _check_text_method(
    owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """A str or bytes method whose result can outgrow its string many times over."""
    if name == "translate" and args:
        _check_translated(owner, args[0])
    elif name == "replace" and len(args) >= 2:
        # With fewer, the call fails and Python names what is missing.
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _check_replace(owner, args[0], args[1], count)
    elif name == "join" and args:
        _check_joined(owner, args[0])
    elif name == "format" and isinstance(owner, str):
        _check_format_fields(owner, args, kwargs)
    elif name == "format_map" and isinstance(owner, str) and args:
        _check_format_fields(owner, (), args[0] if isinstance(args[0], Mapping) else {})


def _check_translated(text: str | bytes, table: Any) -> None:
    # Each character may become the longest of the table's values.
    if isinstance(table, Mapping):
        longest = max((_weight(v) for v in table.values()), default=0)
        if len(text) * longest > MAX_TEXT:
            raise _too_big("a translated string too long")


def _check_joined(separator: Any, items: Any) -> None:
    # A string or bytes joins its characters: 'sep'.join('x' * n) makes n separators.
    if (
        isinstance(items, str | bytes | list | tuple)
        and isinstance(separator, str | bytes)
        and _weight(items) + len(separator) * len(items) > MAX_TEXT + MAX_ITEMS
    ):
        raise _too_big("a joined string too long")


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with its work bounded; jinja's pass_* markers are kept by `wraps`."""
    passes = getattr(function, "jinja_pass_arg", None)

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        # The value the filter applies to follows the context/environment jinja passes.
        positional = args[1:] if passes is not None else args
        _check_inputs((*positional, *kwargs.values()))
        if positional:
            value, rest = positional[0], positional[1:]
            if name in _WIDTH_FILTERS:
                for width in (*rest, *kwargs.values()):
                    _check_count(width, f"a width ({name})")
            if name == "indent":
                # The width (a count, or the string itself) goes before every line.
                width = (*rest, *kwargs.values(), 4)[0]
                _lines_times(value, width if isinstance(width, int) else _weight(width))
            elif name == "wordwrap":
                # `wrapstring` goes in at each break, and a break can come every `width`.
                options = dict(zip(("width", "break_long_words", "wrapstring"), rest, strict=False))
                options.update(kwargs)
                width, wrap = options.get("width", 79), options.get("wrapstring") or "\n"
                if isinstance(value, str) and isinstance(width, int):
                    breaks = len(value) // max(width, 1) + 1
                    if len(value) + breaks * _weight(wrap) > MAX_TEXT:
                        raise _too_big("a wrapped string too long")
            elif name == "urlize":
                # Each link gets target, rel and the like: a link can start every 4 chars.
                added = sum(_weight(a) for a in (*rest, *kwargs.values()))
                if isinstance(value, str) and (len(value) // 4 + 1) * added > MAX_TEXT:
                    raise _too_big("a string with links too long")
            elif name == "sum" and isinstance((*rest[1:], kwargs.get("start"))[0], list | tuple):
                # Adding lists one by one copies the total at each step: quadratic.
                value = list(_bounded_iter(value))
                if len(value) > MAX_SUMMED_SEQUENCES:
                    raise _too_big(f"a sum of {len(value):,} lists")
                args = (*args[: len(args) - len(positional)], value, *rest)
            elif name == "format":
                # jinja's filter is `value % (kwargs or args)`.
                _check_printf(value, kwargs or rest)
            elif name == "replace":
                _check_replace(value, *rest, **kwargs)
            elif name == "join":
                _check_joined(rest[0] if rest else kwargs.get("d", ""), value)
        try:
            made = function(*args, **kwargs)
        except AssertionError:
            # jinja's truncate asserts its arguments (`truncate(0)`, or a length from a
            # row's value): it ended the run as reconciler's bug. No number is quoted: the
            # length can be a member's value.
            reason = f"the {name} filter refused its arguments{_ASSERTS.get(name, '')}"
            raise ValueError(reason) from None
        return _made(made)

    return guarded


# What jinja's filters assert of their arguments, said when they fail.
_ASSERTS = {
    "truncate": (
        " (its length must be at least that of its end text, 3 for the dots unless another "
        "is given, and its leeway 0 or more)"
    )
}


def _bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, with the clock checked at each step."""
    for item in iterable:
        _tick()
        yield item


def _bounded_concat(parts: Iterable[Any]) -> str:
    """`a ~ b`: jinja's str_join, refused before it makes a string too long."""
    parts = tuple(parts)
    _check_inputs(parts)
    texts = [str(part) for part in parts]
    if sum(map(len, texts)) > MAX_TEXT:
        raise _too_big("a concatenation too long")
    return _made("".join(texts))


class _BoundedCodeGenerator(CodeGenerator):
    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, immutable (no list.append), with every operation that could run long
    or make a large value checked (see the module docstring)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **options: Any):
        super().__init__(**options)
        for name in ("int", "float"):
            self.filters[name] = _number_filter(name, self.filters[name])
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.globals[_GUARD] = _bounded_iter
        # lipsum(n) writes n paragraphs in one call the checks cannot see into.
        self.globals.pop("lipsum", None)
        self.bounded_concat = _bounded_concat
        self.tests = {**self.tests, "none": _is_none, "sameas": _same_as}
        self.policies = {
            **self.policies,
            "json.dumps_kwargs": {**self.policies["json.dumps_kwargs"], "default": _json_default},
        }

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _tick()
        return _BINOPS[operator_](left, right)  # intercepted_binops are _BINOPS' keys

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        if __obj is _bounded_iter:  # every loop's own guard (_bound_loops)
            return _bounded_iter(*args)
        _check_call(__obj, args, kwargs)
        # `row.get('middle_name')` of a column that is null or absent: a null, as read.
        return _nulled(_made(super().call(__context, _in_utc(__obj), *args, **kwargs)))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        # A null inside an object (`address.city`) is a null as a column's is.
        return _nulled(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return _nulled(super().getitem(obj, argument))


def _bound_loops(template: nodes.Template) -> nodes.Template:
    """Every `{% for %}` iterates through _bounded_iter, so a loop checks the clock."""
    for loop in template.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(_GUARD, "load"), [loop.iter], [], None, None)
        loop.iter.set_lineno(loop.lineno)
    return template


@lru_cache(maxsize=1)
def environment() -> BoundedSandbox:
    return BoundedSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the output is a field value, not HTML
        keep_trailing_newline=False,
        # Each `{{ value }}` is measured before it is made text.
        finalize=_finalize,
    )


def template_syntax_error(text: str) -> str | None:
    """A message for a template that does not compile, or None when it does."""
    found = template_problem(text)
    return found[0] if found is not None else None


def template_problem(text: str) -> tuple[str, int] | None:
    """(message, line of the template) for a template that does not compile, or None when
    it does. Compiled, not only parsed: an unknown filter or test is found by the compiler,
    and one inside an `{% if %}` (which jinja leaves to render time) by _unknown_names."""
    env = environment()
    try:
        # The unknown names first: jinja's compiler says "No filter named 'titel'." of
        # one outside a conditional block, without the name it is a near miss of.
        unknown = _unknown_names(env, env.parse(text))
        if unknown is None:
            env.compile(text)
    except jinja2.TemplateSyntaxError as error:
        unknown = str(error.message), error.lineno
    if unknown is None:
        return None
    message, lineno = unknown
    line = f" (line {lineno} of the template)" if "\n" in text.strip() else ""
    return f"template syntax error: {message}{line}", lineno


def _unknown_names(env: jinja2.Environment, template: nodes.Template) -> tuple[str, int] | None:
    """The first filter or test the environment does not have, as jinja words it, and its
    line. Jinja 3 checks these at compile time only outside conditional blocks; inside
    one an unknown name fails each row that takes the branch, and no row until one does.
    No manifest can add a filter, so a guard such as `is filter` cannot make one exist."""
    found: list[tuple[int, str]] = []
    for node in template.find_all((nodes.Filter, nodes.Test)):
        is_filter = isinstance(node, nodes.Filter)
        what, known = ("filter", env.filters) if is_filter else ("test", env.tests)
        if node.name not in known:
            close = difflib.get_close_matches(node.name, list(known), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            found.append((node.lineno, f"No {what} named {node.name!r}{hint}."))
    if not found:
        return None
    lineno, message = min(found)
    return message, lineno


def template_variables(text: str) -> set[str]:
    """The variables a template reads from its context (columns, or `row`)."""
    return set(meta.find_undeclared_variables(environment().parse(text)))


# A quoted word in an error message (not the apostrophe of "can't").
_QUOTED = re.compile(r"(?<![A-Za-z])('[^']*'|\"[^\"]*\")(?![A-Za-z])")
# Type names Python and jinja quote in their messages ("'str object' has no attribute").
_TYPE_WORDS = frozenset(
    word
    for kind in (int, float, bool, str, bytes, list, tuple, dict, set, range, type(None))
    for word in (kind.__name__, f"{kind.__name__} object")
)


def _without_data(message: str, source: str) -> str:
    """`message` with every quoted word masked that neither the template's own text nor a
    type name accounts for. Messages quote the values they met ("'dict object' has no
    attribute 'jane@example.com'", "invalid format specifier 'usr_12'"), and a template
    can turn any member's identifier into a key, an attribute or a format: the message
    would print it in CI. A misspelt column (`'first_nam' is undefined`) stays readable."""

    def mask(match: re.Match[str]) -> str:
        quoted = match.group()
        word = quoted[1:-1]
        if not word or word in _TYPE_WORDS or word in source:
            return quoted
        return f"{quoted[0]}***{quoted[0]}"

    def element(match: re.Match[str]) -> str:
        # jinja names a missing element by its repr: a number, bare ('str object has no
        # element 98765432109', a numeric userId used as an index or a key); Python names
        # an unknown codec as it was given.
        shown = match["element"]
        return match.group() if shown in source else f"{match['words']}***"

    return _UNQUOTED_ELEMENT.sub(element, _QUOTED.sub(mask, message))


# Values named without quotes: jinja's undefined element by its repr (a number, a tuple,
# None), and Python's unknown codec (`x.encode(user_id)`).
_UNQUOTED_ELEMENT = re.compile(
    r"(?P<words>has no element |unknown encoding: )(?P<element>[^'\"\n][^\n]*)"
)


_BYTES = (bytes, bytearray, memoryview)


class _Bytes(bytes):
    """A column's bytes (a BLOB, a bytea, a Parquet file's text written without a string
    annotation, as Impala and Hive write it) in a template: bytes still (`.decode('utf-8')`,
    `.hex()`, a test, a length), but no text of their own, which Python would make `b'Ann'`
    (a memoryview `<memory at 0x7f...>`) and the field would send to Iterable."""

    column: str

    def __str__(self) -> str:
        name = self.column
        variable = name if name.isidentifier() else f"{ROW_VARIABLE}[{name!r}]"
        raise TemplateRenderError(
            f"column {name!r} is bytes (a BLOB or bytea), which have no text of their own: "
            f"write {{{{ {variable}.decode('utf-8') }}}} for the text they hold, or make it "
            "text in the query"
        )


def _marked(name: str, value: Any) -> Any:
    """A column's value as a template sees it: bytes as _Bytes, the rest as they are."""
    if not isinstance(value, _BYTES):
        return value
    held = _Bytes(value)
    held.column = name
    return held


def template_context(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees of `row`: its columns, and `row` for all of them, nulls as NULL
    and bytes as _Bytes.
    A row's columns are looked at once, not per template (a 50-field mapping renders 50)."""
    values = dict(row)
    kinds = set(map(type, values.values()))
    if type(None) in kinds or list in kinds or tuple in kinds:
        values = {name: _nulled(value) for name, value in values.items()}
    if any(issubclass(kind, _BYTES) for kind in kinds):
        values = {name: _marked(name, value) for name, value in values.items()}
    return {**values, ROW_VARIABLE: values}


class Template:
    """One compiled template; `render(row)` gives the field's text for that row."""

    def __init__(self, text: str):
        self.text = text
        env = environment()
        self._template = env.from_string(_bound_loops(env.parse(text)))

    def render(self, row: Mapping[str, Any]) -> str:
        """The text for `row`. Raises TemplateRenderError for a failure of this row, and
        TemplateBudgetExceeded for a template over its budget."""
        return self.render_context(template_context(row))

    def render_context(self, context: dict[str, Any]) -> str:
        """render() of a row's template_context, made once for all of a row's templates."""
        template = self._template
        _clock.deadline = time.monotonic() + MAX_SECONDS
        _clock.made = 0
        try:
            # Straight to the compiled template (Template.generate would copy the context
            # again and wrap every piece in one more generator: a third of the budget's
            # cost per row). Each piece is counted as it comes; the clock is read every
            # _BATCH pieces (each piece is at most MAX_TEXT characters, and every
            # operation that makes one reads the clock itself).
            pieces = template.root_render_func(template.new_context(context))
            out: list[str] = []
            size = 0
            for piece in pieces:
                size += len(piece)
                if size > MAX_TEXT:
                    raise _too_big(f"an output of more than {MAX_TEXT:,} characters")
                out.append(piece)
                if len(out) % _BATCH == 0:
                    _tick()
            return "".join(out)
        except _FormatWidthExceeded as error:
            if error.written and error.written in self.text:
                raise  # the template wrote the width: every row would pay it
            # A width from the row's values (a spec made of a userId): only this row
            # fails, and the reason never quotes the number, which may be that userId.
            raise TemplateRenderError(WIDTH_FROM_ROW) from None
        except TemplateBudgetExceeded:
            raise
        except MemoryError:
            # What the checks above cannot foresee still ends the run, named.
            raise TemplateBudgetExceeded("the template ran out of memory") from None
        except RecursionError:
            raise TemplateBudgetExceeded("the template recursed too deep") from None
        except jinja2.UndefinedError as error:
            reason = undefined_in_words(str(error.message))
            raise TemplateRenderError(_without_data(reason, self.text)) from None
        except jinja2.exceptions.SecurityError as error:
            reason = f"refused by the template sandbox: {error}"
            raise TemplateRenderError(_without_data(reason, self.text)) from None
        except jinja2.TemplateError as error:
            reason = f"template error: {error}"
            raise TemplateRenderError(_without_data(reason, self.text)) from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as error:
            # A filter or an operator met a value it cannot handle (`{{ a / b }}` with b 0).
            reason = in_words(error)
            raise TemplateRenderError(_without_data(reason, self.text)) from None
        finally:
            _clock.deadline = None
