"""Load every manifest under a path, validate it, and report all problems in one pass.

Checks run in three layers, each on what the one before could read: the file (encoding,
YAML syntax), the document (envelope, kind, the spec's schema), and the set of documents
(duplicate names, references between them, list names). A problem in one layer never
hides problems elsewhere: every file and every document is checked.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.errors import ManifestError, Problem, line_safe_path, quoted, variable_name
from reconciler.layout import unseen, yaml_quoted
from reconciler.manifest.api_key import key_file_path
from reconciler.manifest.file_names import Directories, folded, on_disk
from reconciler.manifest.location import Location, YamlPositions
from reconciler.manifest.manifests import (
    Audience,
    Destination,
    Manifests,
    TraitMapping,
    read_alike,
)
from reconciler.manifest.model import (
    API_VERSION,
    DOCUMENT_MODELS,
    ENV_REFERENCE,
    KINDS,
    RESERVED_KINDS,
    AudienceDocument,
    DestinationDocument,
    DocumentEnvelope,
    TraitFieldSpec,
    TraitMappingDocument,
)
from reconciler.manifest.repository import (
    PRIVATE_ENTRIES,
    find_repository,
    is_inside,
    real_path,
)
from reconciler.manifest.schema_comment import stale_schema_warnings
from reconciler.manifest.validation import closest, describe, did_you_mean, problems_from_error
from reconciler.manifest.yaml_file import YamlDocument, read_yaml_file
from reconciler.manifest.yaml_readings import (
    TextLines,
    anchored_members,
    cut_by_comment,
    dates_as_written,
    disagreeing_values,
    joined_members,
)
from reconciler.render.masking import column_hint, column_names, spelled_out
from reconciler.render.masking import unseen as unseen_in_names
from reconciler.words import some_names

MANIFEST_SUFFIXES = (".yaml", ".yml")


def load_manifests(path: Path | str) -> Manifests:
    """Load and validate the manifests at `path`, a directory (searched recursively) or a file.

    Raises `ManifestError` carrying every problem found, across all files and documents.
    """
    root = Path(path)
    files, problems = _discover(root)
    collector = _Collector(problems, find_repository(root))
    document_count = 0
    for file in files:
        display = display_path(file)
        documents, file_problems = read_yaml_file(file, display)
        collector.problems.extend(file_problems)
        document_count += len(documents)
        for document in documents:
            collector.add(document)
    if files and document_count == 0 and not collector.problems:
        collector.problems.append(
            Problem(
                display_path(root), 0, 0, f"no manifest documents found in {display_path(root)}"
            )
        )
    if root.is_file():
        collector.only_file = display_path(root)
    if files:
        # Before the checks across documents: a trait mapping's columns are read from the
        # sources, and a source refused here (a pipe, a file outside the repository) must
        # not be opened at all.
        collector.check_source_paths(collector.repository)
    collector.check_across_documents()
    collector.warnings.extend(stale_schema_warnings(files, collector.repository, display_path))
    if collector.problems:
        raise ManifestError(collector.problems, collector.warnings)
    collector.check_identity_columns()
    return Manifests(
        root,
        files,
        collector.destinations,
        _with_key_files(collector.audiences, collector.destinations),
        collector.trait_mappings,
        tuple(sorted(collector.warnings)),
    )


def _with_key_files(
    audiences: dict[str, Audience], destinations: dict[str, Destination]
) -> dict[str, Audience]:
    """`audiences`, each told every destination's API key file: a query of any audience
    may name any file, so none may be able to read a key, whichever destination it is for."""
    found = (key_file_path(d) for d in destinations.values())
    key_files = tuple(sorted({path for path in found if path is not None}))
    if not key_files:
        return audiences
    return {name: replace(a, key_files=key_files) for name, a in audiences.items()}


def display_path(path: Path) -> str:
    """The path as a user would click it: relative to the working directory when inside it
    (never starting with `::`: errors.line_safe_path)."""
    if not path.is_absolute():
        return line_safe_path(str(path))
    try:
        return line_safe_path(str(path.relative_to(Path.cwd())))
    except (ValueError, OSError):
        return str(path)


def _discover(root: Path) -> tuple[list[Path], list[Problem]]:
    shown = display_path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        spelling = on_disk(Path.cwd(), str(root))
        # A CI workflow written on macOS (`reconciler plan Manifests`) opened it there.
        why = "; ".join(spelling.reasons) if spelling else ""
        meant = (
            f": it is spelt {spelling.path} ({why or 'in another Unicode form'})"
            if spelling
            else ""
        )
        return [], [
            Problem(
                shown,
                0,
                0,
                f"manifest path {shown} does not exist (looked from {Path.cwd()}){meant}; give "
                "the directory that holds the manifests as the PATH argument",
            )
        ]
    found: list[Path] = []
    problems: list[Problem] = []
    for directory, subdirectories, filenames in os.walk(root):
        # Hidden directories hold tooling (.git, .github workflows), never manifests.
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        # os.walk does not enter linked directories; one that leads out is still refused
        # aloud rather than skipped without a word.
        for name in subdirectories:
            problems.extend(_link_out(Path(directory, name), root))
        for name in filenames:
            if name.lower().endswith(MANIFEST_SUFFIXES) and not name.endswith(MANIFEST_SUFFIXES):
                problems.extend(_not_lower_case(Path(directory, name)))
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                path = Path(directory, name)
                refused = _link_out(path, root)
                problems.extend(refused)
                if not refused:
                    found.append(path)
    if not found and not problems:
        return [], [Problem(shown, 0, 0, f"no manifest files (*.yaml, *.yml) found in {shown}")]
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    return found, problems + _case_collisions(found, root)


def _case_collisions(files: list[Path], root: Path) -> list[Problem]:
    """A problem for each manifest file whose path under `root` differs from an earlier
    one's only in case or Unicode form: a checkout on macOS or Windows (whose file systems
    match names so) keeps one of the two, and a plan there would go without the other's
    audiences, while Linux, where CI runs, reads both."""
    problems: list[Problem] = []
    first: dict[str, Path] = {}
    for path in files:
        kept = first.setdefault(folded(path.relative_to(root).as_posix()), path)
        if kept is not path:
            problems.append(
                Problem(
                    # At its first line, so that the problem is located (a CI annotation).
                    display_path(path),
                    1,
                    1,
                    f"this manifest file and {display_path(kept)} differ only in case (or "
                    "in the Unicode form of a letter): macOS and Windows keep one of them in a "
                    "checkout, so a plan there would not see the other's audiences; rename or "
                    "merge one",
                )
            )
    return problems


def _link_note(path: Path) -> str:
    """Where a source path that is a symbolic link leads, for a message that would
    otherwise name a place the path does not show: a git-annex file is such a link, into
    .git/annex, and reads in place only once unlocked."""
    if not path.is_symlink():
        return ""
    target = os.readlink(path)
    if "/annex/objects/" in target:
        return " (a git-annex link to its content there; `git annex unlock` it to read it)"
    return f" (a symbolic link to {target})"


def _not_lower_case(path: Path) -> list[Problem]:
    """A problem for a manifest whose suffix is not in lower case (vip.YAML), unless hidden:
    skipped without a word, its audiences were gone from validate and plan alike, and with
    prune: true their lists deleted; refused, nothing is planned until it is renamed."""
    if path.name.startswith("."):
        return []
    stem, _, suffix = path.name.rpartition(".")
    return [
        Problem(
            display_path(path),
            1,  # at its first line, so that the problem is located (a CI annotation)
            1,
            "not read as a manifest: reconciler reads files named *.yaml or *.yml, in lower "
            "case, so this file's audiences would be left out (with prune: true, their lists "
            f"deleted); rename it {stem}.{suffix.lower()}",
        )
    ]


def _link_out(path: Path, root: Path) -> list[Problem]:
    """A problem when `path` is a symbolic link leading outside the manifest directory."""
    if not path.is_symlink() or is_inside(path, root):
        return []
    return [
        Problem(
            display_path(path),
            0,
            0,
            f"symbolic link to {display_path(real_path(path))}, outside the manifest directory "
            f"{display_path(root)}; refused (a reviewed manifest change must be the whole "
            "change)",
        )
    ]


@dataclass
class _Declared:
    """A name some document claims, even if the rest of that document is invalid."""

    name: str
    location: Location


@dataclass
class _Collector:
    problems: list[Problem]
    repository: Path
    destinations: dict[str, Destination] = field(default_factory=dict)
    audiences: dict[str, Audience] = field(default_factory=dict)
    trait_mappings: dict[str, TraitMapping] = field(default_factory=dict)
    declared: dict[str, list[_Declared]] = field(default_factory=dict)
    # The path given was one file: a name declared in another file is not known, and the
    # message about it says so (`plan m/a.yaml` where the destination is in m/d.yaml).
    only_file: str | None = None
    warnings: list[Problem] = field(default_factory=list)
    # The files' text, for how a value is written (quoted, a comment after it).
    lines: TextLines = field(default_factory=TextLines)
    # Audiences whose source file check_source_paths refused: nothing reads them.
    refused_sources: set[str] = field(default_factory=set)

    def add(self, document: YamlDocument) -> None:
        try:
            self._add(document)
        except RecursionError:
            self.problems.append(document.positions.start.problem("document is nested too deeply"))

    def _add(self, document: YamlDocument) -> None:
        positions = document.positions
        data = document.plain()
        if not isinstance(data, dict):
            # A list of manifests (as `kubectl` output or a Kubernetes List holds them):
            # each one goes in its own document.
            listed = isinstance(data, list) and any(
                isinstance(item, dict) and "kind" in item for item in data
            )
            hint = (
                "; write each manifest as its own document, with a line `---` between"
                if listed
                else ""
            )
            self.problems.append(
                positions.start.problem(
                    "a manifest document must be a mapping with apiVersion, kind, metadata "
                    f"and spec; got {describe(data)}{hint}"
                )
            )
            return
        kind = data.get("kind")
        name = _declared_name(data)
        name_location = positions.locate(("metadata", "name"))
        if isinstance(kind, str) and kind in DOCUMENT_MODELS and name is not None:
            self.declared.setdefault(kind, []).append(_Declared(name, name_location))
        other = _other_api_version(data.get("apiVersion"), positions.locate(("apiVersion",)))
        if other is not None:
            # Written for another reconciler: its keys are checked against no schema this
            # one knows, so only this is said, not a list of v1 complaints to "fix" (its
            # name stays declared, so what refers to it is not told it is unknown).
            self.problems.append(other)
            return
        model: type[BaseModel]
        if isinstance(kind, str) and kind in DOCUMENT_MODELS:
            model = DOCUMENT_MODELS[kind]
        else:
            misspelt = any(key != "kind" and closest(key, ["kind"]) for key in data)
            if not (kind is None and misspelt):
                # (`Kind:` is reported as an unknown key meant to be kind, once.)
                self.problems.append(_kind_problem(kind, positions.locate(("kind",))))
            model = DocumentEnvelope
        try:
            parsed = _validated(model, data, positions, self.lines)
        except ValidationError as error:
            self.problems.extend(problems_from_error(error, model, positions))
            if model is AudienceDocument:
                # Said with the refusal, not on the run after it is fixed: a joined
                # member beside a bare number (`- 00123`) is as much this run's news,
                # and so are the warnings of what YAML read otherwise than written.
                inline = _read_inline(data)
                self.problems.extend(joined_members(inline, positions, self.lines))
                spec = data.get("spec")
                texts = spec if isinstance(spec, dict) else {}
                self._warn_of_texts(texts.get("listName"), texts.get("description"), document)
                self.warnings.extend(anchored_members(inline, positions, self.lines))
            return
        base_dir = document.file.parent.absolute()
        # One collection and one wrapper class per kind; the first of a duplicate name
        # wins here, and the duplicate is reported by the cross-document checks.
        kinds: dict[type[BaseModel], tuple[dict[str, Any], type[Any]]] = {
            DestinationDocument: (self.destinations, Destination),
            AudienceDocument: (self.audiences, Audience),
            TraitMappingDocument: (self.trait_mappings, TraitMapping),
        }
        if isinstance(parsed, AudienceDocument):
            self._warn_of_texts(parsed.spec.listName, parsed.spec.description, document)
            members = parsed.spec.members.inline
            if members:
                self.problems.extend(joined_members(members, positions, self.lines))
                self.warnings.extend(anchored_members(members, positions, self.lines))
        collection, wrapper = kinds.get(type(parsed), (None, None))
        if collection is not None and wrapper is not None:
            extra = {"repository": self.repository} if wrapper is Audience else {}
            collection.setdefault(
                parsed.metadata.name,
                wrapper(
                    name=parsed.metadata.name,
                    spec=parsed.spec,
                    location=name_location,
                    base_dir=base_dir,
                    labels=dict(parsed.metadata.labels),
                    annotations=dict(parsed.metadata.annotations),
                    _positions=positions,
                    **extra,
                ),
            )

    def _warn_of_texts(self, list_name: object, description: object, doc: YamlDocument) -> None:
        """The warnings of an audience's listName and description (each as the validated
        spec holds it, or as YAML read it when the audience is refused): cut by a comment,
        a listName holding an invisible character written bare."""
        if isinstance(list_name, str):
            self._check_invisible_list_name(list_name, doc)
        for key, text in (("listName", list_name), ("description", description)):
            cut = (
                cut_by_comment(doc.positions, key, text, self.lines)
                if isinstance(text, str)
                else None
            )
            if cut is not None:
                self.warnings.append(cut)

    def _check_invisible_list_name(self, name: str, document: YamlDocument) -> None:
        """A listName holding an invisible character written bare in the file (a zero-width
        space, a soft hyphen, a direction mark) reads there as another name ("Gone" for
        "Gone\\u200b"), though Iterable tells the two apart: a reviewer cannot see which
        list the audience manages. import writes it as an escape; so should a hand."""
        hidden = sorted({ch for ch in name if unseen(ch)})
        if not hidden:
            return
        location = document.positions.locate(("spec", "listName"))
        try:
            lines = document.file.read_text(encoding="utf-8").splitlines()
            written = lines[location.line - 1] if 0 < location.line <= len(lines) else ""
        except (OSError, UnicodeDecodeError):
            written = ""
        bare = [ch for ch in hidden if ch in written]
        if not bare:
            return  # written as escapes: the file shows them
        named = ", ".join(
            f"U+{ord(ch):04X} {unicodedata.name(ch, 'a format character')}" for ch in bare
        )
        self.warnings.append(
            location.problem(
                f"listName {quoted(name)} holds an invisible character ({named}) written "
                f"as it is, so the file shows another list's name; write it as an escape "
                f"inside double quotes: listName: {yaml_quoted(name)}"
            )
        )

    def check_across_documents(self) -> None:
        for kind, declared in self.declared.items():
            first_of: dict[str, _Declared] = {}
            for entry in declared:
                first = first_of.setdefault(entry.name, entry)
                if first is not entry:
                    self.problems.append(
                        entry.location.problem(
                            f"duplicate {kind} name {quoted(entry.name)}; "
                            f"already defined at {first.location}"
                        )
                    )
        self._check_destination_references()
        self._check_project_options()
        self._check_list_names()
        self._check_list_ids()
        self._check_trait_mappings()
        self._check_url_variables()

    def check_identity_columns(self) -> None:
        """A CSV or Parquet file with `user_id` and no `userId` in a project that identifies
        people by userId: the audience would silently use emails alone (hybrid), or skip
        every row (userId), so the column's likely meaning is said where it is named. And
        one with no column at all for the identifier the project keys users by (a file of
        emails for a userID-based project): every row is skipped, which the problem of each
        row does not say at once."""
        # Imported here: sources import this package.
        from reconciler.sources.registry import source_for
        from reconciler.sources.rows import (
            missing_key_column,
            undeclared_email,
            undeclared_user_id,
        )

        for audience in self.audiences.values():
            destination = self.destinations.get(audience.spec.destination)
            if destination is None:
                continue
            project_type = destination.spec.projectType
            source = source_for(audience)
            names = source.peek_columns()
            if names is None:
                continue
            email_like = (
                undeclared_email(names, audience.spec.members, source.exact_column_names)
                if project_type == "hybrid"
                else None
            )
            if email_like is not None:
                self._warn_at_source(audience, source.field, _email_lookalike(email_like, audience))
            lookalike = (
                undeclared_user_id(names, audience.spec.members, source.exact_column_names)
                if project_type != "email"
                else None
            )
            if lookalike is None:
                key = missing_key_column(
                    names, audience.spec.members, project_type, source.exact_column_names
                )
                if key is not None:
                    wanted = getattr(audience.spec.members, key)
                    self._warn_at_source(
                        audience,
                        source.field,
                        f"has no column named {quoted(wanted)}, "
                        f"and {project_type} projects identify users by {key}, so every row is "
                        f"skipped; {_name_the_key(names, wanted, key, source.exact_column_names)}",
                    )
                continue
            without = {
                "hybrid": "identified by email alone",
                "userId": "skipped as having no userId",
            }[destination.spec.projectType]
            self._warn_at_source(
                audience,
                source.field,
                f"has a column {quoted(lookalike)} but none named "
                f"{quoted(audience.spec.members.userId)}, so its members are {without} in this "
                f"{destination.spec.projectType} project and {quoted(lookalike)} is only an "
                f"extra column; set `userId: {lookalike}` under members to identify them by it",
            )

    def _warn_at_source(self, audience: Audience, field: str, text: str) -> None:
        """A warning at the line of an audience's member source (`field`: csv, parquet...),
        its text after the source's path."""
        self.warnings.append(
            audience.field_location("members", field).problem(
                f"members.{field}: {getattr(audience.spec.members, field)} {text}"
            )
        )

    def _case_collision(
        self,
        by_folded: dict[str, tuple[str, Audience, str]],
        audience: Audience,
        name: str,
        spelt: str,
    ) -> bool:
        """A problem (and True) when `spelt`, a source file as its directory lists it, and a
        file another audience reads differ only in case or Unicode form: two files on
        Linux, where CI runs, and one in a checkout on macOS or Windows, which there is
        read for both audiences while the other's path is refused as misspelt."""
        exact = os.path.normpath(os.path.join(os.path.abspath(audience.base_dir), spelt))
        first = by_folded.setdefault(folded(exact), (exact, audience, name))
        if first[0] == exact:
            return False
        other, other_audience, other_name = first
        self.refused_sources.add(audience.name)
        self.problems.append(
            audience.field_location("members", name).problem(
                f"members.{name}: {display_path(Path(exact))} and "
                f"{display_path(Path(other))} (audience {other_audience.name!r}, "
                f"{other_audience.field_location('members', other_name)}) are two files "
                "whose names differ only in case (or in the Unicode form of a letter): a "
                "checkout on macOS or Windows keeps one of them; rename one"
            )
        )
        return True

    def check_source_paths(self, repository: Path) -> None:
        """Member source files must live in the repository (reconciler.manifest.repository)."""
        # Imported here: sources import this package.
        from reconciler.sources.parquet import many_files_advice
        from reconciler.sources.registry import source_for

        directories = Directories()
        # Each source file by its path as macOS and Windows compare paths, with the first
        # audience that reads it.
        by_folded: dict[str, tuple[str, Audience, str]] = {}
        key_files = {
            real_path(path)
            for path in (key_file_path(d) for d in self.destinations.values())
            if path is not None
        }
        for audience in self.audiences.values():
            for source_file in source_for(audience).files():
                name, value = source_file.field, source_file.written
                spelling = on_disk(audience.base_dir, value, directories)
                if spelling is not None and spelling.reasons:
                    # Found here only as macOS or Windows read the path: CI would not.
                    self.refused_sources.add(audience.name)
                    self.problems.append(
                        audience.field_location("members", name).problem(
                            f"members.{name}: {value} is not how the file is spelt: it is "
                            f"{spelling.path} ({'; '.join(spelling.reasons)})"
                        )
                    )
                    continue
                # As its directory lists it: written in another Unicode form, it is that file.
                spelt = spelling.path if spelling is not None else None
                if spelt is not None and self._case_collision(by_folded, audience, name, spelt):
                    continue
                path = Path(value)
                path = path if path.is_absolute() else audience.base_dir / path
                if is_inside(path, repository):
                    private = real_path(path).relative_to(real_path(repository)).parts[:1]
                    if real_path(path) in key_files:
                        # Its one line, the key, would be the header: printed in the
                        # column error with --show-members, as a query's rows were.
                        self.refused_sources.add(audience.name)
                        self.problems.append(
                            audience.field_location("members", name).problem(
                                f"members.{name}: {value} is a destination's API key file "
                                "(apiKey: {file: ...}), not members"
                            )
                        )
                    elif private and private[0] in PRIVATE_ENTRIES:
                        self.refused_sources.add(audience.name)
                        self.problems.append(
                            audience.field_location("members", name).problem(
                                f"members.{name}: {value} is in the repository's {private[0]}"
                                f"{_link_note(path)}, which holds git's or reconciler's own "
                                "files, not members"
                            )
                        )
                    elif path.is_symlink() and not path.exists():
                        self.refused_sources.add(audience.name)
                        self.problems.append(
                            audience.field_location("members", name).problem(
                                f"members.{name}: {value} is a symbolic link to "
                                f"{os.readlink(path)}, which does not exist"
                            )
                        )
                    elif path.exists() and not path.is_file():
                        # Opening a pipe blocks until something writes to it: validate
                        # would hang, and no timeout can interrupt an open().
                        self.refused_sources.add(audience.name)
                        what = (
                            f"is a directory; {many_files_advice(value)}"
                            if name == "parquet" and path.is_dir()
                            else "is not a regular file (a directory, a pipe or a device); "
                            "member sources are files"
                        )
                        self.problems.append(
                            audience.field_location("members", name).problem(
                                f"members.{name}: {value} {what}"
                            )
                        )
                    continue
                resolved = real_path(path)
                via = f" (it resolves to {resolved})" if resolved != path.absolute() else ""
                self.refused_sources.add(audience.name)
                self.problems.append(
                    audience.field_location("members", name).problem(
                        f"members.{name}: {value} is outside the repository {repository}"
                        f"{via}; member sources must live in the repository that holds the "
                        "manifests"
                    )
                )

    def _check_url_variables(self) -> None:
        """A database URL never names a variable a destination reads its API key from:
        the URL would send the key to the database host (model.forbidden_url_variable
        refuses the usual names; this catches any other), in any case: Windows finds
        PROD_KEY for ${prod_key}."""
        keys = {
            destination.spec.apiKey.env.upper(): destination
            for destination in self.destinations.values()
            if destination.spec.apiKey is not None and destination.spec.apiKey.env is not None
        }
        for audience in self.audiences.values():
            url = audience.spec.members.url
            if url is None:
                continue
            for match in ENV_REFERENCE.finditer(url):
                destination = keys.get(match["name"].upper())
                if destination is None:
                    continue
                self.problems.append(
                    audience.field_location("members", "url").problem(
                        f"spec.members.url: ${{{variable_name(match['name'])}}} is refused: "
                        f"destination "
                        f"{quoted(destination.name)} reads its API key from it, and a database "
                        "URL sends its values to the host it names"
                    )
                )

    def _only_file_hint(self) -> str:
        if self.only_file is None:
            return ""
        return (
            f" (only {self.only_file} was read: give the directory that holds all the "
            "manifests, e.g. `manifests`)"
        )

    def _check_destination_references(self) -> None:
        # A destination that failed validation still exists as far as its audiences are
        # concerned; its own problems are already reported.
        known = [d.name for d in self.declared.get("Destination", [])]
        shown = some_names(known)
        for audience in self.audiences.values():
            if audience.spec.destination not in known:
                self.problems.append(
                    audience.field_location("destination").problem(
                        f"spec.destination: unknown destination {quoted(audience.spec.destination)}"
                        f"{did_you_mean(audience.spec.destination, known)}; "
                        f"known destinations: {shown}{self._only_file_hint()}"
                    )
                )

    def _check_project_options(self) -> None:
        """An audience option its destination's project type cannot honour is refused:
        Iterable ignores `updateExistingUsersOnly` in email-based projects and creates
        every unknown user a subscribe names (OpenAPI SubscribeRequest; Segment's
        iterable-lists says the same), so a plan saying "existing users only" would
        create people (and start their list-triggered journeys)."""
        for audience in self.audiences.values():
            destination = self.destinations.get(audience.spec.destination)
            if destination is None or destination.spec.projectType != "email":
                continue
            if audience.spec.updateExistingUsersOnly:
                self.problems.append(
                    audience.field_location("updateExistingUsersOnly").problem(
                        "spec.updateExistingUsersOnly: Iterable ignores it in email-based "
                        f"projects (destination {quoted(destination.name)} is projectType email) "
                        "and creates every unknown user a subscribe names; remove it, or "
                        "list only people Iterable already has"
                    )
                )

    def _check_list_names(self) -> None:
        # Iterable list names are not unique keys on Iterable's side, so two audiences
        # on one list would fight over its members on every apply: in one destination,
        # or in two that name one project.
        owners: dict[tuple[object, str], Audience] = {}
        alike: dict[tuple[object, str], Audience] = {}
        for audience in self.audiences.values():
            project = self._project_of(audience.spec.destination)
            first = owners.setdefault((project, audience.list_name), audience)
            if first is audience:
                first = alike.setdefault((project, read_alike(audience.list_name)), audience)
                if first is not audience:
                    self._warn_read_alike(first, audience)
                continue
            where = "listName" if audience.spec.listName is not None else None
            location = audience.field_location(where) if where else audience.location
            place = _one_project(first, audience)
            self.problems.append(
                location.problem(
                    f"audiences {quoted(first.name)} and {quoted(audience.name)} both manage the "
                    f"list {quoted(audience.list_name)} in {place}; {quoted(first.name)} is at "
                    f"{first.location}"
                )
            )

    def _check_list_ids(self) -> None:
        # One list id on two audiences is one list too, whatever their listNames: each
        # plan would leave one of them out as renamed, or, named alike, both would fight.
        owners: dict[tuple[object, int], Audience] = {}
        for audience in self.audiences.values():
            list_id = audience.spec.listId
            if list_id is None:
                continue
            project = self._project_of(audience.spec.destination)
            first = owners.setdefault((project, list_id), audience)
            if first is audience or first.list_name == audience.list_name:
                continue  # the same name twice is said by _check_list_names
            self.problems.append(
                audience.field_location("listId").problem(
                    f"audiences {quoted(first.name)} and {quoted(audience.name)} both have "
                    f"listId {list_id} in {_one_project(first, audience)}: one list, which "
                    f"only one audience can manage; {quoted(first.name)} is at "
                    f"{first.field_location('listId')}"
                )
            )

    def _warn_read_alike(self, first: Audience, audience: Audience) -> None:
        """Two audiences of one project whose list names read alike (read_alike): two
        lists to Iterable, which its web app shows alike, so a campaign can be pointed at
        the wrong one. A warning, not an error: each is kept in line as declared."""
        place = _one_project(first, audience)
        self.warnings.append(
            _list_name_location(audience).problem(
                f"audiences {quoted(first.name)} and {quoted(audience.name)} manage lists "
                f"{_shown(first.list_name)} and {_shown(audience.list_name)}"
                f"{_forms(first.list_name, audience.list_name)} in {place}, whose "
                "names differ only in case, spaces, `_` or `-`, invisible characters or "
                "Unicode form: two lists in Iterable that read alike in its web app, where a "
                "campaign can be pointed at the wrong one; give one of them another listName "
                f"({quoted(first.name)} is at {_list_name_location(first)})"
            )
        )

    def _project_of(self, name: str) -> object:
        """What tells destinations apart that surely name different projects, as far as
        the manifests show: the host and where the key comes from (the same variable or
        file is the same key). The sandbox keeps a project per destination."""
        destination = self.destinations.get(name)
        if destination is None:
            return ("destination", name)
        spec = destination.spec
        if (spec.region == "sandbox" and spec.baseUrl is None) or spec.apiKey is None:
            return ("destination", name)
        host = (spec.baseUrl or spec.region).rstrip("/")
        if spec.apiKey.env is not None:
            return (host, "env", spec.apiKey.env)
        path = Path(spec.apiKey.file or "").expanduser()
        return (host, "file", str(destination.base_dir / path))

    def _check_trait_mappings(self) -> None:
        known = [m.name for m in self.declared.get("TraitMapping", [])]
        shown = some_names(known)
        for audience in self.audiences.values():
            name = audience.spec.traits
            if name is None:
                continue
            if name not in known:
                self.problems.append(
                    audience.field_location("traits").problem(
                        f"spec.traits: unknown trait mapping {quoted(name)}"
                        f"{did_you_mean(name, known)}; known trait mappings: "
                        f"{shown}{self._only_file_hint()}"
                    )
                )
                continue
            mapping = self.trait_mappings.get(name)
            if mapping is not None and audience.name not in self.refused_sources:
                self._check_columns(audience, mapping)
                self.warnings.extend(disagreeing_values(audience, mapping, self.lines))

    def _check_columns(self, audience: Audience, mapping: TraitMapping) -> None:
        # Imported here: the trait compiler and the sources import this package.
        from reconciler.sources.registry import source_for

        found = source_for(audience).columns()
        if found is None:
            return  # Parquet and SQL columns are checked when the source is read
        source, columns = found
        available = set(columns)
        used_by = f"audience {quoted(audience.name)} at {audience.field_location('traits')}"
        reads = _columns_read(audience, mapping)
        for field_name, spec in mapping.spec.field_specs().items():
            wanted = _field_columns(spec)
            if spec.from_ is not None:
                where: tuple[str, ...] = ("fields", field_name)
                what = "column"
                if isinstance(mapping.spec.fields[field_name], type(spec)):
                    where = ("fields", field_name, "from")
            else:
                where, what = ("fields", field_name, "template"), "template variable"
            for column in wanted:
                if columns.count(column) > 1:
                    # A CRM report or a sheet with two columns of one name (`Email`,
                    # `Email`): the rows are read by name, so one of them would be taken
                    # without a word, whichever it is.
                    self.problems.append(
                        mapping.field_location(*where).problem(
                            f"spec.fields.{field_name}: {source} has {columns.count(column)} "
                            f"columns named {quoted(column)} (the source of {used_by}): "
                            "reconciler will not guess which one holds the values; rename "
                            "the others"
                        )
                    )
                if column in available:
                    continue
                self.problems.append(
                    mapping.field_location(*where).problem(
                        f"spec.fields.{field_name}: {what} {quoted(column)} is not in {source} "
                        f"(the source of {used_by}){column_hint(column, columns, reads)}; "
                        f"columns are: {column_names(columns, reads=reads)}"
                    )
                )


