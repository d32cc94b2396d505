"""`reconciler plan` of a hybrid destination whose audiences key one person two ways.

    python bench/plan_pairs.py [AUDIENCES ...] [--rows 20000] [--engines python,duckdb]

Data, deterministic: a population of 2 x ROWS people, each with an email and a userId.
AUDIENCES audiences (4, 16 and 40 by default), each on its own empty list of a hybrid
project, each naming about ROWS of those people (a different half for each audience):
half the audiences keyed by email (a CSV of `email,tier`, no userId), half by a userId
given with that email (`userId,email,tier`). One TraitMapping maps `tier` for all of
them; one person in a thousand is given another tier by the userId-keyed audiences, a
conflict the plan holds back (plan/fields.same_person_pairs, and in DuckDB
members/engine/field_tables.same_person_candidates). Every pair of an email-keyed and a
userId-keyed audience shares about ROWS/2 people, so the pairs themselves grow as
AUDIENCES^2: what is measured is whether the plan's cost grows faster than that.

Each plan is a measured subprocess (bench/measure.py): wall time, CPU, peak RSS, and the
conflicts the plan reports. RECONCILER_ENGINE is set per run (--engines). Not a test:
nothing is asserted about time. Every subprocess has a timeout.

Figures, 2 shared cores under other load (wall times noisy; CPU is the plan's own):

    before (a DuckDB join per pair of an email-keyed and a userId-keyed list)
      4 audiences  python  plan    4.34 s     3.60 s CPU  peak RSS    224 MB  conflicts 20
      4 audiences  duckdb  plan    4.48 s     4.09 s CPU  peak RSS    194 MB  conflicts 20
     16 audiences  python  plan   13.45 s    12.77 s CPU  peak RSS    537 MB  conflicts 40
     16 audiences  duckdb  plan   16.75 s    14.97 s CPU  peak RSS    313 MB  conflicts 40
     40 audiences  python  plan   53.10 s    39.45 s CPU  peak RSS   1167 MB  conflicts 40
     40 audiences  duckdb  plan   66.25 s    46.42 s CPU  peak RSS    469 MB  conflicts 40
    after (one join of the long tables beyond JOINED_MAX audiences)
     16 audiences  duckdb  plan   32.21 s    16.27 s CPU  peak RSS    305 MB  conflicts 40
     40 audiences  duckdb  plan   86.19 s    43.46 s CPU  peak RSS    467 MB  conflicts 40

The pairing step alone (same_person_candidates over the same shape of tables, in one
process, the same candidates found): 4 audiences 0.39 s (a join per pair; unchanged),
16: 5.76 s before, 0.65 s after, 40: 32.43 s before (400 joins and 40 queries first;
a quarter of the profiled plan), 0.91 s after. The Python engine's pairs
(plan/fields.same_person_pairs) still grow with the square of the audiences a person is
on (40 audiences, each person on about 20: 100 pairs each): 0.84 s per audience at 16,
1.33 s at 40, left as it is.
"""

from __future__ import annotations

import argparse
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

TIMEOUT_SECONDS = 1800
TIERS = "['free', 'gold', 'silver', 'bronze']"


def generate(directory: Path, audiences: int, rows: int) -> list[Path]:
    """One CSV per audience; even ones keyed by email, odd ones by userId with email."""
    paths = []
    with duckdb.connect() as connection:
        for k in range(audiences):
            path = directory / f"a{k}.csv"
            by_user = k % 2 == 1
            # The userId-keyed audiences give one person in a thousand another tier.
            tier = f"{TIERS}[1 + (i + {int(by_user)} * (i % 1000 = 0)::INT) % 4]"
            columns = "'uid-' || i AS userId, " if by_user else ""
            connection.execute(
                f"COPY (SELECT {columns}'user' || i || '@example.com' AS email, "
                f"{tier} AS tier FROM range({2 * rows}) r(i) "
                f"WHERE hash(i, {k}) % 2 = 0) TO '{path}' (HEADER, DELIMITER ',')"
            )
            paths.append(path)
    return paths


def write_manifests(manifests: Path, base_url: str, sources: list[Path]) -> None:
    documents = [plan_apply.destination_document(base_url, "hybrid")]
    for k, source in enumerate(sources):
        documents.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": f"a{k}"},
                "spec": {"destination": "bench", "members": {"csv": source.name}, "traits": "crm"},
            }
        )
    documents.append(
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "crm"},
            "spec": {"fields": {"tier": "tier"}},
        }
    )
    (manifests / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audiences", nargs="*", type=int, default=[4, 16, 40])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per audience")
    parser.add_argument("--engines", default="python,duckdb")
    parser.add_argument("--target", help="plan --target this audience (e.g. a0)")
    args = parser.parse_args()
    print(f"hybrid, {args.rows:,} rows per audience, 1 mapped field; {os.cpu_count()} cores")
    for audiences in args.audiences:
        root = Path(tempfile.mkdtemp(prefix="reconciler-pairs-"))
        manifests = root / "manifests"
        manifests.mkdir()
        emulator = Emulator(limits=Limits.unlimited())
        emulator.add_project(plan_apply.PROJECT, "hybrid", plan_apply.API_KEY)
        project = emulator.project(plan_apply.PROJECT)
        for k in range(audiences):
            project.add_list(f"a{k}", mark(None))
        try:
            with EmulatorServer(emulator) as server:
                sources = generate(manifests, audiences, args.rows)
                write_manifests(manifests, server.base_url, sources)
                for engine in args.engines.split(","):
                    env = {
                        **os.environ,
                        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
                        **plan_apply.EMULATOR_READS,
                        "RECONCILER_READ_LAG": "0",
                        "RECONCILER_ENGINE": engine,
                    }
                    command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
                    command += ["plan", str(manifests), "--format", "json"]
                    if args.target:
                        command += ["--target", args.target]
                    run = run_measured(command, timeout=TIMEOUT_SECONDS, env=env)
                    # 1: the conflicts held back are field values not sent, as designed.
                    if run.returncode not in (0, 1, 2):
                        raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-2000:]}")
                    document = json.loads(run.stdout)
                    summary = document["summary"]
                    held = sum(
                        len(d["field_issues"]) + d["field_issues_unlisted"]
                        for d in document["destinations"]
                    )
                    print(
                        f"{audiences:3} audiences  {engine:6}  plan {run.wall_seconds:7.2f} s  "
                        f"{run.cpu_seconds:7.2f} s CPU  peak RSS {run.peak_rss_mb:6.0f} MB  "
                        f"adds {summary['members_to_add']:,}  conflicts {held:,}  "
                        f"{run.wall_seconds / audiences:5.2f} s per audience"
                    )
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
