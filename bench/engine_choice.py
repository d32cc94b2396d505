"""What planning a small audience in DuckDB instead of Python sets costs a user.

    python bench/engine_choice.py [N] [--runs 5]

Writes a CSV audience of N members (default 2,000) on the sandbox, applies it once, then
edits 1% of it and runs `reconciler plan` under RECONCILER_ENGINE=python and =duckdb,
taking turns, --runs times each, every run a measured subprocess (bench/measure.py), and
prints the median wall time and peak RSS of each and their difference: the figure that
decides whether one engine could plan every audience (issue 17). Not a test: nothing is
asserted about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from measure import run_measured

TIMEOUT_SECONDS = 600
REPO = Path(__file__).resolve().parent.parent
ENGINES = ("python", "duckdb")


def write_manifests(directory: Path, emails: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sandbox.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: email}\n"
        "---\napiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: small}\nspec:\n"
        "  destination: sandbox\n  members: {csv: members.csv}\n"
    )
    (directory / "members.csv").write_text("email\n" + "".join(f"{e}\n" for e in emails))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reconciler-engines-"))
    manifests = root / "manifests"
    emails = [f"u{i}@example.com" for i in range(args.n)]
    write_manifests(manifests, emails)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECONCILER_STATE_DIR": str(root / "state")}
    cli = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    try:
        loaded = run_measured(
            [*cli, "apply", str(manifests), "--yes"], timeout=TIMEOUT_SECONDS, env=env
        )
        if loaded.returncode != 0:
            raise SystemExit(f"apply exited {loaded.returncode}:\n{loaded.stderr[-2000:]}")
        churn = max(args.n // 100, 1)
        write_manifests(manifests, emails[churn:] + [f"new{i}@example.com" for i in range(churn)])
        walls: dict[str, list[float]] = {e: [] for e in ENGINES}
        peaks: dict[str, list[float]] = {e: [] for e in ENGINES}
        for _ in range(args.runs):
            for engine in ENGINES:
                measured = run_measured(
                    [*cli, "plan", str(manifests)],
                    timeout=TIMEOUT_SECONDS,
                    env={**env, "RECONCILER_ENGINE": engine},
                )
                if measured.returncode != 0:
                    raise SystemExit(f"plan exited {measured.returncode}:\n{measured.stderr}")
                walls[engine].append(measured.wall_seconds)
                peaks[engine].append(measured.peak_rss_mb)
        print(
            f"{args.n:,} CSV members, {churn:,} added and removed; `reconciler plan`, "
            f"medians of {args.runs} runs taking turns; load average {os.getloadavg()[0]:.2f}"
        )
        median = {e: statistics.median(walls[e]) for e in ENGINES}
        for engine in ENGINES:
            print(
                f"  engine {engine:<7} {median[engine]:6.2f} s  peak RSS "
                f"{statistics.median(peaks[engine]):5.0f} MB  (runs: "
                + ", ".join(f"{w:.2f}" for w in walls[engine])
                + ")"
            )
        print(f"  duckdb - python: {median['duckdb'] - median['python']:+.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