def _columns_read(audience: Audience, mapping: TraitMapping) -> set[str]:
    """The columns of an audience's source its manifests read: its identifiers' and its
    trait mapping's."""
    reads = {audience.spec.members.email, audience.spec.members.userId}
    for spec in mapping.spec.field_specs().values():
        reads.update(_field_columns(spec))
    return reads


def _field_columns(spec: TraitFieldSpec) -> list[str]:
    """The columns a field reads: the one it comes from, or its template's variables."""
    # Imported here: the trait compiler imports this package.
    from reconciler.traits.template import ROW_VARIABLE, template_variables

    if spec.from_ is not None:
        return [spec.from_]
    assert spec.template is not None
    return sorted(template_variables(spec.template) - {ROW_VARIABLE})


def _validated(
    model: type[BaseModel], data: dict[str, Any], positions: YamlPositions, lines: TextLines
) -> Any:
    """`data` validated as `model`, an unquoted date where text is expected taken as the
    text the file writes (a YAML 1.2 editor reads it so; yaml_readings.dates_as_written)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        if not dates_as_written(error, model, data, positions, lines):
            raise
    return model.model_validate(data)


def _read_inline(data: dict[str, Any]) -> list[Any]:
    """An audience document's `spec.members.inline` as YAML read it, if it is a list."""
    spec = data.get("spec")
    members = spec.get("members") if isinstance(spec, dict) else None
    inline = members.get("inline") if isinstance(members, dict) else None
    return inline if isinstance(inline, list) else []


