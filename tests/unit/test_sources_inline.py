"""sources/inline.py: members written in the manifest, used directly (no CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.sources import source_for
from reconciler.sources.inline import Inline
from tests.sources import RecordingReader, line_of, load_audience


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_inline_answers_every_question_from_the_manifest(tmp_path: Path) -> None:
    audience = load_audience(
        tmp_path,
        {"inline": ["Ada@Example.com", "u-7", {"email": "b@example.com", "plan": "gold"}, "x@"]},
        mapped=True,
    )
    source = source_for(audience)

    assert isinstance(source, Inline)
    assert source_for(audience) is source  # one source per audience and run
    assert (source.files(), source.digests()) == ([], [])
    assert source.columns() == ("the keys of its inline members", ["email", "userId", "plan"])
    assert source.identity_columns() == ("email", "userId")
    assert source.estimate_rows() == 4
    assert not source.scales and source.columns_at_load

    result = source.read("hybrid")
    assert sorted(result.members) == ["ada@example.com", "b@example.com", "u-7"]
    assert result.members["b@example.com"].traits == {"plan": "gold"}
    (issue,) = result.issues
    line = line_of(tmp_path / "aud.yaml", '"x@"')
    assert issue.where.startswith(f"aud.yaml:{line}:")
    assert issue.message == "invalid email"


def test_inline_members_are_never_handed_to_the_duckdb_engine(tmp_path: Path) -> None:
    source = source_for(load_audience(tmp_path, {"inline": ["a@example.com"]}))
    with pytest.raises(SourceError, match="inline members are planned in Python"):
        source.relation(RecordingReader())
