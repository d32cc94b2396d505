"""sources/rows.py and sources/result.py: the identifier columns of table-shaped rows, and
the members, skipped rows and duplicates built from them."""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import uuid

import pytest

from reconciler.errors import SourceError
from reconciler.manifest.model import MembersSpec
from reconciler.members.identity import Member
from reconciler.sources.result import SourceResult
from reconciler.sources.rows import (
    find_columns,
    members_from_rows,
    missing_key_column,
    trait_value,
    undeclared_user_id,
)

DEFAULT = MembersSpec.model_validate({"parquet": "m.parquet"})
NAMED = MembersSpec.model_validate({"parquet": "m.parquet", "userId": "uid"})


def _refusal(names: list[str], spec: MembersSpec = DEFAULT, query: bool = False) -> str:
    with pytest.raises(SourceError) as caught:
        find_columns(names, spec, "m.parquet", query)
    return str(caught.value)


def test_an_exact_name_wins_and_otherwise_one_case_folded_match() -> None:
    columns = find_columns(["USERID", "tier", "email"], DEFAULT, "m.parquet")
    assert (columns.email, columns.user_id) == (2, 0)
    assert columns.traits == (("tier", 1),)
    exact = find_columns(["userid", "userId"], DEFAULT, "m.parquet")
    assert exact.user_id == 1 and exact.email is None


def test_columns_that_differ_only_in_case_are_not_guessed_between() -> None:
    message = _refusal(["userid", "USERID"])
    assert message.startswith("m.parquet has neither an 'email' nor a 'userId' column")
    assert "differ from 'userId' only in case" in message


def test_a_named_column_must_exist_and_a_repeated_name_is_refused() -> None:
    assert _refusal(["email", "userId"], NAMED) == (
        "m.parquet has no column 'uid' (members.userId); columns are: email, userId"
    )
    assert _refusal(["email", "x", "email"]).startswith("m.parquet has 2 columns named 'email'")
    # A name the database made for a column the query left unnamed says how to name it.
    assert "`AS email` and `AS userId`" in _refusal(["?column?"], query=True)
    assert "`AS email`" not in _refusal(["?column?"])


def test_a_user_id_column_under_another_spelling_is_pointed_out() -> None:
    assert undeclared_user_id(["email", "User ID"], DEFAULT) == "User ID"
    assert undeclared_user_id(["email", "userid"], DEFAULT) is None  # read as userId
    assert undeclared_user_id(["email", "userid"], DEFAULT, exact=True) == "userid"
    assert undeclared_user_id(["email", "user_id"], NAMED) is None  # the manifest names one


def test_the_key_column_a_project_needs_is_named_when_missing() -> None:
    assert missing_key_column(["email"], DEFAULT, "userId") == "userId"
    assert missing_key_column(["userId"], DEFAULT, "email") == "email"
    assert missing_key_column(["email"], DEFAULT, "hybrid") is None
    assert missing_key_column(["tier"], DEFAULT, "userId") is None  # the read refuses it


def test_members_from_rows_skips_bad_rows_and_keeps_the_first_of_a_duplicate() -> None:
    columns = find_columns(["email", "userId", "tier"], DEFAULT, "m.parquet")
    chunks = [
        [("a@x.io", 1, "gold"), ("not-an-email", "u2", "x")],
        [("A@X.io", 1.0, "gold"), ("b@x.io", None, decimal.Decimal("2.50"))],
    ]
    result = members_from_rows(chunks, columns, "hybrid", lambda n: f"m.parquet:{n}", True)
    assert result.rows == 4
    # A hybrid project keys a member by its userId when it has one.
    assert sorted(result.members) == ["1", "b@x.io"]
    assert result.members["1"].email == "a@x.io"
    assert result.members["b@x.io"].traits == {"tier": 2.5}
    assert [(i.where, i.message) for i in result.issues] == [("m.parquet:2", "invalid email")]
    assert {"not-an-email", "u2"} <= result.skipped_ids
    # Row 3 is row 1 again (an email differing in case, the same userId): no conflict.
    assert result.duplicates == 1 and result.conflicts == []
    assert result.where == {"1": "m.parquet:1", "b@x.io": "m.parquet:4"}


def test_a_duplicate_that_disagrees_names_both_rows() -> None:
    columns = find_columns(["userId", "email"], DEFAULT, "m.parquet")
    rows = [[("u1", "a@x.io"), ("u1", "b@x.io")]]
    result = members_from_rows(rows, columns, "userId", lambda n: f"row {n}")
    assert result.duplicates == 1 and result.conflict_keys == {"u1"}
    (conflict,) = result.conflicts
    assert conflict.where == "row 2" and "row 1" in conflict.message
    assert result.where is None  # not kept without a trait mapping


def test_database_values_become_what_json_carries() -> None:
    assert trait_value(decimal.Decimal("3.000")) == 3
    assert trait_value(decimal.Decimal("2.5")) == 2.5
    assert trait_value(datetime.date(2024, 5, 1)) == "2024-05-01"
    assert trait_value(datetime.time(9, 30)) == "09:30:00"
    assert trait_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    nested = [decimal.Decimal("1.5"), {"ip": ipaddress.ip_address("10.0.0.1")}]
    assert trait_value(nested) == [1.5, {"ip": "10.0.0.1"}]
    # Dates inside a list are the mapping's to convert.
    day = datetime.date(2024, 5, 1)
    assert trait_value([day]) == [day]


def test_a_result_names_a_conflicting_row_by_its_count_when_rows_have_no_place() -> None:
    result = SourceResult()
    first = Member("u1", "userId", "a@x.io", "u1")
    result.rows = 1
    result.add(first)
    result.rows = 2
    result.add(Member("u1", "userId", "a@x.io", "u1"))  # the same: no conflict
    result.rows = 3
    result.add(Member("u1", "userId", "b@x.io", "u1"))
    assert result.members == {"u1": first} and result.duplicates == 2
    (conflict,) = result.conflicts
    assert conflict.where == "row 3" and "an earlier row" in conflict.message
    assert "b@x.io" not in conflict.message and result.where is None
