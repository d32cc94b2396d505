"""manifest/yaml_readings.py: how a value is written in the file (bare, quoted, a date as
typed), and which bare values YAML 1.1 tools read otherwise than reconciler's YAML 1.2."""

from __future__ import annotations

import datetime
from pathlib import Path

from reconciler.manifest.location import Location
from reconciler.manifest.yaml_readings import TextLines, read_as_other_than_text, yaml_1_1_tag


def test_yaml_1_1_reads_words_and_sexagesimals_as_other_than_text() -> None:
    for word in ("yes", "No", "on", "OFF", "y", "n"):
        assert yaml_1_1_tag(word) == "tag:yaml.org,2002:bool", word
    assert yaml_1_1_tag("12:30:00") == "tag:yaml.org,2002:int"  # 45000 in base 60
    assert read_as_other_than_text("0x1F") and read_as_other_than_text("~")
    for text in ("gold", "yes please", "1.2.3", "vip#1"):
        assert not read_as_other_than_text(text), text


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "audiences.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_bare_values_are_told_from_quoted_tagged_and_anchored(tmp_path: Path) -> None:
    name = _file(tmp_path, "a: yes\nb: 'yes'\nc: !!str yes\nd: &x yes\ne: \"on\"\n")
    lines = TextLines()
    assert lines.bare_at(Location(name, 1, 4))
    assert not lines.bare_at(Location(name, 2, 4))
    assert not lines.bare_at(Location(name, 3, 4))
    assert not lines.bare_at(Location(name, 4, 4))
    assert not lines.bare_at(Location(name, 5, 4))
    # Past the file, past the line, or a file gone: nothing is said.
    assert not lines.bare_at(Location(name, 9, 4))
    assert not lines.bare_at(Location(name, 1, 40))
    assert not TextLines().bare_at(Location(str(tmp_path / "gone.yaml"), 1, 1))


def test_a_date_is_given_back_as_the_file_writes_it(tmp_path: Path) -> None:
    text = (
        "\ufeffdescription: 2024-05-01   # launch\n"
        "at: &day 2024-5-1 9:30:00\r\n"
        "zoned: 2024-05-01T23:30:00-02:00\n"
        "other: 2024-06-01\n"
    )
    name = _file(tmp_path, text)
    lines = TextLines()
    day = datetime.date(2024, 5, 1)
    assert lines.date_at(Location(name, 1, 14), day) == "2024-05-01"
    # After an anchor; the file's \r\n is a line break like \n (a BOM is not text).
    assert lines.date_at(Location(name, 2, 5), day) == "2024-5-1 9:30:00"
    # A time zone may move the day: the written text is still this value's.
    assert lines.date_at(Location(name, 3, 8), day) == "2024-05-01T23:30:00-02:00"
    assert lines.date_at(Location(name, 4, 8), day) is None  # another date
    assert lines.line_of(Location(name, 4, 1)) == "other: 2024-06-01"
