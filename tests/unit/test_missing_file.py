"""missing_file_hint: what a member source's path that names no file was likely meant to
be (validate's and plan's messages are shown in test_bad_input.py)."""

from __future__ import annotations

from pathlib import Path

from reconciler.sources.missing_file import missing_file_hint


def test_a_path_from_the_top_a_near_miss_and_nothing_likely(tmp_path: Path) -> None:
    base = tmp_path / "manifests" / "teams"
    (base / "data").mkdir(parents=True)
    (base / "data" / "gold.csv").write_text("email\n")
    (tmp_path / "shared.csv").write_text("email\n")
    # From the repository's top: the path to write from the manifest's directory, `..`
    # and all.
    assert missing_file_hint("shared.csv", base, tmp_path).endswith(
        "write ../../shared.csv for the file shared.csv)"
    )
    assert missing_file_hint("data/glod.csv", base, tmp_path) == " (did you mean data/gold.csv?)"
    assert missing_file_hint("data/members.csv", base, tmp_path) == ""
    assert missing_file_hint("nowhere/x.csv", base, tmp_path) == ""  # no such directory
    assert missing_file_hint(str(tmp_path / "gone.csv"), base, tmp_path) == ""


def test_no_file_outside_the_repository_is_looked_for(tmp_path: Path) -> None:
    """A manifest's path that climbs out from the repository's top (`../secret.csv`, which
    from manifests/ is a file inside) must not tell whether a file exists outside it."""
    repository = tmp_path / "repo"
    base = repository / "manifests"
    base.mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("email\n")
    assert missing_file_hint("../secret.csv", base, repository) == ""


def test_a_file_of_that_name_one_folder_below_is_named(tmp_path: Path) -> None:
    """`csv: x.csv` where the file is `data/x.csv` beside the manifest said only that it
    was not found, where a path written from the repository's top got a hint."""
    base = tmp_path / "manifests"
    (base / "data").mkdir(parents=True)
    (base / "data" / "vip.csv").write_text("email\n")
    assert missing_file_hint("vip.csv", base, tmp_path) == " (did you mean data/vip.csv?)"
    (base / "teams" / "old").mkdir(parents=True)
    (base / "teams" / "old" / "gold.csv").write_text("email\n")
    assert missing_file_hint("teams/gold.csv", base, tmp_path) == (
        " (did you mean teams/old/gold.csv?)"
    )
    (base / "archive").mkdir()
    (base / "archive" / "vip.csv").write_text("email\n")
    assert missing_file_hint("vip.csv", base, tmp_path) == (
        " (did you mean archive/vip.csv or data/vip.csv?)"
    )
    assert missing_file_hint("nobody.csv", base, tmp_path) == ""


def test_no_file_one_folder_below_outside_the_repository_is_named(tmp_path: Path) -> None:
    """`../x.csv` from a manifest at the repository's top names a folder outside it: its
    subfolders are not looked in."""
    repository = tmp_path / "repo"
    base = repository / "manifests"
    base.mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.csv").write_text("email\n")
    assert missing_file_hint("../../secret.csv", base, repository) == ""
