"""The rows of a query several audiences share, kept for the readers after the first."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.shared_runs import SharedRun, replayed

ROWS = [[("a@example.com", "u1")], [("b@example.com", "u2")]]


class _Planted:
    """What someone who can rename entries of the temporary directory would put in place
    of the rows: unpickling it makes the directory `marker` (any call would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _recorded(run: SharedRun, read: list[list[Any]]) -> None:
    """The first audience's read: its rows, kept for the others as it takes them."""

    def consume(_names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
        read.extend(list(chunk) for chunk in chunks)

    tee = run.recording(None, consume, ["TEXT", "TEXT"], None, lambda _n, _t: None)
    tee(["email", "uid"], iter(ROWS))


def test_rows_swapped_in_the_temporary_directory_are_not_what_the_next_audience_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows were written to a file in the temporary directory and opened again by
    its path for the next audience, and unpickled: whoever could rename the private
    directory there (RECONCILER_DUCKDB_TEMP_DIR in a directory another user can write
    to) put a directory of their own in its place, whose pickle then ran their code in
    the plan, API key in its environment, and read the members' identities the first
    audience wrote after the swap. The rows are now kept in a file with no name: what
    the next audience reads is what the first wrote, whatever the directory then holds."""
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path / "scratch"))
    run = SharedRun(readers=2)
    first: list[list[Any]] = []
    _recorded(run, first)
    assert first == [list(chunk) for chunk in ROWS]
    (ours,) = (tmp_path / "scratch").iterdir()
    ours.rename(tmp_path / "moved")
    ours.mkdir()
    marker = tmp_path / "ran"
    for name in [p.name for p in (tmp_path / "moved").iterdir()] + [
        "run-all-0.pickle",
        "run-all-1.pickle",
    ]:
        (ours / name).write_bytes(pickle.dumps(_Planted(marker)))

    recorded = run.replay(None)
    assert recorded is not None
    names, types, chunks = replayed(recorded)
    assert (names, types) == (["email", "uid"], ["TEXT", "TEXT"])
    assert [list(chunk) for chunk in chunks()] == [list(chunk) for chunk in ROWS]
    assert not marker.exists()
    run.read()
    run.read()
    assert not (tmp_path / "moved").exists() or not list((tmp_path / "moved").iterdir())


def test_each_audience_after_the_first_reads_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three readers of one run: the second and third each read the rows from the start,
    # even when the second stopped partway (its rows refused at the first chunk).
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path))
    run = SharedRun(readers=3)
    _recorded(run, [])
    recorded = run.replay(None)
    assert recorded is not None
    _names, _types, partway = replayed(recorded)
    next(partway())
    for _reader in range(2):
        _names, _types, chunks = replayed(recorded)
        assert [list(chunk) for chunk in chunks()] == [list(chunk) for chunk in ROWS]
    for _reader in range(3):
        run.read()
    assert list(tmp_path.iterdir()) == []
