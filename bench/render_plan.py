"""Rendering a plan of many changes as text and as markdown (reconciler/render/plans.py).

    python bench/render_plan.py [N ...] [--runs 5]

For each N (default 1,000 and 4,000) builds, in Python, one destination's plan of N lists
(each adding and removing 30 members, every fourth list new, with notes), N lists to
delete, N users whose mapped fields change (two fields each), N skipped rows and N/10
campaigns using the lists; a tenth of every name and value is not ASCII and some hold a
control character, so the escapes (reconciler.layout.one_line) have work. Renders it with
`plan_text` and `plan_markdown` --runs times each, in this process, and prints the median
wall time and CPU time of each, and per change: a step whose cost grows faster than N shows
as microseconds per change rising with N.

Run it with PYTHONPATH pointing at another checkout to measure that one. Not a test:
nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from reconciler.members.identity import Member
from reconciler.members.issue import MemberIssue
from reconciler.plan import (
    CampaignUse,
    DestinationPlan,
    FieldRead,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
)
from reconciler.render.plans import plan_markdown, plan_text


def _name(i: int, stem: str) -> str:
    """Mostly ASCII; every tenth with accents, every fiftieth with a tab (escaped)."""
    if i % 50 == 0:
        return f"{stem}\t{i}"
    if i % 10 == 0:
        return f"{stem}-été-{i}"
    return f"{stem}-{i}"


def _member(i: int) -> Member:
    address = f"person{i}@example.com"
    return Member(address, "email", email=address)


def build(n: int) -> Plan:
    lists = tuple(
        ListPlan(
            audience=_name(i, "audience"),
            list_name=_name(i, "list"),
            list_id=None if i % 4 == 0 else 1000 + i,
            create=i % 4 == 0,
            description=_name(i, "description"),
            add=tuple(_member(i * 100 + k) for k in range(30)),
            remove=tuple(f"gone{i * 100 + k}@example.com" for k in range(30)),
            unchanged=1000,
            live_count=1030,
            desired_count=1030,
        )
        for i in range(n)
    )
    updates = tuple(
        FieldUpdate(
            key=f"person{i}@example.com",
            key_kind="email",
            email=f"person{i}@example.com",
            user_id=None,
            changes={"tier": ("silver", _name(i, "gold")), "ltv": (i, i + 1)},
        )
        for i in range(n)
    )
    destination = DestinationPlan(
        destination="prod",
        project_type="email",
        lists=lists,
        skipped_members=tuple(
            ("audience-1", MemberIssue(f"data/a.csv:{i + 2}", "not an email", f"bad{i}"))
            for i in range(n)
        ),
        deletions=tuple(ListDeletion(5000 + i, _name(i, "old-list")) for i in range(n)),
        allow_list_deletion=True,
        field_updates=updates,
        field_read=FieldRead("export", n, 1, ("tier", "ltv")),
        notes=tuple(f"list {_name(i, 'list')!r} has another description" for i in range(n)),
        member_read=f"members of {n:,} lists read with 1 export job",
        campaigns=tuple(
            CampaignUse(
                _name(i * 10, "list"), 9000 + i, _name(i, "campaign"), "Blast", "Running", "send"
            )
            for i in range(n // 10)
        ),
    )
    return Plan(destinations=(destination,))


def _timed(render: Callable[[], str], runs: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of `runs` renders, and the text's length."""
    walls, cpus, size = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        size = len(render())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="*", type=int, default=[1_000, 4_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for n in args.n:
        plan = build(n)
        changes = 4 * n  # lists, deletions, field updates, skipped rows
        for label, render in (
            ("text", lambda plan=plan: plan_text(plan)),
            ("markdown", lambda plan=plan: plan_markdown(plan)),
        ):
            wall, cpu, size = _timed(render, args.runs)
            print(
                f"N={n:,} {label}: median {wall:.3f} s wall, {cpu:.3f} s CPU "
                f"({cpu / changes * 1e6:.1f} µs CPU a change), {size:,} characters"
            )


if __name__ == "__main__":
    main()
