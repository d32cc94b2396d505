"""`reconciler plan` and `apply` of a hybrid audience whose members have emails and userIds.

    python bench/plan_hybrid.py [N] [--runs 2] [--write-limit 20]

Data, deterministic: N profiles with both an email and a userId on one list of a hybrid
project (seeded straight into the emulator through its Python API, no requests), and a
CSV source with `email` and `userId` columns naming all of them but 1%, plus 1% new ones.
Such an audience is read with preferUserId, so the list answers with userIds and the
members are matched by either identifier (reconciler/members/engine/diff.py
`_diff_two_identifiers`). Each step is a measured subprocess (bench/measure.py):

    plan    --runs times: wall time, peak RSS, adds and removes, and the time the plan
            reported for its diff phase
    apply   the change: write requests vs the minimum, writes/s vs the limit
    again   plan once more: must find nothing to do

Not a test: nothing is asserted about time. Every subprocess has a timeout.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.plan.ownership import mark

TIMEOUT_SECONDS = 1800
EMAIL = "'user' || i || '@example' || (i % 97) || '.com'"
USER_ID = "'uid-' || i"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="plans measured (2)")
    parser.add_argument("--write-limit", type=float, default=20.0)
    args = parser.parse_args()
    n, churn = args.n, max(1, args.n // 100)

    root = Path(tempfile.mkdtemp(prefix="reconciler-hybrid-"))
    manifests = root / "manifests"
    manifests.mkdir()
    limits = Limits.unlimited()
    limits.writes = (int(args.write_limit), plan_apply.WINDOW_SECONDS)
    emulator = Emulator(limits=limits)
    emulator.add_project(plan_apply.PROJECT, "hybrid", plan_apply.API_KEY)
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        "RECONCILER_WRITES_PER_SECOND": str(args.write_limit),
        **plan_apply.EMULATOR_READS,
        # What this measures is the diff of a getUsers body; the route model (issue 18)
        # would take an export job for a list this large against Iterable's speeds.
        "RECONCILER_MEMBER_READS": "getUsers",
        # The emulator here answers consistently: no read lag for a plan to wait out.
        "RECONCILER_READ_LAG": "0",
        "RECONCILER_PROGRESS_INTERVAL": "1",
    }
    try:
        with EmulatorServer(emulator) as server:
            print(
                f"{n:,} hybrid members with emails and userIds, 1% churn each way; "
                f"{os.cpu_count()} cores"
            )
            live = root / "live.csv"
            with duckdb.connect() as connection:
                connection.execute(
                    f"COPY (SELECT {EMAIL} AS email, {USER_ID} AS userId FROM "
                    f"range({churn}, {n + churn}) t(i) ORDER BY hash(i)) "
                    f"TO '{manifests / 'desired.csv'}' (HEADER true)"
                )
                connection.execute(
                    f"COPY (SELECT {EMAIL}, {USER_ID} FROM range({n}) t(i) "
                    f"ORDER BY hash(i + 1)) TO '{live}' (HEADER false)"
                )
            _seed(emulator, live)
            plan_apply.write_manifests(
                manifests, server.base_url, manifests / "desired.csv", "csv", "hybrid"
            )

            plan = [sys.executable, "-c", "from reconciler.cli import main; main()", "plan"]
            plan += [str(manifests), "--format", "json"]
            adds = removes = 0
            for _ in range(args.runs):
                run = run_measured(plan, timeout=TIMEOUT_SECONDS, env=env)
                if run.returncode not in (0, 2):
                    raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-2000:]}")
                summary = json.loads(run.stdout)["summary"]
                adds, removes = summary["members_to_add"], summary["members_to_remove"]
                diffed = re.search(r"diffing list .* finished, .*, ([\d.]+) s", run.stderr)
                print(
                    f"plan   {run.wall_seconds:7.2f} s  peak RSS {run.peak_rss_mb:6.0f} MB  "
                    f"adds {adds:,}  removes {removes:,}  diff "
                    f"{diffed.group(1) + ' s' if diffed else '?'}"
                )

            mark_at = len(emulator.request_log)
            apply = [sys.executable, "-c", "from reconciler.cli import main; main()", "apply"]
            run = run_measured([*apply, str(manifests), "--yes"], timeout=TIMEOUT_SECONDS, env=env)
            minimum = math.ceil(adds / plan_apply.BATCH) + math.ceil(removes / plan_apply.BATCH)
            sent, accepted, limited, rate = plan_apply.write_requests(emulator, mark_at)
            print(
                f"apply  {run.wall_seconds:7.2f} s  peak RSS {run.peak_rss_mb:6.0f} MB  write "
                f"requests {sent} (accepted {accepted}, 429 {limited}; minimum {minimum}), "
                f"{rate:.1f} writes/s of {args.write_limit:g}"
            )
            again = run_measured(
                [*plan[:-2], "--detailed-exitcode"], timeout=TIMEOUT_SECONDS, env=env
            )
            state = "no changes" if again.returncode == 0 else "CHANGES LEFT"
            print(
                f"again  {again.wall_seconds:7.2f} s  peak RSS {again.peak_rss_mb:6.0f} MB  {state}"
            )
            if run.returncode != 0 or again.returncode != 0:
                raise SystemExit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _seed(emulator: Emulator, live: Path) -> None:
    project = emulator.project(plan_apply.PROJECT)
    list_id = project.add_list(plan_apply.LIST_NAME, mark(None))
    gc.disable()  # tens of millions of containers, as in plan_apply.seed
    try:
        with live.open(encoding="utf-8") as handle:
            for line in handle:
                email, user_id = line.rstrip("\n").split(",")
                project.subscribe_direct(list_id, email=email, user_id=user_id)
    finally:
        gc.enable()
    gc.freeze()


if __name__ == "__main__":
    main()
