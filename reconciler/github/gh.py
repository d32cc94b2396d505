"""The `gh` CLI as a REST client: `gh api` with a JSON body on stdin and JSON out."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.env_numbers import SECONDS_ABOVE_0, env_float
from reconciler.errors import ReconcilerError

# How long one `gh api` call may take. A call that hangs (a network that drops packets, a
# proxy that never answers) otherwise holds the job until Actions' six-hour limit, and the
# apply group's queue behind it.
TIMEOUT_VARIABLE = "RECONCILER_GH_TIMEOUT"
DEFAULT_TIMEOUT = 300.0


class GhError(ReconcilerError):
    """`gh` is missing or GitHub refused a request."""


class GhUnreached(GhError):
    """`gh` is missing, or its call did not finish in time: GitHub gave no answer, so
    nothing can be said of what it would have answered (a missing workflow, a scope)."""


def gh_timeout(environ: Mapping[str, str]) -> float:
    """Seconds one `gh api` call may take (RECONCILER_GH_TIMEOUT)."""
    return env_float(environ, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT, SECONDS_ABOVE_0)


@dataclass(frozen=True)
class Gh:
    executable: str = "gh"

    def api(
        self,
        method: str,
        endpoint: str,
        payload: dict[str, Any] | None = None,
        *,
        paginate: bool = False,
    ) -> Any:
        """Call `gh api`; with `paginate`, every page's array joined into one list."""
        args = [self.executable, "api", "--method", method, endpoint]
        if paginate:
            args.append("--paginate")
        if payload is not None:
            # On stdin, not as -f fields: a plan can be longer than a command line may be.
            args += ["--input", "-"]
        seconds = gh_timeout(os.environ)
        try:
            done = subprocess.run(
                args,
                input=json.dumps(payload) if payload is not None else None,
                capture_output=True,
                # gh reads and writes UTF-8 whatever the locale: read in the locale's
                # encoding (a Windows code page), GitHub's text came back garbled, or
                # not at all (bytes cp1252 lacks).
                encoding="utf-8",
                errors="replace",
                check=False,
                timeout=seconds,
            )
        except subprocess.TimeoutExpired:
            raise GhUnreached(
                f"gh api {method} {endpoint} did not finish within {seconds:g} "
                f"second{'' if seconds == 1 else 's'} ({TIMEOUT_VARIABLE}); it was stopped"
            ) from None
        except FileNotFoundError:
            raise GhUnreached(
                f"{self.executable!r} not found: install the GitHub CLI (it is on GitHub's "
                "hosted runners) and set GH_TOKEN"
            ) from None
        if done.returncode != 0:
            reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise GhError(f"gh api {method} {endpoint} failed: {reason[0]}")
        try:
            return _pages(done.stdout) if paginate else json.loads(done.stdout or "null")
        except (ValueError, RecursionError):
            # gh prints whatever body it got: a proxy's or an outage's HTML page with a 200.
            raise GhError(
                f"gh api {method} {endpoint} answered with text that is not JSON (a page from "
                "a proxy or an outage rather than GitHub's API?)"
            ) from None


def _pages(text: str) -> list[Any]:
    # `gh api --paginate` prints each page's JSON array one after another ("[...][...]").
    decoder = json.JSONDecoder()
    items: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return items
        page, position = decoder.raw_decode(text, position)
        items.extend(page if isinstance(page, list) else [page])
