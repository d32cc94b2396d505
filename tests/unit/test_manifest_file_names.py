"""Member source paths as they land on disk (manifest/file_names.py, the loader): a path
spelt as only macOS or Windows reads it (another case, backslashes) is a problem on every
machine, naming the spelling that works in CI; a name in another Unicode form is the file
the directory lists; a link says where it leads."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest.file_names import BACKSLASH, CASE, TRAILING, Spelling, on_disk
from reconciler.sources import source_for
from tests.sources import load_audience, write_parquet


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def members_file(tmp_path: Path, name: str = "members.csv") -> Path:
    path = tmp_path / "data" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("email\na@x.com\n", encoding="utf-8")
    return path


def load_problem(tmp_path: Path, members: dict[str, str]) -> str:
    with pytest.raises(ManifestError) as raised:
        load_audience(tmp_path, members)
    (problem,) = raised.value.problems
    return str(problem)


@pytest.mark.parametrize(
    ("written", "reasons"),
    [
        ("data/Members.csv", (CASE,)),  # a macOS user's spelling: opens there, not in CI
        ("DATA/members.csv", (CASE,)),
        ("data\\members.csv", (BACKSLASH,)),  # a Windows user's
        ("Data\\Members.CSV", (BACKSLASH, CASE)),
        ("data/members.csv ", (TRAILING,)),  # Windows drops the space, Linux keeps it
    ],
)
def test_a_csv_path_spelt_as_only_macos_or_windows_read_it_is_a_problem_naming_the_file(
    tmp_path: Path, written: str, reasons: tuple[str, ...]
) -> None:
    """Before, Linux said "CSV file not found: manifests/data/Members.csv" (and macOS
    nothing at all), leaving the reader to spot one letter's case."""
    members_file(tmp_path)

    problem = load_problem(tmp_path, {"csv": written})

    assert problem.startswith("aud.yaml:")  # at the line that names the file
    assert f"members.csv: {written} is not how the file is spelt: it is data/members.csv (" in (
        problem
    )
    assert all(reason in problem for reason in reasons)


def test_parquet_and_database_paths_are_checked_alike(tmp_path: Path) -> None:
    write_parquet(tmp_path / "data" / "m.parquet", "SELECT 'a@x.com' AS email")

    assert "it is data/m.parquet (the name differs in case" in load_problem(
        tmp_path, {"parquet": "data/M.parquet"}
    )
    assert "it is data/m.parquet (directories are separated by /" in load_problem(
        tmp_path, {"sql": "SELECT * FROM users", "database": "data\\m.parquet"}
    )


def test_a_name_in_another_unicode_form_reads_the_file_the_directory_lists(
    tmp_path: Path,
) -> None:
    """Git on macOS records `é` composed; a manifest with it decomposed (pasted from
    Finder) opened the file on the Mac and was "not found" in CI."""
    composed = unicodedata.normalize("NFC", "café members.csv")
    members_file(tmp_path, composed)
    decomposed = unicodedata.normalize("NFD", f"data/{composed}")
    assert decomposed != f"data/{composed}"

    source = source_for(load_audience(tmp_path, {"csv": decomposed}))

    assert list(source.read("hybrid").members) == ["a@x.com"]
    assert source.files()[0].path == Path("data", composed)


def test_on_disk_follows_the_path_part_by_part(tmp_path: Path) -> None:
    members_file(tmp_path)

    assert on_disk(tmp_path, "data/members.csv") == Spelling("data/members.csv")
    assert on_disk(tmp_path, "./data//members.csv") == Spelling("data/members.csv")
    assert on_disk(tmp_path / "data", "../data/members.csv") == Spelling("../data/members.csv")
    assert on_disk(tmp_path, f"{tmp_path}/data/Members.csv") == Spelling(
        f"{tmp_path}/data/members.csv", (CASE,)
    )
    assert on_disk(tmp_path, "data/missing.csv") is None  # left to the reader's "not found"
    # Two names that differ only in case: which one was meant is not guessed.
    (tmp_path / "data" / "MEMBERS.csv").write_text("email\n", encoding="utf-8")
    assert on_disk(tmp_path, "data/Members.csv") is None


