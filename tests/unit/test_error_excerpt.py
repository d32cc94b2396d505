"""PostgreSQL's `LINE n:` excerpt drawn from the manifest's query (sources/error_excerpt)."""

from __future__ import annotations

from reconciler.sources.error_excerpt import excerpt, in_query

WRAPPED = (
    'syntax error at or near "SELEC"\nLINE 1: WITH q AS (SELEC email FROM t\n' + " " * 19 + "^"
)


def test_the_excerpt_is_the_querys_line_with_the_caret_under_the_position() -> None:
    assert in_query(WRAPPED, 12, len("WITH q AS ("), "SELEC email FROM t") == (
        'syntax error at or near "SELEC"\nLINE 1: SELEC email FROM t\n        ^'
    )
    query = "SELECT a,\n  b FRM t"
    assert excerpt(query, query.index("FRM")) == "LINE 2:   b FRM t\n" + " " * 12 + "^"


def test_a_long_line_is_cut_around_the_caret_as_libpq_cuts_it() -> None:
    query = "SELECT " + ", ".join(f"column_{i}" for i in range(30)) + " FRM t"
    at = query.index("FRM")
    line, caret = excerpt(query, at + 4).split("\n")
    assert line.startswith("LINE 1: ...") and line.endswith("FRM t")
    assert line[caret.index("^")] == "t"
    assert len(line) < 80


def test_an_error_outside_the_query_drops_the_excerpt_and_one_without_is_kept() -> None:
    assert in_query(WRAPPED, 3, len("WITH q AS ("), "SELEC email FROM t") == (
        'syntax error at or near "SELEC"'
    )
    assert in_query("division by zero", None, 11, "SELECT 1/0") == "division by zero"
