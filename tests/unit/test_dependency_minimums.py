"""pyproject.toml's lower bounds are releases reconciler works with, not only ones that install.

pip keeps an installed release that meets a bound (one another tool pinned, an image's
older DuckDB), so a bound below what the code uses is a reconciler that installs cleanly
and then fails: typer>=0.12 installed beside typer 0.25 failed every command with an
AttributeError, and duckdb>=1.1 beside DuckDB 1.1-2.0.0 failed every Parquet and DuckDB
query source. The suite runs on the versions constraints.txt pins, never on the minimums,
so what each minimum must have is written here with the release that brought it (found by
running the suite in a venv at the declared minimums), and checked against pyproject.toml
and against what is installed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import duckdb
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canonical
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

# package -> (the oldest release reconciler works with, what it needs from that release)
NEEDS = {
    "typer": (
        "0.29",
        "TyperOption.display_type_rich (0.29) and rich_utils._fix_linebreaks (0.28), which "
        "reconciler/cli patches, and typer's own copy of click (0.26) for usage errors",
    ),
    "duckdb": (
        "2.0.1",
        "enable_logging('FileSystem') (1.4), which tells a query's opened files, and a "
        "TIMESTAMPTZ value fetched without pytz (2.0.1), which nothing declares",
    ),
}


def _declared_minimums() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    minimums = {}
    for line in project["project"]["dependencies"]:
        requirement = Requirement(line)
        lows = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
        if lows:
            minimums[canonical(requirement.name)] = max(lows)
    return minimums


@pytest.mark.parametrize("package", sorted(NEEDS))
def test_a_declared_minimum_has_what_reconciler_uses(package: str) -> None:
    needed, why = NEEDS[package]
    declared = _declared_minimums().get(canonical(package))
    assert declared is not None and declared >= Version(needed), (
        f"pyproject.toml lets {package} {declared} install; reconciler needs {needed}: {why}"
    )


def test_the_installed_releases_have_it_too() -> None:
    """The facts above, where the installed releases can show them."""
    from typer import rich_utils
    from typer.core import TyperArgument, TyperOption

    assert hasattr(TyperOption, "display_type_rich")
    assert hasattr(TyperArgument, "display_type_rich")
    assert hasattr(rich_utils, "_fix_linebreaks")
    connection = duckdb.connect()
    try:
        connection.execute("CALL enable_logging('FileSystem')")
        row = connection.execute("SELECT TIMESTAMPTZ '2024-05-01 09:30:00+00'").fetchone()
        assert row is not None
        (value,) = row
        assert value.year == 2024 and value.utcoffset() is not None
    finally:
        connection.close()
