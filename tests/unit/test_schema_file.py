"""The committed schema/reconciler.schema.json, which editors load through the
`yaml-language-server` comment at the top of each manifest, is what `reconciler schema`
prints today; a stale copy is regenerated here and fails the run, to be reviewed and
committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.manifest import manifest_json_schema

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
