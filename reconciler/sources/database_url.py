"""Database URLs from manifests: `${VARIABLE}` expanded at run time, the password kept secret.

Manifests hold `postgresql://app:${PGPASSWORD}@db.internal/analytics`; the password is
read from the environment only when the query runs. Variables are expanded inside each
part of the parsed URL, not in the text, so a password with '@', ':' or '/' in it needs no
escaping and cannot spill into the host name of an error message. The expanded URL is never
printed, and every error that passes through `scrub` has the secrets replaced by ***.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from reconciler.errors import ConfigError
from reconciler.manifest.model import ENV_REFERENCE

MASK = "***"


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
    """Expand `${VARIABLE}` references in a database URL from the environment.

    Raises ConfigError naming the first unset variable; the message never holds a value.
    """
    for match in ENV_REFERENCE.finditer(template):
        name = match["name"]
        if name not in os.environ:
            raise ConfigError(
                f"{where}: environment variable {name} is not set; the database URL needs it"
            )
    parsed = _parse(template)
    if parsed is None or "${" in parsed.drivername:
        # The reference spans parts of the URL (`${DATABASE_URL}`, or a port): expand the
        # text, then parse it.
        url = _parse(_expand(template))
        if url is None:
            raise ConfigError(
                f"{where}: not a valid SQLAlchemy URL once its variables are expanded (the URL "
                "is not shown because it may hold a password)"
            )
        secrets = [url.password or "", *_values(template)]
        return DatabaseUrl(url, _distinct(secrets))

    password = _expand(parsed.password) if parsed.password is not None else None
    url = parsed.set(
        username=_expand(parsed.username) if parsed.username is not None else None,
        password=password,
        host=_expand(parsed.host) if parsed.host is not None else None,
        database=_expand(parsed.database) if parsed.database is not None else None,
        query={
            key: (_expand(value) if isinstance(value, str) else tuple(map(_expand, value)))
            for key, value in parsed.query.items()
        },
    )
    # A password, and anything taken from the environment into the query string (some
    # dialects carry tokens there), is secret.
    secrets = [password or "", *_values(parsed.password or "")]
    for value in parsed.query.values():
        for item in (value,) if isinstance(value, str) else value:
            secrets.extend(_values(item))
    return DatabaseUrl(url, _distinct(secrets))


def _parse(text: str) -> URL | None:
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
