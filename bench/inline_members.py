"""`validate`, `plan` and `apply` of one audience with N inline members, on the sandbox.

    python bench/inline_members.py [N]

Writes a manifest with N inline members (`{email: ..., userId: ...}`, default 10,000) and
a sandbox destination, then runs, each as a measured subprocess (bench/measure.py):

    version     starting Python and importing reconciler (the floor of every command)
    validate    load and check the manifest and its members
    plan        the same, then read the sandbox: one list to create, N members to add
    apply       create the list and add the N members
    plan again  must find nothing to do

and prints wall time and peak RSS for each. Locating each inline member once (not by a
walk over all of them: 3,000 members took 56 s) and parsing with libyaml is what keeps
these near a second. Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from measure import run_measured

TIMEOUT_SECONDS = 600
REPO = Path(__file__).resolve().parent.parent


def write_manifests(directory: Path, n: int) -> None:
    directory.mkdir(parents=True)
    (directory / "sandbox.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: hybrid}\n"
    )
    members = "".join(f"      - {{email: u{i}@example.com, userId: u-{i}}}\n" for i in range(n))
    (directory / "audience.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: big}\nspec:\n"
        "  destination: sandbox\n  members:\n    inline:\n" + members
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reconciler-inline-"))
    manifests = root / "manifests"
    write_manifests(manifests, args.n)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECONCILER_STATE_DIR": str(root / "state")}
    cli = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    steps = [
        ("version", ["version"], 0),
        ("validate", ["validate", str(manifests)], 0),
        ("plan", ["plan", str(manifests)], 0),
        ("apply", ["apply", str(manifests), "--yes"], 0),
        ("plan again", ["plan", str(manifests), "--detailed-exitcode"], 0),
    ]
    try:
        print(f"{args.n:,} inline members")
        print(f"{'step':<12} {'wall time':>10} {'CPU':>10} {'peak RSS':>10}")
        for name, command, expected in steps:
            measured = run_measured(cli + command, timeout=TIMEOUT_SECONDS, env=env)
            if measured.returncode != expected:
                raise SystemExit(f"{name} exited {measured.returncode}:\n{measured.stderr[-2000:]}")
            print(
                f"{name:<12} {measured.wall_seconds:>8.2f} s {measured.cpu_seconds:>8.2f} s "
                f"{measured.peak_rss_mb:>7.0f} MB"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
