"""The conftest guard against symbolic links a test leaves where later tests on its worker
trip on them (tests/conftest.py): which links it names."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import _links_out


def test_a_link_out_or_to_a_directory_not_below_its_own_is_named(tmp_path: Path) -> None:
    base = tmp_path / "base"
    tree = base / "test_one0"
    (tree / "outside").mkdir(parents=True)
    (tree / "repo/.github/actions").mkdir(parents=True)
    (tree / "data/2024").mkdir(parents=True)
    (tree / "data/2024/m.csv").write_text("email\n")
    # The link that failed 28 later tests on its worker: to a directory beside its own.
    (tree / "repo/.github/actions/linked").symlink_to(tree / "outside")
    (tree / "data/etc").symlink_to("/etc")  # out of the base directory
    (tree / "data/current").symlink_to("2024")  # a directory below its own: fine
    (tree / "data/m.csv").symlink_to("2024/m.csv")  # a file within: fine
    try:
        named = _links_out(tree, base)
    finally:  # the guard names them in this test's tmp_path too
        (tree / "repo/.github/actions/linked").unlink()
        (tree / "data/etc").unlink()
    assert sorted(line.split(" -> ")[0] for line in named) == [
        str(tree / "data/etc"),
        str(tree / "repo/.github/actions/linked"),
    ]