def _declared_name(data: dict[str, Any]) -> str | None:
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        return metadata["name"]
    return None


_API_VERSION = re.compile(r"reconciler/v[0-9]+(?:(?:alpha|beta)[0-9]*)?")


def _other_api_version(api_version: Any, location: Location) -> Problem | None:
    """A problem when a document names another apiVersion of reconciler's manifests
    (reconciler/v2, reconciler/v1beta1): it was written for another reconciler version,
    newer as a rule, and is not read. A typo or a missing apiVersion is left to the
    schema, which names the one expected."""
    if not isinstance(api_version, str) or api_version == API_VERSION:
        return None
    if not _API_VERSION.fullmatch(api_version):
        return None
    return location.problem(
        f"apiVersion {api_version} is not one this reconciler reads (it reads "
        f"{API_VERSION}): the manifest was written for another version of reconciler. "
        "Upgrade reconciler to one that reads it, or write the manifest for "
        f"{API_VERSION}"
    )


def _kind_problem(kind: Any, location: Location) -> Problem:
    allowed = ", ".join(KINDS)
    if kind is None:
        return location.problem(f"kind: required; expected one of {allowed}")
    if isinstance(kind, str) and kind in RESERVED_KINDS:
        return location.problem(
            f"kind {kind} is not supported yet in this version (expected one of {allowed})"
        )
    hint = did_you_mean(kind, KINDS)
    return location.problem(f"kind: unknown kind {describe(kind)}{hint}; expected one of {allowed}")


