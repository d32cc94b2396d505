"""`reconciler status` rendered from a plan made by hand (reconciler.render.status)."""

from __future__ import annotations

import json

from rich.console import Console

from reconciler.plan import DestinationPlan, ListDeletion, ListPlan, Plan
from reconciler.render.status import (
    status_json,
    status_markdown,
    status_rows,
    status_table,
    status_text,
)


def _plan() -> Plan:
    new = ListPlan("new|one", "new|one", None, True, None, (), (), 0, 0, 0)
    big = ListPlan(
        "big", "big", 7, False, None, (), tuple(f"m{i}" for i in range(2000)), 0, 12000, 10000
    )
    return Plan((DestinationPlan("prod", "hybrid", (new, big)),))


def test_rows_say_what_is_pending_and_what_the_policy_blocks() -> None:
    new, big = status_rows(_plan())
    assert new["list_id"] is None and new["iterable_members"] is None
    assert (big["pending_removes"], big["blocked"]) == (2000, True)  # 16.7% > 10%
    assert json.loads(status_json([big]))["audiences"][0]["desired_members"] == 10000


def test_markdown_and_table_show_counts_with_separators_and_escape_cells() -> None:
    rows = status_rows(_plan())
    markdown = status_markdown(rows)
    assert markdown.startswith("### reconciler status\n\n| destination |")
    assert "| prod | new\\|one | (not created) | - | 0 | 0 | 0 | 0 | 0 |  |" in markdown
    assert "| prod | big | 7 | 12,000 | 10,000 | 0 | 2,000 | 0 | 0 | BLOCKED |" in markdown
    console = Console(width=120, record=True)
    console.print(status_table(rows))
    text = console.export_text()
    assert "12,000" in text and "BLOCKED" in text and "(not created)" in text


def test_an_audience_left_out_of_the_plan_keeps_a_row_with_no_counts() -> None:
    why = "list 'gone' (id 9): its members could not be read (HTTP 500)"
    kept = ListPlan("kept", "kept", 8, False, None, (), (), 0, 3, 3)
    plan = Plan((DestinationPlan("prod", "hybrid", (kept,), unread=(("gone", why),)),))
    rows = status_rows(plan)
    assert [(r["audience"], r["left_out"]) for r in rows] == [("kept", None), ("gone", why)]
    assert rows[1]["iterable_members"] is None and rows[1]["pending_removes"] is None
    assert "| prod | gone | - | - | - | - | - | - | - | LEFT OUT |" in status_markdown(rows)
    console = Console(width=120, record=True)
    console.print(status_table(rows))
    (line,) = [x for x in console.export_text().splitlines() if "gone" in x]
    assert line.split()[-2:] == ["LEFT", "OUT"]


def test_a_narrow_table_wraps_names_and_never_cuts_a_count_or_a_name_short() -> None:
    names = [f"a-long-audience-name-from-an-import-{n}" for n in (1000009, 1000010)]
    big = 12_000_000
    lists = tuple(ListPlan(name, name, 7, False, None, (), (), 0, big, big) for name in names)
    rows = status_rows(Plan((DestinationPlan("production-eu", "hybrid", lists),)))
    console = Console(width=100, record=True)
    console.print(status_table(rows))
    text = console.export_text()
    assert "…" not in text
    assert text.count("12,000,000") == 4  # in Iterable and desired, both rows
    # Each name is all there, wrapped within its column.
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if "│" in line)
    assert all(name in cells for name in names)


def test_the_policy_is_judged_once_per_destination_not_once_per_audience() -> None:
    # Judged per row, status over 2,000 audiences took 5.6 s: the cost grew as n².
    judged = []

    class Judged(DestinationPlan):
        def violations(self):  # type: ignore[no-untyped-def]
            judged.append(self.destination)
            return super().violations()

    lists = tuple(ListPlan(f"a{i}", f"a{i}", i, False, None, (), (), 0, 10, 10) for i in range(50))
    big = ListPlan("big", "big", 7, False, None, (), ("m1", "m2"), 0, 10, 10)
    rows = status_rows(Plan((Judged("prod", "hybrid", (*lists, big)),)))
    assert judged == ["prod"]
    assert [r["audience"] for r in rows if r["blocked"]] == ["big"]  # 20% > 10%


def _shown(rows: list[dict], width: int) -> list[str]:
    console = Console(width=width, record=True)
    console.print(status_text(rows, width))
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_at_80_columns_each_row_is_stacked_with_its_names_whole() -> None:
    # The table left the names 3 to 7 characters there: "pro/duc/tio/n".
    lists = (
        ListPlan(
            "production-newsletter",
            "production-newsletter",
            1234567,
            False,
            None,
            (),
            (),
            0,
            120_000,
            120_500,
        ),
        ListPlan("vip", "vip", 7, False, None, (), ("m1", "m2", "m3"), 0, 20, 17),
        ListPlan("new", "new", None, True, None, (), (), 0, 0, 0),
    )
    rows = status_rows(
        Plan((DestinationPlan("production-eu", "hybrid", lists, unread=(("gone", "x"),)),))
    )
    for width in (80, 100):
        lines = _shown(rows, width)
        assert lines == [
            "production-eu/production-newsletter: list 1234567",
            "    in Iterable 120,000, desired 120,500; pending +0 -0 ~0; held back 0",
            "production-eu/vip: list 7, BLOCKED",
            "    in Iterable 20, desired 17; pending +0 -3 ~0; held back 0",
            "production-eu/new: list not created",
            "    in Iterable -, desired 0; pending +0 -0 ~0; held back 0",
            "production-eu/gone: LEFT OUT",
        ]
    # Wide enough, the table as before: one row per audience.
    (line,) = [x for x in _shown(rows, 150) if "production-newsletter" in x]
    assert line.split("│")[0].strip() == "production-eu" and "120,500" in line


def test_a_table_that_fits_is_kept_and_a_list_prune_deletes_stacks_too() -> None:
    short = ListPlan("vip", "vip", 7, False, None, (), (), 0, 12_000, 12_000)
    rows = status_rows(Plan((DestinationPlan("prod", "hybrid", (short,)),)))
    assert any("┃ audience" in x for x in _shown(rows, 120))
    doomed = DestinationPlan("prod", "hybrid", (short,), deletions=(ListDeletion(9, "Gone [old]"),))
    lines = _shown(status_rows(Plan((doomed,))), 100)
    assert lines[-1].startswith(
        "prod: list 'Gone [old]' (id 9), declared by no audience: prune deletes it, DELETE"
    )
