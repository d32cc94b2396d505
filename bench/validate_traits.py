"""`reconciler validate` of one trait-mapped audience at growing sizes: does validate's cost
grow faster than its input, and what does it hold in memory?

    PYTHONPATH=$PWD:$PWD/bench python3 bench/validate_traits.py [--rows 20000 200000]
        [--fields 10] [--sources csv query] [--keep DIR]

For each --rows N and each source, a repository of one destination (its baseUrl names a
host that does not exist: validate must never reach it) and one audience of N members
whose trait mapping has --fields fields, taking turns over the mapping's kinds: a column
as it is, a number, a date, a true/false and a template. One row in a thousand has a value
the mapping cannot make (a number that is not one), so the values' problems are listed
and counted as a user's first run finds them. Sources:

    csv     a CSV file of the rows (under the engine's threshold for a mapping of that many
            fields the audience is checked in Python, above it in DuckDB)
    query   a DuckDB query reading that CSV (`sql:` with `database: ":memory:"`), which
            validate always checks in DuckDB

Each case is `reconciler validate` in a child process measured by bench/measure.py (wall,
CPU, peak RSS), and prints its CPU per row in microseconds: a figure that rises with N is a
step that grows faster than the input. Not a test: nothing is asserted about time; every
run has a timeout.

Measured on the 2-core machine shared with other work (load average 11-13), 10 fields:

    csv      20,000 rows  CPU  1.6 s (78.9 us/row)  peak RSS  95 MB   (Python)
    query    20,000 rows  CPU  2.2 s (109.4 us/row) peak RSS 159 MB   (DuckDB)
    csv     200,000 rows  CPU 11.0 s (54.8 us/row)  peak RSS 442 MB   (Python)
    query   200,000 rows  CPU 13.3 s (66.5 us/row)  peak RSS 251 MB   (DuckDB)
    csv     400,000 rows  CPU 24.2 s (60.5 us/row)  peak RSS 378 MB   (DuckDB)
    query   400,000 rows  CPU 24.5 s (61.3 us/row)  peak RSS 389 MB   (DuckDB)

The cost per row holds: each row's values are made in Python (mapping.values, as plan
makes them; under a profile about 70% of validate's time, a third of that the templates'
jinja2 contexts), in DuckDB a batch at a time. The CSV of 200,000 rows is under the
threshold for 10 fields (rows x fields from 3,000,000: the plan's own choice), so its
members and values are all in Python: its peak is above that of twice the rows in DuckDB,
and at most about 3,000,000 values, as a plan of it holds.
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
BAD_EVERY = 1000  # one row in this many has a number that is not one
KINDS = ("column", "number", "date", "boolean", "template")


def write_csv(path: Path, rows: int, fields: int) -> None:
    """email, user_id and one column per field (c0, c1, ...), of the kind its field maps."""
    import duckdb

    columns = []
    for f in range(fields):
        kind = KINDS[f % len(KINDS)]
        if kind == "number":
            # 'n/a' on one row in BAD_EVERY: a value validate reports.
            value = f"CASE WHEN i % {BAD_EVERY} = 7 THEN 'n/a' ELSE (i * 1.5 + {f})::VARCHAR END"
        elif kind == "date":
            value = "strftime(DATE '2024-01-01' + (i % 700)::INTEGER, '%Y-%m-%d')"
        elif kind == "boolean":
            value = "CASE WHEN i % 2 = 0 THEN 'true' ELSE 'false' END"
        else:
            value = f"'v{f}-' || (i % 97)"
        columns.append(f"{value} AS c{f}")
    select = (
        "SELECT 'user' || i || '@example.com' AS email, 'u-' || i AS user_id, "
        + ", ".join(columns)
        + f" FROM range({rows}) t(i)"
    )
    connection = duckdb.connect()
    try:
        connection.execute(f"COPY ({select}) TO '{path}' (HEADER, DELIMITER ',')")
    finally:
        connection.close()


def mapping_fields(fields: int) -> str:
    lines = []
    for f in range(fields):
        kind = KINDS[f % len(KINDS)]
        if kind == "column":
            spec = f"c{f}"
        elif kind == "template":
            spec = f'{{template: "{{{{ c{f} | upper }}}}"}}'
        else:
            spec = f"{{from: c{f}, type: {kind}}}"
        lines.append(f"    f{f:02d}: {spec}\n")
    return "".join(lines)


def write_repository(root: Path, source: str, csv: Path, fields: int) -> None:
    manifests = root / "manifests"
    shutil.rmtree(manifests, ignore_errors=True)
    manifests.mkdir(parents=True)
    if source == "csv":
        members = f"    csv: {csv}\n    email: email\n    userId: user_id\n"
    else:
        members = (
            f"    sql: \"SELECT * FROM read_csv('{csv}', all_varchar = true)\"\n"
            '    database: ":memory:"\n    email: email\n    userId: user_id\n'
        )
    (manifests / "bench.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: prod}\n"
        "spec:\n  region: us\n  projectType: hybrid\n"
        "  baseUrl: https://iterable.bench-host-that-does-not-exist.invalid\n"
        "  apiKey: {env: ITERABLE_API_KEY}\n---\n"
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        f"spec:\n  fields:\n{mapping_fields(fields)}---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: big}\n"
        f"spec:\n  destination: prod\n  traits: crm\n  members:\n{members}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--sources", nargs="+", choices=("csv", "query"), default=["csv", "query"])
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="reconciler-validate-traits-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cores; {args.fields} mapped fields; load {os.getloadavg()[0]:.1f}")
    try:
        for rows in args.rows:
            csv = root / f"members-{rows}x{args.fields}.csv"
            if not csv.exists():
                write_csv(csv, rows, args.fields)
            for source in args.sources:
                write_repository(root, source, csv, args.fields)
                command = [sys.executable, "-m", "reconciler", "validate", "manifests"]
                here = Path.cwd()
                os.chdir(root)
                try:
                    run = run_measured(command, timeout=TIMEOUT_SECONDS)
                finally:
                    os.chdir(here)
                last = (run.stdout.strip() or run.stderr.strip()).splitlines()[-1:]
                print(
                    f"{source:5s} {rows:>9,} rows  exit {run.returncode}  "
                    f"wall {run.wall_seconds:6.1f} s  CPU {run.cpu_seconds:6.1f} s "
                    f"({run.cpu_seconds / rows * 1e6:5.1f} us/row)  "
                    f"peak RSS {run.peak_rss_mb:5.0f} MB  {last}",
                    flush=True,
                )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
