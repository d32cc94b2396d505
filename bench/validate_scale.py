"""`reconciler validate` of a big repository, as a pre-commit hook and a CI check run it.

    PYTHONPATH=$PWD:$PWD/bench python3 bench/validate_scale.py [--manifests 300]
        [--csv 25] [--csv-mb 100] [--parquet 25] [--parquet-rows 10000000]
        [--traits 5] [--keep DIR]

A repository of --manifests manifest files: one destination (whose baseUrl names a host
that does not exist: validate must never reach it), a trait mapping of one field, and
audiences with three inline members each, but for --csv audiences reading their own CSV of
about --csv-mb MB (email, userId, plan, ltv; 2.4 million rows per 100 MB) and --parquet
audiences reading their own Parquet file of --parquet-rows rows, and one audience whose
DuckDB query joins the first Parquet file to the first CSV. The first --traits of the CSV
audiences map `plan` to a field. The files are written by DuckDB (COPY), and kept under
--keep DIR for the next run (written again only when missing).

Each case is `reconciler validate` in a child process measured by bench/measure.py (wall,
CPU, peak RSS), from the repository's top (not a git work tree: the repository is the
directory above the manifests):

    one file    validate of the one manifest file holding the destination and an audience of
                three inline members (a file path)
    whole       validate of the whole manifests directory, what the hook runs

Not a test: nothing is asserted about time; every run has a timeout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from measure import run_measured

TIMEOUT_SECONDS = 3600
# 2.4 million rows of (email, userId, plan, ltv) as DuckDB writes them make 100 MB.
ROWS_PER_MB = 24_000
DESTINATION = """apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec:
  region: us
  projectType: hybrid
  baseUrl: https://iterable.bench-host-that-does-not-exist.invalid
  apiKey: {env: ITERABLE_API_KEY}
---
apiVersion: reconciler/v1
kind: TraitMapping
metadata: {name: crm}
spec:
  fields:
    planTier: plan
"""


def _audience(name: str, members: str, traits: bool = False) -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: {name}}}\n"
        f"spec:\n  destination: prod\n  members:\n{members}" + ("  traits: crm\n" if traits else "")
    )


def _inline(i: int) -> str:
    return "    inline:\n" + "".join(
        f"      - {{email: m{i}-{r}@example.com, userId: u{i}-{r}}}\n" for r in range(3)
    )


def write_data(data: Path, args: argparse.Namespace) -> None:
    """Each CSV and Parquet file the audiences read, unless already there."""
    import duckdb

    data.mkdir(parents=True, exist_ok=True)
    rows = args.csv_mb * ROWS_PER_MB
    select = (
        "SELECT 'user' || i || '@example.com' AS email, 'u-' || i AS userId, "
        "CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'basic' END AS plan, "
        "(i % 1000)::VARCHAR || '.50' AS ltv FROM range({start}, {end}) t(i)"
    )
    connection = duckdb.connect()
    for c in range(args.csv):
        target = data / f"csv-{c:03d}-{args.csv_mb}mb.csv"
        if not target.exists():
            query = select.format(start=c * rows, end=(c + 1) * rows)
            connection.execute(f"COPY ({query}) TO '{target}.part' (HEADER)")
            os.replace(f"{target}.part", target)
    for p in range(args.parquet):
        target = data / f"parquet-{p:03d}-{args.parquet_rows}.parquet"
        if not target.exists():
            query = select.format(start=p * args.parquet_rows, end=(p + 1) * args.parquet_rows)
            connection.execute(f"COPY ({query}) TO '{target}.part' (FORMAT parquet)")
            os.replace(f"{target}.part", target)


def write_manifests(root: Path, args: argparse.Namespace) -> int:
    """The manifest files under root/manifests; returns the number of audiences."""
    manifests = root / "manifests"
    shutil.rmtree(manifests / "teams", ignore_errors=True)
    (manifests / "teams").mkdir(parents=True)
    (manifests / "destination.yaml").write_text(
        DESTINATION + "---\n" + _audience("inline-first", _inline(0))
    )
    documents = [
        _audience(
            f"csv-{c:03d}",
            f"    csv: ../data/csv-{c:03d}-{args.csv_mb}mb.csv\n"
            "    email: email\n    userId: userId\n",
            traits=c < args.traits,
        )
        for c in range(args.csv)
    ]
    documents += [
        _audience(
            f"parquet-{p:03d}",
            f"    parquet: ../data/parquet-{p:03d}-{args.parquet_rows}.parquet\n"
            "    email: email\n    userId: userId\n",
        )
        for p in range(args.parquet)
    ]
    if args.csv and args.parquet:
        documents.append(
            _audience(
                "query-join",
                "    sql: \"SELECT p.email, p.userId FROM read_parquet('manifests/data/"
                f"parquet-000-{args.parquet_rows}.parquet') p JOIN read_csv('manifests/data/"
                f"csv-000-{args.csv_mb}mb.csv') c USING (email) WHERE c.plan = 'gold'\"\n"
                '    database: ":memory:"\n',
            )
        )
    files = max(args.manifests - 1, len(documents))
    for f in range(files):
        text = documents[f] if f < len(documents) else _audience(f"inline-{f:04d}", _inline(f))
        (manifests / "teams" / f"audience-{f:04d}.yaml").write_text(text)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifests", type=int, default=300)
    parser.add_argument("--csv", type=int, default=25)
    parser.add_argument("--csv-mb", type=int, default=100)
    parser.add_argument("--parquet", type=int, default=25)
    parser.add_argument("--parquet-rows", type=int, default=10_000_000)
    parser.add_argument("--traits", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the repository here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="reconciler-validate-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    write_data(root / "manifests" / "data", args)
    audiences = write_manifests(root, args)
    size = sum(p.stat().st_size for p in (root / "manifests" / "data").iterdir()) / 1e6
    print(f"{os.cpu_count()} cores; {audiences} audiences, member files {size:,.0f} MB")
    cases = {
        "one file": ["manifests/destination.yaml"],
        "whole": ["manifests"],
    }
    here = Path.cwd()
    try:
        os.chdir(root)
        for case, paths in cases.items():
            command = [sys.executable, "-m", "reconciler", "validate", *paths]
            run = run_measured(command, timeout=TIMEOUT_SECONDS)
            last = (run.stdout.strip() or run.stderr.strip()).splitlines()[-1:]
            print(
                f"{case:9s} exit {run.returncode}  wall {run.wall_seconds:7.1f} s  "
                f"CPU {run.cpu_seconds:7.1f} s  peak RSS {run.peak_rss_mb:6.0f} MB  {last}",
                flush=True,
            )
    finally:
        os.chdir(here)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
