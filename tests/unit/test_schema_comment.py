"""A saved schema another reconciler made (reconciler.manifest.schema_comment): judged by
its content, named at the manifest line whose schema comment points at it, once."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.manifest.schema import manifest_json_schema
from reconciler.manifest.schema_comment import stale_schema_warnings


def _manifest(repo: Path, name: str, reference: str) -> Path:
    path = repo / "manifests" / name
    path.write_text(f"# a note\n  # yaml-language-server: $schema={reference}\nkind: Audience\n")
    return path


def test_a_stale_saved_schema_is_named_once_at_the_comment_and_a_current_one_not_at_all(
    tmp_path: Path,
) -> None:
    repo = tmp_path
    (repo / "manifests").mkdir()
    (repo / "schema").mkdir()
    old = manifest_json_schema()
    old["properties"] = {}  # as an older reconciler's, with other rules
    (repo / "schema" / "old.json").write_text(json.dumps(old))
    # Formatting is not content: the current schema saved by another tool's layout passes.
    (repo / "schema" / "new.json").write_text(json.dumps(manifest_json_schema(), indent=7))
    files = [
        _manifest(repo, "a.yaml", "../schema/old.json"),
        _manifest(repo, "b.yaml", "../schema/old.json"),
        _manifest(repo, "c.yaml", "../schema/new.json"),
        _manifest(repo, "d.yaml", "https://example.com/schema.json"),
    ]

    warnings = stale_schema_warnings(files, repo, lambda p: p.relative_to(repo).as_posix())

    assert [(w.file, w.line, w.column) for w in warnings] == [("manifests/a.yaml", 2, 3)]
    assert "names schema/old.json, which is not this reconciler's schema" in warnings[0].message
    assert "reconciler schema > schema/old.json" in warnings[0].message
