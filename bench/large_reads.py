"""Plans of large lists under the emulator's `field` profile at a time scale (issue 18).

    python bench/large_reads.py [--scale 50] [--big 3] [--big-size 1000000] [--small 20]
                                [--small-size 10000]

Seeds --big lists of --big-size members and --small lists of --small-size (each list its
own users, so the project holds their sum) straight into an in-process emulator under
`Faults.field(K)`: getUsers and the user export answer at field speed (first byte, members
a second, an export connection closed after its modelled length), every duration divided by
K, and Iterable's rate limits with their windows divided by K too. The client is told the
same scale (RECONCILER_TIME_SCALE), so it paces and models routes as against Iterable.
Each audience's CSV is its list but 1% plus 1% new members.

Then, each a measured subprocess (bench/measure.py): `reconciler plan --out`, and
`reconciler apply --plan` of that file. For each it prints the wall time, the modelled
floor (the shortest time Iterable's limits and speeds allow for the read it needs: the
plan's, every list's members; apply --plan's stale check, the same), their ratio, the
requests per endpoint, and a projection of the same unscaled against Iterable: the
floor times K plus what the run spent beyond its floor (work on this machine, which the
time scale does not shrink).

Not a test: nothing is asserted about time; every subprocess has a timeout. Exits 1 when
a plan is not exact (its adds and removes are not the 1% seeded) or apply --plan fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import plan_apply
from measure import Measured, run_measured

from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from reconciler.iterable import ClientSettings
from reconciler.plan.ownership import mark
from reconciler.progress import duration
from reconciler.state.routes import get_users_seconds

TIMEOUT_SECONDS = 3600


def scaled_limits(scale: float) -> Limits:
    """Iterable's limits with every window divided by `scale`."""
    limits = Limits.iterable()
    for f in dataclasses.fields(limits):
        rate = getattr(limits, f.name)
        if isinstance(rate, tuple):  # (requests, window seconds); not a job count
            setattr(limits, f.name, (rate[0], rate[1] / scale))
    return limits


def floors(faults: Faults, sizes: list[int], scale: float) -> dict[str, float]:
    """Modelled seconds of each read route, from the emulator's own knobs: getUsers for
    every list (as many in flight as wanted, 5 starts a window, largest first), one user
    export of the project (when its connection outlasts it; otherwise it cannot finish),
    and one asynchronous export job (its queue, then its users; files fetched at once)."""
    # The model at this time scale, fed the emulator's figures unscaled.
    settings = ClientSettings(
        get_users_rate=(faults.get_users_members_per_second or float("inf")) / scale,
        bulk_read_first_byte=faults.get_users_first_byte_seconds * scale,
        list_read_concurrency=len(sizes),
        time_scale=scale,
    )
    by_get_users = get_users_seconds(sizes, settings)
    out = {"getUsers": by_get_users}
    rate = faults.export_members_per_second or float("inf")
    by_export = faults.export_first_byte_seconds + sum(sizes) / rate
    limit = faults.export_stream_seconds
    if limit is None or by_export <= limit:
        out["export"] = by_export
    job_rate = faults.export_job_members_per_second or float("inf")
    out["asyncExport"] = faults.export_job_queue_seconds + sum(sizes) / job_rate
    return out


def calls(emulator: Emulator, since: int) -> Counter[str]:
    return Counter(f"{r.method} {r.path}" for r in emulator.request_log[since:])


def report(name: str, run: Measured, floor: float, route: str, spent: Counter[str], scale: float):
    ratio = run.wall_seconds / floor if floor else float("inf")
    print(
        f"{name}: {run.wall_seconds:.1f} s wall (peak RSS {run.peak_rss_mb:,.0f} MB), "
        f"modelled floor {floor:.1f} s ({route}), ratio {ratio:.2f}"
    )
    for endpoint, n in sorted(spent.items()):
        print(f"    {n:>6,}  {endpoint}")
    beyond = max(0.0, run.wall_seconds - floor)
    print(
        f"    unscaled against Iterable: about {duration(floor * scale + beyond)} "
        f"(floor {duration(floor * scale)} + {duration(beyond)} of work here)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=50.0)
    parser.add_argument("--big", type=int, default=3)
    parser.add_argument("--big-size", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--small-size", type=int, default=10_000)
    args = parser.parse_args()
    scale = args.scale

    faults = Faults.field(scale)
    emulator = Emulator(limits=scaled_limits(scale), faults=faults, log_limit=1_000_000)
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    project = emulator.project(plan_apply.PROJECT)
    lists = [(f"big-{n}", args.big_size) for n in range(args.big)]
    lists += [(f"small-{n:02d}", args.small_size) for n in range(args.small)]
    sizes = [size for _name, size in lists]
    root = Path(tempfile.mkdtemp(prefix="reconciler-large-reads-"))
    env = plan_apply.scaled_env(scale)
    manifests = root / "manifests"
    manifests.mkdir()
    try:
        with EmulatorServer(emulator) as server:
            documents = [plan_apply.destination_document(server.base_url, "email")]
            expected = 0
            gc.disable()  # millions of profiles are millions of containers
            try:
                for name, size in lists:
                    list_id = project.add_list(name, mark(None, name))
                    csv = manifests / f"{name}.csv"
                    with csv.open("w", encoding="utf-8") as out:
                        out.write("email\n")
                        for member in range(size):
                            address = f"{name}-{member}@example.com"
                            # The first 1% are on the list only; the last 1% in the CSV only.
                            if member >= size // 100:
                                out.write(address + "\n")
                            if member < size - size // 100:
                                project.subscribe_direct(list_id, email=address)
                    expected += size // 100
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
            routes = floors(faults, sizes, scale)
            route, floor = min(routes.items(), key=lambda kv: kv[1])
            print(
                f"{args.big} lists of {args.big_size:,} and {args.small} of {args.small_size:,} "
                f"({sum(sizes):,} users, email project); field profile at time scale {scale:g}; "
                f"{os.cpu_count()} cores"
            )
            print(
                "modelled routes: "
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in routes.items())
            )
            command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
            saved = root / "bench.plan"
            since = len(emulator.request_log)
            run = run_measured(
                [*command, "plan", str(manifests), "--format", "json", "--out", str(saved)],
                timeout=TIMEOUT_SECONDS,
                env=env,
            )
            if run.returncode != 0:
                raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-3000:]}")
            plan = json.loads(run.stdout)
            summary = plan["summary"]
            report("plan", run, floor, route, calls(emulator, since), scale)
            print(f"    member read: {plan['destinations'][0]['member_read']}")
            exact = summary["members_to_add"] == expected == summary["members_to_remove"]
            print(
                f"    adds {summary['members_to_add']:,}, removes "
                f"{summary['members_to_remove']:,} (expected {expected:,} each)"
            )

            since = len(emulator.request_log)
            applied = run_measured(
                [*command, "apply", "--plan", str(saved), "--yes", "--format", "json"],
                timeout=TIMEOUT_SECONDS,
                env=env,
            )
            spent = calls(emulator, since)
            # The stale check is one export: the faster of the two kinds.
            check = min(routes.get("export", float("inf")), routes["asyncExport"])
            report("apply --plan", applied, check, "stale check", spent, scale)
            if applied.returncode != 0:
                print(applied.stderr[-3000:])
                raise SystemExit(1)
            if not exact:
                raise SystemExit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
