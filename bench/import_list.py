"""`reconciler import` of one large list, with each engine, then a plan of what it wrote.

    python bench/import_list.py [N]

Seeds N members (bench/diff_engines.py's deterministic emails) onto one list of an
email-based project in the emulator (straight through its Python API, no requests), then
runs, each as a measured subprocess (bench/measure.py):

    import (engine auto)     from RECONCILER_ENGINE_THRESHOLD members (1,000,000) the list
                             is sorted and written by DuckDB
    import (engine python)   the same read into a Python set and sorted
    plan                     the imported manifests against the list: must find nothing
                             to do

and prints wall time and peak RSS for each, and whether both imports wrote the same rows.
Not a test: nothing is asserted about time. Every subprocess has a timeout.
"""

from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import diff_engines
import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits

TIMEOUT_SECONDS = 1800


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="reconciler-import-"))
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        "RECONCILER_LIST_READS_PER_MINUTE": "100000",
        # The emulator here answers consistently: no read lag for a plan to wait out.
        "RECONCILER_READ_LAG": "0",
    }
    try:
        with EmulatorServer(emulator) as server:
            live, _ = diff_engines.generate(root, args.n, header=True)
            plan_apply.seed(emulator, live)
            gc.freeze()
            print(f"{args.n:,} members on one list; {os.cpu_count()} cores")
            manifests = root / "manifests"
            manifests.mkdir()
            destination = plan_apply.destination_document(server.base_url)
            (manifests / "destination.yaml").write_text(json.dumps(destination))
            written = {}
            for engine in ("auto", "python"):
                out = root / f"imported-{engine}"
                command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
                command += ["import", str(manifests), "-d", "bench", "--out", str(out)]
                run = run_measured(
                    command, timeout=TIMEOUT_SECONDS, env={**env, "RECONCILER_ENGINE": engine}
                )
                if run.returncode != 0:
                    raise SystemExit(f"import exited {run.returncode}:\n{run.stderr[-2000:]}")
                (members,) = out.glob("*.csv")
                written[engine] = _rows_digest(members)
                print(
                    f"import (engine {engine:<6}) {run.wall_seconds:7.1f} s  peak RSS "
                    f"{run.peak_rss_mb:6.0f} MB  {written[engine][0]:,} rows"
                )
            same = written["auto"] == written["python"]
            print(f"both imports wrote the same rows: {'yes' if same else 'NO'}")

            # The auto import's manifests beside the destination: nothing to change.
            for path in (root / "imported-auto").iterdir():
                shutil.copy(path, manifests / path.name)
            command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
            command += ["plan", str(manifests), "--detailed-exitcode"]
            run = run_measured(command, timeout=TIMEOUT_SECONDS, env=env)
            state = {0: "no changes", 2: "CHANGES"}.get(run.returncode, f"exit {run.returncode}")
            print(
                f"plan after import    {run.wall_seconds:7.1f} s  peak RSS "
                f"{run.peak_rss_mb:6.0f} MB  {state}"
            )
            if not same or run.returncode != 0:
                raise SystemExit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _rows_digest(path: Path) -> tuple[int, str]:
    """Rows (header included) and a digest of them as parsed, line endings aside."""
    digest = hashlib.sha256()
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            rows += 1
            digest.update(json.dumps(row).encode())
    return rows - 1, digest.hexdigest()


if __name__ == "__main__":
    main()