def test_a_source_that_is_a_link_says_where_it_leads(tmp_path: Path) -> None:
    """A dangling link was "CSV file not found: data/m.csv" beside an `ls` that lists it;
    a git-annex file (a link into .git/annex) was "in the repository's .git", a place the
    path does not show."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "m.csv").symlink_to("exported.csv")
    annexed = "../.git/annex/objects/Xx/Yy/SHA256E-s42--0a1b.csv/SHA256E-s42--0a1b.csv"
    (tmp_path / "data" / "annexed.csv").symlink_to(annexed)

    assert load_problem(tmp_path, {"csv": "data/m.csv"}).endswith(
        "members.csv: data/m.csv is a symbolic link to exported.csv, which does not exist"
    )
    assert "data/annexed.csv is in the repository's .git (a git-annex link to its content " in (
        load_problem(tmp_path, {"csv": "data/annexed.csv"})
    )


_DESTINATION = (
    "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: prod}\n"
    "spec: {region: sandbox, projectType: hybrid}\n"
)


def _audience(name: str) -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: {name}}}\n"
        "spec: {destination: prod, members: {inline: [a@x.com]}}\n"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("vip.yaml", "Vip.yaml"),
        ("teams/growth.yaml", "Teams/growth.yaml"),
        # macOS matches the Unicode forms of a name too (é composed or decomposed).
        (unicodedata.normalize("NFC", "café.yaml"), unicodedata.normalize("NFD", "Café.yaml")),
    ],
)
def test_manifest_files_whose_paths_differ_only_in_case_are_a_problem(
    tmp_path: Path, first: str, second: str
) -> None:
    """A checkout on macOS or Windows keeps one of the two: a plan there went without the
    other's audiences (and an apply with prune deleted their lists), while Linux planned
    both without a word."""
    from reconciler.manifest.loader import load_manifests

    root = tmp_path / "manifests"
    root.mkdir()
    (root / "destination.yaml").write_text(_DESTINATION, encoding="utf-8")
    for index, name in enumerate((first, second)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(_audience(f"aud{index}"), encoding="utf-8")

    with pytest.raises(ManifestError) as raised:
        load_manifests(root)

    (problem,) = raised.value.problems
    shown = sorted([first, second])
    assert str(problem).startswith(f"manifests/{shown[1]}:")
    assert f"manifests/{shown[0]}" in str(problem)
    assert "differ only in case" in str(problem) and "macOS and Windows" in str(problem)


def test_member_files_whose_paths_differ_only_in_case_are_a_problem(tmp_path: Path) -> None:
    """Two audiences reading data/vip.csv and data/VIP.csv planned on Linux without a
    word; a checkout on macOS or Windows keeps one of the two files, and there the other
    audience's path is refused as another spelling of it."""
    from reconciler.manifest.loader import load_manifests

    root = tmp_path / "manifests"
    (root / "data").mkdir(parents=True)
    (root / "destination.yaml").write_text(_DESTINATION, encoding="utf-8")
    for index, name in enumerate(("vip.csv", "VIP.csv")):
        (root / "data" / name).write_text(f"email\nm{index}@x.com\n", encoding="utf-8")
        (root / f"aud{index}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: aud{index}}}\n"
            f"spec: {{destination: prod, members: {{csv: data/{name}}}}}\n",
            encoding="utf-8",
        )
    # The same file read by two audiences is no problem.
    (root / "aud2.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: aud2}\n"
        "spec: {destination: prod, members: {csv: ./data/vip.csv}}\n",
        encoding="utf-8",
    )

    with pytest.raises(ManifestError) as raised:
        load_manifests(root)

    (problem,) = raised.value.problems
    assert str(problem).startswith("manifests/aud1.yaml:4:")
    assert (
        "members.csv: manifests/data/VIP.csv and manifests/data/vip.csv (audience 'aud0', "
        "manifests/aud0.yaml:4:"
    ) in str(problem)
    assert "differ only in case" in str(problem)


def test_one_member_file_written_in_two_unicode_forms_is_one_file(tmp_path: Path) -> None:
    from reconciler.manifest.loader import load_manifests

    root = tmp_path / "manifests"
    (root / "data").mkdir(parents=True)
    (root / "destination.yaml").write_text(_DESTINATION, encoding="utf-8")
    (root / "data" / unicodedata.normalize("NFC", "café.csv")).write_text("email\na@x.com\n")
    for index, form in enumerate(("NFC", "NFD")):
        written = unicodedata.normalize(form, "data/café.csv")
        (root / f"aud{index}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: aud{index}}}\n"
            f"spec: {{destination: prod, members: {{csv: {written}}}}}\n",
            encoding="utf-8",
        )

    assert sorted(load_manifests(root).audiences) == ["aud0", "aud1"]
