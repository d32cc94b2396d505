"""Which end-to-end tests run under the emulator's field profile (conftest.py): every test
under `plain`, and under `field` too the ones where Iterable's field behaviour matters."""

from __future__ import annotations

import importlib

import pytest

from tests.integration import conftest
from tests.integration.conftest import FIELD_MODULES, FIELD_TESTS, profiles_for


def test_every_named_module_and_test_exists():
    # A misspelt name would silently drop a test's field run.
    for module in FIELD_MODULES:
        importlib.import_module(f"tests.integration.{module}")
    for entry in FIELD_TESTS:
        module, test = entry.split("::")
        assert callable(getattr(importlib.import_module(f"tests.integration.{module}"), test))


def test_field_tests_run_under_both_profiles_and_the_rest_under_plain_only():
    both = ["plain", "field"]
    assert profiles_for("test_field", "test_anything", False, "") == both
    assert profiles_for(*next(iter(FIELD_TESTS)).split("::"), False, "") == both
    assert profiles_for("test_privacy", "test_show_members_shows_them_in_full", True, "") == both
    assert profiles_for("test_privacy", "test_show_members_shows_them_in_full", False, "") == [
        "plain"
    ]


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [("plain", ["plain"]), ("field", ["field"]), ("plain,field", ["plain", "field"])],
)
def test_the_environment_variable_chooses_for_every_test(chosen, expected):
    assert profiles_for("test_privacy", "test_x", False, chosen) == expected
    assert profiles_for("test_field", "test_x", False, chosen) == expected


def test_a_field_run_is_the_emulator_with_the_field_faults():
    assert conftest.profile_faults("plain") is None
    assert conftest.profile_faults("field").read_lag_seconds > 0
