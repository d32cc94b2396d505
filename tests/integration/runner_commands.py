"""Which lines of a step's output a GitHub Actions runner takes as workflow commands: the
two rules of actions/runner (src/Runner.Common/ActionCommand.cs, TryParseV2 and TryParse)
applied as it applies them, to each line as its StreamReader.ReadLine splits them.

  V2: the line, its leading whitespace trimmed, starts with `::NAME` (NAME up to a space)
      and holds another `::` after it;
  V1: the line holds `##[NAME` anywhere (NAME up to a space, then a `]` somewhere after).

NAME is one of the runner's commands, in any case (a HashSet with OrdinalIgnoreCase).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMANDS = frozenset(
    {
        "add-mask",
        "set-output",
        "save-state",
        "stop-commands",
        "error",
        "warning",
        "notice",
        "debug",
        "group",
        "endgroup",
        "echo",
        "add-matcher",
        "remove-matcher",
    }
)
# StreamReader.ReadLine: a line ends at LF, CR or CRLF, and at nothing else.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# .NET's char.IsWhiteSpace, which String.TrimStart() trims.
_DOTNET_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True)
class Command:
    form: str  # "v2" (`::NAME ...::DATA`) or "v1" (`##[NAME ...]DATA`)
    name: str
    properties: str
    data: str
    line: str


def command(line: str) -> Command | None:
    """The command the runner reads in one line, or None."""
    return _v2(line) or _v1(line)


def commands(text: str) -> list[Command]:
    """Every line of a step's output (one stream) that the runner takes as a command."""
    found = (command(line) for line in _LINE_BREAK.split(text))
    return [c for c in found if c is not None]


def _v2(line: str) -> Command | None:
    message = line.lstrip(_DOTNET_WHITESPACE)
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    name, _, properties = message[2:end].partition(" ")
    if name.lower() not in COMMANDS:
        return None
    return Command("v2", name, properties, message[end + 2 :], line)


def _v1(line: str) -> Command | None:
    prefix = line.find("##[")
    if prefix < 0:
        return None
    bracket = line.find("]", prefix)
    if bracket < 0:
        return None
    name, _, properties = line[prefix + 3 : bracket].partition(" ")
    if name.lower() not in COMMANDS:
        return None
    return Command("v1", name, properties, line[bracket + 1 :], line)
