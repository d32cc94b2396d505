"""Helpers for member-source tests: an audience loaded from a real manifest file, and
Parquet / DuckDB files written with DuckDB itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from reconciler.manifest import Audience, load_manifests


def load_audience(
    directory: Path, members: dict[str, Any], project_type: str = "hybrid", mapped: bool = False
) -> Audience:
    """Write a destination and one audience named `aud` to `directory`/aud.yaml and load it.
    `mapped` gives the audience a trait mapping (of one constant field), under which a
    source keeps its other columns for members (Source.mapped)."""
    audience: dict[str, Any] = {"destination": "prod", "members": members}
    documents = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "prod"},
            "spec": {"region": "sandbox", "projectType": project_type},
        },
        {"apiVersion": "reconciler/v1", "kind": "Audience", "metadata": {"name": "aud"}},
    ]
    if mapped:
        audience["traits"] = "kept"
        mapping = {"fields": {"source": {"template": "reconciler"}}}
        documents.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "kept"},
                "spec": mapping,
            }
        )
    documents[1]["spec"] = audience
    path = directory / "aud.yaml"
    # JSON is YAML; one key per line so locations are distinct lines.
    path.write_text("\n---\n".join(json.dumps(d, indent=2) for d in documents), encoding="utf-8")
    return load_manifests(path).audiences["aud"]


def write_parquet(path: Path, select: str) -> Path:
    """Write the result of a DuckDB SELECT to a Parquet file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    return path


def write_duckdb(path: Path, *statements: str) -> Path:
    """Create a DuckDB database file by running `statements`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as connection:
        for statement in statements:
            connection.execute(statement)
    return path


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` containing `text`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


class RecordingReader:
    """A RelationReader (sources.base) that says which shape a source handed it."""

    def csv_file(self, source: Any) -> tuple[str, Any]:
        return "csv_file", source

    def duckdb(self, relation: Any) -> tuple[str, Any]:
        return "duckdb", relation

    def stream(self, source: Any) -> tuple[str, Any]:
        return "stream", source
