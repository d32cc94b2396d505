"""The committed schema/reconciler.schema.json, which editors load through the
`yaml-language-server` comment at the top of each manifest, is what `reconciler schema`
prints today; a stale copy is regenerated here and fails the run, to be reviewed and
committed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.manifest import load_manifests, manifest_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "reconciler.schema.json"
MODELINE = "# yaml-language-server: $schema="


def fresh_schema() -> str:
    return json.dumps(manifest_json_schema(), indent=2) + "\n"


def test_committed_schema_is_current():
    fresh = fresh_schema()
    if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text(encoding="utf-8") != fresh:
        SCHEMA_FILE.parent.mkdir(exist_ok=True)
        SCHEMA_FILE.write_text(fresh, encoding="utf-8")
        pytest.fail(
            f"{SCHEMA_FILE.relative_to(ROOT)} was stale and has been regenerated from the "
            "manifest models (`reconciler schema`); review the change and commit it"
        )


def test_schema_command_prints_the_committed_schema():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == fresh_schema()


@pytest.mark.parametrize("manifest", sorted((ROOT / "manifests").glob("*.yaml")), ids=str)
def test_example_manifests_name_the_schema_and_satisfy_it(manifest: Path):
    first_line = manifest.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(MODELINE)
    # yaml-language-server resolves a relative schema path from the manifest's directory.
    schema_path = (manifest.parent / first_line.removeprefix(MODELINE)).resolve()
    assert schema_path == SCHEMA_FILE
    validator = Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))
    documents = [d for d in YAML(typ="safe").load_all(manifest.read_text()) if d]
    assert documents
    for document in documents:
        assert list(validator.iter_errors(document)) == []


def _repository_with_schema(tmp_path: Path, schema: dict | None, modeline: str) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "sandbox.yaml").write_text(
        f"{modeline}\n"
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: hybrid}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: vip}\n"
        "spec: {destination: sandbox, members: {inline: [ada@example.com]}}\n",
        encoding="utf-8",
    )
    if schema is not None:
        (tmp_path / "schema").mkdir()
        (tmp_path / "schema" / "reconciler.schema.json").write_text(json.dumps(schema))
    return manifests


def test_a_schema_saved_by_another_reconciler_is_warned_of_naming_the_comment(tmp_path):
    # What an older reconciler saved: a schema without a key this one accepts, so the
    # editor marks that key as an error after the upgrade.
    older = manifest_json_schema()
    del older["$defs"]["AudienceSpec"]["properties"]["listName"]
    manifests = _repository_with_schema(
        tmp_path, older, f"# a note\n{MODELINE}../schema/reconciler.schema.json"
    )

    [warning] = load_manifests(manifests).warnings

    assert (warning.file.endswith("sandbox.yaml"), warning.line, warning.column) == (True, 2, 1)
    assert "is not this reconciler's schema" in warning.message
    assert warning.message.endswith(
        f"save it again with: reconciler schema > {tmp_path / 'schema' / 'reconciler.schema.json'}"
    )


@pytest.mark.parametrize(
    ("schema", "reference"),
    [
        ("current", "../schema/reconciler.schema.json"),
        (None, "../schema/reconciler.schema.json"),  # not saved: the editor says so
        ("older", "https://example.com/reconciler.schema.json"),  # not ours to judge
    ],
)
def test_a_current_missing_or_remote_schema_is_not_warned_of(tmp_path, schema, reference):
    saved = {"current": manifest_json_schema(), "older": {"$defs": {}}, None: None}[schema]
    manifests = _repository_with_schema(tmp_path, saved, f"{MODELINE}{reference}")
    assert load_manifests(manifests).warnings == ()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_schema_comment_naming_a_fifo_or_a_file_outside_the_repository_reads_neither(
    tmp_path,
):
    # Manifests are untrusted: a FIFO would hang the read, and a file elsewhere on the
    # machine is none of reconciler's business (whether it differs would be told).
    repository = tmp_path / "repo"
    (repository / ".git").mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_text("{}")
    for reference in ("../schema/fifo.json", "../../../elsewhere.json", "/dev/zero"):
        work = repository / reference.replace("/", "_").strip("._")
        work.mkdir()
        manifests = _repository_with_schema(work, None, f"{MODELINE}{reference}")
        (work / "schema").mkdir()
        os.mkfifo(work / "schema" / "fifo.json")
        assert load_manifests(manifests).warnings == ()
