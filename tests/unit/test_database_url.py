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


@pytest.mark.parametrize(
    "template",
    [
        "${DATABASE_URL}",
        "postgresql://app:${PW}@${PW}.example.com/x",
        "postgresql://app:${PW}@db:${PW}/x",
        "postgresql://app:${PW}@db/${PW}",
        "postgresql://app:${PW}@db/x?sslmode=${PW}",
        "postgresql+${PW}://app@db/x",
    ],
)
def test_a_variable_outside_the_user_name_and_password_is_refused(
    monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.setenv("PW", "secret-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:secret-value@db/x")
    with pytest.raises(ConfigError) as raised:
        expand_url(template, "m.yaml:4:8")
    assert str(raised.value).startswith("m.yaml:4:8: ")
    assert "secret-value" not in str(raised.value)


def test_the_user_name_may_come_from_the_environment_and_is_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGUSER", "svc-user")
    monkeypatch.setenv("PW", "pw")
    database = expand_url("postgresql://${PGUSER}:${PW}@db/x", "m.yaml:1:1")
    assert (database.url.username, database.url.password) == ("svc-user", "pw")
    assert (
        database.scrub('role "svc-user" failed, password pw') == 'role "***" failed, password ***'
    )


@pytest.mark.parametrize(
    "name",
    [
        "ITERABLE_API_KEY",
        "ITERABLE_EU_KEY",
        "GITHUB_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "AWS_SESSION_TOKEN",
        "RECONCILER_ALERT_WEBHOOK_URL",
    ],
)
def test_api_key_and_ci_credential_variables_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "key-value-123")
    with pytest.raises(ConfigError) as raised:
        expand_url(f"postgresql://app:${{{name}}}@db/x", "m.yaml:2:3")
    assert str(raised.value).startswith(f"m.yaml:2:3: ${{{name}}} is refused")
    assert "key-value-123" not in str(raised.value)


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


def test_a_variable_set_in_another_case_is_named_and_its_value_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ${pgpassword} finds PGPASSWORD on Windows alone; elsewhere it is another variable.
    monkeypatch.setenv("PGPASSWORD", "pw-value-123")
    monkeypatch.delenv("pgpassword", raising=False)
    with pytest.raises(ConfigError) as raised:
        expand_url("postgresql://app:${pgpassword}@db/x", "m.yaml:3:8")
    assert str(raised.value).startswith(
        "m.yaml:3:8: environment variable pgpassword is not set (PGPASSWORD is set: "
    )
    assert "pw-value-123" not in str(raised.value)


def test_scrub_masks_raw_and_url_encoded_forms() -> None:
    secret = "p@ss w/rd"
    text = f"raw {secret}, quoted p%40ss%20w%2Frd, plus p%40ss+w%2Frd, path p%40ss%20w/rd"
    assert scrub(text, [secret]) == f"raw {MASK}, quoted {MASK}, plus {MASK}, path {MASK}"
    assert scrub("nothing here", ["", "x-not-present"]) == "nothing here"
