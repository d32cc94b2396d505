"""env_numbers.py: how a numeric environment variable is read, refused and worded."""

from __future__ import annotations

import pytest

from reconciler.env_numbers import (
    COUNT,
    SECONDS,
    SECONDS_ABOVE_0,
    NumberRule,
    env_float,
    env_int,
)
from reconciler.errors import ConfigError


def _refusal(read, environ: dict[str, str], rule: NumberRule) -> str:
    with pytest.raises(ConfigError) as caught:
        read(environ, "RECONCILER_X", 5, rule)
    return str(caught.value)


def test_unset_empty_or_blank_is_the_default() -> None:
    for environ in ({}, {"RECONCILER_X": ""}, {"RECONCILER_X": " \t"}):
        assert env_float(environ, "RECONCILER_X", 2.5, SECONDS) == 2.5
        assert env_int(environ, "RECONCILER_X", 3, COUNT) == 3


def test_numbers_in_range_are_read_with_their_type() -> None:
    assert env_float({"RECONCILER_X": " 0.25 "}, "RECONCILER_X", 1, SECONDS_ABOVE_0) == 0.25
    assert env_float({"RECONCILER_X": "1e9"}, "RECONCILER_X", 1, SECONDS) == 1e9
    value = env_int({"RECONCILER_X": "12"}, "RECONCILER_X", 1, COUNT)
    assert value == 12 and isinstance(value, int)


def test_a_refusal_says_the_rule_in_the_figures_a_user_types() -> None:
    assert _refusal(env_float, {"RECONCILER_X": "1e10"}, SECONDS) == (
        "RECONCILER_X must be a number of seconds from 0 to 1000000000; got '1e10'"
    )
    assert _refusal(env_float, {"RECONCILER_X": "0"}, SECONDS_ABOVE_0) == (
        "RECONCILER_X must be a number of seconds above 0 and at most 1000000000; got '0'"
    )
    # Not finite, whatever the range: nan compares false with every bound.
    for raw in ("nan", "inf", "-inf"):
        assert "got " + repr(raw) in _refusal(env_float, {"RECONCILER_X": raw}, SECONDS)
    assert _refusal(env_int, {"RECONCILER_X": "2.0"}, COUNT) == (
        "RECONCILER_X must be a whole number from 0 to 1000000000; got '2.0'"
    )
    rule = NumberRule(whole=True, least=1, most=64, note="threads")
    assert _refusal(env_int, {"RECONCILER_X": "0"}, rule) == (
        "RECONCILER_X must be a whole number from 1 to 64 (threads); got '0'"
    )
    assert NumberRule(least=0.5, most=1.5).describe() == "a number from 0.5 to 1.5"
