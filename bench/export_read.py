"""A plan of many lists whose members are read through one user export.

    python bench/export_read.py [--lists 50] [--members 1000000] [--project-type hybrid]

Seeds `--members` users spread evenly over `--lists` lists of one emulator project
(straight through its Python API, no requests), writes one Audience per list whose CSV
holds the same members but 1% (so every list has work: 1% to remove, 1% to add), then
runs `reconciler plan` as a measured subprocess (bench/measure.py). With more lists than
getUsers' budget (5 a minute), plan reads every list with one export, and then finds each
list's members among the export's rows.

Prints the wall time, peak RSS, the member read the plan reports and its counts. A step
whose cost grows with lists x members (every list walking every row, or every row walking
its audience) shows as a wall time far beyond the export's own. Not a test: nothing is
asserted about time; the subprocess has a timeout.
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

import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.plan.ownership import mark

TIMEOUT_SECONDS = 1800


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lists", type=int, default=50)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--project-type", choices=("email", "hybrid"), default="hybrid")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="reconciler-export-"))
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, args.project_type, plan_apply.API_KEY)
    project = emulator.project(plan_apply.PROJECT)
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        # The emulator here answers consistently: no read lag for a plan to wait out.
        "RECONCILER_READ_LAG": "0",
    }
    per_list = args.members // args.lists
    manifests = root / "manifests"
    manifests.mkdir()
    try:
        with EmulatorServer(emulator) as server:
            documents = [plan_apply.destination_document(server.base_url, args.project_type)]
            gc.disable()  # a million profiles are millions of containers
            try:
                for number in range(args.lists):
                    name = f"list-{number:03d}"
                    list_id = project.add_list(name, mark(None, name))
                    csv = manifests / f"{name}.csv"
                    with csv.open("w", encoding="utf-8") as out:
                        out.write("email\n")
                        for member in range(per_list):
                            address = f"m{number}-{member}@example.com"
                            # The first 1% are on the list only; the last 1% in the CSV only.
                            if member >= per_list // 100:
                                out.write(address + "\n")
                            if member < per_list - per_list // 100:
                                project.subscribe_direct(list_id, email=address)
                    documents.append(
                        {
                            "apiVersion": "reconciler/v1",
                            "kind": "Audience",
                            "metadata": {"name": name},
                            "spec": {
                                "destination": "bench",
                                "members": {"csv": csv.name, "email": "email"},
                                "policy": {"maxRemovalPercent": 100},
                            },
                        }
                    )
            finally:
                gc.enable()
            gc.freeze()
            (manifests / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
            print(
                f"{args.lists} lists, {per_list * args.lists:,} members in all "
                f"({args.project_type} project); {os.cpu_count()} cores"
            )
            command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
            command += ["plan", str(manifests), "--format", "json"]
            run = run_measured(command, timeout=TIMEOUT_SECONDS, env=env)
            if run.returncode != 0:
                raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-2000:]}")
            plan = json.loads(run.stdout)
            summary = plan["summary"]
            expected = args.lists * (per_list // 100)
            print(f"plan: {run.wall_seconds:.1f} s, peak RSS {run.peak_rss_mb:,.0f} MB")
            print(f"member read: {plan['destinations'][0]['member_read']}")
            print(
                f"adds {summary['members_to_add']:,}, removes {summary['members_to_remove']:,} "
                f"(expected {expected:,} each)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
