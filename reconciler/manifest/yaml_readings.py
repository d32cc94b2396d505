"""Values that YAML's readers, or a reviewer, take for different things.

An unquoted date (`description: 2024-05-01`) is a date to reconciler's reader, as to
YAML 1.1 tools, but text to the YAML 1.2 editors read (yaml-language-server has no dates),
whose schema check passes it. Where the manifest expects text it is the text the file
writes (`dates_as_written`), so editor and `validate` agree; elsewhere (an inline
member's traits) it stays a date.

Inline member values:

reconciler reads YAML 1.2: `yes`, `no`, `on`, `off`, `y` and `n` are text there, but
booleans to the YAML 1.1 tools a reviewer's checks and editor plugins still run (PyYAML,
yamllint), and a number written with a leading zero (`zip: 01234`) is a number without it
(in a file that starts with `%YAML 1.1`, an octal number: 668). A trait mapping field
without a `type` sends an inline member's value as YAML gave it, and Iterable types a new
field by the first value it receives, for good: `vip: yes` makes `vip` a string field,
`zip: 01234` sends 1234, and so do `+1234` and `12_34`, where `0x1F` sends 31. Such a
value, written bare (not quoted, not tagged), is warned of where it is written; a field
with a `type` converts the value as it says, so its values are not.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.util import timestamp_regexp

from reconciler.errors import Problem, quoted
from reconciler.manifest.location import Location, PathElement, YamlPositions
from reconciler.manifest.manifests import Audience, TraitMapping
from reconciler.manifest.model import InlineMember
from reconciler.manifest.validation import value_path
from reconciler.manifest.yaml_file import WRITTEN_AS

# The YAML 1.1 reading that PyYAML, yamllint and many editors' plugins still give.
_YAML_1_1 = VersionedResolver(version=(1, 1))
_BOOL_1_1 = "tag:yaml.org,2002:bool"
_STR = "tag:yaml.org,2002:str"

_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
# A date or date-time as YAML resolves one (ruamel's own pattern), at a value's position:
# after an anchor (`&day 2024-05-01`) if it has one, up to where the date ends.
_TIMESTAMP = re.compile(
    r"(?:&\S+[ \t]+)?(?P<written>"
    + timestamp_regexp.pattern.strip().removeprefix("^").removesuffix("$")
    + ")",
    re.VERBOSE,
)
# The errors of a value that is not text where text is expected.
_NOT_TEXT = ("string_type", "inline_entry_type")

_ANCHOR = re.compile(r"&\S+[ \t]+")
# The line breaks YAML readers count lines by (libyaml and ruamel alike).
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def yaml_1_1_tag(text: str) -> str:
    """The tag a YAML 1.1 reader gives `text` written as a plain scalar."""
    return str(_YAML_1_1.resolve(ScalarNode, text, (True, False)))


def read_as_other_than_text(text: str) -> bool:
    """Whether a YAML 1.1 reader takes `text`, written bare, for something other than text
    (`no` for false, `12:30:00` for 45000), though reconciler's YAML 1.2 reads it as text."""
    return yaml_1_1_tag(text) != _STR


def dates_as_written(
    error: ValidationError,
    model: type[BaseModel],
    data: Any,
    positions: YamlPositions,
    lines: TextLines,
) -> bool:
    """Put in `data`, for each date `error` refuses where text is expected, the text the
    file writes it as; whether any was. A date the file does not show as written there
    (an alias, `*day`) is left to be refused, saying to quote it."""
    changed = False
    for details in error.errors():
        if details["type"] not in _NOT_TEXT:
            continue
        path = value_path(details, model)
        if not path:
            continue
        parent = _at(data, path[:-1])
        last = path[-1]
        value = _child(parent, last)
        if not isinstance(value, datetime.date):
            continue
        written = lines.date_at(positions.locate(path), value)
        if written is not None:
            parent[last] = written
            changed = True
    return changed


