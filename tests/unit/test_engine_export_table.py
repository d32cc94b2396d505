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


def test_lists_read_from_the_export_sorted_by_list_have_the_same_members(
    emulator_server, engine, tmp_path
) -> None:
    """Each list's members were read by a scan of the whole export (lists times users:
    300 lists of 10,000 took 8.6 s of CPU, bench/export_by_list.py); from
    EXPORT_BY_LIST_FROM lists the export is sorted by list once. The members are the same,
    however each is named (by email, by userId, or by the email the audience knows)."""
    from reconciler.manifest import load_manifests
    from reconciler.members.engine.desired_table import load_desired
    from reconciler.members.engine.export_table import (
        EXPORT_BY_LIST_FROM,
        export_by_list,
        live_from_export,
    )

    project = emulator_server.emulator.project("default")
    lists = [project.add_list(f"l{n}") for n in range(EXPORT_BY_LIST_FROM + 2)]
    other = project.add_list("not managed")
    for n in range(60):
        on = [lists[(n + k * 3) % len(lists)] for k in range(1 + n % 3)] + [other]
        if n % 4 == 0:
            project.add_user(email=f"e{n}@x.io", list_ids=on)
        elif n % 4 == 1:
            project.add_user(user_id=f"u{n}", list_ids=on)
        else:  # known by its email alone to the audience below, or by both
            project.add_user(email=f"e{n}@x.io", user_id=f"u{n}", list_ids=on)
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"e{n}@x.io," for n in range(0, 60, 2)] + [f",u{n}" for n in range(1, 60, 4)]
    (data / "m.csv").write_text("email,userId\n" + "\n".join(rows) + "\n")
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: d}\n"
        "spec: {region: us, projectType: hybrid, apiKey: {env: K}}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\n"
        "spec: {destination: d, members: {csv: data/m.csv}}\n"
    )
    desired = load_desired(engine, load_manifests(tmp_path).audiences["a"], "hybrid")

    export = read_export_table(engine, client(emulator_server), MEMBERSHIP, lists)
    by_list = export_by_list(engine, export, lists)
    # Sorted as written, which is what lets each list's read skip the others' rows.
    written = engine.connection.execute(f"SELECT list_id FROM {by_list}").fetchall()
    assert written == sorted(written) and {i for (i,) in written} == set(lists)

    def members(table: str) -> list[str]:
        return sorted(i for (i,) in engine.connection.execute(f"SELECT id FROM {table}").fetchall())

    named: set[str] = set()
    for list_id in lists:
        scanned = live_from_export(engine, export, list_id, desired, "hybrid")
        sorted_read = live_from_export(engine, export, list_id, desired, "hybrid", by_list)
        assert members(sorted_read) == members(scanned) != []
        named.update(members(scanned))
    # Named each way: by email (e0), by userId (u1), by the email the audience knows (e2).
    assert {"e0@x.io", "u1", "e2@x.io", "u3"} <= named
