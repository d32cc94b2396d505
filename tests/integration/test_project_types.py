"""userID-based and email-based projects, each against an emulator of that type."""

from __future__ import annotations

import pytest

from tests.integration.conftest import API_KEY_VAR, Workspace


@pytest.fixture
def typed_workspace(tmp_path, monkeypatch, fast_client, make_emulator_server):
    def make(project_type: str):
        server = make_emulator_server(project_type=project_type)
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, project_type)
        ws.destination()
        return ws, server.emulator.project("default")

    return make


def test_user_id_project_keys_and_reads_by_user_id(typed_workspace, cli):
    ws, proj = typed_workspace("userId")
    ws.audience("vip", {"inline": [{"userId": "U-1"}, {"userId": "u-1", "email": "x@y.io"}]})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (lid,) = proj.lists
    assert sorted(proj.members(lid)) == ["U-1", "u-1"]
    again = cli("plan", ws.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_email_project_members_need_an_email(typed_workspace, cli):
    ws, proj = typed_workspace("email")
    ws.audience("vip", {"inline": ["A@Example.com", {"userId": "only-id"}]})
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 1  # the userId-only member is skipped and named
    assert "email-based projects identify users by email" in result.stdout
    (lid,) = proj.lists
    assert proj.members(lid) == ["a@example.com"]
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 1  # still skipped
