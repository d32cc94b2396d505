"""Run a command and measure its wall time and peak RSS from a small parent process.

A child's peak RSS (ru_maxrss) starts at its parent's RSS when it forks, even after exec,
so a command started straight from a big process (one holding an emulator with 100,000
users) would be charged for the parent's memory. Run as a script, this module is the
small parent in between: it starts the command, waits for it with wait4, and writes that
one child's figures to a file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    peak_rss_mb: float
    # User + system CPU of the command (its threads and children): on a machine shared
    # with other work, less disturbed than the wall time.
    cpu_seconds: float = 0.0


def run_measured(
    command: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> Measured:
    """Run `command`; kill it (and its group) if it runs past `timeout` seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, str(report), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # one group, so a timeout ends the command too
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise SystemExit(f"{command[:3]}... still running after {timeout} s; killed") from None
        wall = time.perf_counter() - start
        figures = json.loads(report.read_text())
    return Measured(
        figures["returncode"],
        stdout,
        stderr,
        wall,
        figures["peak_rss_mb"],
        figures.get("cpu_seconds", 0.0),
    )


def _launch(report: str, command: list[str]) -> int:
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    # Linux reports ru_maxrss in KiB.
    figures = {
        "returncode": child.returncode,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    Path(report).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1], sys.argv[2:]))
