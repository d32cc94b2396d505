"""A key of the wrong type: Iterable's Mobile, JavaScript and read-only keys may call only
some endpoints, and answer the others 401 BadApiKey "Disabled API key or insufficient
privileges", naming the key's type (and its last 8 characters). The message said only to
check the apiKey variable or file, and its region, of a key that Iterable knew and that
plan had just read with; it now names the key's type and says a server-side key is
needed, never showing the key or its identifier."""

from __future__ import annotations

import pytest

from tests.integration.conftest import API_KEY_VAR

KEY = "f00dfeed0123456789abcdef7a1b2c3d"


def leaks(text: str) -> list[str]:
    return [piece for piece in (KEY, KEY[-8:], KEY[:12]) if piece in text]


@pytest.mark.parametrize("key_type", ["Mobile", "JavaScript"])
def test_a_client_side_key_is_named_as_such_and_a_server_side_key_asked_for(
    workspace, cli, emulator_server, monkeypatch, key_type
):
    emulator_server.emulator.add_api_key("default", KEY, key_type)
    monkeypatch.setenv(API_KEY_VAR, KEY)
    workspace.audience("vip", {"inline": ["a@example.com"]})

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert f"a {key_type} key" in result.stderr
    assert "server-side" in result.stderr
    assert "region" not in result.stderr  # Iterable knew the key here
    assert leaks(result.output) == []


def test_a_read_only_key_plans_and_its_apply_says_why_nothing_was_written(
    workspace, cli, emulator_server, monkeypatch
):
    emulator_server.emulator.add_api_key("default", KEY, "ReadOnly")
    monkeypatch.setenv(API_KEY_VAR, KEY)
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})

    planned = cli("plan", workspace.manifests)
    applied = cli("apply", workspace.manifests, "--yes")

    assert planned.exit_code == 0, planned.output
    assert applied.exit_code == 1, applied.output
    assert "a ReadOnly key" in applied.output
    assert "server-side" in applied.output
    assert leaks(planned.output + applied.output) == []

    # With a server-side key, the next apply does it all.
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
