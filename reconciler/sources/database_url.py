"""Database URLs from manifests: `${VARIABLE}` expanded at run time, the password kept secret.

Manifests hold `postgresql://app:${PGPASSWORD}@db.internal/analytics`; the password is
read from the environment only when the query runs. Variables are expanded inside the user
name and password of the parsed URL, never elsewhere, so a password with '@', ':' or '/' in
it needs no escaping and no variable can choose the host its value is sent to. The
expanded URL is never printed, and every error that passes through `scrub` has the
secrets replaced by ***.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from reconciler.env_names import case_hint
from reconciler.errors import ConfigError, variable_name
from reconciler.loopback import is_loopback
from reconciler.manifest.model import ENV_REFERENCE, forbidden_url_variable
from reconciler.manifest.repository import PRIVATE_ENTRIES, is_inside, real_path

MASK = "***"

# Hosts (`host` or `host:port`, separated by spaces or commas) a manifest's database URL may
# connect to besides this computer (check_database_host).
TRUSTED_DATABASE_HOSTS = "RECONCILER_TRUSTED_DATABASE_HOSTS"
# libpq options that choose the server instead of the URL's host (psycopg passes the URL's
# query string to libpq as connection options).
_HOST_OPTIONS = ("host", "hostaddr")


@dataclass(frozen=True)
class DatabaseUrl:
    """An expanded URL and the secrets that must never be printed."""

    url: URL
    secrets: tuple[str, ...]

    def scrub(self, text: str) -> str:
        """`text` with every secret, raw or URL-encoded, replaced by ***."""
        return scrub(text, self.secrets)

    def __repr__(self) -> str:
        # SQLAlchemy's repr already masks the password; secrets are never shown.
        return f"DatabaseUrl({self.url!r})"


def scrub(text: str, secrets: Iterable[str]) -> str:
    variants = {form for secret in secrets if secret for form in _encodings(secret)}
    # Longest first, so a secret that contains another is masked whole.
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, MASK)
    return text


def _encodings(secret: str) -> tuple[str, ...]:
    return (secret, quote(secret, safe=""), quote_plus(secret), quote(secret))


def expand_url(template: str, where: str) -> DatabaseUrl:
    """Expand `${VARIABLE}` references in a database URL's user name and password from
    the environment.

    A variable anywhere else (driver, host, port, database, query) is refused: its value
    would go wherever the manifest points, a host even as a DNS lookup. So is a variable
    that holds an API key or CI credential (model.forbidden_url_variable). Raises
    ConfigError naming `where` and, for an unset or blank variable, its name; never a value.
    """
    for match in ENV_REFERENCE.finditer(template):
        name = match["name"]
        shown = variable_name(name)
        if forbidden_url_variable(name):
            raise ConfigError(
                f"{where}: ${{{shown}}} is refused in a database URL: it holds an API key or "
                "CI credential, and a URL sends its values to the host it names"
            )
        if name not in os.environ:
            raise ConfigError(
                f"{where}: environment variable {shown} is not set{case_hint(name)}; the "
                "database URL needs it"
            )
        if not os.environ[name].strip():
            # An empty password lets libpq send its own (PGPASSWORD, ~/.pgpass) and an
            # empty user name its own login name: a run would quietly connect as someone
            # else. GitHub Actions gives an unset secret (a fork's pull request) as "".
            raise ConfigError(
                f"{where}: environment variable {shown} is empty; the database URL needs "
                "its value (a CI secret not given to this run reads as empty)"
            )
    parsed = parse_url(template)
    if parsed is None:
        raise ConfigError(
            f"{where}: not a valid SQLAlchemy URL (the URL is not shown because it may hold "
            "a password)"
        )
    elsewhere = [parsed.drivername, parsed.host or "", parsed.database or ""]
    for key, value in parsed.query.items():
        elsewhere.extend((key, *((value,) if isinstance(value, str) else value)))
    if any(ENV_REFERENCE.search(part) for part in elsewhere):
        raise ConfigError(
            f"{where}: ${{VARIABLE}} may stand only for the user name or password of a "
            "database URL; in the driver, host, port, database or query it would send its "
            "value wherever the manifest points"
        )
    username = _expand(parsed.username) if parsed.username is not None else None
    password = _expand(parsed.password) if parsed.password is not None else None
    url = parsed.set(username=username, password=password)
    # The password, and every value taken from the environment, is secret.
    secrets = [password or "", *_values(parsed.username or ""), *_values(parsed.password or "")]
    return DatabaseUrl(url, _distinct(secrets))


def check_database_host(url: URL, where: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse (ConfigError at `where`) to connect to a server that is neither this computer
    nor listed in RECONCILER_TRUSTED_DATABASE_HOSTS.

    Connecting sends credentials the manifest does not show: a `${VARIABLE}` in the URL,
    and whatever the driver adds by itself (libpq sends PGPASSWORD, or Kerberos tickets, to
    any server that asks). A pull request that points a URL at its own server must not get
    them, so the list lives where those credentials are set (CI secrets, the shell), not in
    a manifest, as RECONCILER_TRUSTED_BASE_URLS does for the API key. A SQLite file, a Unix
    socket and a URL without a host (the driver's default, PGHOST) name no server."""
    if url.get_backend_name() == "sqlite":
        return
    if "service" in url.query:
        raise ConfigError(
            f"{where}: a database URL with service= is refused: the service file chooses the "
            "server, which reconciler then cannot check; write the host in the URL"
        )
    servers = [(url.host or "", url.port)]
    for option in _HOST_OPTIONS:
        value = url.query.get(option, ())
        for item in (value,) if isinstance(value, str) else value:
            servers.extend((host.strip(), url.port) for host in item.split(","))
    listed = (environ if environ is not None else os.environ).get(TRUSTED_DATABASE_HOSTS, "")
    trusted = {_host_port(entry, where) for entry in re.split(r"[\s,]+", listed) if entry}
    for host, port in servers:
        host = host.lower().strip("[]")
        if not host or host.startswith("/") or is_loopback(host):
            continue
        if (host, None) in trusted or (host, port) in trusted:
            continue
        shown = f"{host}:{port}" if port else host
        raise ConfigError(
            f"{where}: the query is not sent to database host {shown}: a manifest's URL may "
            f"reach only this computer (127.0.0.1, ::1, localhost, a Unix socket) or a host "
            f"listed in {TRUSTED_DATABASE_HOSTS} where its password is set (e.g. "
            f"{TRUSTED_DATABASE_HOSTS}={shown}); connecting would send that server the "
            "password, and the driver's own credentials (PGPASSWORD), whatever the manifest says"
        )


