"""Diff engines on the same files: adds and removes between a live and a desired member set.

    python bench/diff_engines.py [N] [--memory-limit 500MB] [--dir DIR] [--keep]

Generates N live emails and a desired set with 1% of them removed and 1% new ones added
(deterministic: the same N gives the same files), then computes adds and removes with
each engine, each in its own subprocess so that its peak RSS is its own:

    python-set          read both files into Python sets, subtract (the naive way)
    duckdb              anti-joins of the two files, results written to files (the floor)
    duckdb+limit        the same under SET memory_limit (DuckDB spills to disk)

Prints, per engine, the wall time of the subprocess, the time of the diff inside it, peak
RSS, and the counts, which must agree across engines (exit 1 if they do not). Not a test:
nothing here is asserted about time. Stops by itself (each engine has a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import run_measured

ENGINE_TIMEOUT_SECONDS = 1800


def email_sql(column: str) -> str:
    # Varied local parts and domains, like real audiences; deterministic in the row number.
    return (
        f"'user' || {column} || '.' || (({column} * 2654435761) % 100000) "
        f"|| '@example' || ({column} % 97) || '.com'"
    )


def generate(
    directory: Path, n: int, *, header: bool = False, fmt: str = "csv", adds: bool = True
) -> tuple[Path, Path]:
    """live.FMT and desired.FMT in `directory`: CSV (with an `email` header line when
    `header`, as a reconciler CSV source needs) or Parquet (column `email`). Without
    `adds` the desired file has no new members (1% removed only)."""
    import duckdb

    live, desired = directory / f"live.{fmt}", directory / f"desired.{fmt}"
    churn = max(1, n // 100) if adds else 0
    options = "FORMAT parquet" if fmt == "parquet" else f"HEADER {str(header).lower()}"
    with duckdb.connect() as connection:
        connection.execute("SET enable_progress_bar = false")
        # Shuffled (ORDER BY hash) so neither engine is helped by sorted input.
        connection.execute(
            f"COPY (SELECT {email_sql('i')} AS email FROM range({n}) t(i) ORDER BY hash(i)) "
            f"TO '{live}' ({options})"
        )
        # Desired: every live email but 1% (i % 100 == 0), plus 1% new ones (i >= n).
        connection.execute(
            f"COPY (SELECT {email_sql('i')} AS email FROM range({n + churn}) t(i) "
            f"WHERE i >= {n} OR i % 100 != 0 ORDER BY hash(i + 1)) TO '{desired}' ({options})"
        )
    return live, desired


def duckdb_reader(path: Path, header: bool = False) -> str:
    """DuckDB's reader of a file of emails: Parquet, or CSV of one column."""
    if path.suffix == ".parquet":
        return f"read_parquet('{path}')"
    return (
        f"read_csv('{path}', header = {str(header).lower()}, auto_detect = false, "
        f"columns = {{'email': 'VARCHAR'}})"
    )


# --- engines, run in a child process ----------------------------------------------------


def read_set(path: Path, header: bool = False) -> set[str]:
    if path.suffix == ".parquet":
        import duckdb

        # No Parquet reader in the standard library: DuckDB hands the column over.
        with duckdb.connect() as connection:
            return {row[0] for row in connection.execute(f"SELECT email FROM '{path}'").fetchall()}
    with path.open(encoding="utf-8") as handle:
        if header:
            next(handle, None)
        return {line.rstrip("\n") for line in handle}


def python_set(
    live: Path, desired: Path, out: Path, desired_header: bool = False
) -> tuple[int, int]:
    live_set = read_set(live)
    desired_set = read_set(desired, desired_header)
    adds = desired_set - live_set
    removes = live_set - desired_set
    return len(adds), len(removes)


def duckdb_anti_join(
    live: Path, desired: Path, out: Path, memory_limit: str | None, desired_header: bool = False
) -> tuple[int, int]:
    import duckdb

    with duckdb.connect() as connection:
        connection.execute("SET enable_progress_bar = false")
        connection.execute(f"SET temp_directory = '{out / 'spill'}'")
        if memory_limit:
            connection.execute(f"SET memory_limit = '{memory_limit}'")
            # Insertion order costs memory and no diff needs it.
            connection.execute("SET preserve_insertion_order = false")
        live_reader = duckdb_reader(live)
        desired_reader = duckdb_reader(desired, desired_header)
        counts = []
        for name, left, right in (
            ("adds", desired_reader, live_reader),
            ("removes", live_reader, desired_reader),
        ):
            target = out / f"{name}.csv"
            connection.execute(
                f"COPY (SELECT d.email FROM {left} AS d "
                f"ANTI JOIN {right} AS l USING (email)) TO '{target}' (HEADER false)"
            )
            counts.append(
                connection.execute(f"SELECT count(*) FROM {duckdb_reader(target)}").fetchone()[0]
            )
    return counts[0], counts[1]


