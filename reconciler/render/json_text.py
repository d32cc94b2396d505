"""JSON as reconciler prints and writes it: no line of it is a GitHub Actions workflow
command, wherever it is shown later (cli/workflow_commands.py).

A runner takes any line holding `##[NAME` as a command, and JSON strings carry other
people's text (list names from manifests and from Iterable, their messages). JSON has no
`#` outside its strings, so every `##[` is inside one, and is spelt `##\\u005b`: the same
value once parsed, in a file (`--summary-json`, `> plan.json` then `cat`) as on a pipe.
"""

from __future__ import annotations

import json
from typing import Any


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """`json.dumps(value, indent=indent)`, with each `##[` spelt `##\\u005b`."""
    return json.dumps(value, indent=indent).replace("##[", "##\\u005b")