def _host_port(entry: str, where: str) -> tuple[str, int | None]:
    """An entry of RECONCILER_TRUSTED_DATABASE_HOSTS as (host, port or None: any port).
    One that is not `host` or `host:port` is refused: `db.internal:5432x`, a mistyped
    port, trusted every port of the host, and `https://db.internal` a host named `https`."""
    parts = urlsplit(f"//{entry}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if "@" in entry:
        # A URL copied whole, password and all: where it is refused is no place to print it.
        raise ConfigError(
            f"{where}: {TRUSTED_DATABASE_HOSTS} holds an entry with a user name or password "
            "before its host (not shown); list hosts only, host or host:port (such as "
            "db.internal or warehouse.example.com:5432)"
        )
    if port == -1 or not parts.hostname or parts.path or parts.username is not None:
        raise ConfigError(
            f"{where}: {TRUSTED_DATABASE_HOSTS} holds {entry!r}, which is not a host or "
            "host:port (such as db.internal or warehouse.example.com:5432)"
        )
    return parts.hostname.lower(), port


def confine_file_database(url: URL, where: str, repository: Path) -> URL:
    """`url` if it names no local file; a SQLite file inside `repository` opened read-only;
    ConfigError otherwise. A manifest reads only files in its repository, and never
    creates one (SQLite makes a missing file)."""
    if url.get_backend_name() == "duckdb":
        raise ConfigError(
            f"{where}: a duckdb:// URL is refused; write `database:` for a DuckDB file, "
            "where the query runs locked down to the repository's files"
        )
    path = sqlite_file(url)
    if path is None:
        return url
    if not is_inside(path, repository) or _private(path, repository):
        raise ConfigError(
            f"{where}: the SQLite database {path} is outside the repository {repository} "
            "(or in its .git or .reconciler); member sources must live in the repository"
        )
    if not path.is_file():
        raise ConfigError(f"{where}: SQLite database file not found: {path}")
    # A URI filename with mode=ro: the file is only read.
    return url.set(
        database=f"file:{quote(str(real_path(path)))}", query={"mode": "ro", "uri": "true"}
    )


def sqlite_file(url: URL) -> Path | None:
    """The local file a SQLite URL names (a relative one from the working directory, as
    SQLite opens it), or None for any other URL."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = url.database
    if database.startswith("file:"):
        database = urlsplit(database).path
    path = Path(database)
    return path if path.is_absolute() else Path.cwd() / path


def _private(path: Path, repository: Path) -> bool:
    relative = real_path(path).relative_to(real_path(repository))
    return bool(relative.parts) and relative.parts[0] in PRIVATE_ENTRIES


def parse_url(text: str) -> URL | None:
    """`text` as a SQLAlchemy URL (its ${VARIABLE}s as written), or None."""
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        return None


def _expand(text: str) -> str:
    return ENV_REFERENCE.sub(lambda match: os.environ[match["name"]], text)


def _distinct(secrets: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for s in secrets if s))


def _values(text: str) -> list[str]:
    """The values of the variables `text` refers to."""
    return [os.environ[match["name"]] for match in ENV_REFERENCE.finditer(text)]
