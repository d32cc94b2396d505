"""What a member source's path that names no file was likely meant to be: written from
the repository's top (`csv: manifests/data/x.csv` in `manifests/`, read as
`manifests/manifests/data/x.csv`), a file of its name one folder below (`csv: x.csv` for
`data/x.csv`), or a near miss of a file beside it. "CSV file not
found" alone left the user comparing paths by eye."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from reconciler.errors import display_path
from reconciler.manifest.repository import is_inside

# Names looked at in the directory the path names: enough for a data folder, bounded for
# a huge one (a near miss there is a guess in any case).
_MAX_NAMES = 10_000


def missing_file_hint(written: str, base_dir: Path, repository: Path) -> str:
    """ " (...)" saying what to write instead of `written`, a path relative to `base_dir`
    that names no file, or "" when nothing is likely."""
    path = Path(written)
    if path.is_absolute():
        return ""
    for start in (repository, Path.cwd()):
        candidate = start / path
        # Only a file in the repository, where member sources must be: no manifest may
        # learn through its error whether a file exists elsewhere on the machine.
        if candidate.is_file() and is_inside(candidate, repository):
            try:
                meant = Path(os.path.relpath(candidate, base_dir)).as_posix()
            except ValueError:  # another drive (Windows): no relative path to it
                continue
            return (
                f" (a path in a manifest starts at the manifest's directory, "
                f"{display_path(base_dir)}/: write {meant} for the file {written})"
            )
    directory = (base_dir / path).parent
    below = _one_level_below(directory, path.name, repository)
    if below:
        return f" (did you mean {' or '.join((path.parent / b).as_posix() for b in below)}?)"
    try:
        names = [
            entry.name
            for entry in itertools.islice(os.scandir(directory), _MAX_NAMES)
            if entry.is_file()
        ]
    except OSError:
        return ""
    from reconciler.manifest.validation import closest

    near = closest(path.name, names)
    if near is None:
        return ""
    return f" (did you mean {(path.parent / near).as_posix()}?)"


# Files of the name looked for one level below, named at most: more is no likely meaning.
_MAX_BELOW = 3


def _one_level_below(directory: Path, name: str, repository: Path) -> list[str]:
    """`DIR/name` for each folder DIR of `directory` holding a file `name` (`csv: x.csv`
    where the file is `data/x.csv` beside the manifest), sorted; none when `directory` is
    outside the repository, where no manifest may learn what exists."""
    if not name or not is_inside(directory, repository):
        return []
    found: list[str] = []
    try:
        for entry in itertools.islice(os.scandir(directory), _MAX_NAMES):
            candidate = Path(entry.path) / name
            if entry.is_dir() and candidate.is_file() and is_inside(candidate, repository):
                found.append(f"{entry.name}/{name}")
    except OSError:
        return []
    return sorted(found)[:_MAX_BELOW] if len(found) <= _MAX_BELOW else []
