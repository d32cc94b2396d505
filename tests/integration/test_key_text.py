"""API keys as people hold them: in quotes, as a .env line, on two lines. Each was sent as
it stood (Iterable answering 401 "check the destination's apiKey variable or file", where
the key looked right) or refused as having "spaces"; each is now refused before any
request, saying what the text holds and what to write, never showing the key."""

from __future__ import annotations

import pytest

from tests.integration.conftest import API_KEY_VAR

KEY = "0123456789abcdef0123456789abcdef"

WRITTEN = {
    "double-quoted": (f'"{KEY}"', "is in quotes"),
    "single-quoted": (f"'{KEY}'", "is in quotes"),
    "dotenv line": (f"ITERABLE_API_KEY={KEY}", "is a line of a .env file"),
    "dotenv line quoted": (f'ITERABLE_API_KEY="{KEY}"', "is a line of a .env file"),
    "exported": (f"export ITERABLE_API_KEY={KEY}", "is a line of a .env file"),
    "two lines": (f"{KEY}\n{KEY}", "has 2 lines"),
    "a comment above": (f"# prod key\n{KEY}", "has 2 lines"),
}


@pytest.mark.parametrize("where", ["env", "file"])
@pytest.mark.parametrize("written", sorted(WRITTEN))
def test_a_key_written_as_people_write_it_is_refused_before_any_request(
    workspace, cli, emulator_server, monkeypatch, where, written
):
    text, said = WRITTEN[written]
    emulator_server.emulator.set_api_key("default", KEY)
    if where == "env":
        monkeypatch.setenv(API_KEY_VAR, text + "\n")
    else:
        workspace.write("key.txt", text + "\r\n")
        workspace.destination(apiKey={"file": "key.txt"})  # type: ignore[arg-type]
    workspace.audience("vip", {"inline": ["a@example.com"]})
    emulator_server.emulator.clear_log()

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert said in result.stderr
    assert "dest-prod.yaml:" in result.stderr  # the line naming the variable or file
    assert "Iterable rejected" not in result.output
    assert emulator_server.emulator.request_log == []  # nothing was sent
    for piece in (KEY, KEY[:12], KEY[-8:]):
        assert piece not in result.output


def test_a_key_with_spaces_around_it_is_still_read(workspace, cli, emulator_server, monkeypatch):
    emulator_server.emulator.set_api_key("default", KEY)
    monkeypatch.setenv(API_KEY_VAR, f"  {KEY} \r\n")
    workspace.audience("vip", {"inline": ["a@example.com"]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 0, result.output


def test_an_empty_key_in_github_actions_says_the_secret_is_missing(
    workspace, cli, emulator_server, monkeypatch
):
    """`ITERABLE_API_KEY: ${{ secrets.ITERABLE_API_KEY }}` with no such secret (a new
    repository, a secret kept in an environment the job does not name, a fork's pull
    request) sets the variable empty: 'is empty; ... in CI, from a secret' left the user
    looking for what emptied it. In GitHub Actions the message now says what does."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv(API_KEY_VAR, "")
    workspace.audience("vip", {"inline": ["a@example.com"]})
    emulator_server.emulator.clear_log()

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert f"environment variable {API_KEY_VAR} is empty" in result.stderr
    assert "a secret that is not set" in result.stderr
    assert "forks" in result.stderr
    assert emulator_server.emulator.request_log == []

    monkeypatch.delenv("GITHUB_ACTIONS")
    local = cli("plan", workspace.manifests)
    assert "a secret that is not set" not in local.stderr


def test_a_key_read_into_a_variable_from_a_file_with_a_byte_order_mark_is_read(
    workspace, cli, emulator_server, monkeypatch
):
    """`export ITERABLE_API_KEY=$(cat key.txt)` of a key file Notepad saved "UTF-8 with
    BOM" (which apiKey: {file: key.txt} reads) put U+FEFF before the key, refused as
    'characters an API key cannot have'."""
    emulator_server.emulator.set_api_key("default", KEY)
    monkeypatch.setenv(API_KEY_VAR, "\ufeff" + KEY + "\r")
    workspace.audience("vip", {"inline": ["a@example.com"]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 0, result.output
