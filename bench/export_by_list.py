"""Reading every DuckDB-planned list's members out of one user export, at L lists.

    PYTHONPATH=$PWD:$PWD/bench python3 bench/export_by_list.py [--lists 30 300]
        [--members 10000]

For each L, a DuckDB workspace (reconciler's Engine) holds an export table as
read_export_table writes it (email, user_id, lists) of L * --members users of a hybrid
project, each on one of the L lists and a third of them on a second, and an audience's
desired table (a CSV of emails, so each list's read names members as the userId
resolution does). Then, in this process, every list's live table is made as
state/live.py makes it (members/engine/export_table.py `live_from_export`), two ways:

    scan      each list a scan of the whole export (how every list was read before)
    by list   the export sorted by list once (`export_by_list`), each list its own rows

and prints the wall time and CPU of each: a scan per list grows with the lists times the
users (the whole export read L times), the sorted read with the users. The plan takes the
second from EXPORT_BY_LIST_FROM lists. Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from reconciler.manifest import load_manifests
from reconciler.members.engine.desired_table import load_desired
from reconciler.members.engine.export_table import export_by_list, live_from_export
from reconciler.members.engine.settings import EngineSettings
from reconciler.members.engine.workspace import Engine

FIRST_LIST = 1_000_000


def _audience(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    rows = "".join(f"u{i}@example.com\n" for i in range(0, 100_000, 7))
    (root / "data" / "m.csv").write_text("email\n" + rows)
    (root / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: d}\n"
        "spec: {region: us, projectType: hybrid, apiKey: {env: K}}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\n"
        "spec: {destination: d, members: {csv: data/m.csv}}\n"
    )
    return root


def run(lists: int, members: int, root: Path) -> None:
    audience = load_manifests(_audience(root / f"l{lists}")).audiences["a"]
    with Engine(EngineSettings(temp_dir=root / f"w{lists}")) as engine:
        desired = load_desired(engine, audience, "hybrid")
        users = lists * members
        engine.connection.execute(
            f"CREATE TABLE export_0 AS SELECT 'u' || i || '@example.com' AS email, "
            f"CASE WHEN i % 2 = 0 THEN 'id' || i END AS user_id, "
            f"CASE WHEN i % 3 = 0 THEN [{FIRST_LIST} + i % {lists}, "
            f"{FIRST_LIST} + (i + 1) % {lists}] ELSE [{FIRST_LIST} + i % {lists}] END "
            f"AS lists FROM range({users}) r(i)"
        )
        ids = [FIRST_LIST + n for n in range(lists)]
        for way in ("scan", "by list"):
            wall, cpu = time.perf_counter(), time.process_time()
            by_list = export_by_list(engine, "export_0", ids) if way == "by list" else None
            found = 0
            for list_id in ids:
                table = live_from_export(engine, "export_0", list_id, desired, "hybrid", by_list)
                (count,) = engine.connection.execute(f"SELECT count(*) FROM {table}").fetchone()
                found += count
                engine.connection.execute(f"DROP TABLE {table}")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{lists:4} lists, {users:10,} users, {found:10,} memberships  {way:8s} "
                f"wall {wall:6.2f} s  CPU {cpu:6.2f} s  "
                f"CPU per membership {1e6 * cpu / found:5.2f} us",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lists", type=int, nargs="+", default=[30, 300])
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    root = Path(tempfile.mkdtemp(prefix="reconciler-export-by-list-"))
    try:
        for lists in args.lists:
            run(lists, args.members, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
