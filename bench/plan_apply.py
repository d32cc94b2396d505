"""`reconciler plan` and `apply` against the emulator on loopback, with figures.

    python bench/plan_apply.py [N] [--write-limit 20] [--source csv|parquet]

Phases, each a real `reconciler` subprocess measured from a small parent (bench/measure.py):

    load    apply N members to a new list: requests vs ceil(N/1000), writes/s vs the limit
    plan    1% of the members leave and 1% new ones join: plan wall time and peak RSS
    apply   that change: requests vs ceil(adds/1000) + ceil(removes/1000)
    again   plan once more: must find nothing to do

The emulator runs in this process with no read limits and a write limit of
--write-limit requests per second on subscribe/unsubscribe (a sliding one-second window, as
Iterable enforces its limits); the client is told the same limit
(RECONCILER_WRITES_PER_SECOND), so the achieved rate shows how close pacing gets to it.
Not a test: nothing is asserted about time. Stops by itself: every subprocess has a timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from measure import Measured, run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits

API_KEY = "bench-key"
API_KEY_VAR = "RECONCILER_BENCH_API_KEY"
WRITE_PATHS = ("/api/lists/subscribe", "/api/lists/unsubscribe")
STEP_TIMEOUT_SECONDS = 1800
BATCH = 1000
WINDOW_SECONDS = 1.0


def email(i: int) -> str:
    return f"user{i}.{(i * 2654435761) % 100000}@example{i % 97}.com"


def write_members(path: Path, indexes: range | list[int], source: str) -> None:
    if source == "csv":
        with path.open("w", encoding="utf-8") as handle:
            handle.write("email\n")
            handle.writelines(f"{email(i)}\n" for i in indexes)
        return
    import duckdb

    text = path.with_suffix(".txt")
    with text.open("w", encoding="utf-8") as handle:
        handle.writelines(f"{email(i)}\n" for i in indexes)
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM read_csv('{text}', header = false, "
            f"columns = {{'email': 'VARCHAR'}})) TO '{path}' (FORMAT parquet)"
        )
    text.unlink()


def write_manifests(root: Path, base_url: str, source: str) -> Path:
    manifests = root / "manifests"
    manifests.mkdir(parents=True)
    documents = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "bench"},
            "spec": {
                "region": "us",
                "projectType": "email",
                "baseUrl": base_url,
                "apiKey": {"env": API_KEY_VAR},
            },
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "bench"},
            "spec": {"destination": "bench", "members": {source: f"members.{source}"}},
        },
    ]
    (manifests / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
    return manifests


def reconciler(args: list[str], env: dict[str, str]) -> Measured:
    command = [sys.executable, "-c", "from reconciler.cli import main; main()", *args]
    run = run_measured(command, timeout=STEP_TIMEOUT_SECONDS, env=env)
    if run.returncode not in (0, 2):
        raise SystemExit(f"reconciler {args[0]} exited {run.returncode}:\n{run.stderr[-2000:]}")
    return run


def write_requests(emulator: Emulator, since: int) -> tuple[int, int, int, float]:
    """Accepted writes, 429s, and the achieved rate of accepted writes per second.

    The rate is accepted / (first-to-last span + the limit's 1 s window): a sliding window
    lets the first second's worth go at once, so perfect pacing of N writes at W/s spans
    N/W - 1 s, and this measure gives exactly W for it.
    """
    log = [r for r in emulator.request_log[since:] if r.path in WRITE_PATHS]
    accepted = [r for r in log if r.status == 200]
    limited = sum(1 for r in log if r.status == 429)
    rate = 0.0
    if accepted:
        rate = len(accepted) / (accepted[-1].at - accepted[0].at + WINDOW_SECONDS)
    return len(log), len(accepted), limited, rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=100_000, help="members (100,000)")
    parser.add_argument(
        "--write-limit", type=float, default=20, help="emulator writes/s limit (20)"
    )
    parser.add_argument("--source", choices=("csv", "parquet"), default="csv")
    args = parser.parse_args()
    n, churn = args.n, max(1, args.n // 100)

    root = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    limits = Limits.unlimited()
    limits.writes = (int(args.write_limit), WINDOW_SECONDS)
    emulator = Emulator(limits=limits)
    emulator.add_project("default", "email", API_KEY)
    env = {
        **os.environ,
        API_KEY_VAR: API_KEY,
        "RECONCILER_WRITES_PER_SECOND": str(args.write_limit),
        "RECONCILER_LIST_READS_PER_MINUTE": "100000",
    }
    try:
        with EmulatorServer(emulator) as server:
            manifests = write_manifests(root, server.base_url, args.source)
            members = manifests / f"members.{args.source}"
            print(
                f"{n:,} members ({args.source}), 1% churn each way; emulator on "
                f"{server.base_url}, write limit {args.write_limit:g} requests/s; "
                f"{os.cpu_count()} cores"
            )

            # load: every member to a new list
            write_members(members, range(n), args.source)
            mark = len(emulator.request_log)
            load = reconciler(["apply", str(manifests), "--yes"], env)
            print(
                f"load   apply {load.wall_seconds:7.2f} s  peak RSS {load.peak_rss_mb:6.0f} MB  "
                + _writes(emulator, mark, math.ceil(n / BATCH), args.write_limit)
            )

            # plan and apply a 1% churn each way
            write_members(members, [i for i in range(n + churn) if i >= n or i % 100], args.source)
            plan = reconciler(["plan", str(manifests), "--format", "json"], env)
            summary = json.loads(plan.stdout)["summary"]
            adds, removes = summary["members_to_add"], summary["members_to_remove"]
            print(
                f"churn  plan  {plan.wall_seconds:7.2f} s  peak RSS {plan.peak_rss_mb:6.0f} MB  "
                f"+{adds:,} / -{removes:,}"
            )
            mark = len(emulator.request_log)
            apply = reconciler(["apply", str(manifests), "--yes"], env)
            minimum = math.ceil(adds / BATCH) + math.ceil(removes / BATCH)
            print(
                f"churn  apply {apply.wall_seconds:7.2f} s  peak RSS {apply.peak_rss_mb:6.0f} MB  "
                + _writes(emulator, mark, minimum, args.write_limit)
            )

            start = time.perf_counter()
            again = reconciler(["plan", str(manifests), "--detailed-exitcode"], env)
            state = "no changes" if again.returncode == 0 else "CHANGES LEFT"
            print(f"again  plan  {time.perf_counter() - start:7.2f} s  {state}")
            if again.returncode != 0:
                raise SystemExit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _writes(emulator: Emulator, since: int, minimum: int, limit: float) -> str:
    sent, accepted, limited, rate = write_requests(emulator, since)
    # Up to one window's worth of writes may all go at once: the limit was never in play.
    note = " (the limit was not reached)" if accepted <= limit else ""
    return (
        f"write requests {sent} (accepted {accepted}, 429 {limited}; minimum {minimum}), "
        f"{rate:.1f} writes/s of {limit:g} allowed{note}"
    )


if __name__ == "__main__":
    main()
