"""How a manifest's path to a file is spelt, against how the file system spells the file.

A path that works on one machine may name nothing on another: macOS and Windows match
file names without regard to case (`Members.csv` opens `members.csv`), Windows separates
directories with `\\` as well as `/` and drops spaces and dots that end a name, and
Linux, where CI runs, does none of this. So a manifest written on a laptop passed there
and failed in CI with "file not found", naming a file whose name looked right. Each part
of the path is compared with the names its directory lists, so such a path is caught on
every machine, the laptop included, and named with the spelling that works everywhere.

A name in another Unicode form is a different matter: `é` composed (NFC) or decomposed
(NFD) looks the same, cannot be told apart when reading the manifest, and macOS opens
either. Git on macOS records names composed, so a manifest that has the decomposed form
(pasted from Finder, say) found nothing on Linux. Such a part is taken as the name the
directory lists, on every machine, with no problem to report.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

CASE = (
    "the name differs in case: macOS and Windows ignore case in file names, Linux (where "
    "CI runs) does not"
)
TRAILING = (
    "the name ends in a space or a dot, which Windows drops from file names and Linux (where "
    "CI runs) keeps"
)
BACKSLASH = (
    "directories are separated by /: a \\ separates them only on Windows, and on Linux "
    "(where CI runs) is part of a file name"
)


@dataclass(frozen=True)
class Spelling:
    """A path as the file system spells it (parts joined with /), and why the manifest's
    spelling would not name it on Linux (CASE, BACKSLASH; none for a Unicode form)."""

    path: str
    reasons: tuple[str, ...] = ()


@dataclass
class Directories:
    """The names each directory lists, read once per directory (a load checks many paths
    in one data directory)."""

    listed: dict[Path, list[str] | None] = field(default_factory=dict)

    def names(self, directory: Path) -> list[str] | None:
        if directory not in self.listed:
            try:
                self.listed[directory] = os.listdir(directory)
            except OSError:
                self.listed[directory] = None
        return self.listed[directory]


def on_disk(
    base_dir: Path, written: str, directories: Directories | None = None
) -> Spelling | None:
    """How the file system spells `written` (relative to `base_dir`, unless absolute): the
    same text when every part is listed as written; another when a part is listed only in
    another Unicode form or case, or only once its backslashes separate directories; None
    when some part is not listed in any of these spellings (the reader says it is missing)."""
    directories = directories or Directories()
    absolute = written.startswith("/")
    current = Path("/") if absolute else base_dir
    pending = written.split("/")
    spelt: list[str] = []
    reasons: list[str] = []
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current, spelt = current / part, [*spelt, part]
            continue
        names = directories.names(current)
        if names is None:
            return None
        found, reason = _listed(part, names)
        if found is None and "\\" in part:
            pending[:0] = part.split("\\")
            reasons.append(BACKSLASH)
            continue
        if found is None:
            return None
        if reason:
            reasons.append(reason)
        current, spelt = current / found, [*spelt, found]
    path = "/".join(spelt)
    return Spelling("/" + path if absolute else path, tuple(dict.fromkeys(reasons)))


def _listed(part: str, names: list[str]) -> tuple[str | None, str]:
    """The one name in `names` that is `part`: as written, in another Unicode form, or
    (with CASE as the reason) in another case; None when no one name is."""
    if part in names:
        return part, ""
    for same, reason in ((_composed, ""), (folded, CASE)):
        key = same(part)
        matches = [name for name in names if same(name) == key]
        if len(matches) == 1:
            return matches[0], reason
    trimmed = part.rstrip(" .")
    if trimmed != part and trimmed:
        found, reason = _listed(trimmed, names)
        if found is not None:
            return found, "; ".join(filter(None, (TRAILING, reason)))
    return None, ""


def _composed(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def folded(name: str) -> str:
    """`name` as macOS and Windows compare names: regardless of case and Unicode form."""
    return unicodedata.normalize("NFC", name).casefold()