def _list_name_location(audience: Audience) -> Location:
    """Where an audience's list name is written: its listName, else its document."""
    if audience.spec.listName is not None:
        return audience.field_location("listName")
    return audience.location


def _shown(list_name: str) -> str:
    """A list name quoted, each character that does not show spelt out (`VIP<U+200B>`)."""
    return quoted(spelled_out(list_name))


def _forms(one: str, other: str) -> str:
    """What tells apart two list names that are one text in two Unicode forms, which
    print alike."""
    if one != other and unicodedata.normalize("NFC", one) == unicodedata.normalize("NFC", other):
        return " (the same letters, accents composed in one and decomposed in the other)"
    return ""


def _one_project(first: Audience, audience: Audience) -> str:
    """Where two audiences' lists meet: their destination, or the two naming one project."""
    ours, theirs = audience.spec.destination, first.spec.destination
    if ours == theirs:
        return f"destination {quoted(ours)}"
    return (
        f"destinations {quoted(theirs)} and {quoted(ours)}, which name one Iterable project "
        "(the same host and API key)"
    )


def _email_lookalike(name: str, audience: Audience) -> str:
    """The warning of a column spelled like `email` but not named so (check_identity_columns);
    a name holding a character that does not show (`email` and a zero-width space, pasted
    from a web page) is spelled out and told to be removed, as no one would write it under
    members."""
    wanted = quoted(audience.spec.members.email)
    hidden = unseen_in_names([name])
    fix = hidden if hidden else f"set `email: {name}` under members to send them"
    return (
        f"has a column {quoted(spelled_out(name))} but none named {wanted}, so its members are "
        "identified by userId alone in this hybrid project, their emails never sent, and "
        f"{quoted(spelled_out(name))} is only an extra column; {fix}"
    )


def _name_the_key(names: Sequence[str], wanted: str, key: str, exact: bool) -> str:
    """What to do of a source without the column a project keys users by: remove what does
    not show from the column that is it on screen (`email` and a zero-width space; `exact`:
    as the source matches names, so a Parquet file's `Email` and one too), or name the
    column that holds them."""
    # Imported here: sources import this package.
    from reconciler.sources.rows import hiding_column

    name = hiding_column(names, wanted, exact)
    if name is not None:
        return f"its column {quoted(spelled_out(name))} is not it: {unseen_in_names([name])}"
    return f"set `{key}: COLUMN` under members to name the column that holds them"
