"""The wording of manifest problems: one pinned message per kind of pydantic error.

`_message` turns a pydantic error (already resolved to a path, the model that owns it and
the type expected there) into the sentence a user reads; these cases pin every branch of
it byte for byte, so that splitting it into small functions cannot change a word.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedKeyMap

from reconciler.manifest.location import PathElement
from reconciler.manifest.model import NAME_PATTERN, DestinationSpec, InlineMember
from reconciler.manifest.validation import _message, _Resolved
from reconciler.manifest.yaml_file import WrittenFloat, WrittenInt
from reconciler.render.masking import source_value

# `{{ x }}` written bare as a key: ruamel reads it as a mapping used as a key.
BRACES = CommentedKeyMap([("x", None)])
NAME = NAME_PATTERN
ALLOWED = "allowed: region, projectType, apiKey, baseUrl, policy, prune"
BRACES_HINT = "(YAML reads {{ ... }} written bare as a mapping: put the template in quotes)"
QUOTE_HINT = "(put it in quotes to make it text)"
MEMBER_5, MEMBER_7 = source_value("5"), source_value("7")


@dataclass(frozen=True)
class Case:
    kind: str
    path: list[PathElement]
    value: Any
    expected: str
    parent: type[BaseModel] | None = None  # the model owning the field
    context: dict[str, Any] = field(default_factory=dict)
    secret: bool = False
    key: bool = False  # the error is about a mapping's key
    annotation: Any = Any  # the type expected at the path


CASES = [
    Case(
        "invalid_key",
        ["spec", "members", "inline", 0, 5],
        5,
        f"spec.members.inline[0]: keys must be strings; got 5 {QUOTE_HINT}",
        parent=InlineMember,
    ),
    Case(
        "invalid_key",
        [5],
        None,
        f"the document: keys must be strings; got null {QUOTE_HINT}",
        parent=InlineMember,
    ),
    Case(
        "invalid_key",
        ["t", ("a", "b")],
        BRACES,
        f"t: keys must be strings; got a mapping {BRACES_HINT}",
        parent=InlineMember,
    ),
    Case(
        "invalid_key",
        ["spec", ("a",)],
        BRACES,
        f"unknown key a mapping in spec {BRACES_HINT}; {ALLOWED}",
        parent=DestinationSpec,
    ),
    Case(
        "extra_forbidden",
        ["spec", "regoin"],
        "us",
        f"unknown key 'regoin' in spec (did you mean 'region'?); {ALLOWED}",
        parent=DestinationSpec,
    ),
    Case(
        "extra_forbidden",
        ["spec", "csv"],
        "x",
        f"unknown key 'csv' in spec; {ALLOWED}",
        parent=DestinationSpec,
    ),
    Case(
        "invalid_key", ["spec", 3], 3, f"unknown key 3 in spec; {ALLOWED}", parent=DestinationSpec
    ),
    Case(
        "extra_forbidden",
        ["zzz"],
        {},
        f"unknown key 'zzz' in the document; {ALLOWED}",
        parent=DestinationSpec,
    ),
    Case(
        "string_pattern_mismatch",
        ["metadata", "labels", "Bad Key"],
        "Bad Key",
        "metadata.labels: key 'Bad Key': expected 1-200 ASCII letters, digits, '-', '_' or '.'",
        context={"pattern": NAME},
        key=True,
    ),
    Case(
        "string_pattern_mismatch",
        ["labels", "k"],
        "k",
        "labels: key 'k': expected text matching ^x$",
        context={"pattern": "^x$"},
        key=True,
    ),
    Case("value_error", ["labels", "k"], "k", "labels: key 'k': msg of value_error", key=True),
    Case(
        "string_type",
        ["labels", 7],
        7,
        f"labels: keys must be strings; got 7 {QUOTE_HINT}",
        key=True,
    ),
    Case(
        "string_type",
        [7],
        None,
        f"the document: keys must be strings; got null {QUOTE_HINT}",
        key=True,
    ),
    Case(
        "missing",
        ["spec", "region"],
        {},
        "spec.region: required; expected one of us, eu",
        annotation=Literal["us", "eu"],
    ),
    Case("missing", ["spec", "destination"], {}, "spec.destination: required", annotation=str),
    Case(
        "literal_error",
        ["spec", "region"],
        "uss",
        "spec.region: expected one of us, eu; got 'uss' (did you mean 'us'?)",
        annotation=Literal["us", "eu"],
    ),
    Case(
        "literal_error",
        ["spec", "region"],
        "uss",
        "spec.region: expected one of us, eu",
        secret=True,
        annotation=Literal["us", "eu"],
    ),
    Case(
        "literal_error",
        ["kind"],
        "x",
        "kind: expected Audience; got 'x'",
        annotation=Literal["Audience"],
    ),
    Case("string_type", ["spec", "x"], 5, f"spec.x: expected a string; got 5 {QUOTE_HINT}"),
    # A number as the file writes it, which is what the reader looks for there: 1e3 is
    # 1000.0 to Python, 0777 is 777.
    Case(
        "string_type",
        ["spec", "listName"],
        WrittenFloat(1000.0, "1e3"),
        f"spec.listName: expected a string; got 1e3 {QUOTE_HINT}",
    ),
    Case(
        "string_type",
        ["spec", "listName"],
        WrittenInt(511, "0o777"),
        f"spec.listName: expected a string; got 0o777 {QUOTE_HINT}",
    ),
    Case(
        "string_type",
        ["spec", "x"],
        {BRACES: None},
        f"spec.x: expected a string; got a mapping {BRACES_HINT}",
    ),
    Case(
        "string_type",
        ["spec", "apiKey", "env"],
        5,
        f"spec.apiKey.env: expected a string {QUOTE_HINT}",
        secret=True,
    ),
    Case(
        "int_type",
        ["p", "maxRemovals"],
        "12",
        "p.maxRemovals: expected a whole number; got '12' (remove the quotes to make it a number)",
    ),
    Case(
        "int_parsing", ["p", "maxRemovals"], "x", "p.maxRemovals: expected a whole number; got 'x'"
    ),
    Case(
        "int_from_float",
        ["p", "maxRemovals"],
        1.5,
        "p.maxRemovals: expected a whole number; got 1.5",
    ),
    Case(
        "float_type",
        ["p", "pct"],
        "1.5",
        "p.pct: expected a number; got '1.5' (remove the quotes to make it a number)",
    ),
    Case("float_parsing", ["p", "pct"], "1.5", "p.pct: expected a number", secret=True),
    Case("bool_type", ["spec", "prune"], "yes", "spec.prune: expected true or false; got 'yes'"),
    Case("model_type", ["spec"], 3, "spec: expected a mapping; got 3"),
    Case("model_attributes_type", ["spec"], [1], "spec: expected a mapping; got a list"),
    Case("dict_type", ["spec"], "s", "spec: expected a mapping; got 's'"),
    Case("list_type", ["spec", "inline"], "s", "spec.inline: expected a list; got 's'"),
    Case("greater_than", ["c"], 0, "c: expected a number greater than 0; got 0", context={"gt": 0}),
    Case(
        "less_than",
        ["c"],
        2**64,
        "c: expected a number less than 9223372036854775808; got 18446744073709551616",
        context={"lt": 2**63},
    ),
    Case(
        "greater_than_equal",
        ["c"],
        -1.0,
        "c: expected a number of at least 0; got -1.0",
        context={"ge": 0.0},
    ),
    Case(
        "less_than_equal",
        ["c"],
        101.5,
        "c: expected a number of at most 100; got 101.5",
        context={"le": 100.0},
    ),
    Case("string_too_short", ["c"], "", "c: must not be empty"),
    Case("too_short", ["c"], [], "c: must not be empty"),
    Case(
        "string_too_long",
        ["c"],
        "x" * 300,
        "c: expected at most 255 characters",
        context={"max_length": 255},
    ),
    Case(
        "string_pattern_mismatch",
        ["metadata", "name"],
        "Bad",
        "metadata.name: expected 1-200 ASCII letters, digits, '-', '_' or '.'; got 'Bad'",
        context={"pattern": NAME},
    ),
    Case(
        "string_pattern_mismatch",
        ["metadata", "name"],
        "Bad",
        "metadata.name: expected text matching ^q$; got 'Bad'",
        context={"pattern": "^q$"},
    ),
    Case(
        "inline_entry_type",
        ["spec", "members", "inline", 0],
        5,
        f"spec.members.inline[0]: msg of inline_entry_type; got the number {MEMBER_5} {QUOTE_HINT}",
    ),
    # A userId YAML read as a number is a member's identity: marked, for each output to
    # mask it (or show it with --show-members), in the form the file writes it.
    Case(
        "string_type",
        ["spec", "members", "inline", 2, "userId"],
        WrittenInt(123, "00123"),
        f"spec.members.inline[2].userId: expected a string; got the number "
        f"{source_value('00123')} {QUOTE_HINT}",
    ),
    Case(
        "string_type",
        ["spec", "members", "inline", 2, "email"],
        7,
        f"spec.members.inline[2].email: expected a string; got the number {MEMBER_7} {QUOTE_HINT}",
    ),
    # A boolean says nothing of anyone: shown.
    Case(
        "inline_entry_type",
        ["spec", "members", "inline", 0],
        True,
        f"spec.members.inline[0]: msg of inline_entry_type; got true {QUOTE_HINT}",
    ),
    Case(
        "identity_missing",
        ["spec", "members", "inline", 0],
        {"Email": "a"},
        "spec.members.inline[0]: msg of identity_missing (did you mean 'email' for 'Email'?)",
    ),
    Case(
        "identity_missing",
        ["spec", "members", "inline", 0],
        {"userId": None, "email": None},
        "spec.members.inline[0]: msg of identity_missing (email and userId are null)",
    ),
    Case("custom_thing", ["spec", "x"], "secret", "spec.x: msg of custom_thing"),
    Case("date_type", ["spec", "x"], datetime.date(2020, 1, 2), "spec.x: msg of date_type"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}-{i}" for i, c in enumerate(CASES)])
def test_message_wording_is_pinned(case: Case) -> None:
    details: ErrorDetails = {
        "type": case.kind,
        "loc": tuple(case.path),
        "msg": f"msg of {case.kind}",
        "input": case.value,
        "ctx": case.context,
    }
    resolved = _Resolved(list(case.path), case.parent, case.annotation, case.key)
    assert _message(details, resolved, list(case.path), secret=case.secret) == case.expected
