"""The loaded manifests: validated destinations and audiences, each knowing where it was written."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import Problem
from reconciler.manifest.location import Location, PathElement, YamlPositions
from reconciler.manifest.model import AudienceSpec, DestinationSpec, TraitMappingSpec


def read_alike(name: str) -> str:
    """A list name as a reader takes it in: NFKC, without format characters (zero-width
    spaces, joiners), runs of whitespace, and of `_` and `-` between two words or two
    spaces, as one space, trimmed, case folded. Iterable keeps names exactly, so two that
    read alike are two lists a person cannot tell apart in its web app. `_` and `-` too:
    Segment's Iterable Lists destination names a list by its audience key
    (`high_value_users`), and a manifest's audience for it is often `high-value-users`; the
    plan would make a second list beside the one campaigns use, and prune never sees
    Segment's (it has no marker). Not at a word's edge, where `-` is a sign that tells
    lists apart ('Grade A-' and 'Grade A', 'NPS -50' and 'NPS 50')."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(_JOINERS.sub(_joined, text).split()).casefold()


_JOINERS = re.compile(r"[-_]+")


def _joined(match: re.Match[str]) -> str:
    """A run of `_` and `-` as read_alike reads it: a space between two words ('high-value')
    or two spaces ('VIP - EU'), itself at a word's edge ('A-', '-50', the name's ends)."""
    text, start, end = match.string, match.start(), match.end()
    before = _kind(text[start - 1]) if start > 0 else None
    after = _kind(text[end]) if end < len(text) else None
    return " " if before is not None and before == after else match.group()


def _kind(ch: str) -> str | None:
    """A word's character, a space, or neither (other punctuation)."""
    if ch.isalnum():
        return "word"
    return "space" if ch.isspace() else None


class _SpecPositions:
    location: Location
    _positions: YamlPositions | None

    def field_location(self, *path: PathElement) -> Location:
        """Where `spec.<path>` is written, e.g. `field_location("members", "csv")`.

        A field that is not written (a default) resolves to its nearest written parent;
        one built in code, without a document behind it, resolves to `location`.
        """
        if self._positions is None:
            return self.location
        return self._positions.locate(("spec", *path))


@dataclass(frozen=True)
class Destination(_SpecPositions):
    """A `kind: Destination` document: one Iterable project."""

    name: str
    spec: DestinationSpec
    location: Location  # of metadata.name
    base_dir: Path  # absolute directory of the manifest file; relative paths start here
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    _positions: YamlPositions | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Audience(_SpecPositions):
    """A `kind: Audience` document: one Iterable list and its members."""

    name: str
    spec: AudienceSpec
    location: Location  # of metadata.name
    base_dir: Path  # absolute directory of the manifest file; relative paths start here
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    _positions: YamlPositions | None = field(default=None, repr=False, compare=False)
    # The repository that holds the manifests (manifest.repository): all its member
    # sources, and every file its queries read, must be inside it. None when built in code.
    repository: Path | None = field(default=None, compare=False)
    # Every destination's API key file (apiKey: {file: ...}): a query of this audience that
    # could read one is not run (sources/duckdb_query.open_connection).
    key_files: tuple[Path, ...] = field(default=(), compare=False)

    @property
    def source_root(self) -> Path:
        """The repository this audience's sources must live in."""
        if self.repository is not None:
            return self.repository
        from reconciler.manifest.repository import find_repository

        return find_repository(self.base_dir)

    @property
    def list_name(self) -> str:
        """The Iterable list this audience manages."""
        return self.spec.listName or self.name

    @property
    def member_locations(self) -> list[Location]:
        """Where each `spec.members.inline` entry is written, parallel to that list."""
        inline = self.spec.members.inline or []
        return [self.field_location("members", "inline", i) for i in range(len(inline))]


@dataclass(frozen=True)
class TraitMapping(_SpecPositions):
    """A `kind: TraitMapping` document: Iterable user fields and where their values come from."""

    name: str
    spec: TraitMappingSpec
    location: Location  # of metadata.name
    base_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    _positions: YamlPositions | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Manifests:
    """Everything loaded from a manifest path, in file order then document order."""

    root: Path
    files: list[Path]
    destinations: dict[str, Destination]
    audiences: dict[str, Audience]
    trait_mappings: dict[str, TraitMapping] = field(default_factory=dict)
    # What loads but is likely not what the author meant; commands print them as warnings.
    warnings: tuple[Problem, ...] = ()

    def audiences_of(self, destination: str) -> list[Audience]:
        """The audiences that name `destination`, in load order."""
        return [a for a in self.audiences.values() if a.spec.destination == destination]
