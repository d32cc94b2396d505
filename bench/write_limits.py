"""`reconciler apply` of a new list's adds against an Iterable that limits subscribe
requests more tightly than the client's writers send them, over loopback HTTP.

    python bench/write_limits.py [N] [--limits 0.3,1,3] [--retry-after]

Iterable documents no limit for lists/subscribe, so the client sends unpaced, 4 requests
at once (RECONCILER_WRITES_PER_SECOND 0, RECONCILER_CONCURRENCY 4, the defaults), until
429s show a limit: then at a pace learnt from them (ratelimit.Pace). For each limit (the
emulator's `write_rate_per_second`: a token bucket, requests a second per project; 429
without Retry-After unless --retry-after; 100000 is none) a fresh emulator takes an apply
of N new members (ceil(N/1000) requests) to a new list, in a measured subprocess
(bench/measure.py). Printed per limit:

    requests   write requests sent, accepted and answered 429
    batches    failed (the apply's errors: each a request that gave up) of the minimum
    members    on the list after the apply, of N
    rate       accepted writes a second over the apply's writes, against the limit
    apply      wall time, peak RSS, and the exit code (0: everything written)
    stderr     lines on stderr (progress every 10 s, retries: the first 20, then a count a
               minute), and the journal's bytes per batch (its intent and outcome lines)

Measured (30,000 members, 2 shared cores), before and after 429s that follow others
taken were no longer counted against the retry budget:

    limit 0.3/s            before: 151 sent, 126 429s, 5 of 30 batches failed, exit 1
                           after:  157 sent, 127 429s, 0 failed, exit 0 (154 s)
    limit 0.3/s, Retry-After  before: 100 sent, 5 failed, exit 1; after: 102 sent, 0 failed
    limit 1/s              0 failed either way; 95-99 sent for 30 (0.44-0.57 accepted/s)
    limit 3/s              0 failed; 30-60 sent; 2.6-3.0 accepted/s
    every run              134-137 MB peak RSS, about 290 journal bytes a batch (10M
                           members: about 3 MB), 6-35 lines on stderr

Then before and after the pace learnt from 429s (the same 30,000; ideal: 100 s at 0.3/s,
30 s at 1/s; the emulator takes these requests at 3-7 a second unlimited, load 2-5):

    limit 0.3/s    before: 163 sent, 133 429s, 0.19 accepted/s, 157 s, 35 lines on stderr
                   after:   48 sent,  18 429s, 0.21 accepted/s, 148 s, 53 lines (a notice
                            for each wait of 5 s or more at the pace learnt)
    limit 1/s      before: 105 sent, 75 429s, 0.50/s, 64 s; after: 43 sent, 13 429s,
                   0.76/s, 44 s
    limit 3/s      before: 37 sent, 7 429s, 3.08/s, 17 s; after: 35 sent, 5 429s, 3.04/s,
                   17 s
    no limit       30 sent, no 429s either way (18 s and 11 s: the machine's load)
    every run      0 batches failed, exit 0, 134-140 MB peak RSS

Then with a 429 lowering the pace to the rate Iterable took since its last change (at most
0.8 of it) where that is more than half (the same day, load 2-5):

    limit 0.3/s    57 sent, 27 429s, 0.22 accepted/s, 141 s, 41 lines on stderr
    limit 1/s      43 sent, 13 429s, 0.82/s, 44 s
    limit 3/s      36 sent, 6 429s, 3.06/s, 17 s
    no limit       30 sent, no 429s, 12 s

What it leaves: a limit tighter than the emulator's own speed is used at 70-80% over 30
requests (0.22/s of 0.3, 0.82/s of 1; 0.9 over 200 in tests/unit/test_pace.py's model):
the first few 429s are spent finding it, each with its backoff. RECONCILER_WRITES_PER_SECOND
set to the limit uses all of it.

Not a test: nothing is asserted about time. Stops by itself: the apply has a timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from measure import run_measured
from plan_apply import API_KEY, API_KEY_VAR, PROJECT, WRITE_PATHS, write_manifests

from reconciler.emulator import Emulator, EmulatorServer, Limits

TIMEOUT_SECONDS = 1800


def members_file(directory: Path, n: int) -> Path:
    path = directory / "members.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email\n")
        handle.writelines(f"member{i:08d}@example.com\n" for i in range(n))
    return path


def one_limit(n: int, limit: float, retry_after: bool, root: Path) -> str:
    manifests = root / f"manifests-{limit}"
    manifests.mkdir()
    members = members_file(manifests, n)
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(PROJECT, "email", API_KEY)
    emulator.faults.write_rate_per_second = limit
    emulator.faults.retry_after = retry_after
    state = root / f"state-{limit}"
    env = {
        **os.environ,
        API_KEY_VAR: API_KEY,
        "RECONCILER_READ_LAG": "0",  # the emulator answers consistently: nothing to wait
        "RECONCILER_MEMBER_READS": "getUsers",
        "RECONCILER_LIST_READS_PER_MINUTE": "100000",
    }
    with EmulatorServer(emulator) as server:
        write_manifests(manifests, server.base_url, members, "csv")
        command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
        args = ["apply", str(manifests), "--yes", "--format", "json", "--state-dir", str(state)]
        run = run_measured([*command, *args], timeout=TIMEOUT_SECONDS, env=env)
    log = [r for r in emulator.request_log if r.path in WRITE_PATHS]
    accepted = [r for r in log if r.status == 200]
    limited = sum(1 for r in log if r.status == 429)
    span = accepted[-1].at - accepted[0].at if len(accepted) > 1 else 0.0
    rate = (len(accepted) - 1) / span if span > 0 else 0.0
    try:
        report = json.loads(run.stdout)
        lists = [x for d in report["destinations"] for x in d["lists"]]
        failed = sum(len(x["errors"]) for x in lists)
        added = sum(x["added"] for x in lists)
    except (ValueError, KeyError, TypeError):
        failed, added = -1, -1
    journals = sorted((state / "runs").glob("apply-*.jsonl"))
    journal_bytes = journals[-1].stat().st_size if journals else 0
    minimum = math.ceil(n / 1000)
    return (
        f"limit {limit:g}/s{' (Retry-After)' if retry_after else ''}: "
        f"requests {len(log):,} sent, {len(accepted):,} accepted, {limited:,} 429; "
        f"batches {failed} failed of {minimum:,}; members {added:,} of {n:,}; "
        f"rate {rate:.2f}/s; apply {run.wall_seconds:.0f} s, {run.peak_rss_mb:.0f} MB, "
        f"exit {run.returncode}; stderr {len(run.stderr.splitlines()):,} lines, journal "
        f"{journal_bytes / minimum:.0f} bytes a batch"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=30_000, help="members (30,000)")
    parser.add_argument("--limits", default="0.3,1,3", help="subscribe requests a second (0.3,1,3)")
    parser.add_argument("--retry-after", action="store_true", help="429s carry Retry-After")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reconciler-write-limits-"))
    print(f"{args.n:,} new members, 4 writers unpaced (the client's defaults)", flush=True)
    for limit in (float(x) for x in args.limits.split(",")):
        print(one_limit(args.n, limit, args.retry_after, root), flush=True)


if __name__ == "__main__":
    main()
