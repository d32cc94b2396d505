"""Scale in breadth: many audiences, manifest files, destinations, mappings and live lists.

    PYTHONPATH=$PWD:$PWD/bench python3 bench/plan_breadth.py [--scales 1 3 10]
        [--steps validate plan]

At scale K a repository holds 200*K audiences in 30*K manifest files under nested
directories (teams/team-NN/sub-N/), round(1.5*K) destinations (half on one emulator
project, the others on two more), 12*K trait mappings of three fields (one a template)
and 5*K CSVs of 60 rows that the audiences share (a fifth of them read the same CSVs by a
DuckDB query instead, a fifth have inline members). The emulator (in-process, no rate
limits) holds 1,000*K lists no manifest declares, spread over its three projects. Each
step is a child process measured by bench/measure.py: wall time, CPU, peak RSS, and CPU
per audience; the first plan creates every list. A step whose CPU per audience grows
with the scale costs more than linearly (the plan's notes walked every list for each
list created: 15 s of CPU at K=10 before they were indexed). Pacing is off (the
emulator has no limits), so the figures are reconciler's own work, not Iterable's
budgets. Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits

PROJECTS = ("alpha", "beta", "gamma")
ROWS = 60
TIMEOUT_SECONDS = 3600
# No client pacing: the emulator has no limits, and the figure is reconciler's own work.
PACING_OFF = {
    "RECONCILER_READ_LAG": "0",
    "RECONCILER_EXPORTS_PER_MINUTE": "0",
    "RECONCILER_LIST_READS_PER_MINUTE": "0",
    "RECONCILER_LISTS_PER_SECOND": "0",
    "RECONCILER_BULK_UPDATES_PER_SECOND": "0",
    "RECONCILER_GET_FIELDS_PER_SECOND": "0",
    "RECONCILER_USER_READS_PER_SECOND": "0",
    "RECONCILER_FORGOTTEN_READS_PER_SECOND": "0",
}


def key_of(project: str) -> str:
    return f"bench-key-{project}"


def write_repository(root: Path, k: int, base_url: str) -> int:
    """The manifests and CSVs of scale `k` under root/manifests; returns the audiences."""
    files, per_file = 30 * k, 200 // 30 + 1
    destinations, mappings, csvs = max(2, round(1.5 * k)), 12 * k, 5 * k
    manifests = root / "manifests"
    for directory in ("destinations", "traits", "data"):
        (manifests / directory).mkdir(parents=True)
    for d in range(destinations):
        project = PROJECTS[0] if d < destinations // 2 else PROJECTS[1 + d % 2]
        (manifests / "destinations" / f"dest-{d:02d}.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Destination\n"
            f"metadata: {{name: dest-{d:02d}}}\n"
            f"spec: {{region: us, projectType: hybrid, baseUrl: '{base_url}', "
            f"apiKey: {{env: KEY_{project.upper()}}}}}\n"
        )
    for c in range(csvs):
        rows = ["email,user_id,plan,ltv,first_name"]
        for r in range(ROWS):
            n = (c * 37 + r) % (ROWS * 3)
            rows.append(f"m{n}@example.com,u{n},tier{n % 4},{n * 1.5},name{n}")
        (manifests / "data" / f"shared-{c:03d}.csv").write_text("\n".join(rows) + "\n")
    for m in range(0, mappings, 6):
        (manifests / "traits" / f"traits-{m // 6:03d}.yaml").write_text(
            "---\n".join(_mapping(i) for i in range(m, min(m + 6, mappings)))
        )
    audiences = 0
    for f in range(files):
        team = manifests / "teams" / f"team-{f % 10:02d}" / f"sub-{(f // 10) % 5}"
        team.mkdir(parents=True, exist_ok=True)
        documents = []
        for j in range(per_file):
            a = f * per_file + j
            documents.append(_audience(a, a % destinations, a % csvs, a % mappings, team, root))
            audiences += 1
        (team / f"audiences-{f:03d}.yaml").write_text("---\n".join(documents))
    return audiences


def _mapping(m: int) -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {{name: map-{m:03d}}}\n"
        "spec:\n  fields:\n"
        f"    f{m:03d}_tier: plan\n"
        f"    f{m:03d}_ltv: {{from: ltv, type: number}}\n"
        f'    f{m:03d}_hi: {{template: "Hi {{{{ first_name | title }}}}"}}\n'
    )


def _audience(a: int, d: int, c: int, m: int, directory: Path, root: Path) -> str:
    csv = Path(os.path.relpath(root / "manifests" / "data" / f"shared-{c:03d}.csv", directory))
    kind = a % 5
    if kind == 4:
        # From the repository's top, where the commands run: DuckDB looks for a relative
        # path in the working directory first, and `..` from there leaves the repository.
        members = (
            '    sql: "SELECT email, user_id AS userId, plan, ltv, first_name FROM '
            f"read_csv('manifests/data/shared-{c:03d}.csv') WHERE ltv > 10\"\n"
            '    database: ":memory:"\n'
        )
    elif kind == 3:
        members = "    inline:\n" + "".join(
            f"      - {{email: i{(a + r) % 90}@example.com, userId: iu{(a + r) % 90}}}\n"
            for r in range(5)
        )
    else:
        members = f"    csv: {csv.as_posix()}\n    email: email\n    userId: user_id\n"
    traits = f"  traits: map-{m:03d}\n" if kind != 3 else ""
    return (
        f"apiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: aud-{a:05d}}}\n"
        f"spec:\n  destination: dest-{d:02d}\n  description: Audience {a}\n"
        f"  members:\n{members}{traits}"
    )


def run_scale(k: int, steps: list[str]) -> None:
    emulator = Emulator(limits=Limits.unlimited())
    for project in PROJECTS:
        emulator.add_project(project, "hybrid", key_of(project))
        for i in range(1000 * k // len(PROJECTS)):
            emulator.project(project).add_list(f"unmanaged-{project}-{i:05d}", "not ours")
    root = Path(tempfile.mkdtemp(prefix="reconciler-breadth-"))
    env = {
        **os.environ,
        **PACING_OFF,
        **{f"KEY_{p.upper()}": key_of(p) for p in PROJECTS},
    }
    here = Path.cwd()
    try:
        with EmulatorServer(emulator) as server:
            audiences = write_repository(root, k, server.base_url)
            os.chdir(root)
            for step in steps:
                command = [sys.executable, "-m", "reconciler", step, "manifests"]
                if step == "plan":
                    command += ["--format", "json"]
                run = run_measured(command, timeout=TIMEOUT_SECONDS, env=env)
                if run.returncode not in (0, 2):
                    raise SystemExit(f"{step} exited {run.returncode}:\n{run.stderr[-3000:]}")
                print(
                    f"K={k:<3} {audiences:5,} audiences  {step:8s} wall {run.wall_seconds:7.1f} s"
                    f"  CPU {run.cpu_seconds:7.1f} s  peak RSS {run.peak_rss_mb:5.0f} MB  "
                    f"CPU per audience {1000 * run.cpu_seconds / audiences:5.1f} ms",
                    flush=True,
                )
    finally:
        os.chdir(here)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--steps", nargs="+", default=["validate", "plan"])
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    for k in args.scales:
        run_scale(k, args.steps)


if __name__ == "__main__":
    main()
