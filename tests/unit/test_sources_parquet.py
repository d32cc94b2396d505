"""`members: {parquet: FILE}`: read through DuckDB in chunks, rows to members and traits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.errors import ManifestError, SourceError
from reconciler.sources import duckdb_query, read_members
from tests.sources import line_of, load_audience, write_parquet


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_rows_become_members_and_other_columns_traits(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "data" / "vip.parquet",
        "SELECT * FROM (VALUES ('Ada@Example.com', 'u-1', 'gold', 12.5::DECIMAL(6,2), "
        "DATE '2024-03-01'), ('b@example.com', NULL, 'free', 3::DECIMAL(6,2), NULL)) "
        "AS t(email, userId, plan, ltv, since)",
    )
    audience = load_audience(tmp_path, {"parquet": "data/vip.parquet"}, mapped=True)

    result = read_members(audience, "hybrid")

    assert result.rows == 2
    assert result.issues == []
    ada = result.members["u-1"]
    assert (ada.email, ada.user_id, ada.key_kind) == ("ada@example.com", "u-1", "userId")
    assert ada.traits == {"plan": "gold", "ltv": 12.5, "since": "2024-03-01"}
    b = result.members["b@example.com"]
    assert (b.key_kind, b.traits) == ("email", {"plan": "free", "ltv": 3, "since": None})


def test_custom_columns_integer_user_ids_and_invalid_rows_with_their_row(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "ids.parquet",
        "SELECT * FROM (VALUES (1, 'a@example.com'), (2, 'not-an-email'), (NULL, NULL), "
        "(1, 'again@example.com')) AS t(customer_id, mail)",
    )
    audience = load_audience(
        tmp_path, {"parquet": "ids.parquet", "email": "mail", "userId": "customer_id"}
    )

    result = read_members(audience, "userId")

    # Warehouse integers are userIds as text; an email that is no address is left out in
    # a userID-based project (never sent there), its member kept.
    assert sorted(result.members) == ["1", "2"]
    assert result.members["2"].email is None
    assert result.duplicates == 1
    assert [str(issue) for issue in result.issues] == [
        # Named relative to the working directory (here tmp_path), as messages show paths.
        f"{path.name}:row 3: no userId: userID-based projects identify users by userId",
    ]
    hybrid = read_members(audience, "hybrid")
    assert str(hybrid.issues[0]) == (f"{path.name}:row 2: invalid email 'not-an-email'")


def test_rows_are_fetched_in_chunks_not_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_parquet(
        tmp_path / "many.parquet",
        "SELECT 'user' || i || '@example.com' AS email FROM range(1000) t(i)",
    )
    sizes: list[int] = []
    members_from_rows = duckdb_query.members_from_rows

    def spy(chunks, *args):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk

        return members_from_rows(counted(), *args)

    monkeypatch.setattr(duckdb_query, "CHUNK_ROWS", 64)
    monkeypatch.setattr(duckdb_query, "members_from_rows", spy)

    result = read_members(load_audience(tmp_path, {"parquet": "many.parquet"}), "email")

    assert len(result.members) == 1000
    assert max(sizes) == 64
    assert sum(sizes) == 1000


def test_missing_file_is_a_source_error_at_the_manifest_line(tmp_path: Path) -> None:
    audience = load_audience(tmp_path, {"parquet": "nope.parquet"})
    line = line_of(tmp_path / "aud.yaml", '"parquet"')
    with pytest.raises(SourceError, match=rf"^aud.yaml:{line}:\d+: Parquet file not found: "):
        read_members(audience, "email")


def _spark_output(directory: Path) -> None:
    """A Spark job's output partitioned by country: part files under country=DE/ and
    country=FR/ (the column only in the path), beside _SUCCESS, _committed_ and .crc files."""
    for country, first in (("DE", 0), ("FR", 2)):
        partition = directory / f"country={country}"
        write_parquet(
            partition / "part-00000-tid-1-c000.snappy.parquet",
            f"SELECT 'p' || i || '@example.com' AS email FROM range({first}, {first} + 2) t(i)",
        )
        (partition / ".part-00000-tid-1-c000.snappy.parquet.crc").write_bytes(b"crc\x00\x01")
    (directory / "_SUCCESS").write_bytes(b"")
    (directory / "._SUCCESS.crc").write_bytes(b"crc")
    (directory / "_committed_1").write_text('{"added": []}')


def test_a_directory_of_part_files_is_refused_naming_the_query_that_reads_it(
    tmp_path: Path,
) -> None:
    _spark_output(tmp_path / "data" / "members")
    with pytest.raises(ManifestError) as refused:
        load_audience(tmp_path, {"parquet": "data/members/"})
    line = line_of(tmp_path / "aud.yaml", '"parquet"')
    advised = "SELECT * FROM read_parquet('data/members/**/*.parquet')"
    location, message = str(refused.value).split(" ", 1)
    assert re.fullmatch(rf"aud\.yaml:{line}:\d+:", location)
    assert message == (
        "members.parquet: data/members/ is a directory; parquet: reads "
        f"one file; to read every Parquet file below it, write `sql: {advised}` and "
        '`database: ":memory:"` under members in its place'
    )

    # The advice reads every part file, and the partition's column from its directory.
    audience = load_audience(tmp_path, {"sql": advised, "database": ":memory:"}, mapped=True)
    result = read_members(audience, "email")
    assert {key: member.traits["country"] for key, member in result.members.items()} == {
        "p0@example.com": "DE",
        "p1@example.com": "DE",
        "p2@example.com": "FR",
        "p3@example.com": "FR",
    }


def test_a_pattern_is_not_found_naming_the_query_that_reads_what_it_matches(
    tmp_path: Path,
) -> None:
    _spark_output(tmp_path / "data" / "members")
    audience = load_audience(tmp_path, {"parquet": "data/members/*/*.parquet"})
    line = line_of(tmp_path / "aud.yaml", '"parquet"')
    advised = "SELECT * FROM read_parquet('data/members/*/*.parquet')"
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    location, message = str(refused.value).split(" ", 1)
    assert re.fullmatch(rf"aud\.yaml:{line}:\d+:", location)
    assert message == (
        "Parquet file not found: data/members/*/*.parquet; parquet: reads "
        f"one file; to read every Parquet file it matches, write `sql: {advised}` and "
        '`database: ":memory:"` under members in its place'
    )
    audience = load_audience(tmp_path, {"sql": advised, "database": ":memory:"})
    assert len(read_members(audience, "email").members) == 4


def test_a_file_that_is_not_parquet_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_text("email\na@example.com\n")
    audience = load_audience(tmp_path, {"parquet": "fake.parquet"})
    with pytest.raises(SourceError, match=r"cannot read Parquet file .*fake\.parquet"):
        read_members(audience, "email")


def test_neither_identifier_column_names_the_columns(tmp_path: Path) -> None:
    write_parquet(tmp_path / "x.parquet", "SELECT 1 AS id, 'x' AS name")
    audience = load_audience(tmp_path, {"parquet": "x.parquet"})
    with pytest.raises(
        SourceError, match="has neither an 'email' nor a 'userId' column; columns are: id, name"
    ):
        read_members(audience, "hybrid")


def test_duckdb_connections_draw_no_progress_bar_and_search_the_manifest_dir(
    tmp_path: Path,
) -> None:
    # DuckDB draws a progress bar on stdout for reads over 2 s; stdout carries
    # `plan --format json`, so a large Parquet file would break the JSON.
    connection = duckdb_query.open_connection(":memory:", tmp_path, "m.yaml:1:1", tmp_path)
    try:
        settings = connection.execute(
            "SELECT current_setting('enable_progress_bar'), current_setting('file_search_path')"
        ).fetchone()
    finally:
        connection.close()
    assert settings == (False, str(tmp_path))
