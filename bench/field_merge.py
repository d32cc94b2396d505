"""The Python engine's merge of many trait-mapped audiences' values, at 1x, 10x and 50x.

    PYTHONPATH=$PWD python3 bench/field_merge.py [--audiences 20 200 1000] [--members 500]
        [--mixed]

One destination's audiences of --members members each, drawn from --members x audiences
/ 4 people, so each person is on about four audiences whatever their count; every
audience maps the same three fields (plan, ltv, city) and gives each person the same
values. Iterable holds other values for every one of them, so the plan reads everyone and
updates everyone. Timed, each in this process (CPU): merge_fields; the members of the
fields to read, looked up (state/fields.plan_fields); and plan_field_updates. --mixed
makes every other audience merge nested objects (a destination of both modes).

Rows (audiences x members) grow 10x and 50x: a step growing faster than them costs more
than linearly. Run it with PYTHONPATH at another checkout to measure that one. Not a
test: nothing is asserted about time.

Figures (2 shared cores, CPU s; merge_fields / members to read / plan_field_updates):

    audiences  rows       before                  after
       20       10,000    0.07 / 0.00 / 0.03      0.05 / 0.00 / 0.03
      200      100,000    1.47 / 0.11 / 0.51      0.72 / 0.02 / 0.44
    1,000      500,000   29.21 / 6.94 / 8.84      3.04 / 0.15 / 2.59
"""

from __future__ import annotations

import argparse
import time

from reconciler.members.identity import Member
from reconciler.plan.fields import MappedList, merge_fields, plan_field_updates


def audiences(count: int, size: int, mixed: bool) -> list[MappedList]:
    people = max(count * size // 4, size)
    out = []
    for a in range(count):
        start = (a * 997) % people
        members, values = {}, {}
        for r in range(size):
            i = (start + r * 7) % people
            key = f"p{i}@example.com"
            members[key] = Member(key, "email", key, None)
            values[key] = {"plan": f"t{i % 4}", "ltv": i * 1.5, "city": f"c{i % 50}"}
        out.append(MappedList(f"aud-{a}", members, values, mixed and a % 2 == 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audiences", type=int, nargs="+", default=[20, 200, 1000])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--mixed", action="store_true")
    args = parser.parse_args()
    for count in args.audiences:
        lists = audiences(count, args.members, args.mixed)
        started = time.process_time()
        merged = merge_fields(lists)
        merging = time.process_time() - started
        wanted = merged.to_read(lists)
        started = time.process_time()
        if hasattr(merged.members, "of"):
            found = merged.members.of(wanted)
            members = [found[key] for key in sorted(wanted)]
        else:  # a checkout before FirstMember.of (PYTHONPATH at another one)
            members = [merged.members[key] for key in sorted(wanted)]
        looking = time.process_time() - started
        live = {member.key: {"plan": "old", "ltv": -1, "city": "old"} for member in members}
        started = time.process_time()
        updates = plan_field_updates(merged, wanted, live)
        updating = time.process_time() - started
        print(
            f"{count:5,} audiences  {count * args.members:9,} rows  {len(wanted):8,} people  "
            f"merge_fields {merging:6.2f} s  members to read {looking:6.2f} s  "
            f"plan_field_updates {updating:6.2f} s ({len(updates):,} updates)",
            flush=True,
        )


if __name__ == "__main__":
    main()
