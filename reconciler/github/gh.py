"""The `gh` CLI as a REST client: `gh api` with a JSON body on stdin and JSON out."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ReconcilerError


class GhError(ReconcilerError):
    """`gh` is missing or GitHub refused a request."""


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
        try:
            done = subprocess.run(
                args,
                input=json.dumps(payload) if payload is not None else None,
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise GhError(
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
