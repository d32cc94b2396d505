"""sources/csv_file.py and sources/snapshot.py: a CSV file, read once per run into a
checked snapshot, used directly (no CLI)."""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import pytest

from reconciler.errors import SourceChangedError, SourceError
from reconciler.sources import snapshot as snapshots
from reconciler.sources import source_for
from reconciler.sources.csv_file import CsvFile, csv_identifier_columns
from reconciler.sources.snapshot import take_snapshot
from tests.sources import RecordingReader, load_audience

ROWS = "email,userId,plan\nAda@Example.com,,gold\n,u-2,free\nnot-an-email,,x\n"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def csv_audience(tmp_path: Path, text: str = ROWS, mapped: bool = False):  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "m.csv").write_text(text, encoding="utf-8")
    return load_audience(tmp_path, {"csv": "data/m.csv"}, mapped=mapped)


def test_csv_answers_files_columns_size_rows_and_relation(tmp_path: Path) -> None:
    source = source_for(csv_audience(tmp_path, mapped=True))

    assert isinstance(source, CsvFile)
    (file,) = source.files()
    assert (file.field, file.written, file.path) == ("csv", "data/m.csv", Path("data/m.csv"))
    assert source.digests() == [(Path("data/m.csv"), hashlib.sha256(ROWS.encode()).hexdigest())]
    assert source.columns() == ("the header of data/m.csv", ["email", "userId", "plan"])
    assert source.estimate_rows() == 3
    assert source.relation(RecordingReader()) == ("csv_file", source)

    result = source.read("hybrid")
    assert sorted(result.members) == ["ada@example.com", "u-2"]
    assert result.members["ada@example.com"].traits == {"plan": "gold"}
    assert [str(issue) for issue in result.issues] == ["data/m.csv:4: invalid email 'not-an-email'"]
    # Without a trait mapping nothing reads the other columns, so they are not kept.
    (tmp_path / "unmapped").mkdir()
    unmapped = source_for(csv_audience(tmp_path / "unmapped")).read("hybrid")
    assert unmapped.members["ada@example.com"].traits == {}


def test_a_run_plans_from_one_snapshot_whatever_happens_to_the_file_after(
    tmp_path: Path,
) -> None:
    """Issue 19.3: read once, plan from the snapshot only: the file rewritten after it
    was read changes nothing this run reads (not the rows, not the count, not the
    digest a saved plan records)."""
    audience = csv_audience(tmp_path)
    source = source_for(audience)
    first = source.read("hybrid")
    digests = source.digests()

    (tmp_path / "data" / "m.csv").write_text("email\nsomeone@example.com\n", encoding="utf-8")

    assert source_for(audience) is source
    assert sorted(source.read("hybrid").members) == sorted(first.members)
    assert source.estimate_rows() == 3
    assert source.digests() == digests
    # A new run (manifests loaded again) reads the new file.
    assert list(
        source_for(load_audience(tmp_path, {"csv": "data/m.csv"})).read("hybrid").members
    ) == ["someone@example.com"]


def rewrite_while_reading(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> None:
    """Rewrite `path` in place (same file, truncated and written again, as `>` in a shell
    does) after the reader's first chunk."""
    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 16)
    done: list[bool] = []

    def rewrite(_path: Path) -> None:
        if not done:
            done.append(True)
            path.write_text(text, encoding="utf-8")

    monkeypatch.setattr(snapshots, "_after_chunk", rewrite)


def test_a_csv_rewritten_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience = csv_audience(tmp_path, "email\n" + "".join(f"m{i}@example.com\n" for i in range(50)))
    rewrite_while_reading(monkeypatch, tmp_path / "data" / "m.csv", "email\nm0@example.com\n")
    made: list[Path] = []
    real = snapshots.tempfile.mkdtemp
    monkeypatch.setattr(
        snapshots.tempfile, "mkdtemp", lambda **kw: made.append(Path(real(**kw))) or made[-1]
    )

    with pytest.raises(SourceChangedError) as refused:
        source_for(audience).read("hybrid")

    message = str(refused.value)
    assert refused.value.exit_code == 3
    assert message.startswith("aud.yaml:")
    assert "audience 'aud': guard source_changed: data/m.csv changed while it was read" in message
    assert "nothing was planned or changed" in message
    assert made and not made[0].exists()  # the half-read copy is gone


