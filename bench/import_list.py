"""`reconciler import` of one large list, with each engine, then a plan of what it wrote.

    python bench/import_list.py [N]
    python bench/import_list.py [N] --field K

Seeds N members (bench/diff_engines.py's deterministic emails) onto one list of an
email-based project in the emulator (straight through its Python API, no requests), then
runs, each as a measured subprocess (bench/measure.py):

    import (engine auto)     from RECONCILER_ENGINE_THRESHOLD members (1,000,000) the list
                             is sorted and written by DuckDB
    import (engine python)   the same read into a Python set and sorted
    plan                     the imported manifests against the list: must find nothing
                             to do

and prints wall time and peak RSS for each, and whether both imports wrote the same rows.

With --field K the emulator is under its `field` profile at time scale K (read speeds,
Iterable's limits with their windows divided by K; the client is told the same scale), so
the import reads by the route the model chooses (an asynchronous export job from about
110,000 members). It prints the import's wall time, the modelled floor (the fastest route
by the emulator's own figures), their ratio, the requests per endpoint, the read as the
import states it, a projection of the same import unscaled against Iterable, whether the
CSV holds exactly the list, and a plan of what it wrote (which must find nothing to do).

The emulator builds a job's whole export when the job starts, in this process, before it
answers export/start (at a million users: about a minute on a shared machine). Iterable
does that on its servers within the job's modelled time, so that wait is printed apart and
left out of the projection: the time between export/start arriving and the first look at
the job's files, in the emulator's request log.

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
from collections import Counter
from pathlib import Path

import diff_engines
import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from reconciler.progress import duration

TIMEOUT_SECONDS = 1800


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--field", type=float, metavar="K", help="field profile at scale K")
    args = parser.parse_args()
    if args.field is not None:
        field_import(args.n, args.field)
        return

    root = Path(tempfile.mkdtemp(prefix="reconciler-import-"))
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        **plan_apply.EMULATOR_READS,
        # What this measures is each engine over a getUsers body, as plan_apply.py does; the
        # route model (issue 18) would take an export job for a list this large against
        # Iterable's speeds, which this emulator (no modelled speeds) builds whole in Python
        # before answering: the plan after import took over 15 minutes that way.
        "RECONCILER_MEMBER_READS": "getUsers",
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


def field_import(n: int, scale: float) -> None:
    """One import of a list of `n` under the field profile at time scale `scale`."""
    root = Path(tempfile.mkdtemp(prefix="reconciler-import-field-"))
    faults = Faults.field(scale)
    emulator = Emulator(limits=Limits.iterable().scaled(scale), faults=faults)
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    env = plan_apply.scaled_env(scale)
    try:
        with EmulatorServer(emulator) as server:
            live, _ = diff_engines.generate(root, n, header=True)
            plan_apply.seed(emulator, live)
            gc.freeze()
            # The fastest read Iterable's speeds and limits allow, by the emulator's figures:
            # one getUsers, one user export (if its connection lasts), one export job.
            routes = {"getUsers": faults.get_users_seconds(n)}
            if faults.export_stream_seconds is None or faults.export_seconds(n) <= (
                faults.export_stream_seconds
            ):
                routes["export"] = faults.export_seconds(n)
            routes["asyncExport"] = faults.export_job_seconds(n)
            route, floor = min(routes.items(), key=lambda kv: kv[1])
            print(
                f"{n:,} members on one list; field profile at time scale {scale:g}; "
                f"{os.cpu_count()} cores"
            )
            print("modelled routes: " + ", ".join(f"{k} {v:.1f} s" for k, v in routes.items()))
            manifests = root / "manifests"
            manifests.mkdir()
            destination = plan_apply.destination_document(server.base_url)
            (manifests / "destination.yaml").write_text(json.dumps(destination))
            out = root / "imported"
            command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
            since = len(emulator.request_log)
            run = run_measured(
                [*command, "import", str(manifests), "-d", "bench", "--out", str(out)],
                timeout=TIMEOUT_SECONDS,
                env=env,
            )
            if run.returncode != 0:
                raise SystemExit(f"import exited {run.returncode}:\n{run.stderr[-3000:]}")
            ratio = run.wall_seconds / floor if floor else float("inf")
            print(
                f"import: {run.wall_seconds:.1f} s wall (peak RSS {run.peak_rss_mb:,.0f} MB), "
                f"modelled floor {floor:.1f} s ({route}), ratio {ratio:.2f}"
            )
            log = emulator.request_log[since:]
            spent = Counter(f"{r.method} {r.path}" for r in log)
            for endpoint, count in sorted(spent.items()):
                shown = "GET /export-files/..." if "/export-files/" in endpoint else endpoint
                print(f"    {count:>6,}  {shown}")
            (said,) = [x for x in run.stdout.splitlines() if x.startswith("Destination")]
            print(f"    {said}")
            build = _job_build_seconds(log)
            if build:
                print(f"    the emulator built the job's export in {build:.1f} s of that")
            # The job's modelled time runs while the emulator builds it: what the run spent
            # beyond the longer of the two is work on this machine.
            beyond = max(0.0, run.wall_seconds - max(build, floor))
            print(
                f"    unscaled against Iterable: about {duration(floor * scale + beyond)} "
                f"(floor {duration(floor * scale)} + {duration(beyond)} of work here)"
            )
            (members,) = out.glob("*.csv")
            exact = _emails(members) == _emails(live)
            print(f"    the CSV holds exactly the list's {n:,} members: {'yes' if exact else 'NO'}")
            for path in out.iterdir():
                shutil.copy(path, manifests / path.name)
            run = run_measured(
                [*command, "plan", str(manifests), "--detailed-exitcode"],
                timeout=TIMEOUT_SECONDS,
                env=env,
            )
            state = {0: "no changes", 2: "CHANGES"}.get(run.returncode, f"exit {run.returncode}")
            print(
                f"plan after import: {run.wall_seconds:.1f} s wall (peak RSS "
                f"{run.peak_rss_mb:,.0f} MB), {state}"
            )
            if not exact or run.returncode != 0:
                raise SystemExit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _job_build_seconds(log: list) -> float:
    """Seconds from export/start arriving to the first look at the job's files: the
    emulator building the export (the client sends that look as soon as it is answered)."""
    starts = [r.at for r in log if r.path == "/api/export/start"]
    looks = [r.at for r in log if r.path.startswith("/api/export/") and r.path.endswith("/files")]
    return min(looks) - starts[0] if starts and looks else 0.0


def _emails(path: Path) -> set[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        next(rows)  # the header
        return {row[0] for row in rows}


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
