"""owner_only.py: reconciler's own directories are 0700 whatever the umask, and one that
exists is left as it is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler.owner_only import owner_only_directories


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_directories_are_owner_only_under_an_open_umask(tmp_path: Path) -> None:
    state = tmp_path / "a" / "b"
    runs = state / "runs"
    old = os.umask(0)
    try:
        owner_only_directories(state, runs)
    finally:
        os.umask(old)
    assert _mode(state) == 0o700 and _mode(runs) == 0o700
    # The parents above the first are the user's, made as mkdir -p makes them.
    assert _mode(tmp_path / "a") == 0o777


def test_an_existing_directory_keeps_its_mode_and_a_file_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o775)
    owner_only_directories(shared, shared / "runs")
    assert _mode(shared) == 0o775 and _mode(shared / "runs") & 0o077 == 0
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        owner_only_directories(tmp_path / "file")
