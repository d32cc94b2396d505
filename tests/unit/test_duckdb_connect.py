"""Every DuckDB connection reconciler opens has automatic extension install and load off
(reconciler/duckdb_connect.py): a duckdb build without json or parquet built in must fail
where one is needed, not fetch it from the network mid-plan. Only the manifest query's
connection had them off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from reconciler.duckdb_connect import connect
from reconciler.members import fingerprint
from reconciler.members.engine.workspace import Engine
from reconciler.sources import duckdb_query, parquet, query_text, source_for
from tests.sources import load_audience, write_parquet


def _nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pass


def _workspace(tmp_path: Path) -> None:
    engine = Engine.from_env()
    try:
        engine.connection.execute("SELECT 1")
    finally:
        engine.close()


def _new_fingerprint_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint, "_connection", None)  # one per process: made anew


def _fingerprint(tmp_path: Path) -> None:
    fingerprint.digest_members(["a@example.com"])


def _people_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "people.csv").write_text("email\na@example.com\n", encoding="utf-8")


def _query(tmp_path: Path) -> None:
    spec = {"sql": "SELECT email FROM read_csv('people.csv')", "database": ":memory:"}
    assert list(source_for(load_audience(tmp_path, spec)).read("email").members)


def _parquet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_parquet(tmp_path / "p.parquet", "SELECT 'a@example.com' AS email")


def _parquet_footer(tmp_path: Path) -> None:
    assert parquet._schema(tmp_path / "p.parquet") == ["email"]


def _query_order(tmp_path: Path) -> None:
    assert query_text.orders_its_rows("SELECT email FROM t ORDER BY email")


def _built_in(tmp_path: Path) -> None:
    assert "parquet" in duckdb_query._built_in_extensions()


# Each path: what it needs made first (its own connections not counted), and the path.
PATHS: dict[str, tuple[Callable[[Path, pytest.MonkeyPatch], None], Callable[[Path], None]]] = {
    "workspace": (_nothing, _workspace),
    "fingerprint": (_new_fingerprint_connection, _fingerprint),
    "manifest query": (_people_csv, _query),
    "parquet footer": (_parquet_file, _parquet_footer),
    "query order": (_nothing, _query_order),
    "built-in extensions": (_nothing, _built_in),
}


@pytest.mark.parametrize("path", PATHS)
def test_every_connection_fetches_no_extension(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made: list[tuple[object, ...]] = []
    real = duckdb.connect

    def recording(*args: object, **kwargs: object) -> duckdb.DuckDBPyConnection:
        # The real connection, its extension settings noted as they are when it is made.
        connection = real(*args, **kwargs)  # type: ignore[arg-type]
        found = connection.execute(
            "SELECT current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions')"
        ).fetchone()
        assert found is not None
        made.append(tuple(found))
        return connection

    prepare, run = PATHS[path]
    prepare(tmp_path, monkeypatch)
    monkeypatch.setattr(duckdb, "connect", recording)
    run(tmp_path)
    assert made, "the path opened no connection"
    assert all(settings == (False, False) for settings in made), made


def test_no_module_connects_to_duckdb_but_through_the_helper() -> None:
    """A new connection site opened with duckdb.connect itself would fetch extensions
    again: every one goes through reconciler.duckdb_connect.connect."""
    package = Path(__file__).resolve().parents[2] / "reconciler"
    direct = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "duckdb_connect.py" and "duckdb.connect(" in path.read_text("utf-8")
    ]
    assert direct == []


def test_the_helper_keeps_a_callers_settings_and_turns_fetching_off_over_them(
    tmp_path: Path,
) -> None:
    """A caller's own config (a Parquet footer read's thread count, say) is kept; its
    extension settings cannot turn fetching back on."""
    database = tmp_path / "d.duckdb"
    duckdb.connect(str(database)).close()
    asked = {"threads": 1, "autoinstall_known_extensions": True}
    with connect(str(database), read_only=True, config=asked) as connection:
        found = connection.execute(
            "SELECT current_setting('threads'), current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions'), "
            "current_setting('allow_community_extensions')"
        ).fetchone()
        with pytest.raises(duckdb.Error):
            connection.execute("CREATE TABLE t (x INTEGER)")  # read_only reached DuckDB
    assert found == (1, False, False, False)
