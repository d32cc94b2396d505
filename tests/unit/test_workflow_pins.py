"""The workflows run third-party actions beside the Iterable write key: each is pinned to a
commit, with the release it is in a comment, so a moved tag cannot change what runs."""

from __future__ import annotations

import re
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s+v\d+\.\d+\.\d+\s*$")


def test_every_action_is_pinned_to_a_commit_with_its_release_named() -> None:
    uses = [
        (path.name, line)
        for path in sorted(WORKFLOWS.glob("*.yml"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"^\s*(?:-\s+)?uses:", line)
    ]
    assert len(uses) >= 10  # every workflow checks out and sets up Python at least
    assert [u for u in uses if not PINNED.match(u[1])] == []
