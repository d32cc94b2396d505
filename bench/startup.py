"""What a `reconciler` process costs before it does any work: every command is a fresh
process, and each pays its start-up (issue 17).

    python bench/startup.py [--runs 10] [--no-plan]

Cases, each a fresh interpreter (sys.executable, not a shell's wrapper), run --runs times
taking turns; the minimum and the median wall time and CPU time of each are printed (the
machine is shared: noise only adds to a run, and the median shows what a run typically
costs):

    python     `python -c pass`: the interpreter and site alone, the floor under the rest
    import     `python -c "import reconciler.cli"`: the command tree, before any command
    --version  `reconciler --version`
    --help     `reconciler --help`
    apply -h   `reconciler apply --help`: one command's help, the heaviest command's
    validate   `reconciler validate` of a one-audience project (three inline members)
    plan       `reconciler plan` of it against the emulator on loopback, the list already
               applied (no changes): the smallest real plan

Twice: with the bytecode cache, as after `pip install` (which compiles it): a temporary
PYTHONPYCACHEPREFIX, filled by one run of each case first; and without it for reconciler's
own modules, compiled from source on every run, as in a checkout without `__pycache__`
under PYTHONDONTWRITEBYTECODE=1 (a copy of the package made here; the standard library and
site-packages keep their bytecode). For where the time goes:

    PYTHONPATH=. python -X importtime -c "import reconciler.cli" 2>&1 | sort -t'|' -k2 -n | tail -40

Not a test: nothing is asserted about time. Stops by itself: every run has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.emulator import Emulator, EmulatorServer, Limits  # noqa: E402

API_KEY = "startup-bench-key"
API_KEY_VAR = "RECONCILER_BENCH_API_KEY"
TIMEOUT_SECONDS = 120
CLI = "from reconciler.cli import main; main()"
MEMBERS = ("ada", "grace", "linus")


def write_project(root: Path, base_url: str) -> Path:
    manifests = root / "manifests"
    manifests.mkdir()
    documents = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "bench"},
            "spec": {
                "region": "us",
                "projectType": "hybrid",
                "baseUrl": base_url,
                "apiKey": {"env": API_KEY_VAR},
            },
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "startup"},
            "spec": {
                "destination": "bench",
                "members": {"inline": [f"{name}@example.com" for name in MEMBERS]},
            },
        },
    ]
    (manifests / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
    return manifests


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `command` (which must succeed)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = start + TIMEOUT_SECONDS
    while (done := os.wait4(child.pid, os.WNOHANG))[0] == 0:
        if time.perf_counter() > deadline:
            child.kill()
            raise SystemExit(f"{command[-1]}: still running after {TIMEOUT_SECONDS} s; killed")
        time.sleep(0.002)
    wall = time.perf_counter() - start
    _, status, usage = done
    if os.waitstatus_to_exitcode(status) != 0:
        assert child.stderr is not None
        raise SystemExit(f"{command[2:]} failed:\n{child.stderr.read()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(cases: dict[str, list[str]], env: dict[str, str], cwd: Path, runs: int) -> None:
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, command in cases.items():  # taking turns: noise spreads over all cases
            wall, cpu = timed(command, env, cwd)
            walls[name].append(wall)
            cpus[name].append(cpu)
    floor = min(walls["python"])
    print(f"  {'':<9} {'min wall':>9} {'min CPU':>8} {'median CPU':>11}")
    for name in cases:
        wall, cpu = min(walls[name]), min(cpus[name])
        above = "" if name == "python" else f"  ({wall - floor:.3f} s wall above python)"
        print(f"  {name:<9} {wall:8.3f}s {cpu:7.3f}s {statistics.median(cpus[name]):10.3f}s{above}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-plan", action="store_true", help="leave out validate and plan")
    args = parser.parse_args()

    python = [sys.executable, "-c"]
    cases = {
        "python": [*python, "pass"],
        "import": [*python, "import reconciler.cli"],
        "--version": [*python, CLI, "--version"],
        "--help": [*python, CLI, "--help"],
        "apply -h": [*python, CLI, "apply", "--help"],
    }
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project("default", "hybrid", API_KEY)
    with tempfile.TemporaryDirectory(prefix="reconciler-startup-") as scratch:
        root = Path(scratch)
        base = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            API_KEY_VAR: API_KEY,
            "RECONCILER_READ_LAG": "0",  # the emulator answers consistently: nothing to wait out
        }
        with EmulatorServer(emulator) as server:
            if not args.no_plan:
                manifests = write_project(root, server.base_url)
                cases["validate"] = [*python, CLI, "validate", str(manifests)]
                cases["plan"] = [*python, CLI, "plan", str(manifests)]
                timed([*python, CLI, "apply", str(manifests), "--yes"], base, root)
            cached = {**base, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
            cached.pop("PYTHONDONTWRITEBYTECODE", None)
            source = root / "source"
            shutil.copytree(
                ROOT / "reconciler",
                source / "reconciler",
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            compiled = {**base, "PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"}
            load = os.getloadavg()
            print(
                f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
                f"{load[0]:.2f}; {args.runs} runs of each; the tiny project's plan has no changes"
            )
            modes = [
                ("bytecode cached (as installed by pip)", cached),
                ("reconciler compiled from source on every run (no __pycache__)", compiled),
            ]
            for title, env in modes:
                for command in cases.values():  # fills the cache (and warms the disk)
                    timed(command, env, root)
                print(title)
                measure(cases, env, root, args.runs)


if __name__ == "__main__":
    main()
