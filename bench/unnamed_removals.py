"""`reconciler apply` of a hybrid list's removals that Iterable's answers of counts leave
unnamed, under the emulator's `field` profile at a time scale.

    python bench/unnamed_removals.py [N ...] [--keep 1000] [--scale 20]

A hybrid removal whose identifier is an email in lower case is sent as the kind the list
read names a profile by (a userId here: the audience is keyed by userId), and when Iterable
finds no such user, again as the other kind. Under answers of counts only (the field
profile's, as Iterable's) no removal is named: each such text of a batch answered short is
read (GET users/byUserId) to tell whether any profile has it as the kind it was sent as.
Here every leaving member has only an email (the read names it by that), so every batch of
1,000 comes back short: N reads. Where userIds are emails, one user deleted since the plan
does the same to its batch. The apply now reads one user export instead once those reads
are modelled slower than it (apply/channel_profiles.py unnamed_profiles).

For each N a fresh in-process emulator (Faults.field(K)) holds one list of N email-only
members and --keep members with a userId; an audience keeping the --keep takes the N off.
Printed per N: the apply's exit, wall time and peak RSS, its requests per endpoint, and
its profile reads and what they take at Iterable's 100 a second.

Measured (2 shared cores, --scale 20, --keep 1000), before and after:

    20,000   before: 20,043 requests, 20,000 of them GET users/byUserId (3 min 20 s of
                     reads against Iterable), 78.7 s wall, 111 MB
             after:  1,044 requests: 1,000 reads (the first short batch's, 10 s, less
                     than the export's modelled 12.5 s) and 1 user export, 23.9 s wall,
                     116 MB
             merged with the export modelled by the project's counted profiles (a
             project no export counted, as here where the lists are read by getUsers:
             the export must win five times over, 62.5 s): 6,044 requests, 6,000 reads
             (six short batches, 1 min 00 s at Iterable's rate) and then 1 user export,
             13.3 s wall, 116 MB
    every run        the same unsubscribes: N sent as a userId, then N again as an email;
                     the list left with the --keep

With RECONCILER_MEMBER_READS=export (the plan reads the lists by one user export in the
same process) the apply exports the project a second time for these removals: 20,000,
2 data.json exports (21,000 profiles each, about 12.5 s against Iterable), 1,000 reads,
12.2 s wall, 117 MB. Keeping the plan's export parsed for them (as for channel removals,
PlanProfiles) was measured and not done: `--kept-texts N` holds N such texts and the
profile of each as ChannelProfiles keeps them:

    100,000      34 MB (342 bytes each), 4.0 s to match 100,000 rows (tracemalloc on)
    1,000,000    326 MB (326 bytes each), 36 s to match (plus the file's parse, about
                 10 s at users_file.ROWS_PER_SECOND)

paid by every plan made for apply with such removals, while a second export is needed only
when Iterable's answers come back short, and the plan's export answers only within a
minute of its start (channel_profiles.FRESH_SECONDS): only in a project whose export
takes less than that, so the second export it would save is under a minute.

Not a test: nothing is asserted about time. Exits 1 when the list is not left with exactly
the --keep members or the apply fails.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import plan_apply
from channel_removals import USER_READS_PER_SECOND, apply_counted
from large_reads import scaled_limits

from reconciler.apply.channel_profiles import ChannelProfiles
from reconciler.emulator import Emulator, EmulatorServer, Faults
from reconciler.plan.ownership import mark
from reconciler.progress import duration


def one_size(n: int, keep: int, scale: float, root: Path) -> bool:
    emulator = Emulator(
        limits=scaled_limits(scale), faults=Faults.field(scale), log_limit=5_000_000
    )
    emulator.add_project(plan_apply.PROJECT, "hybrid", plan_apply.API_KEY)
    project = emulator.project(plan_apply.PROJECT)
    name = "churn"
    list_id = project.add_list(name, mark(None, name))
    manifests = root / f"manifests-{n}"
    manifests.mkdir()
    csv = manifests / "churn.csv"
    gc.disable()
    try:
        with csv.open("w", encoding="utf-8") as out:
            out.write("userId\n")
            for i in range(n):
                project.subscribe_direct(list_id, email=f"m{i:08d}@example.com")
            for i in range(keep):
                project.subscribe_direct(list_id, email=f"k{i:08d}@example.com", user_id=f"k{i}")
                out.write(f"k{i}\n")
    finally:
        gc.enable()
    gc.freeze()
    env = plan_apply.scaled_env(scale)
    with EmulatorServer(emulator) as server:
        documents = [
            plan_apply.destination_document(server.base_url, "hybrid"),
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {
                    "destination": "bench",
                    "members": {"csv": csv.name, "userId": "userId"},
                    "policy": {"maxRemovalPercent": 100},
                },
            },
        ]
        run, log, spent = apply_counted(manifests, documents, env, emulator)
    reads = sum(v for k, v in spent.items() if k.endswith("/..."))
    left = project.members(list_id, True)
    ok = run.returncode == 0 and len(left) == keep
    print(
        f"{n:,} unnamed removals ({keep:,} kept): exit {run.returncode}, "
        f"{run.wall_seconds:.1f} s wall, peak RSS {run.peak_rss_mb:,.0f} MB, "
        f"{len(left):,} left on the list; {len(log):,} requests"
    )
    for path, count in sorted(spent.items()):
        print(f"    {count:>9,}  {path}")
    print(
        f"    profile reads {reads:,}: at Iterable's {USER_READS_PER_SECOND} a second "
        f"{duration(reads / USER_READS_PER_SECOND)}"
    )
    if not ok:
        print(run.stderr[-3000:])
    return ok


def kept_texts(n: int) -> None:
    """What ChannelProfiles holds for n unnamed removals' texts, each found in the export
    (email and userId): traced memory and the time to match n rows."""
    tracemalloc.start()
    wanted = frozenset(f"m{i:08d}@example.com" for i in range(n))
    texts = tracemalloc.get_traced_memory()[0]
    profiles = ChannelProfiles(wanted, frozenset())
    started = time.perf_counter()
    for i in range(n):
        profiles({"email": f"m{i:08d}@example.com", "userId": f"u{i:08d}", "userListIds": [1]})
    seconds = time.perf_counter() - started
    total = tracemalloc.get_traced_memory()[0]
    print(
        f"{n:,} texts: {texts / 1e6:.0f} MB, their profiles {(total - texts) / 1e6:.0f} MB, "
        f"{total / 1e6:.0f} MB in all ({total / n:.0f} bytes each); {seconds:.1f} s to match "
        f"{n:,} rows (tracemalloc on)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="*", type=int, default=[20_000], help="removals (20,000)")
    parser.add_argument("--keep", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument(
        "--kept-texts", type=int, default=0, help="only measure holding N texts' profiles"
    )
    args = parser.parse_args()
    if args.kept_texts:
        kept_texts(args.kept_texts)
        return
    root = Path(tempfile.mkdtemp(prefix="reconciler-unnamed-removals-"))
    print(f"field profile at time scale {args.scale:g}; {os.cpu_count()} cores", flush=True)
    try:
        ok = all(one_size(n, args.keep, args.scale, root) for n in args.n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