def cut_by_comment(
    positions: YamlPositions, key: str, value: str, lines: TextLines
) -> Problem | None:
    """A warning when the text at `spec.<key>`, written bare, ends where a comment starts
    that reads as more of it: `listName: Sale #1` is 'Sale' to every YAML reader, where
    the writer meant 'Sale #1'. A comment written as one (`# why`: a space after the `#`)
    is left alone."""
    location = positions.locate(("spec", key))
    line = lines.line_of(location)
    start = location.column - 1
    if line is None or not line.startswith(value, start):
        return None
    rest = line[start + len(value) :]
    match = _COMMENT_OF_TEXT.match(rest)
    if match is None:
        return None
    return location.problem(
        f"{key} {quoted(value)} ends where {quoted(rest.rstrip())} starts a YAML comment; "
        f"put the whole text in quotes if {quoted(match['comment'].rstrip())} belongs to it"
    )


def joined_members(
    inline: Sequence[object], positions: YamlPositions, lines: TextLines
) -> list[Problem]:
    """A problem for each inline member's email or userId that is members joined into one
    value, written bare: over more than one line, or holding a comma. YAML joins a bare
    value's lines into one, with a space, so a member whose `- ` was left out (`- u1` over
    `  u2`) is part of the one above it, the userId 'u1 u2'; and in a `- ` list a comma is
    text, so `- 101, 102` is the one userId '101, 102'. Iterable takes either, while the
    members in it are left out of the list without a word. `inline` is the validated
    entries or, when the audience is refused for another reason, the entries as YAML read
    them: said in the same run as that reason, not the next."""
    problems = []
    seen: set[Location] = set()
    for path, value in _identities(inline):
        if not _joined(value):
            continue
        location = positions.locate(("spec", "members", "inline", *path))
        # An alias of it (`- *x`) is located where the value is written: said once.
        rest = lines.bare_from(location) if location not in seen else None
        if rest is None:
            continue
        message = _CONTINUED if not rest.startswith(value) else _COMMA if "," in value else ""
        if message:
            seen.add(location)
            problems.append(location.problem(f"{value_name(path)}: {message}"))
    return problems


def _identities(inline: Sequence[object]) -> Iterator[tuple[tuple[PathElement, ...], str]]:
    """Each inline member's email and userId as written, with its path under `inline`;
    an entry as YAML read it (a mapping, a number) is taken too, its text values only."""
    for index, entry in enumerate(inline):
        if isinstance(entry, str):
            yield (index,), entry
            continue
        if isinstance(entry, InlineMember):
            values = (("email", entry.email), ("userId", entry.userId))
        elif isinstance(entry, dict):
            values = (("email", entry.get("email")), ("userId", entry.get("userId")))
        else:
            continue
        for key, value in values:
            if isinstance(value, str):
                yield (index, key), value


def anchored_members(
    inline: Sequence[object], positions: YamlPositions, lines: TextLines
) -> list[Problem]:
    """A warning for each inline member's email or userId that YAML read through an
    anchor or an alias, which no member list needs and which most likely is a value that
    starts with & or *, written bare: `- &a1 u1` is the member 'u1' (YAML takes `&a1` for
    an anchor and drops it), and `- *vip` the value anchored `&vip` before it (another
    member, or any value of the document) rather than the userId '*vip', silently. An
    anchor or alias on the whole list, or on a member's mapping (one list written once
    for its audience, `<<: *defaults` traits), is no identity's and is not warned of.
    Neither names the value: warnings are printed as they are, never masked. `inline` is
    as joined_members takes it: an audience refused for another reason is warned of too."""
    problems: list[Problem] = []
    inline_at = positions.locate(("spec", "members", "inline"), key=True)
    if not lines.anchors_in(inline_at.file):
        return problems  # no `&` in the file: no anchor, so no alias (most files)
    first: set[Location] = set()
    for path, _value in _identities(inline):
        location = positions.locate(("spec", "members", "inline", *path))
        line = lines.line_of(location)
        if line is None or _ANCHOR.match(line, location.column - 1) is None:
            continue  # neither anchored nor an alias: an alias is located at its anchor
        if location in first or not _written_as_member(line, location, path, inline_at):
            message = (
                "a value that starts with * is an alias to YAML, read as the value "
                f"anchored at line {location.line}, not as its text; put a member's value "
                "that starts with * in quotes"
            )
        else:
            message = (
                "a value that starts with & is an anchor to YAML, which it drops: the "
                "member is the text after the anchor's name; put the whole value in "
                "quotes if the & belongs to it"
            )
        problems.append(location.problem(f"{value_name(path)}: {message}"))
        first.add(location)
    return problems


