"""`reconciler apply` of a hybrid list's removals with `channelUnsubscribe: true` under
the emulator's `field` profile at a time scale.

    python bench/channel_removals.py [N ...] [--keep 1000] [--others 0] [--scale 20]
                                     [--by email|userId] [--project hybrid|userId]

In a hybrid project each such removal whose identifier is shaped like an email in lower
case is resolved to the profile the list read named by it before it is sent (README: "there
each such identifier is read first"), so that the channel of another person whose email
or userId that text is never goes. For each N a fresh in-process emulator (Faults.field(K),
Iterable's limits with their windows divided by K) holds one list of N + --keep members,
and an audience keeping the --keep takes the N off it; the client is told the same scale
(RECONCILER_TIME_SCALE). --by email: members with an email and a userId, the audience keyed
by email (the list read names them by email: one read each when resolved one by one);
--by userId: members whose userId is an email in lower case and who have no email, the
audience keyed by userId (two reads each: the email's, which finds nobody, then byUserId).
--project userId: a userID-based project, the members' userIds emails in lower case (one
byUserId read each when resolved one by one; implies --by userId).
--others M adds M profiles on no list: the project's user export streams them too, though
no list's size shows them.

Printed per N: the apply's wall time and peak RSS, its requests per endpoint, the profile
reads it made and what they take at Iterable's 100 a second (and a churn of a million
alike), the scaled wall time times K (an upper bound unscaled: the work on this machine is
not scaled), and, when a user export was made, its profiles and its modelled time against
Iterable (ClientSettings: first byte, then 2,000 a second).

Measured (2 shared cores under a load of about 14, --scale 20, --keep 1000), before (every
removal read one by one) and after (one user export, chosen by the model as the consent
read chooses):

    --by email   20,000   before: 20,000 GET users/{email}, 39 s wall, 111 MB; the reads
                          alone 3 min 20 s against Iterable (a churn of 1M: 2 h 46 min)
                          after:  1 user export (21,000 profiles, about 12 s against
                          Iterable), 0 reads, 12 s wall, 118 MB
                 200,000  before: 200,000 reads, 806 s wall, 140 MB (33 min of reads)
                          after:  1 user export (201,000 profiles, about 1 min 43 s against
                          Iterable), 0 reads, 83 s wall, 209 MB
    --by userId  20,000   before: 40,000 reads (users/{email} + byUserId), 85 s wall; 6 min
                          40 s against Iterable (a churn of 1M: 5 h 33 min)
                          after:  1 user export, 0 reads, 10 s wall, 117 MB
    every run             the same unsubscribes: ceil(N/1000) requests, N members off

Measured again after the export's size was taken from the project's profiles as the
run's own whole export counted them (else the largest list, the export then to win by
5 times), and the plan's export taken for the removals when made in the same process at
most a minute before (same machine, load about 15):

    300 --others 200,000  before: 1 user export of 201,300 profiles (1 min 43 s against
                          Iterable) for 300 removals, 10.5 s wall
                          after:  300 GET users/{email} (3 s), no export, 9.8 s wall
    20,000 (--scale 20)   before and after alike: 1 getUsers (the audience's 1,000 guess
                          the list small), 1 user export, 15 s wall, 118 MB
    20,000 --scale 1, RECONCILER_MEMBER_READS=export (the plan reads by export)
                          before: 2 user exports (the plan's, then the removals'), 32.5 s
                          after:  1 user export (the plan's), 21.6 s wall, 122 MB

--project userId (a userID-based project whose userIds are emails; same machine, load
about 14, --scale 20, --keep 1000), before and after its channel removals took the export
route hybrid's do:

    20,000                before: 20,000 GET users/byUserId, 68.5 s wall, 151 MB; the
                          reads alone 3 min 20 s against Iterable (1M: 2 h 46 min)
                          after:  1 user export (21,000 profiles, about 12 s against
                          Iterable), 0 reads, 13.3 s wall, 117 MB

A churn of a million in a project of 5M profiles is one export of about 42 minutes
(modelled) against 2.8 to 5.6 hours of reads. What it costs: memory for the removals'
texts and the profiles kept for them (about 350 bytes a removal), and one of Iterable's 4
exports a minute.

Not a test: nothing is asserted about time; the apply has a timeout. Exits 1 when the list
is not left with exactly the --keep members or the apply fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import plan_apply
from large_reads import scaled_limits
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Faults
from reconciler.iterable import ClientSettings
from reconciler.plan.ownership import mark
from reconciler.progress import duration

TIMEOUT_SECONDS = 3600
EXPORT = "/api/export/data.json"
USER_READS_PER_SECOND = 100  # Iterable's limit on users/{email} and users/byUserId


def apply_counted(
    manifests: Path, documents: list[dict], env: dict[str, str], emulator: Emulator
) -> tuple[Any, list[Any], Counter[str]]:
    """`documents` written as the manifests and applied in a measured process: its
    measurement, the requests it sent and their count per endpoint (per-user reads as one)."""
    (manifests / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
    command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    since = len(emulator.request_log)
    run = run_measured(
        [*command, "apply", str(manifests), "--yes", "--format", "json"],
        timeout=TIMEOUT_SECONDS,
        env=env,
    )
    log = emulator.request_log[since:]
    return run, log, Counter(f"{r.method} {endpoint(r.path)}" for r in log)


def endpoint(path: str) -> str:
    """A per-user read's path without the identifier."""
    if path.startswith("/api/users/byUserId/"):
        return "/api/users/byUserId/..."
    if path.startswith("/api/users/") and "%40" in path:
        return "/api/users/..."
    return path