def run_engine(args: argparse.Namespace) -> None:
    live, desired, out = Path(args.live), Path(args.desired), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.engine == "python-set":
        adds, removes = python_set(live, desired, out, args.desired_header)
    else:
        limit = args.memory_limit if args.engine == "duckdb+limit" else None
        adds, removes = duckdb_anti_join(live, desired, out, limit, args.desired_header)
    seconds = time.perf_counter() - start
    print(json.dumps({"adds": adds, "removes": removes, "diff_seconds": seconds}))


# --- the parent: measure each engine in its own process ---------------------------------


def measure(
    engine: str,
    live: Path,
    desired: Path,
    directory: Path,
    memory_limit: str,
    *,
    desired_header: bool = False,
) -> dict:
    """Run one engine in a child process of its own, so its peak RSS is its own.
    bench/plan_apply.py calls this too, on the files it plans from."""
    command = [sys.executable, __file__, "--engine", engine, "--live", str(live)]
    command += ["--desired", str(desired), "--out", str(directory / engine)]
    command += ["--memory-limit", memory_limit]
    if desired_header:
        command.append("--desired-header")
    run = run_measured(command, timeout=ENGINE_TIMEOUT_SECONDS)
    shutil.rmtree(directory / engine, ignore_errors=True)
    if run.returncode != 0:
        raise SystemExit(f"{engine} failed (exit {run.returncode}):\n{run.stderr}")
    result = json.loads(run.stdout)
    result["wall_seconds"] = run.wall_seconds
    result["peak_rss_mb"] = run.peak_rss_mb
    result["cpu_seconds"] = run.cpu_seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "n", nargs="?", type=int, default=1_000_000, help="live members (default 1,000,000)"
    )
    parser.add_argument(
        "--memory-limit", default="500MB", help="DuckDB memory_limit for duckdb+limit"
    )
    parser.add_argument("--dir", help="where to write the files (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--live", help=argparse.SUPPRESS)
    parser.add_argument("--desired", help=argparse.SUPPRESS)
    parser.add_argument("--desired-header", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.engine:
        run_engine(args)
        return
    if args.generate:
        generate(Path(args.generate), args.n)
        return

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        # In a child: a child's peak RSS starts from its parent's at fork, so the parent
        # never loads DuckDB or the data itself.
        subprocess.run(
            [sys.executable, __file__, str(args.n), "--generate", str(directory)],
            check=True,
            timeout=ENGINE_TIMEOUT_SECONDS,
        )
        live, desired = directory / "live.csv", directory / "desired.csv"
        print(
            f"data: {args.n:,} live emails, desired = live - 1% + 1% new "
            f"({live.stat().st_size / 1e6:.0f} MB + {desired.stat().st_size / 1e6:.0f} MB of CSV, "
            f"generated in {time.perf_counter() - start:.1f} s) in {directory}"
        )
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print(
            f"{'engine':<26}{'wall s':>8}{'diff s':>8}{'peak RSS MB':>13}"
            f"{'adds':>11}{'removes':>11}"
        )
        results = {}
        for engine in ("python-set", "duckdb", "duckdb+limit"):
            result = measure(engine, live, desired, directory, args.memory_limit)
            results[engine] = result
            label = (
                engine if engine != "duckdb+limit" else f"duckdb memory_limit={args.memory_limit}"
            )
            print(
                f"{label:<26}{result['wall_seconds']:>8.2f}{result['diff_seconds']:>8.2f}"
                f"{result['peak_rss_mb']:>13.0f}{result['adds']:>11,}{result['removes']:>11,}"
            )
        counts = {(r["adds"], r["removes"]) for r in results.values()}
        if len(counts) != 1:
            raise SystemExit(f"engines disagree: {results}")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
