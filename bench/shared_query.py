"""What two audiences over one warehouse query cost, run once for both or once each.

    python bench/shared_query.py [N] [--engine duckdb] [--runs 3]

Writes a SQLite database of N people (default 300,000; email, user_id and a tier) in a
git repository, and two audiences on the sandbox over the same query at it: one keyed by
userId, one by email with a trait mapping over the tier. `reconciler plan` runs with the
queries the same text ("shared": one run, the second audience reads the first's rows from
reconciler's file, sources/shared_runs.py) and with the second's text changed by a
comment ("apart": the query runs once for each audience, as before the runs were shared),
taking turns, --runs times each, every run a measured subprocess (bench/measure.py).
Prints the median wall time, CPU and peak RSS of each. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from measure import Measured, run_measured

TIMEOUT_SECONDS = 900
REPO = Path(__file__).resolve().parent.parent
QUERY = "SELECT email, user_id, tier FROM people"


def write_database(path: Path, n: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE people (email TEXT, user_id TEXT, tier TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            ((f"p{i}@example.com", f"u{i}", "gold" if i % 3 else "free") for i in range(n)),
        )
    connection.close()


def write_manifests(directory: Path, second_query: str) -> None:
    url = f"sqlite:///{directory / 'crm.db'}"
    (directory / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: hybrid}\n"
        "---\napiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {fields: {tier: tier}}\n"
        "---\napiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: by-user}\nspec:\n"
        f"  destination: sandbox\n  members: {{sql: {QUERY!r}, url: {url!r}, userId: user_id}}\n"
        "---\napiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: by-email}\nspec:\n"
        f"  destination: sandbox\n  traits: crm\n"
        f"  members: {{sql: {second_query!r}, url: {url!r}}}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=300_000)
    parser.add_argument("--engine", default="duckdb", choices=("python", "duckdb"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reconciler-shared-query-"))
    (root / ".git").mkdir()
    manifests = root / "manifests"
    manifests.mkdir()
    write_database(manifests / "crm.db", args.n)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECONCILER_STATE_DIR": str(root / "state"),
        "RECONCILER_ENGINE": args.engine,
    }
    cli = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    cases = {"shared": QUERY, "apart": QUERY + " -- the same rows, other text"}
    figures: dict[str, list[Measured]] = {name: [] for name in cases}
    try:
        for _ in range(args.runs):
            for name, second in cases.items():
                write_manifests(manifests, second)
                run = run_measured([*cli, "plan", str(manifests)], timeout=TIMEOUT_SECONDS, env=env)
                if run.returncode != 0:
                    raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-2000:]}")
                figures[name].append(run)
        print(f"{args.n:,} rows, two audiences of one query, RECONCILER_ENGINE={args.engine}:")
        for name, runs in figures.items():
            wall = statistics.median(r.wall_seconds for r in runs)
            cpu = statistics.median(r.cpu_seconds for r in runs)
            rss = statistics.median(r.peak_rss_mb for r in runs)
            print(f"  {name:>6}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, {rss:7.1f} MB peak RSS")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
