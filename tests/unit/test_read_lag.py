"""What lets reconciler live with Iterable's lagging reads: the run token in a created list's
description, and the run journal saying when the last apply to a destination wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.adopt import _description
from reconciler.apply.journal import PREFIX, SUFFIX, last_write_at, runs_dir
from reconciler.plan.ownership import (
    MAX_DESCRIPTION,
    audience_marks,
    carried_ids,
    is_managed,
    mark,
    marked_after,
    marked_audience,
    marks_audience,
    same_description,
    unmarked,
)


def test_a_created_list_carries_the_marker_and_its_run_token() -> None:
    assert mark(None, run="1a2b3c4d") == "[managed-by: reconciler; run 1a2b3c4d]"
    assert mark("VIPs", "vips", "1a2b3c4d") == (
        "VIPs [managed-by: reconciler; audience: vips; run 1a2b3c4d]"
    )
    assert mark("VIPs") == "VIPs [managed-by: reconciler]"
    assert is_managed(mark("VIPs", "vips", "1a2b3c4d"))
    assert marked_audience(mark("VIPs", "vips", "1a2b3c4d")) == "vips"
    assert unmarked(mark("VIPs", "vips", "1a2b3c4d")) == "VIPs"


def test_a_created_list_s_description_fits_in_iterable_s_140_characters_marker_whole() -> None:
    for audience in ("vips", "a" * 90, "b" * 200):
        for description in (None, "VIPs", "x" * 60, "y" * 139, "z" * 500):
            text = mark(description, audience, "1a2b3c4d")
            assert len(text) <= MAX_DESCRIPTION, (audience, description)
            assert is_managed(text) and text.endswith("; run 1a2b3c4d]")
            assert marks_audience(text, audience)
            assert marked_audience(text) in audience_marks([audience])
            assert not marks_audience(text, audience + "x")
            kept = unmarked(text)
            assert same_description(kept, description, audience)
            if description and kept != description:
                # Cut, or left out where the marker of a long audience name takes it all.
                assert kept is None or (kept.endswith("…") and description.startswith(kept[:-1]))
    assert mark("VIPs", "vips", "1a2b3c4d") == (
        "VIPs [managed-by: reconciler; audience: vips; run 1a2b3c4d]"
    )


def test_a_created_list_names_the_old_lists_it_is_held_to_as_room_allows() -> None:
    """A list created beside lists of audiences declared no more (a renamed key) names
    them, lowest first, so later plans hold back who left them (planning.with_former_lists);
    the description's text is cut first, the audience never, and what does not fit is
    left out (the plan's note says so: renamed_audience_notes)."""
    text = mark("VIPs", "vip-customers", "1a2b3c4d", [1234567, 22])
    assert text == (
        "VIPs [managed-by: reconciler; audience: vip-customers; after 22,1234567; run 1a2b3c4d]"
    )
    assert (marked_audience(text), marked_after(text), unmarked(text)) == (
        "vip-customers",
        (22, 1234567),
        "VIPs",
    )
    assert marked_after(mark("VIPs", "vips", "1a2b3c4d")) == ()
    many = list(range(1_000_000, 1_000_040))
    for audience in ("vips", "a" * 60, "b" * 200):
        for description in (None, "VIPs", "z" * 500):
            text = mark(description, audience, "1a2b3c4d", many)
            carried = carried_ids(audience, many)
            assert len(text) <= MAX_DESCRIPTION and text.endswith("; run 1a2b3c4d]")
            assert marks_audience(text, audience) and marked_after(text) == carried
            assert carried == tuple(many[: len(carried)]) and len(carried) < len(many)
            assert same_description(unmarked(text), description, audience, carried)
    assert carried_ids("vips", many[:3]) == tuple(many[:3])
    assert carried_ids("b" * 200, many) == ()  # the audience's cut name takes the room


def test_a_description_of_emoji_fits_in_140_utf16_units_as_java_counts_them() -> None:
    # Iterable runs on Java, whose String.length() counts UTF-16 units: an emoji is two.
    # Counted in code points, a description of emoji came out at up to 280 units, and a
    # create of that list was refused, or its marker cut off, on every run.
    for description in ("🚀" * 200, "VIPs 🎉🎉 " * 30, "é" * 300, "x" * 100 + "🚀" * 30):
        for audience in ("vips", "b" * 200):
            text = mark(description, audience, "1a2b3c4d")
            assert len(text.encode("utf-16-le")) // 2 <= MAX_DESCRIPTION, (audience, text)
            assert text.endswith("; run 1a2b3c4d]") and marks_audience(text, audience)
            kept = unmarked(text)
            assert same_description(kept, description, audience)
            assert kept is None or (kept.endswith("…") and description.startswith(kept[:-1]))
    # Text that fits as it is stays whole.
    assert mark("🎉" * 10, "vips", "1a2b3c4d").startswith("🎉" * 10 + " [")


def test_import_drops_the_marker_with_or_without_a_run_token() -> None:
    assert _description("VIPs [managed-by: reconciler; run 1a2b3c4d]") == "VIPs"
    assert _description("VIPs [managed-by: reconciler; audience: vips; run 1a2b3c4d]") == "VIPs"
    assert _description("[managed-by: reconciler]") is None


def write_journal(state_dir: Path, name: str, lines: list[dict]) -> Path:
    directory = runs_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PREFIX}{name}{SUFFIX}"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def at(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def test_the_last_write_to_a_destination_is_found_within_the_lag(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    write_journal(
        tmp_path,
        "20260101T000000.000000Z-1",
        [
            {"at": at(now - timedelta(seconds=30)), "event": "run_started", "lists": []},
            {
                "at": at(now - timedelta(seconds=20)),
                "event": "intent",
                "step": 1,
                "op": "subscribe",
                "destination": "prod",
                "list": "vip",
            },
            {
                "at": at(now - timedelta(seconds=12)),
                "event": "outcome",
                "step": 1,
                "status": "done",
            },
            {
                "at": at(now - timedelta(seconds=11)),
                "event": "intent",
                "step": 2,
                "op": "subscribe",
                "destination": "staging",
                "list": "vip",
            },
            {"at": at(now - timedelta(seconds=5)), "event": "outcome", "step": 2, "status": "done"},
            {"at": at(now - timedelta(seconds=4)), "event": "run_finished", "outcome": "success"},
        ],
    )
    found = last_write_at(tmp_path, "prod", 60, now.timestamp())
    assert found is not None
    assert abs(found - (now - timedelta(seconds=12)).timestamp()) < 0.01
    # Older than the lag, or another destination: nothing to wait for.
    assert last_write_at(tmp_path, "prod", 10, now.timestamp()) is None
    assert last_write_at(tmp_path, "dev", 60, now.timestamp()) is None


def test_a_torn_or_foreign_journal_line_is_ignored(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    path = write_journal(
        tmp_path,
        "20260101T000000.000000Z-2",
        [
            {
                "at": at(now - timedelta(seconds=3)),
                "event": "intent",
                "step": 1,
                "op": "create_list",
                "destination": "prod",
                "list": "vip",
            },
            {"at": "not a time", "event": "outcome", "step": 1, "status": "done"},
        ],
    )
    with path.open("a") as handle:
        handle.write('{"at": "2026-')  # the process died mid-write
    found = last_write_at(tmp_path, "prod", 60, now.timestamp())
    assert found is not None and now.timestamp() - found < 4
    assert last_write_at(tmp_path / "nowhere", "prod", 60, now.timestamp()) is None
