"""Issue 19.3: a source that changes while it is read is refused, through the CLI against
the emulator. A CSV rewritten in place during an apply gave the reader the first part of
the old file and an unfinished new one: the plan unsubscribed everyone in the missing
tail, under the removal limit, and the apply exited 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources import snapshot
from tests.integration.test_safety import emails, list_named, project, seed_list, writes

MEMBERS = emails(400)


def half_rewritten(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """After the reader's first chunk, `path` is truncated and rewritten in place, as an
    export job writing straight to it does, and read while the job has written 96% of it."""
    whole = path.read_bytes()
    monkeypatch.setattr(snapshot, "CHUNK_BYTES", 1024)
    calls: list[Path] = []

    def rewrite(read: Path) -> None:
        calls.append(read)
        if len(calls) == 1:
            path.write_bytes(whole[: len(whole) * 96 // 100])

    monkeypatch.setattr(snapshot, "_after_chunk", rewrite)


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_csv_rewritten_while_apply_reads_it_is_refused_with_zero_writes(
    workspace, cli, emulator_server, monkeypatch, engine
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    seed_list(emulator_server, "vip", MEMBERS)
    source = workspace.csv("data/vip.csv", "email", MEMBERS)
    workspace.audience("vip", {"csv": "data/vip.csv"})
    # Unchanged, the source matches the list: nothing to do.
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
    before = len(writes(emulator_server))

    half_rewritten(monkeypatch, source)
    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 3, result.output
    assert "guard source_changed" in result.stderr
    assert "audience 'vip'" in result.stderr
    assert "manifests/data/vip.csv changed while it was read" in result.stderr
    assert "nothing was planned or changed" in result.stderr
    assert len(writes(emulator_server)) == before
    assert sorted(
        project(emulator_server).members(list_named(emulator_server, "vip").id)
    ) == sorted(MEMBERS)


def test_plan_refuses_it_too_and_says_so_in_json(workspace, cli, emulator_server, monkeypatch):
    seed_list(emulator_server, "vip", MEMBERS)
    source = workspace.csv("data/vip.csv", "email", MEMBERS)
    workspace.audience("vip", {"csv": "data/vip.csv"})
    half_rewritten(monkeypatch, source)

    result = cli("plan", workspace.manifests, "--format", "json")

    assert result.exit_code == 3, result.output
    body = result.json()
    assert body["exit_code"] == 3
    assert "guard source_changed" in body["error"] and "vip.csv" in body["error"]


def test_status_refuses_it_too_with_the_exit_code_its_help_gives(
    workspace, cli, emulator_server, monkeypatch
):
    """status is a plan summarised: the guard stops it with 3, which its --help must name
    (it listed 0, 1 and 130 only)."""
    seed_list(emulator_server, "vip", MEMBERS)
    source = workspace.csv("data/vip.csv", "email", MEMBERS)
    workspace.audience("vip", {"csv": "data/vip.csv"})
    half_rewritten(monkeypatch, source)

    result = cli("status", workspace.manifests)

    assert result.exit_code == 3, result.output
    assert "guard source_changed" in result.stderr
    shown = " ".join(cli("status", "--help").output.split())
    assert "3 a source file changed while it was read" in shown


def test_the_run_record_of_an_apply_it_stops_says_blocked_as_its_exit_code_does(
    workspace, cli, emulator_server, monkeypatch, tmp_path
):
    """The README's outcome table: `blocked` is exit 3, `error` exit 1. The guard exits 3
    (and alerts as blocked) but its run record said `error`."""
    import json

    seed_list(emulator_server, "vip", MEMBERS)
    source = workspace.csv("data/vip.csv", "email", MEMBERS)
    workspace.audience("vip", {"csv": "data/vip.csv"})
    half_rewritten(monkeypatch, source)
    record = tmp_path / "run.json"

    result = cli("apply", workspace.manifests, "--yes", "--summary-json", record)

    assert result.exit_code == 3, result.output
    body = json.loads(record.read_text())
    assert body["outcome"] == "blocked", body
    assert "guard source_changed" in body["message"]
