"""The apply report apply appends to GitHub's job summary after the plan: bounded as the
plan is, so the two stay under the 1 MiB GitHub takes from a step (over it, GitHub drops
the summary with an error). Failures and what was not sent are kept before the rows of
lists done as planned, and what was left out is said. Parsed as GitHub does with
markdown-it-py (CommonMark plus tables)."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from reconciler.apply.executor import (
    ApplyReport,
    DeletionResult,
    DestinationResult,
    FieldUpdateResult,
    ListResult,
)
from reconciler.apply.held_back import HeldBack
from reconciler.render.plans import REPORT_SUMMARY_LIMIT, SUMMARY_LIMIT, report_markdown

STEP_SUMMARY_BYTES = 1024 * 1024  # GitHub's limit on one step's job summary


def done(destination: str, i: int) -> ListResult:
    """A list whose adds and removes all went through."""
    name = f"{destination}-segment-{i:04d}"
    return ListResult(name, name, 100_000 + i, 30, 20, added=30, removed=20)


def big_report() -> ApplyReport:
    """Two destinations of 2,000 lists done as planned each, and among them what must not
    be left out: rejected members, additions not sent, a deletion that failed, user
    fields rejected, members held back for consent."""
    rejected = ListResult("vip", "vip", 7, 30, 0, added=5)
    rejected.rejected = {f"bad{i:03d}@example.com": "invalidEmail" for i in range(25)}
    stopped = ListResult("churn", "churn", 8, 1_500, 0, added=1_300, not_attempted_add=200)
    stopped.close()
    fields = FieldUpdateResult(planned=10, updated=9, rejected={"u-77": "invalid field"})
    prod = DestinationResult(
        "prod",
        [*(done("prod", i) for i in range(1_000)), rejected, stopped]
        + [done("prod", i) for i in range(1_000, 2_000)],
        deletions=[DeletionResult(9, "retired", error="list in use by a journey (409)")],
        fields=fields,
    )
    eu = DestinationResult(
        "eu",
        [done("eu", i) for i in range(2_000)],
        deletions=[DeletionResult(10, "old-eu", deleted=True)],
    )
    held = HeldBack("eu", "eu-vip", "eu-vip", 11, ("left@example.com",), (("EmailLink", 1),), ())
    return ApplyReport([prod, eu], requests=9_000, retries=3, held_back=[held])


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_the_summary_report_of_thousands_of_lists_keeps_failures_and_says_what_it_left_out():
    report = big_report()
    full = report_markdown(report)
    assert len(full) > REPORT_SUMMARY_LIMIT  # unbounded, as apply appended it before

    text = report_markdown(report, limit=REPORT_SUMMARY_LIMIT)

    assert len(text) <= REPORT_SUMMARY_LIMIT
    assert "truncated" not in text
    rows = table_rows(text)
    # Every failure, and what was not sent, stays in the table.
    assert any(r.startswith("| prod | vip |") and "| 25 |" in r for r in rows)
    assert any("| churn |" in r and "200 of 1,500 additions" in r for r in rows)
    assert any("| retired (delete) |" in r and "list in use" in r for r in rows)
    assert any("| user fields (update) |" in r for r in rows)
    assert "left the list themselves: 1" in text
    # with the rejected members' sample
    assert "bad000" in text or "b***@***" in text
    # The lists done as planned are counted, with their sums, per destination.
    counted = [r for r in rows if "done as planned not shown" in r]
    assert len(counted) == 2, counted
    assert counted[0].startswith("| prod |") and counted[1].startswith("| eu |")
    shown = sum("-segment-" in r for r in rows)
    assert 0 < shown < 4_000  # as many as fit
    left = [
        re.search(r"_([\d,]+) more lists done as planned not shown: \+([\d,]+)", r) for r in counted
    ]
    counts = [int(m.group(1).replace(",", "")) for m in left if m]
    assert sum(counts) == 4_000 - shown
    assert [int(m.group(2).replace(",", "")) for m in left if m] == [30 * n for n in counts]
    assert "1 list deleted (prune) not shown" in counted[1]
    assert text.endswith(
        "_(report made to fit the job summary: lists done as planned counted, not all shown; "
        "the step's log has the whole report)_\n"
    )

    # As GitHub renders it: one table, the details blocks closed.
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    assert sum(t.type == "table_open" for t in tokens) == 1
    assert text.count("<details>") == text.count("</details>")


def test_a_report_that_fits_is_unchanged():
    small = ApplyReport([DestinationResult("prod", [done("prod", i) for i in range(5)])])
    assert report_markdown(small, limit=REPORT_SUMMARY_LIMIT) == report_markdown(small)


def test_plan_and_report_together_stay_under_a_step_summary():
    # Characters of up to 4 bytes each in UTF-8, and room left for the line apply adds
    # when it stops.
    assert 4 * (SUMMARY_LIMIT + REPORT_SUMMARY_LIMIT) + 4 * 10_000 < STEP_SUMMARY_BYTES


def test_samples_are_cut_before_a_failing_list_is_left_out():
    lists = []
    for i in range(300):
        lr = ListResult(f"list-{i:03d}", f"list-{i:03d}", 1_000 + i, 30, 0, added=5)
        lr.rejected = {f"bad{i:03d}-{n:02d}@example.com": "invalidEmail" for n in range(25)}
        lists.append(lr)
    report = ApplyReport([DestinationResult("prod", lists)])

    text = report_markdown(report, limit=REPORT_SUMMARY_LIMIT)

    assert len(text) <= REPORT_SUMMARY_LIMIT
    rows = table_rows(text)
    assert all(any(r.startswith(f"| prod | list-{i:03d} |") for r in rows) for i in range(300))
    assert sum(line.startswith("- list-") for line in text.splitlines()) == 300  # 1 a list
    assert "samples cut to 1 member a list" in text


def test_a_report_whose_failures_alone_do_not_fit_is_cut_with_its_blocks_closed():
    lists = []
    for i in range(3_000):
        lr = ListResult(f"list-{i:04d}", f"list-{i:04d}", 1_000 + i, 30, 0)
        lr.errors = ["Iterable answered 500 Internal Server Error after 5 retries" * 2]
        lr.rejected = {f"bad{i:04d}@example.com": "invalidEmail"}
        lists.append(lr)
    report = ApplyReport([DestinationResult("prod", lists)])

    text = report_markdown(report, limit=REPORT_SUMMARY_LIMIT)

    assert len(text) <= REPORT_SUMMARY_LIMIT
    assert text.endswith(
        "_(report truncated to fit the job summary; the step's log has the whole report)_\n"
    )
    assert text.count("<details>") == text.count("</details>")
