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
        # Windows finds a variable in any case: these are GITHUB_TOKEN and the key there.
        "postgresql://${github_token}@attacker.example/x",
        "postgresql://app:${Iterable_Api_Key}@attacker.example/x",
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


def test_a_destination_key_variable_is_refused_in_any_case(repo: Path) -> None:
    # Windows finds PROD_KEY for ${prod_key}: the key would go to the URL's host.
    (repo / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: prod}\n"
        "spec: {region: us, projectType: email, apiKey: {env: PROD_KEY}}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\n"
        "spec:\n  destination: prod\n  members:\n    sql: SELECT 1 AS email\n"
        "    url: postgresql://app:${prod_key}@db.example/x\n"
    )
    with pytest.raises(ManifestError) as raised:
        load_manifests(repo)
    (problem,) = raised.value.problems
    assert "${prod_key} is refused: destination 'prod' reads its API key from it" in str(problem)


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


class PasswordCatcher:
    """A PostgreSQL server that asks every client for its password in clear text, as any
    server may, and keeps what it is sent."""

    def __init__(self) -> None:
        import socket
        import threading

        self.passwords: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import struct

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with client:
                try:
                    body = self._message(client)
                    if body[:4] == struct.pack("!I", 80877103):  # SSLRequest: no
                        client.sendall(b"N")
                        body = self._message(client)
                    client.sendall(b"R" + struct.pack("!II", 8, 3))  # cleartext password
                    reply = client.recv(4096)
                    self.passwords.append(reply[5:].split(b"\0")[0])
                except OSError:
                    pass

    @staticmethod
    def _message(client: object) -> bytes:
        import struct

        size = struct.unpack("!I", client.recv(4))[0]  # type: ignore[attr-defined]
        return client.recv(size - 4)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@127.1:{port}/x",  # libpq sends PGPASSWORD unasked
        "postgresql://app:${DB_SECRET}@127.1:{port}/x",
        "postgresql://app:${DB_SECRET}@localhost:{port}/x?host=127.1",
        "postgresql://app:${DB_SECRET}@localhost:{port}/x?hostaddr=127.1",
    ],
)
def test_a_url_reaches_only_this_computer_or_a_host_listed_where_the_password_is(
    repo: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """`127.1` is this computer to the resolver but not to reconciler's check: it stands
    for any server a pull request could name. Without the listing nothing is sent to it;
    listed in RECONCILER_TRUSTED_DATABASE_HOSTS, the password is."""
    pytest.importorskip("psycopg")
    server = PasswordCatcher()
    monkeypatch.setenv("PGPASSWORD", "pg-password-of-prod")
    monkeypatch.setenv("DB_SECRET", "db-secret-of-prod")
    monkeypatch.delenv("RECONCILER_TRUSTED_DATABASE_HOSTS", raising=False)
    audience = load_audience(
        repo, {"sql": "SELECT 1 AS email", "url": url.replace("{port}", str(server.port))}
    )
    line = line_of(repo / "aud.yaml", '"url"')
    with pytest.raises(ConfigError) as raised:
        read_members(audience, "email")
    message = str(raised.value)
    assert message.startswith(f"aud.yaml:{line}:"), message
    assert "is not sent to database host 127.1" in message
    assert "RECONCILER_TRUSTED_DATABASE_HOSTS=127.1" in message
    assert "of-prod" not in message and server.passwords == []

    monkeypatch.setenv("RECONCILER_TRUSTED_DATABASE_HOSTS", f"db.example.com, 127.1:{server.port}")
    with pytest.raises(SourceError, match=rf"^aud.yaml:{line}:\d+: cannot connect \(postgresql\)"):
        read_members(audience, "email")
    assert server.passwords in ([b"pg-password-of-prod"], [b"db-secret-of-prod"])


def test_a_url_naming_a_connection_service_is_refused(repo: Path) -> None:
    audience = load_audience(
        repo, {"sql": "SELECT 1 AS email", "url": "postgresql://app@localhost/x?service=prod"}
    )
    with pytest.raises(ConfigError, match=r"^aud.yaml:\d+:\d+: .*service= is refused"):
        read_members(audience, "email")


@pytest.mark.parametrize("entry", ["db.example.com:5432x", "https://db.example.com"])
def test_a_trusted_host_entry_that_is_not_host_or_host_port_is_refused(
    repo: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    """`db.example.com:5432x` (a mistyped port) trusted every port of the host, and
    `https://db.example.com` trusted a host named `https`: both said nothing."""
    monkeypatch.setenv("RECONCILER_TRUSTED_DATABASE_HOSTS", f"other.example.com {entry}")
    audience = load_audience(
        repo, {"sql": "SELECT 1 AS email", "url": "postgresql://app@db.example.com:6543/x"}
    )
    with pytest.raises(ConfigError) as raised:
        read_members(audience, "email")
    message = str(raised.value)
    assert message.startswith(f"aud.yaml:{line_of(repo / 'aud.yaml', chr(34) + 'url')}:")
    assert f"RECONCILER_TRUSTED_DATABASE_HOSTS holds {entry!r}, which is not a host" in message


@pytest.mark.parametrize(
    "entry",
    [
        "postgresql://app:hunter2@db.example.com/crm",
        "app:hunter2@db.example.com",
        "a@db.example.com",
    ],
)
def test_a_trusted_host_entry_with_a_login_is_refused_without_quoting_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    """A URL pasted whole into the list was quoted back, masked as an email is: its user
    name, scheme and the password's first character ('postgresql://app:h***@***')."""
    monkeypatch.setenv("RECONCILER_TRUSTED_DATABASE_HOSTS", f"other.example.com {entry}")
    audience = load_audience(
        repo, {"sql": "SELECT 1 AS email", "url": "postgresql://app@db.example.com:6543/x"}
    )
    with pytest.raises(ConfigError) as raised:
        read_members(audience, "email")
    message = str(raised.value)
    assert "RECONCILER_TRUSTED_DATABASE_HOSTS holds an entry with a user name or password" in (
        message
    )
    assert "hunter2" not in message and "app" not in message and "a@" not in message
