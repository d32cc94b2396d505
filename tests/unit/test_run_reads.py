"""Which repository files a run's manifests read (reconciler.github.run_reads), as
`github check-current` counts a newer change to them: named files by their repository
names, and where that cannot be known, anything but Markdown and the workflows."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.github.run_reads import RunReads, run_reads, unrelated


def _checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: dict) -> Path:
    """test_github_message's checkout: manifests/ and data/, the working directory."""
    from tests.unit.test_github_message import _repository

    return _repository(tmp_path, monkeypatch, members)


def test_a_csv_outside_the_manifests_is_named_as_the_repository_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _checkout(tmp_path, monkeypatch, {"csv": "../data/members.csv", "email": "email"})

    reads = run_reads("manifests")

    assert reads.files == frozenset({"data/members.csv"})
    assert reads.anything == ""
    assert reads.counts("data/members.csv") and not reads.counts("data/other.csv")


def test_a_query_or_manifests_that_cannot_be_read_count_any_file_but_text_and_workflows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = {"sql": "SELECT * FROM read_csv('data/*.csv')", "database": ":memory:"}
    repo = _checkout(tmp_path, monkeypatch, members)

    query = run_reads("manifests")
    missing = run_reads("elsewhere")
    (repo / "manifests" / "vip.yaml").write_text("kind: [unclosed\n")
    broken = run_reads("manifests")

    assert "the query of audience 'vip'" in query.anything
    assert "is not in the working directory" in missing.anything
    assert "do not load" in broken.anything
    for reads in (query, missing, broken):
        assert reads.counts("data/anything.parquet")
        assert not reads.counts("docs/README.md") and not reads.counts(".github/workflows/a.yml")


def test_markdown_and_workflows_are_unrelated_and_nothing_else_is() -> None:
    assert unrelated("README.md") and unrelated("docs/Notes.MD")
    assert unrelated(".github/workflows/apply.yml")
    assert not unrelated("data/members.csv") and not unrelated("github/x.csv")
    assert not RunReads(frozenset()).counts("data/members.csv")
