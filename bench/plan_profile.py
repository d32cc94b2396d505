"""Where `reconciler plan`'s time and memory go, for one audience planned at scale.

    python bench/plan_profile.py [N] [--source csv|parquet] [--variant VAR=VALUE[,VAR=VALUE]]...
                                 [--runs 1] [--churn both|removes]

Sets up as bench/plan_apply.py does (the same generated files; the list seeded straight
into the emulator, whatever N), then runs, each as a measured subprocess (bench/measure.py):

    import    `import reconciler.cli` alone: what every run pays before any work
    getUsers  the list's body fetched and saved by this process: the emulator's share
    floor     a DuckDB anti-join alone of the same two files (bench/diff_engines.py)
    plan      `reconciler plan --format json` as it is, then once per --variant with those
              environment variables set (e.g. RECONCILER_MEMORY_LIMIT=700MB)
    traced    the plan once more with every statement on the DuckDB workspace timed (the
              child wraps Engine.connection; nothing in reconciler/ changes), the peak RSS
              after each, and the Python functions that took longest (cProfile)

Tracing costs a little; compare its total with the plain plan's. Not a test: nothing is
asserted about time. Every subprocess has a timeout.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import diff_engines
import plan_apply
from measure import run_measured

from reconciler.emulator import Emulator, EmulatorServer, Limits
from reconciler.members.model import EngineSettings

TIMEOUT_SECONDS = 1800


def _plain(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    run = run_measured(command, timeout=TIMEOUT_SECONDS, env=env)
    if run.returncode not in (0, 2):
        raise SystemExit(f"{command[:4]} exited {run.returncode}:\n{run.stderr[-2000:]}")
    return run.wall_seconds, run.peak_rss_mb, run.cpu_seconds


def main() -> None:
    if sys.argv[1:2] == ["--trace"]:
        _traced_child(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--source", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--variant", action="append", default=[], help="VAR=VALUE[,VAR=VALUE]")
    parser.add_argument(
        "--runs", type=int, default=1, help="runs of each (1): the machine is noisy"
    )
    parser.add_argument(
        "--churn",
        choices=("both", "removes"),
        default="both",
        help="as bench/plan_apply.py's: removes only, so the plan makes no consent read",
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="reconciler-profile-"))
    manifests = root / "manifests"
    manifests.mkdir()
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(plan_apply.PROJECT, "email", plan_apply.API_KEY)
    env = {
        **os.environ,
        plan_apply.API_KEY_VAR: plan_apply.API_KEY,
        **plan_apply.EMULATOR_READS,
        # What this measures is the diff of a getUsers body; the route model (issue 18)
        # would take an export job for a list this large against Iterable's speeds.
        "RECONCILER_MEMBER_READS": "getUsers",
        # The emulator here answers consistently: no read lag for a plan to wait out.
        "RECONCILER_READ_LAG": "0",
    }
    settings = EngineSettings.from_env(env)
    try:
        with EmulatorServer(emulator) as server:
            print(
                f"{args.n:,} members ({args.source}), 1% churn "
                f"{'each way' if args.churn == 'both' else 'out only'}; {os.cpu_count()} cores; "
                f"load average {_load()}"
            )
            live, desired = diff_engines.generate(
                manifests, args.n, header=True, fmt=args.source, adds=args.churn == "both"
            )
            list_id = plan_apply.seed(emulator, live)
            gc.freeze()
            plan_apply.write_manifests(manifests, server.base_url, desired, args.source)
            members = root / "getusers.txt"

            _row(
                "import reconciler.cli",
                *_plain([sys.executable, "-c", "import reconciler.cli"], env),
            )
            lines, times = plan_apply.save_members(emulator, list_id, members)
            _row(f"getUsers of {lines:,} lines: the emulator's answer, warm", times[-1], None)
            print(f"  (the emulator warming up: {plan_apply.answer_times(times)})")
            plan = [sys.executable, "-c", "from reconciler.cli import main; main()"]
            plan += ["plan", str(manifests), "--format", "json"]
            for _ in range(args.runs):
                floor = diff_engines.measure(
                    "duckdb", members, desired, root / "diff", settings.memory_limit,
                    desired_header=desired.suffix == ".csv",
                )  # fmt: skip
                _row(
                    "floor: DuckDB anti-join",
                    floor["wall_seconds"],
                    floor["peak_rss_mb"],
                    floor["cpu_seconds"],
                )
                _row("reconciler plan", *_plain(plan, env))
                for variant in args.variant:
                    extra = dict(item.split("=", 1) for item in variant.split(","))
                    _row(f"reconciler plan, {variant}", *_plain(plan, {**env, **extra}))

            trace = root / "trace.json"
            command = [sys.executable, __file__, "--trace", str(trace)]
            command += ["plan", str(manifests), "--format", "json"]
            _row("reconciler plan, traced", *_plain(command, env))
            _report(json.loads(trace.read_text()))
            print(f"load average {_load()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(label: str, seconds: float, rss: float | None, cpu: float | None = None) -> None:
    memory = f"  peak RSS {rss:6.0f} MB" if rss is not None else ""
    # CPU (user + system, all threads): steadier than wall time on a shared machine.
    used = f"  CPU {cpu:6.2f} s" if cpu is not None else ""
    print(f"{label:<58}{seconds:7.2f} s{memory}{used}")


def _report(trace: dict[str, Any]) -> None:
    print(
        "DuckDB statements on the workspace (started at s since start, took s, CPU s of the "
        "process meanwhile, peak RSS MB):"
    )
    shown = 0.0
    for at, took, rss, sql, cpu in trace["statements"]:
        if took >= 0.05:
            shown += took
            print(f"  {at:7.2f} {took:7.2f} {cpu:7.2f} {rss:7.0f}  {sql}")
    total = sum(s[1] for s in trace["statements"])
    print(
        f"  statements: {len(trace['statements'])}, {total:.2f} s in all "
        f"({total - shown:.2f} s in those under 0.05 s); the whole run {trace['total']:.2f} s"
    )
    print("Python functions by cumulative time (reconciler's, and the longest others):")
    print(trace["profile"])


# -- the traced child ----------------------------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this whole process (every thread: a download beside a statement
    counts in it too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _TimedConnection:
    """A DuckDB connection whose execute() is timed; everything else passes through."""

    def __init__(self, connection: Any, log: list, start: float):
        self._connection = connection
        self._log = log
        self._start = start

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        began, cpu = time.perf_counter(), _cpu()
        result = self._connection.execute(sql, *args, **kwargs)
        ended, cpu = time.perf_counter(), _cpu() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        text = " ".join(sql.split())
        self._log.append([began - self._start, ended - began, peak, text[:150], cpu])
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _traced_child(out: Path, argv: list[str]) -> None:
    start = time.perf_counter()
    from reconciler.members.engine import workspace

    statements: list = []
    opened = workspace.Engine.connection

    def connection(self: Any) -> Any:
        return _TimedConnection(opened.fget(self), statements, start)  # type: ignore[union-attr]

    workspace.Engine.connection = property(connection)  # type: ignore[method-assign,assignment]
    from reconciler.cli import main as cli_main

    sys.argv = ["reconciler", *argv]
    profiler = cProfile.Profile()
    code = 0
    try:
        profiler.runcall(cli_main)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        total = time.perf_counter() - start
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(r"reconciler/(?!cli)|httpx|duckdb", 30)
        body = text.getvalue()
        profile = body[body.find("   ncalls") :] if "   ncalls" in body else body
        out.write_text(json.dumps({"statements": statements, "total": total, "profile": profile}))
    sys.exit(code)


if __name__ == "__main__":
    main()