def one_size(
    n: int, keep: int, others: int, scale: float, by: str, root: Path, project_type: str
) -> bool:
    faults = Faults.field(scale)
    emulator = Emulator(limits=scaled_limits(scale), faults=faults, log_limit=5_000_000)
    emulator.add_project(plan_apply.PROJECT, project_type, plan_apply.API_KEY)
    project = emulator.project(plan_apply.PROJECT)
    name = "churn"
    list_id = project.add_list(name, mark(None, name))
    manifests = root / f"manifests-{n}-{by}"
    manifests.mkdir()
    csv = manifests / "churn.csv"
    gc.disable()
    try:
        with csv.open("w", encoding="utf-8") as out:
            out.write(f"{by}\n")
            for i in range(n + keep):
                address = f"m{i:08d}@example.com"
                if by == "email":
                    project.subscribe_direct(list_id, email=address, user_id=f"u{i:08d}")
                else:
                    project.subscribe_direct(list_id, user_id=address)
                if i >= n:
                    out.write(address + "\n")
        for i in range(others):  # the project's other profiles, on no list
            project.add_user(
                email=None if project_type == "userId" else f"o{i:08d}@example.com",
                user_id=f"o{i:08d}",
            )
    finally:
        gc.enable()
    gc.freeze()
    env = plan_apply.scaled_env(scale)
    with EmulatorServer(emulator) as server:
        documents = [
            plan_apply.destination_document(server.base_url, project_type),
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {
                    "destination": "bench",
                    "members": {"csv": csv.name, by: by},
                    "policy": {"maxRemovalPercent": 100},
                    "unsubscribe": {"channelUnsubscribe": True},
                },
            },
        ]
        run, _, spent = apply_counted(manifests, documents, env, emulator)
    reads = sum(v for k, v in spent.items() if k.endswith("/..."))
    left = project.members(list_id, by == "userId")
    ok = run.returncode == 0 and len(left) == keep
    print(
        f"{n:,} removals ({project_type}, --by {by}, {keep:,} kept, {others:,} other profiles): "
        f"exit {run.returncode}, "
        f"{run.wall_seconds:.1f} s wall, peak RSS {run.peak_rss_mb:,.0f} MB, "
        f"{len(left):,} left on the list"
    )
    for path, count in sorted(spent.items()):
        print(f"    {count:>9,}  {path}")
    print(
        f"    profile reads {reads:,}: at Iterable's {USER_READS_PER_SECOND} a second "
        f"{duration(reads / USER_READS_PER_SECOND)}; 1M removals alike: "
        f"{duration(reads / n * 1_000_000 / USER_READS_PER_SECOND) if n else '-'}; "
        f"this apply unscaled: at most {duration(run.wall_seconds * scale)}"
    )
    exports = spent.get(f"GET {EXPORT}", 0)
    if exports:
        # The export streams every profile of the project (here the list's), at the rate
        # the client models for Iterable (ClientSettings.export_rate) after its first byte.
        settings = ClientSettings()
        rows = n + keep + others
        modelled = settings.bulk_read_first_byte + rows / settings.export_rate
        print(
            f"    user exports {exports}: {rows:,} profiles, against Iterable about "
            f"{duration(modelled)} at the modelled {settings.export_rate:,.0f} a second"
        )
    if not ok:
        print(run.stderr[-3000:])
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="*", type=int, default=[20_000], help="removals (20,000)")
    parser.add_argument("--keep", type=int, default=1000)
    parser.add_argument(
        "--others", type=int, default=0, help="profiles of the project on no list (0)"
    )
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--by", choices=("email", "userId"), default="email")
    parser.add_argument("--project", choices=("hybrid", "userId"), default="hybrid")
    args = parser.parse_args()
    by = "userId" if args.project == "userId" else args.by
    root = Path(tempfile.mkdtemp(prefix="reconciler-channel-removals-"))
    print(f"field profile at time scale {args.scale:g}; {os.cpu_count()} cores", flush=True)
    try:
        ok = all(
            one_size(n, args.keep, args.others, args.scale, by, root, args.project) for n in args.n
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