@pytest.mark.parametrize(
    "change",
    ["same size, other content", "modification time moved"],
)
def test_snapshot_compares_size_times_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("email\nabc@example.com\n" * 20, encoding="utf-8")
    original = path.read_text(encoding="utf-8")
    stat = path.stat()

    def rewrite(_path: Path) -> None:
        if change == "same size, other content":
            path.write_text(original.replace("abc", "xyz"), encoding="utf-8")
            # Modification time put back as it was: the change time still tells.
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        else:
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 64)
    monkeypatch.setattr(snapshots, "_after_chunk", rewrite)
    with pytest.raises(SourceChangedError, match=r"m\.csv changed while it was read"):
        take_snapshot(Path("m.csv"), "aud", "aud.yaml:9:5")


def test_an_unchanged_file_passes_and_its_copy_is_private(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(ROWS, encoding="utf-8")
    taken = take_snapshot(Path("m.csv"), "aud", "aud.yaml:9:5")
    assert taken.copy.read_text(encoding="utf-8") == ROWS
    assert taken.copy.parent.stat().st_mode & 0o777 == 0o700
    assert (taken.digest, taken.size) == (hashlib.sha256(ROWS.encode()).hexdigest(), len(ROWS))
    copy = taken.copy
    del taken
    gc.collect()
    assert not copy.exists()  # removed with the snapshot


def test_missing_and_non_utf8_files_are_named_as_the_manifest_names_them(tmp_path: Path) -> None:
    audience = load_audience(tmp_path, {"csv": "nope.csv"})
    with pytest.raises(SourceError, match=r"^aud.yaml:\d+:\d+: CSV file not found: nope.csv$"):
        source_for(audience).read("hybrid")
    assert source_for(audience).columns() is None  # left to the reader at load time

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "m.csv").write_bytes(b"email\na@example.com\nb\xff@example.com\n")
    latin = load_audience(tmp_path, {"csv": "data/m.csv"})
    with pytest.raises(SourceError, match=r"data/m.csv:3:2: not UTF-8 text \(byte 0xff\)"):
        source_for(latin).read("hybrid")


def test_a_change_the_times_cannot_show_is_caught_by_the_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written just before the read began can change again within one tick of the
    file system's clock, leaving its times as they were: then only the digest tells."""
    path = tmp_path / "m.csv"
    path.write_text("email\nabc@example.com\n" * 20, encoding="utf-8")
    frozen = os.stat(path)
    monkeypatch.setattr(snapshots.os, "stat", lambda _path: frozen)
    monkeypatch.setattr(snapshots.os, "fstat", lambda _fd: frozen)
    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 64)
    monkeypatch.setattr(
        snapshots,
        "_after_chunk",
        lambda _p: path.write_text("email\nxyz@example.com\n" * 20, encoding="utf-8"),
    )
    with pytest.raises(SourceChangedError, match="its content differs from what was read"):
        take_snapshot(Path("m.csv"), "aud", "aud.yaml:9:5")


def test_a_file_at_rest_is_judged_by_its_size_and_times_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(ROWS, encoding="utf-8")
    # The read begins an hour after the file last changed.
    an_hour_later = max(path.stat().st_mtime_ns, path.stat().st_ctime_ns) + 3600 * 10**9
    monkeypatch.setattr(snapshots, "file_system_clock", lambda: an_hour_later)

    def second_read(_path: Path) -> str:
        raise AssertionError("a file at rest is not read twice")

    monkeypatch.setattr(snapshots, "file_digest", second_read)
    assert take_snapshot(Path("m.csv"), "aud", "aud.yaml:9:5").size == len(ROWS)


def test_a_snapshot_lives_as_long_as_the_loaded_manifests(tmp_path: Path) -> None:
    audience = csv_audience(tmp_path)
    copy = source_for(audience).snapshot.copy
    assert copy.exists()
    del audience
    gc.collect()
    assert not copy.exists()  # the run is over: the copy of members' data is gone


