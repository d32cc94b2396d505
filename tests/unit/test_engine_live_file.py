"""A getUsers body DuckDB's reader refuses, as the DuckDB engine says it: members/engine/
diff.py (a plan's read) and adopt.py (`import`'s) name the list and DuckDB's reason, and
neither the member on the line nor the workspace's temporary path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.adopt import _Target, _write_members_duckdb
from reconciler.errors import LiveStateError
from reconciler.iterable.client import ListInfo, MemberLineEnds, _save_lines
from reconciler.members.engine.diff import describe_live, load_live_file
from reconciler.members.engine.settings import EngineSettings
from reconciler.members.engine.sql_text import sql_string
from reconciler.members.engine.workspace import Engine, unquoted_reason

# A proxy that re-encodes the body as Latin-1: the second member's ö is one byte, not UTF-8.
BODY = "ann@example.com\njörg.secret@example.de\n".encode("latin-1")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    # A quote in the path, as in the temporary directory of a Windows user O'Brien
    # (C:\Users\O'Brien\AppData\Local\Temp): DuckDB is given its files' paths in SQL.
    with Engine(EngineSettings(temp_dir=tmp_path / "O'Brien")) as engine:
        yield engine


def saved(engine: Engine, body: bytes) -> Path:
    """The body as the client saves a getUsers answer, in the workspace."""
    path = engine.directory / "live.txt"
    response = httpx.Response(200, headers={"Content-Type": "text/plain"}, content=iter([body]))
    _save_lines(response, path, None, MemberLineEnds())
    return path


def assert_said_without_member(message: str, engine: Engine) -> None:
    assert "answered lines reconciler cannot read" in message
    # DuckDB's reason, which its first line alone ("CSV Error on Line: 2") did not give.
    assert "CSV Error on Line: 2: Invalid unicode" in message, message
    assert "secret" not in message and "rg." not in message
    assert str(engine.directory) not in message and "Original Line" not in message


def test_a_plan_says_why_it_cannot_read_a_list_without_quoting_its_member(engine) -> None:
    load_live_file(engine, saved(engine, BODY), "live_1", "getUsers for list 7")
    with pytest.raises(LiveStateError) as caught:
        describe_live(engine, "live_1")
    assert str(caught.value).startswith("getUsers for list 7 answered lines")
    assert_said_without_member(str(caught.value), engine)


def test_import_says_why_it_cannot_read_a_list_without_quoting_its_member(engine, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    info = ListInfo(7, "vip", None, "Standard", None)
    target = _Target(info, "vip", out / "vip.yaml", out / "vip.csv")
    with pytest.raises(LiveStateError) as caught:
        _write_members_duckdb(engine, saved(engine, BODY), target, "email", {})
    assert str(caught.value).startswith("getUsers for list 7 'vip' answered lines")
    assert_said_without_member(str(caught.value), engine)
    assert list(out.iterdir()) == []


def test_the_reason_is_found_by_its_words_not_its_place(engine) -> None:
    """A quoted cell holding a line end puts the row over several lines after 'Original
    Line:', so the reason's place is not fixed; a cast's value is cut."""
    path = engine.directory / "rows.csv"
    path.write_text('a,1\n"b\nu-secret-7",2,3\n')
    with pytest.raises(Exception) as caught:
        engine.connection.execute(
            f"SELECT * FROM read_csv({sql_string(path)}, header = false, auto_detect = false, "
            "columns = {'a': 'VARCHAR', 'b': 'VARCHAR'}, quote = '\"', strict_mode = true)"
        ).fetchall()
    said = unquoted_reason(caught.value)  # type: ignore[arg-type]
    assert said.endswith("Expected Number of Columns: 2 Found: 3"), said
    assert "secret" not in said and str(path) not in said

    with pytest.raises(Exception) as caught:
        engine.connection.execute(
            f"SELECT * FROM read_json({sql_string(f'{path}.json')})"
        ).fetchall()
    assert str(engine.directory) not in unquoted_reason(caught.value)  # type: ignore[arg-type]
