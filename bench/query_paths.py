"""What each manifest query pays to learn the paths it may read, by manifest directory size.

    PYTHONPATH=$PWD python3 bench/query_paths.py [--files 100 1000 3000] [--calls 20]

A git work tree whose manifests/ holds --files audience files (git tracks them), run from
its top, as CI runs. Every query (validate, plan and apply run each once or twice, in both
engines) asks manifest.repository.readable_paths for the repository's names and those
beside its manifest; the figure is CPU per call, averaged over --calls. It grows with the
directory, and a repository's queries grow with it too, so a step costing more than a
millisecond or two at 1,000 files is quadratic in the audiences. Not a test: nothing is
asserted about time.

Figures (2 shared cores, CPU per call), before -> after one listing of the working
directory replaced a path and a look-up per name:

    files   100: 1.8 -> 0.35 ms     1,000: 22.3 -> 2.9 ms     3,000: 64.6 -> 5.8 ms
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from reconciler.manifest.repository import readable_paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    here = Path.cwd()
    for count in args.files:
        root = Path(tempfile.mkdtemp(prefix="reconciler-query-paths-"))
        try:
            manifests = root / "manifests"
            manifests.mkdir()
            for i in range(count):
                (manifests / f"aud-{i:05d}.yaml").write_text("kind: Audience\n")
            run = {"cwd": root, "check": True, "capture_output": True}
            subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
            subprocess.run(["git", "add", "manifests"], **run)  # type: ignore[call-overload]
            os.chdir(root)
            readable_paths(root, manifests)  # the link check, once per process
            started = time.process_time()
            for _ in range(args.calls):
                readable_paths(root, manifests)
            each = (time.process_time() - started) / args.calls
            print(f"{count:6,} files beside the manifest: {1000 * each:6.2f} ms per query")
        finally:
            os.chdir(here)
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
