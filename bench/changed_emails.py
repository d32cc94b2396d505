"""A first plan of N source rows with userIds in an email-based project, against a list of a
few members to remove: what the changed-email rule (state/changed_emails.py) costs there.

    python bench/changed_emails.py [N ...] [--leavers 5] [--runs 1]

The list has --leavers members (emails and userIds) none of the rows gives; one row gives
the first leaver's userId beside another email (her email changed in Iterable), so the plan
keeps her and adds that row. Every other row is a new member with a userId of its own: the
list has both adds and removals, so every email-based plan looks for changed emails.

Each plan is a real `reconciler plan` subprocess measured for wall time and peak RSS from
a small parent (bench/measure.py; it exits 3, its removals being over the guard's
share of the list, with its plan), under the DuckDB engine (RECONCILER_ENGINE=duckdb);
the emulator runs in this process. Not a test: nothing is asserted about time. Exits 1
when a plan's counts are not the expected ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import duckdb
from measure import run_measured
from plan_apply import API_KEY, API_KEY_VAR, EMULATOR_READS, PROJECT, destination_document

from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.plan.ownership import mark

LIST_NAME = "bench"
TIMEOUT_SECONDS = 1800


def write_source(path: Path, n: int) -> None:
    """N rows `email,userId`: u<i>@bench.io, U-<i>; the last one the first leaver's userId
    beside an email Iterable no longer has (her old one)."""
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT 'u' || i || '@bench.io' AS email, 'U-' || i AS userId "
            f"FROM range({n - 1}) t(i) UNION ALL SELECT 'old@bench.io', 'L-0') "
            f"TO '{path}' (HEADER, DELIMITER ',')"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--leavers", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project(PROJECT, "email", API_KEY)
    list_id = project.add_list(LIST_NAME, mark(None))
    for i in range(args.leavers):
        project.add_user(email=f"leaver{i}@bench.io", user_id=f"L-{i}", list_ids=[list_id])
    env = {
        **os.environ,
        API_KEY_VAR: API_KEY,
        **EMULATOR_READS,
        "RECONCILER_ENGINE": "duckdb",
        "RECONCILER_READ_LAG": "0",
    }
    failed = False
    with EmulatorServer(emulator) as server, tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        print(
            f"email-based project, list of {args.leavers} members to remove (one of them a "
            f"changed email); {os.cpu_count()} cores, Python {sys.version.split()[0]}"
        )
        for n in args.n:
            source = root / "members.csv"
            write_source(source, n)
            documents = [
                destination_document(server.base_url),
                {
                    "apiVersion": "reconciler/v1",
                    "kind": "Audience",
                    "metadata": {"name": LIST_NAME},
                    "spec": {"destination": "bench", "members": {"csv": source.name}},
                },
            ]
            (root / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
            for _ in range(args.runs):
                command = [
                    sys.executable,
                    "-c",
                    "from reconciler.cli import main; main()",
                    "plan",
                    str(root),
                    "--format",
                    "json",
                ]
                run = run_measured(command, timeout=TIMEOUT_SECONDS, env=env)
                counts = "?"
                try:
                    out = json.loads(run.stdout)
                    (lp,) = out["destinations"][0]["lists"]
                    got = (
                        out["summary"]["members_to_add"],
                        out["summary"]["members_to_remove"],
                        lp["kept_for_changed_email"],
                    )
                    counts = f"+{got[0]:,} / -{got[1]:,}, kept for changed email {got[2]}"
                    if got != (n - 1, args.leavers - 1, 1):
                        failed = True
                except (ValueError, KeyError):
                    failed = True
                    counts = f"exit {run.returncode}: {run.stderr[-300:]!r}"
                print(
                    f"{n:>11,} rows  plan {run.wall_seconds:7.2f} s  CPU "
                    f"{run.cpu_seconds:7.2f} s  peak RSS {run.peak_rss_mb:6.0f} MB  {counts}",
                    flush=True,
                )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
