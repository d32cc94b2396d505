"""A template's failure in words, not Python's class names: `ZeroDivisionError: division by
zero` and `TypeError: unsupported operand type(s) for +: 'int' and 'str'` meant nothing to
whoever wrote the manifest. Only the types of the values are named, never a value (a
member's data); what is not recognised keeps Python's words."""

from __future__ import annotations

import re

# Python's type names as a manifest's author knows the values: a column's empty cell is None.
_TYPES = {
    "NoneType": "an empty value (None)",
    "int": "a whole number",
    "float": "a number",
    "Decimal": "a number",
    "bool": "true or false",
    "str": "text",
    "list": "a list",
    "tuple": "a list",
    "dict": "a mapping",
    "date": "a date",
    "datetime": "a date and time",
    "Markup": "text",
}

_OPERANDS = re.compile(r"unsupported operand type\(s\) for (\S+?): '(\w+)' and '(\w+)'")
_CONCATENATE = re.compile(r'can only concatenate (\w+) \(not "(\w+)"\) to \w+')
_COMPARE = re.compile(r"'(\S+?)' not supported between instances of '(\w+)' and '(\w+)'")
_NO_LEN = re.compile(r"object of type '(\w+)' has no len\(\)")
_NO_ROUND = re.compile(r"type (\w+) doesn't define __round__ method")
# jinja's own wording for an attribute or an element of None: `'NoneType object' has no ...`.
_NONE_OBJECT = re.compile(r"'?NoneType object'?(?= has no (?:attribute|element))")


def _type(name: str) -> str:
    return _TYPES.get(name, f"a {name} value")


def in_words(error: Exception) -> str:
    """The reason a filter or an operator failed, said in words where it is common."""
    text = str(error)
    if isinstance(error, ZeroDivisionError):
        return "modulo by zero" if "division" not in text else "division by zero"
    if isinstance(error, TypeError):
        if found := _OPERANDS.fullmatch(text):
            op, left, right = found.groups()
            return f"cannot apply {op} to {_type(left)} and {_type(right)}"
        if found := _CONCATENATE.fullmatch(text):
            # `text + number`: the left side is the text, the right what it was not.
            return f"cannot apply + to {_type(found[1])} and {_type(found[2])}"
        if found := _COMPARE.fullmatch(text):
            op, left, right = found.groups()
            return f"cannot compare ({op}) {_type(left)} with {_type(right)}"
        if found := _NO_LEN.fullmatch(text):
            return f"{_type(found[1])} has no length"
        if found := _NO_ROUND.fullmatch(text):
            return f"cannot round {_type(found[1])}"
    return f"{type(error).__name__}: {text}"


def undefined_in_words(message: str) -> str:
    """jinja's undefined-value message: an attribute or element of None is said as such
    (it is no undefined variable: the column is there, its cell empty)."""
    said = _NONE_OBJECT.sub(_TYPES["NoneType"], message)
    return said if said != message else f"undefined variable: {message}"