def test_snapshots_go_where_the_workspace_goes_and_say_when_they_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m.csv").write_text(ROWS, encoding="utf-8")
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path / "work"))
    assert take_snapshot(Path("m.csv"), "aud", "aud.yaml:9:5").copy.parent.parent == (
        tmp_path / "work"
    )
    (tmp_path / "file").write_text("", encoding="utf-8")
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path / "file" / "below"))
    with pytest.raises(SourceError) as failed:
        take_snapshot(Path("m.csv"), "aud", "aud.yaml:9:5")
    assert str(failed.value).startswith("aud.yaml:9:5: cannot copy m.csv into ")
    assert "RECONCILER_DUCKDB_TEMP_DIR chooses another directory" in str(failed.value)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_rows_are_counted_whatever_ends_the_lines(tmp_path: Path, newline: str) -> None:
    """The count chooses the engine: a file whose lines end in \\r alone (Excel for Mac's
    "CSV (Macintosh)") counted 0 rows at any size, so it was always planned in Python."""
    text = newline.join(["email", "a@x.com", "b@x.com", "c@x.com"]) + newline
    source = source_for(csv_audience(tmp_path, text))

    assert source.estimate_rows() == 3
    assert sorted(source.read("hybrid").members) == ["a@x.com", "b@x.com", "c@x.com"]


@pytest.mark.parametrize("chunk", [3, 4, 5, 1 << 20])
def test_a_copy_whose_lines_end_both_ways_is_given_to_duckdb_with_one_line_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Snapshot.one_line_end, read in chunks that split a \\r\\n as often as not."""
    monkeypatch.setattr(snapshots, "CHUNK_BYTES", chunk)
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"email\r\na@x.com\nb@x.com\r\n\r\nc@x.com\n")
    one = take_snapshot(mixed, "aud", "aud.yaml:1:1")
    assert one.one_line_end != one.copy
    assert one.one_line_end.read_bytes() == b"email\na@x.com\nb@x.com\n\nc@x.com\n"
    assert one.shown(f"error in {one.one_line_end}") == f"error in {mixed}"
    # A lone \r (classic Mac OS) beside the others ends a line too; line ends inside a
    # quoted cell are the cell's, kept as the Python engine reads them.
    mixed.write_bytes(b'email,c\ra@x.com,"1\r\n2\r3"\r\nb@x.com,""""\rc@x.com,\n\r')
    one = take_snapshot(mixed, "aud", "aud.yaml:1:1")
    assert one.one_line_end.read_bytes() == (
        b'email,c\na@x.com,"1\r\n2\r3"\nb@x.com,""""\nc@x.com,\n\n'
    )
    # A file whose lines all end alike is read as it is.
    for alike in (b"email\r\na@x.com\r\n", b"email\na@x.com\n", b"email\ra@x.com\r"):
        mixed.write_bytes(alike)
        snapshot = take_snapshot(mixed, "aud", "aud.yaml:1:1")
        assert snapshot.one_line_end == snapshot.copy


def test_a_very_long_column_name_is_quoted_cut_with_its_length(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "m.csv").write_text(ROWS, encoding="utf-8")
    long = "e" * 70_000
    audience = load_audience(tmp_path, {"csv": "data/m.csv", "email": long})
    with pytest.raises(SourceError) as raised:
        csv_identifier_columns(audience, Path("data/m.csv"), ["email", "userId", "plan"])
    message = str(raised.value)
    assert f"column '{'e' * 300}...' (70,000 characters) is not in the header" in message
    assert len(message) < 600, message[:400]


def test_a_python_without_copy_file_range_copies_the_file_through_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.copy_file_range is Linux's alone: macOS's Python has no such name, and every
    # CSV or Parquet source ended there in 'internal error: AttributeError'.
    monkeypatch.delattr(os, "copy_file_range")
    source = source_for(csv_audience(tmp_path))

    result = source.read("hybrid")

    assert sorted(result.members) == ["ada@example.com", "u-2"]
    assert source.digests() == [(Path("data/m.csv"), hashlib.sha256(ROWS.encode()).hexdigest())]


@pytest.mark.parametrize("header", ["PAR1", "BZh", "PK"])
def test_a_header_spelt_like_a_binary_formats_signature_is_still_a_csv(
    tmp_path: Path, header: str
) -> None:
    # Compressed files and workbooks are told by their first bytes (sources/not_text.py);
    # two of those signatures are text, which a header may start with, and are only taken
    # beside a control character no CSV holds.
    source = source_for(csv_audience(tmp_path, f"{header},email\nx,a@x.com\n"))
    assert sorted(source.read("email").members) == ["a@x.com"]