def _written_as_member(
    line: str, location: Location, path: tuple[PathElement, ...], inline_at: Location
) -> bool:
    """Whether the anchored value at `location` is the member at `path` itself, not a
    value elsewhere that the member is an alias of: below `inline:`, after `- `, `[` or
    `,` for a list's entry, after its `email:` or `userId:` key for a mapping's."""
    if (location.line, location.column) <= (inline_at.line, inline_at.column):
        return False
    before = line[: location.column - 1].rstrip()
    if len(path) == 1:
        return before.endswith(("-", "[", ","))
    return re.search(rf"(?:^|[\s{{,])['\"]?{path[-1]}['\"]?\s*:$", before) is not None


def _joined(value: str) -> bool:
    # What joining lines leaves: a space, or a line break for each empty line between.
    return " " in value or "\n" in value or "," in value


def value_name(path: tuple[PathElement, ...]) -> str:
    """`spec.members.inline[3].userId` for the path (3, "userId") below `inline`."""
    return "spec.members.inline" + "".join(
        f"[{element}]" if isinstance(element, int) else f".{element}" for element in path
    )


_CONTINUED = (
    "a bare value continued on the next line is one value to YAML, its lines joined by a "
    "space: this is one member, not one a line; start each member's line with '- ' "
    "(or quote the value, if it is one)"
)
_COMMA = (
    "a comma in a bare value is text to YAML outside [ ]: this is one member, not one "
    "between each comma; start each member's line with '- ' (or quote the value, if it is "
    "one)"
)


# Spaces, then `#` and at once more text (`#1`, `#vip`), as a comment is not written.
_COMMENT_OF_TEXT = re.compile(r"[ \t]+(?P<comment>#[^\s#].*)")


def _at(data: Any, path: list[PathElement]) -> Any:
    for element in path:
        data = _child(data, element)
    return data


def _child(data: Any, element: PathElement) -> Any:
    if isinstance(data, dict):
        return data.get(element)
    if isinstance(data, list) and isinstance(element, int) and 0 <= element < len(data):
        return data[element]
    return None


@dataclass
class _Found:
    location: Location
    message: str
    more: int = 0


def disagreeing_values(
    audience: Audience, mapping: TraitMapping, lines: TextLines
) -> list[Problem]:
    """A warning per untyped field of `mapping` whose inline values YAML readers disagree
    on, at the first such value, counting the members after it written so."""
    inline = audience.spec.members.inline
    if not inline:
        return []
    untyped = {
        spec.from_: name
        for name, spec in mapping.spec.field_specs().items()
        if spec.from_ is not None and spec.type is None
    }
    if not untyped:
        return []
    found: dict[str, _Found] = {}
    for index, entry in enumerate(inline):
        traits = entry.traits if not isinstance(entry, str) else {}
        for column, field_name in untyped.items():
            if column not in traits:
                continue
            message = _disagreement(column, field_name, traits[column])
            if message is None:
                continue
            location = audience.field_location("members", "inline", index, column)
            if not lines.bare_at(location):
                continue  # quoted or tagged: the file says it is text
            if column in found:
                found[column].more += 1
            else:
                found[column] = _Found(location, f"audience {quoted(audience.name)}: {message}")
    return [_with_more(f) for f in found.values()]


