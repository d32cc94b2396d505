"""members/engine/export_table.py: one user export, read over HTTP from the emulator into
the DuckDB workspace: members of the managed lists only, emails lower-cased, channel
unsubscribes kept aside, and a file it cannot read refused in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import LiveStateError
from reconciler.iterable import CHANNELS_FIELD
from reconciler.members.engine.export_table import export_rows, read_export_table
from reconciler.members.engine.settings import EngineSettings
from reconciler.members.engine.workspace import Engine
from tests.apply.support import client

MEMBERSHIP = "userListIds"  # a hybrid project's


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    # A quote in the path, as in the temporary directory of a Windows user O'Brien
    # (C:\Users\O'Brien\AppData\Local\Temp): DuckDB is given its files' paths in SQL.
    with Engine(EngineSettings(temp_dir=tmp_path / "O'Brien")) as engine:
        yield engine


def test_the_export_holds_the_managed_lists_members_only(emulator_server, engine) -> None:
    project = emulator_server.emulator.project("default")
    managed, other = project.add_list("Managed"), project.add_list("Other")
    project.add_user(email="Ann@X.io", list_ids=[managed])
    project.add_user(email="bob@x.io", user_id="u-bob", list_ids=[managed, other])
    carl = project.add_user(user_id="u-carl", list_ids=[other])
    project.self_unsubscribe(carl, channel=True)
    project.add_user(email="dora@x.io")  # on no list

    channels: list[dict] = []
    table = read_export_table(
        engine, client(emulator_server), MEMBERSHIP, [managed], channels=channels
    )
    rows = engine.connection.execute(f"SELECT email, user_id FROM {table} ORDER BY 1").fetchall()
    assert rows == [("ann@x.io", None), ("bob@x.io", "u-bob")]
    # Every profile with a channel unsubscribe, on a managed list or not (the consent guard's).
    assert [(c["userId"], len(c[CHANNELS_FIELD])) for c in channels] == [("u-carl", 1)]
    # The export's file is gone once read.
    assert list(engine.directory.glob("*.jsonl")) == []

    shaped = export_rows(engine, table, MEMBERSHIP, [managed])
    assert sorted(r["email"] for r in shaped) == ["ann@x.io", "bob@x.io"]
    bob = next(r for r in shaped if r["userId"] == "u-bob")
    assert sorted(bob[MEMBERSHIP]) == sorted([managed, other])
    assert export_rows(engine, table, MEMBERSHIP, []) == []


def test_lines_it_cannot_read_are_refused_in_words(engine) -> None:
    def download(_fields, path: Path, _on_lines) -> int:
        path.write_text('{"email": "a@x.io", "userListIds": [1]}\n{"email": [1, \n')
        return 2

    with pytest.raises(LiveStateError) as caught:
        read_export_table(engine, None, MEMBERSHIP, [1], download=download)  # type: ignore[arg-type]
    assert str(caught.value).startswith("the user export answered lines reconciler cannot read")
    assert list(engine.directory.glob("*.jsonl")) == []


def test_a_value_duckdb_cannot_cast_is_not_quoted(engine) -> None:
    def download(_fields, path: Path, _on_lines) -> int:
        path.write_text('{"email": "a@x.io", "userListIds": [1]}\n')
        path.write_text(path.read_text() + '{"email": "b@x.io", "userListIds": ["ann@x.io"]}\n')
        return 2

    with pytest.raises(LiveStateError) as caught:
        read_export_table(engine, None, MEMBERSHIP, [1], download=download)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("the user export answered lines reconciler cannot read: ")
    assert "in line 2" in message and message.endswith("(the value is not shown)")
    # Neither the member's identifier nor the workspace's temporary path.
    assert "ann@x.io" not in message and str(engine.directory) not in message
