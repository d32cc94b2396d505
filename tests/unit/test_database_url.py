"""expand_url and scrub: ${VARIABLE} expansion per URL part, secrets never shown."""

from __future__ import annotations

import pytest

from reconciler.errors import ConfigError
from reconciler.sources.database_url import MASK, expand_url, scrub


def test_a_password_with_url_characters_needs_no_escaping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "p@ss:w/rd?#")
    database = expand_url("postgresql://app:${PGPASSWORD}@db.internal:5433/analytics", "m.yaml:1:1")
    url = database.url
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        "p@ss:w/rd?#",
        "db.internal",
        5433,
        "analytics",
    )
    assert database.secrets == ("p@ss:w/rd?#",)
    assert "p@ss" not in repr(database)


def test_a_whole_url_or_a_port_in_a_variable_is_expanded_as_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db/analytics")
    whole = expand_url("${DATABASE_URL}", "m.yaml:1:1")
    assert (whole.url.host, whole.url.password) == ("db", "hunter2")
    assert set(whole.secrets) == {"hunter2", "postgresql://app:hunter2@db/analytics"}

    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PW", "pw")
    parts = expand_url("postgresql://app:${PW}@db:${PGPORT}/x", "m.yaml:1:1")
    assert (parts.url.port, parts.url.password) == (6543, "pw")


def test_a_missing_variable_is_named_and_nothing_else_is_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGUSER", "someone")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError) as raised:
        expand_url("postgresql://${PGUSER}:${NOT_SET_ANYWHERE}@db/x", "m.yaml:3:8")
    assert str(raised.value) == (
        "m.yaml:3:8: environment variable NOT_SET_ANYWHERE is not set; the database URL needs it"
    )


def test_a_url_that_is_invalid_once_expanded_is_not_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "not a url with secret-value")
    with pytest.raises(ConfigError) as raised:
        expand_url("${DATABASE_URL}", "m.yaml:1:1")
    assert "secret-value" not in str(raised.value)
    assert "not a valid SQLAlchemy URL" in str(raised.value)


def test_scrub_masks_raw_and_url_encoded_forms() -> None:
    secret = "p@ss w/rd"
    text = f"raw {secret}, quoted p%40ss%20w%2Frd, plus p%40ss+w%2Frd, path p%40ss%20w/rd"
    assert scrub(text, [secret]) == f"raw {MASK}, quoted {MASK}, plus {MASK}, path {MASK}"
    assert scrub("nothing here", ["", "x-not-present"]) == "nothing here"
