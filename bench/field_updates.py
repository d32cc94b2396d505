"""`reconciler plan` of many trait-mapped audiences whose members' values all changed.

    PYTHONPATH=$PWD:$PWD/bench python3 bench/field_updates.py [--scales 1 10]
        [--members 20] [--audiences 10 30 100 --fields 3]

At scale K one destination (an email project in the emulator, in-process, no limits)
holds 30*K audiences of --members inline members each (every audience its own members),
all mapped by one trait mapping of 3*K fields. Every list is already in Iterable with its
members on it, each profile holding last week's value of every field, so the plan
changes nothing but the fields: 30*K * members * 3*K updated values, each checked for its
type against the others sent (the Python path: audiences under
RECONCILER_ENGINE_THRESHOLD rows). The plan is a child process measured by
bench/measure.py (wall time, CPU, peak RSS) and prints CPU per updated value: a step whose
cost grows with the audiences as well as with the values shows as that figure rising with
K (each updated value looked up the audience that sent it by a walk over all of them:
at K=10, 180,000 values and 300 audiences, that walk was most of the plan). Not a test:
nothing is asserted about time.

--audiences runs those numbers of audiences with --fields fields each instead of the
scales. RECONCILER_ENGINE=duckdb plans every audience in DuckDB (the merge of the
audiences' values in members/engine/field_tables.py; bench/field_tables.py times its
steps alone).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.plan.ownership import mark

TIMEOUT_SECONDS = 3600


def write_repository(
    manifests: Path, audiences: int, fields_count: int, members: int, base_url: str
) -> int:
    """The manifests; returns how many values the plan updates."""
    fields = "".join(f"      f{f:03d}: plan\n" for f in range(fields_count))
    documents = [
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: bench}\n"
        f"spec: {{region: us, projectType: email, baseUrl: '{base_url}', "
        f"apiKey: {{env: {plan_apply.API_KEY_VAR}}}}}\n",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        f"spec:\n  fields:\n{fields}",
    ]
    for a in range(audiences):
        rows = "".join(
            f"      - {{email: m{a}x{r}@example.com, plan: new{r % 3}}}\n" for r in range(members)
        )
        documents.append(
            f"apiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: aud-{a:04d}}}\n"
            f"spec:\n  destination: bench\n  traits: crm\n  members:\n    inline:\n{rows}"
        )
    (manifests / "bench.yaml").write_text("---\n".join(documents))
    return audiences * members * fields_count


def seed(emulator: Emulator, audiences: int, fields: int, members: int) -> None:
    """Every audience's list, its members on it with last week's value of every field."""
    project = emulator.project(plan_apply.PROJECT)
    gc.disable()
    try:
        for a in range(audiences):
            list_id = project.add_list(f"aud-{a:04d}", mark(None))
            for r in range(members):
                project.add_user(
                    email=f"m{a}x{r}@example.com",
                    data_fields={f"f{f:03d}": f"old{r % 3}" for f in range(fields)},
                    list_ids=[list_id],
                )
    finally:
        gc.enable()


def run_scale(audiences: int, fields: int, members: int) -> None:
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    root = Path(tempfile.mkdtemp(prefix="reconciler-field-updates-"))
    manifests = root / "manifests"
    manifests.mkdir()
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        "RECONCILER_LIST_READS_PER_MINUTE": "0",
        "RECONCILER_USER_READS_PER_SECOND": "0",
        "RECONCILER_EXPORTS_PER_MINUTE": "0",
        "RECONCILER_READ_LAG": "0",
    }
    try:
        with EmulatorServer(emulator) as server:
            values = write_repository(manifests, audiences, fields, members, server.base_url)
            seed(emulator, audiences, fields, members)
            run = run_measured(
                [sys.executable, "-m", "reconciler", "plan", str(manifests), "--format", "json"],
                timeout=TIMEOUT_SECONDS,
                env=env,
            )
            if run.returncode not in (0, 2) or "f000" not in run.stdout:  # no update planned
                raise SystemExit(f"plan exited {run.returncode}:\n{run.stderr[-3000:]}")
            print(
                f"{audiences:4} audiences, {fields:3} fields, {values:8,} updated values  "
                f"plan wall {run.wall_seconds:6.1f} s  CPU {run.cpu_seconds:6.1f} s  "
                f"peak RSS {run.peak_rss_mb:4.0f} MB  "
                f"CPU per value {1e6 * run.cpu_seconds / values:6.1f} us",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--audiences", type=int, nargs="+")
    parser.add_argument("--fields", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, engine {os.environ.get('RECONCILER_ENGINE', 'auto')}")
    runs = [(a, args.fields) for a in args.audiences or []]
    for audiences, fields in runs or [(30 * k, 3 * k) for k in args.scales]:
        run_scale(audiences, fields, args.members)


if __name__ == "__main__":
    main()
