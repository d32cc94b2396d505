"""manifest/stand_in.py: a pointer, encrypted file or link that git checked out in place of
a file is named for what it is, with the step the checkout missed."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest.stand_in import stand_in, stand_in_bytes

LFS = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 1234567\n"
)


def test_an_lfs_pointer_names_the_file_size_and_the_step() -> None:
    words = stand_in_bytes(LFS)
    assert words is not None
    assert words.startswith("is a Git LFS pointer of a 1,234,567-byte file, not its content")
    assert "`git lfs pull`" in words and "lfs: true" in words
    # The same start, too long for a pointer (1024 bytes at most): a real file.
    assert stand_in_bytes(LFS + b"x" * 1024) is None


def test_encrypted_and_annexed_files_are_told_apart() -> None:
    encrypted = stand_in_bytes(b"\x00GITCRYPT\x00" + b"\x01" * 5000)
    assert encrypted is not None and "`git-crypt unlock`" in encrypted
    annexed = stand_in_bytes(b"/annex/objects/SHA256E-s10--abc.csv")
    assert annexed is not None and "`git annex get`" in annexed
    assert stand_in_bytes(b"email\na@x.io\n") is None


def test_a_link_checked_out_as_a_file_is_named_only_when_its_target_is_beside(
    tmp_path: Path,
) -> None:
    (tmp_path / "members-2024.csv").write_text("email\na@x.io\n")
    link = tmp_path / "members.csv"
    link.write_bytes(b"members-2024.csv")  # what git writes, with no line end
    words = stand_in(link)
    assert words is not None and words.startswith("is a symbolic link to members-2024.csv")
    # A one-line file naming nothing beside it, or itself, is just a file.
    link.write_bytes(b"missing.csv")
    assert stand_in(link) is None
    link.write_bytes(b"members.csv")
    assert stand_in(link) is None
    link.write_bytes(b"members-2024.csv\n")
    assert stand_in(link) is None


def test_content_read_from_a_copy_is_named_by_the_original(tmp_path: Path) -> None:
    copy = tmp_path / "snapshot.bin"
    copy.write_bytes(LFS)
    assert stand_in(tmp_path / "members.parquet", content=copy) == stand_in_bytes(LFS)
    assert stand_in(tmp_path / "absent.csv") is None
