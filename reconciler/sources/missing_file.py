"""What a member source's path that names no file was likely meant to be: written from
the repository's top (`csv: manifests/data/x.csv` in `manifests/`, read as
`manifests/manifests/data/x.csv`), or a near miss of a file beside it. "CSV file not
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
