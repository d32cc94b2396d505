"""`reconciler plan` of an audience with a trait mapping of three fields, at N members.

    python bench/plan_traits.py [N] [--runs 1] [--source csv|parquet]

Generates a CSV (or a Parquet file, `--source parquet`, its columns typed) of N members
(email, plan, lifetime_value, first_name) with DuckDB, seeds the emulator with a list of
the same members, 1% of them gone and 1% new, every profile holding last week's values
(one member in ten differs), and maps three fields: a column (`plan_tier`), a number
(`ltv`) and a template (`greeting`). Then measures `reconciler plan` (wall time and peak
RSS, bench/measure.py): the figure issue 17 asks to bring to 1 GB at ten million. From
RECONCILER_ENGINE_THRESHOLD rows (a million by default) the audience
is planned in DuckDB, its mapped values made and compared in batches over workspace
tables; below it with Python dicts. Set RECONCILER_ENGINE=python or =duckdb (or the
threshold) in the environment to measure either path at any N. Not a test: nothing is
asserted about time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.plan.ownership import mark

TIMEOUT_SECONDS = 3600
TIERS = ["free", "gold", "silver", "bronze"]


def generate(directory: Path, n: int, source: str = "csv") -> Path:
    path = directory / f"members.{source}"
    churn = max(n // 100, 1)
    # In Parquet, lifetime_value is a DOUBLE: the mapping converts typed values.
    form = "(FORMAT parquet)" if source == "parquet" else "(HEADER, DELIMITER ',')"
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT 'user' || i || '@example.com' AS email, "
            f"['free', 'gold', 'silver', 'bronze'][1 + i % 4] AS plan, "
            f"(i % 1000) * 1.5 AS lifetime_value, 'name' || i AS first_name "
            f"FROM range({churn}, {n + churn}) r(i)) TO '{path}' {form}"
        )
    return path


def seed(emulator: Emulator, n: int) -> None:
    """Members 0..n-1 on the list, with last week's values (one in ten differs)."""
    project = emulator.project(plan_apply.PROJECT)
    list_id = project.add_list(plan_apply.LIST_NAME, mark(None))
    gc.disable()
    try:
        for i in range(n):
            stale = i % 10 == 0
            project.add_user(
                email=f"user{i}@example.com",
                data_fields={
                    "plan_tier": TIERS[(i + stale) % 4],
                    "ltv": (i % 1000) * 1.5,
                    "greeting": f"Hi Name{i}",
                },
                list_ids=[list_id],
            )
    finally:
        gc.enable()


def write_manifests(manifests: Path, base_url: str, members: Path) -> None:
    documents = [
        plan_apply.destination_document(base_url),
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": plan_apply.LIST_NAME},
            "spec": {
                "destination": "bench",
                "members": {members.suffix.lstrip("."): members.name},
                "traits": "crm",
            },
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "crm"},
            "spec": {
                "fields": {
                    "plan_tier": "plan",
                    "ltv": {"from": "lifetime_value", "type": "number"},
                    "greeting": {"template": "Hi {{ first_name | title }}"},
                }
            },
        },
    ]
    (manifests / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--source", choices=("csv", "parquet"), default="csv")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reconciler-traits-"))
    manifests = root / "manifests"
    manifests.mkdir()
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        "RECONCILER_LIST_READS_PER_MINUTE": "100000",
        "RECONCILER_READ_LAG": "0",
    }
    try:
        with EmulatorServer(emulator) as server:
            members = generate(manifests, args.n, args.source)
            seed(emulator, args.n)
            write_manifests(manifests, server.base_url, members)
            print(
                f"{args.n:,} members ({args.source}), 3 mapped fields, 1% churn each way; "
                f"{os.cpu_count()} cores"
            )
            for _ in range(args.runs):
                run = run_measured(
                    [
                        sys.executable,
                        "-c",
                        "from reconciler.cli import main; main()",
                        "plan",
                        str(manifests),
                        "--format",
                        "json",
                    ],
                    timeout=TIMEOUT_SECONDS,
                    env=env,
                )
                if run.returncode not in (0, 2):
                    raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-2000:]}")
                summary = json.loads(run.stdout)["summary"]
                print(
                    f"plan  {run.wall_seconds:8.2f} s  {run.cpu_seconds:6.2f} s CPU  "
                    f"peak RSS {run.peak_rss_mb:6.0f} MB  "
                    f"adds {summary['members_to_add']:,}  "
                    f"removes {summary['members_to_remove']:,}  "
                    f"field updates {summary['users_to_update']:,}  "
                    f"load average {os.getloadavg()[0]:.2f}"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
