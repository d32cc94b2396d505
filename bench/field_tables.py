"""The DuckDB merge of trait-mapped audiences (members/engine/field_tables.py), timed step
by step as the audiences per destination grow.

    PYTHONPATH=$PWD python3 bench/field_tables.py [--audiences 10 30 100] [--fields 3 9 30]
        [--members 2000]

Each audience holds --members members drawn from a pool of 3 * members (so every member is
on several audiences), maps every one of --fields fields, and disagrees with the others on
one member in fifty; half the audiences merge nested objects, a tenth of each one's
members are being added. The steps are those plan_table_fields runs: merge_tables, every
conflict candidate read (conflict_candidates, the pairs whose text differs marked as
conflicts), mark_conflicts, wanted() and the wanted members read (wanted_members,
compared_rows), and each list's subscribes' fields (add_fields_rows). A step whose cost
grows with audiences x members x fields keeps its time
per value flat across the audiences. Prints a digest of every result too: two builds that
merge alike print the same digest. Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Iterator

import duckdb

from reconciler.members.engine import field_tables as ft
from reconciler.members.engine.rows import write_table
from reconciler.members.engine.workspace import Engine


def build(engine: Engine, audiences: int, fields: int, members: int) -> list[ft.MappedTable]:
    names = [f"f{f:03d}" for f in range(fields)]
    pool = 3 * members
    mapped = []
    for a in range(audiences):
        keys = sorted({(a * 7919 + r * 31) % (pool * 4) for r in range(members)})[:members]

        def rows(a: int = a, keys: list[int] = keys) -> Iterator[ft.ValueRow]:
            for pos, k in enumerate(keys):
                key = f"m{k:07d}@example.com"
                values: list[str | None] = []
                for f in range(fields):
                    if (k + f + a) % 50 == 0:
                        values.append(ft.to_json(f"other{a % 3}"))
                    elif (k + f) % 17 == 0:
                        values.append(None)
                    elif (k + f) % 23 == 0:
                        values.append(ft.to_json({"n": k % 5}))
                    else:
                        values.append(ft.to_json(f"v{(k + f) % 7}"))
                yield key, "email", key, None, pos, values

        table = ft.values_into_table(engine, rows(), names)
        adding = engine.name("adding")
        write_table(
            engine,
            adding,
            ((f"m{k:07d}@example.com",) for k in keys if (k + a) % 10 == 0),
            ["key"],
        )
        mapped.append(ft.MappedTable(f"aud-{a:04d}", table, adding, a % 2 == 0))
    return mapped


def run(audiences: int, fields: int, members: int) -> None:
    engine = Engine()
    mapped = build(engine, audiences, fields, members)
    digest = hashlib.sha256()
    times: dict[str, float] = {}

    start = time.perf_counter()
    merged = ft.merge_tables(engine, mapped)
    times["merge_tables"] = time.perf_counter() - start

    start = time.perf_counter()
    pairs = []
    candidates = 0
    for batch in ft.conflict_candidates(merged):
        for key, name, held in batch:
            candidates += 1
            digest.update(repr((key, name, held)).encode())
            if len({text for _, _, _, text in held}) > 1:
                pairs.append((key, name))
    times["conflict_candidates"] = time.perf_counter() - start

    start = time.perf_counter()
    ft.mark_conflicts(merged, pairs)
    times["mark_conflicts"] = time.perf_counter() - start

    start = time.perf_counter()
    users, wanted = merged.wanted()
    digest.update(repr((users, wanted)).encode())
    times["wanted"] = time.perf_counter() - start

    start = time.perf_counter()
    for member in ft.wanted_members(merged):
        digest.update(repr(member).encode())
    for batch in ft.compared_rows(merged, None, wanted):
        digest.update(repr(batch).encode())
    times["read wanted"] = time.perf_counter() - start

    start = time.perf_counter()
    for index in range(len(mapped)):
        for batch in ft.add_fields_rows(merged, index):
            digest.update(repr(batch).encode())
    times["add_fields_rows"] = time.perf_counter() - start

    values = audiences * members * fields
    total = sum(times.values())
    steps = "  ".join(f"{name} {seconds:6.2f}" for name, seconds in times.items())
    print(
        f"{audiences:4} audiences {fields:3} fields {values:10,} values  {steps}  "
        f"total {total:6.2f} s ({1e6 * total / values:5.2f} us/value)  "
        f"{candidates} candidates, {users} wanted  digest {digest.hexdigest()[:12]}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audiences", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--fields", type=int, nargs="+", default=[3, 9, 30])
    parser.add_argument("--members", type=int, default=2000)
    args = parser.parse_args()
    for fields in args.fields:
        for audiences in args.audiences:
            try:
                run(audiences, fields, args.members)
            except duckdb.Error as exc:  # the old merge ran out of memory from 30 audiences
                first = str(exc).splitlines()[0]
                print(f"{audiences:4} audiences {fields:3} fields  failed: {first}", flush=True)


if __name__ == "__main__":
    main()
