"""`make_plan` of two trait-mapped audiences that disagree about one field for every member.

    python bench/plan_conflicts.py [N] [--runs 1]

Generates two CSVs of the same N members with DuckDB (email, tier, n): one gives every
member tier `gold`, the other `silver`, both the same `n`. Both map `tier_name` (a
column) and `n` (a number), so every member is a disagreement about `tier_name` (not
sent; the first MAX_FIELD_ISSUES listed, the rest counted) and `n` is sent with both
subscribes. Iterable (the emulator, in-process) has none of them yet, so nothing is read:
the figure is the conflict settling's. Each run is a child process measured by
bench/measure.py (wall time, peak RSS); RECONCILER_ENGINE defaults to duckdb. Run it with
PYTHONPATH pointing at another checkout to measure that one. Not a test: nothing is
asserted about time.
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

TIMEOUT_SECONDS = 3600
KEY = "bench-key"


def generate(directory: Path, n: int) -> None:
    (directory / "data").mkdir()
    with duckdb.connect() as connection:
        for name, tier in (("a", "gold"), ("b", "silver")):
            connection.execute(
                f"COPY (SELECT 'user' || i || '@example.com' AS email, '{tier}' AS tier, i AS n "
                f"FROM range({n}) r(i)) TO '{directory / 'data' / name}.csv' (HEADER)"
            )
    docs = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "K"}},
        },
        *(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {"destination": "d", "members": {"csv": f"data/{name}.csv"}, "traits": "t"},
            }
            for name in ("a", "b")
        ),
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "t"},
            "spec": {"fields": {"tier_name": "tier", "n": {"from": "n", "type": "number"}}},
        },
    ]
    (directory / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))


def child(directory: Path) -> None:
    """The measured process: one plan, its field issues printed as JSON."""
    from reconciler.emulator import Emulator, EmulatorTransport, Limits
    from reconciler.iterable import ClientSettings, IterableClient
    from reconciler.manifest import load_manifests
    from reconciler.members.model import Engine, EngineSettings
    from reconciler.planning import make_plan

    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project("d", "email", KEY)
    client = IterableClient(
        "https://sandbox.invalid",
        KEY,
        settings=ClientSettings(list_reads_per_minute=0),
        transport=EmulatorTransport(emulator),
    )
    with Engine(EngineSettings.from_env()) as engine:
        plan = make_plan(load_manifests(directory), {"d": client}, engine=engine)
        (dest,) = plan.destinations
        print(
            json.dumps(
                {
                    "listed": len(dest.field_issues),
                    "unlisted": dest.field_issues_unlisted,
                    "adds": sum(len(lp.add) for lp in dest.lists),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    env = {**os.environ}
    env.setdefault("RECONCILER_ENGINE", "duckdb")
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        generate(directory, args.n)
        for run in range(args.runs):
            measured = run_measured(
                [sys.executable, __file__, "--child", str(directory)],
                timeout=TIMEOUT_SECONDS,
                env=env,
            )
            if measured.returncode != 0:
                sys.exit(f"plan failed ({measured.returncode}):\n{measured.stderr[-3000:]}")
            print(
                f"run {run + 1}: {args.n:,} members, {measured.wall_seconds:.1f} s, "
                f"{measured.cpu_seconds:.1f} s CPU, peak RSS {measured.peak_rss_mb:,.0f} MB, "
                f"{measured.stdout.strip()}"
            )


if __name__ == "__main__":
    main()