def _disagreement(column: str, field_name: str, value: Any) -> str | None:
    field = f"field {quoted(field_name)} (no type)"
    if isinstance(value, str) and yaml_1_1_tag(value) == _BOOL_1_1:
        # The 1.1 booleans of one word; `true`/`false` are booleans in 1.2 too.
        meant = "true" if value.lower() in ("yes", "y", "on") else "false"
        return (
            f"{column}: {value} is the text {quoted(value)} in YAML 1.2, which reconciler "
            f"reads, and {field} sends it as that text, where YAML 1.1 tools (PyYAML, "
            f"yamllint) read {meant}; write true or false to send a boolean, or quote it to "
            "send the text"
        )
    written = getattr(value, WRITTEN_AS, None)
    if isinstance(value, int) and isinstance(written, str) and _LEADING_ZERO.fullmatch(written):
        # The value is a member's (a zip code, a phone number): not echoed. A file that
        # starts with `%YAML 1.1` reads such digits as octal (01234 is 668), not decimal.
        reading = (
            "the number without it"
            if value == int(written, 10)
            else "an octal number in this file's YAML 1.1 (01234 is 668)"
        )
        return (
            f"{column}: a number written with a leading zero is read as {reading}, and "
            f"{field} sends that number; quote it, or give the field type: string, to send "
            "the digits as written"
        )
    if _is_number(value) and math.isfinite(value) and isinstance(written, str):
        for form, reading in _OTHER_FORMS:
            if form.match(written):
                return (
                    f"{column}: a number written {reading}, and {field} sends that "
                    "number; quote it, or give the field type: string, to send the text as "
                    "written"
                )
    return None


# Numbers YAML reads from text other than their digits (the value is a member's: the
# message gives examples, never it). A leading zero is told apart above.
_OTHER_FORMS = (
    (re.compile(r"\+"), "with a plus sign is read as the number without it"),
    (
        re.compile(r"[-+]?[0-9][0-9_]*_"),
        "with an underscore (12_34) is read as the number without it (1234)",
    ),
    (
        re.compile(r"[-+]?0[xo]", re.IGNORECASE),
        "in hexadecimal or octal (0x1F, 0o17) is read as its value (31, 15)",
    ),
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _with_more(found: _Found) -> Problem:
    more = found.more
    suffix = f" (and {more:,} more member{'s' if more != 1 else ''} written so)" if more else ""
    return found.location.problem(found.message + suffix)


class TextLines:
    """The manifest files' lines, read once each, to see how a value is written: one for
    a whole load, as a file of 2,000 audiences read again for each took 40 s, not 2."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}
        self._anchors: dict[str, bool] = {}

    def anchors_in(self, file: str) -> bool:
        """Whether the file holds an `&` anywhere (an anchor may be written there), judged
        once per file however many audiences ask."""
        if file not in self._anchors:
            self._line(Location(file, 1, 1))
            self._anchors[file] = any("&" in line for line in self._files.get(file, ()))
        return self._anchors[file]

    def bare_at(self, location: Location) -> bool:
        """Whether the value at `location` is written bare (neither quoted nor tagged);
        False when the file cannot be read again (then nothing is said)."""
        line = self._line(location)
        if line is None:
            return False
        column = location.column - 1
        return 0 <= column < len(line) and line[column] not in "'\"!&"

    def bare_from(self, location: Location) -> str | None:
        """The line of the value at `location` from where the value starts (after its
        anchor, if it has one), when it is written bare there: None when it is quoted,
        tagged, an alias or a block scalar, or the file cannot be read again. A bare value
        on one line is that text up to a comment."""
        line = self._line(location)
        if line is None:
            return None
        column = location.column - 1
        anchor = _ANCHOR.match(line, column)  # `&name u1`: the value after the anchor
        if anchor is not None:
            column = anchor.end()
        if not 0 <= column < len(line) or line[column] in "'\"!&*|>":
            return None
        return line[column:]

    def date_at(self, location: Location, value: datetime.date) -> str | None:
        """The date `value` as written at `location`, or None when it is not there."""
        line = self._line(location)
        if line is None:
            return None
        match = _TIMESTAMP.match(line, location.column - 1)
        if match is None:
            return None
        day = (int(match["year"]), int(match["month"]), int(match["day"]))
        if day != (value.year, value.month, value.day) and match["tz"] is None:
            return None  # not this date (a time zone may move the day)
        return match["written"].rstrip(" \t")

    def line_of(self, location: Location) -> str | None:
        """The line `location` is on, or None when the file cannot be read again."""
        return self._line(location)

    def _line(self, location: Location) -> str | None:
        lines = self._files.get(location.file)
        if lines is None:
            lines = self._files[location.file] = list(self._read(Path(location.file)))
        if not 0 < location.line <= len(lines):
            return None
        return lines[location.line - 1]

    @staticmethod
    def _read(path: Path) -> Iterator[str]:
        try:
            text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            return iter(())
        return iter(_LINE_BREAK.split(text))
