"""Where a thing is written: a file position, and the lookup from a field path to one.

ruamel's round-trip loader records, on every mapping and sequence it builds, the 0-based
line and column of each key, value and item (`CommentedMap.lc.data`). `YamlPositions`
walks that structure along a path of keys and indices, the shape pydantic uses for error
locations, so a problem or a later source error can point at the exact line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from reconciler.errors import Problem

PathElement = str | int


@dataclass(frozen=True, order=True)
class Location:
    """A position in a manifest file; line and column are 1-based (0 when unknown)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def problem(self, message: str) -> Problem:
        """A `Problem` at this position, for code that reports errors against manifests."""
        return Problem(self.file, self.line, self.column, message)


class YamlPositions:
    """Positions of every key, value and item of one YAML document."""

    def __init__(self, file: str, root: Any, start: Location):
        self.file = file
        self._root = root
        self._start = start

    @property
    def start(self) -> Location:
        """Where the document's content begins."""
        return self._start

    def locate(self, path: Sequence[PathElement], *, key: bool = False) -> Location:
        """The position of the value at `path`, or of the nearest parent that exists.

        A scalar is located at its value; a mapping or sequence at the key that holds it,
        because a block value starts on the line after its key, where nothing says which
        field it belongs to. With `key=True` the key itself is located (for unknown keys).
        When the path does not resolve (a missing field, a defaulted one) the last key
        that does is returned: that is where the missing thing belongs.
        """
        node = self._root
        key_position = value_position = self._start
        for element in path:
            step = self._step(node, element)
            if step is None:
                return key_position
            node, key_position, value_position = step
        if key or isinstance(node, CommentedMap | CommentedSeq):
            return key_position
        return value_position

    def block_line(self, path: Sequence[PathElement], line: int) -> Location | None:
        """Where line `line` (1-based) of the text at `path` is written, when that text
        is a `|` block scalar (its lines are the file's, from the line after the `|`);
        None for any other value, whose lines the file does not keep one for one."""
        node = self._root
        value_position = self._start
        for element in path:
            step = self._step(node, element)
            if step is None:
                return None
            node, _, value_position = step
        if not isinstance(node, LiteralScalarString) or line < 1:
            return None
        # The column of the line is not recorded; 0 says so (FILE:LINE).
        return Location(self.file, value_position.line + line, 0)

    def _step(self, node: Any, element: PathElement) -> tuple[Any, Location, Location] | None:
        if isinstance(node, CommentedMap):
            actual = _find_key(node, element)
            if actual is _MISSING:
                return None
            positions = (node.lc.data or {}).get(actual) or _merged_position(node, actual)
            if positions is None:
                here = self._at(node.lc.line, node.lc.col)
                return node[actual], here, here
            key_line, key_col, value_line, value_col = positions
            return node[actual], self._at(key_line, key_col), self._at(value_line, value_col)
        if isinstance(node, CommentedSeq) and isinstance(element, int):
            if not 0 <= element < len(node):
                return None
            positions = (node.lc.data or {}).get(element)
            if positions is None:
                here = self._at(node.lc.line, node.lc.col)
            else:
                here = self._at(positions[0], positions[1])
            return node[element], here, here
        return None

    def _at(self, line: int | None, column: int | None) -> Location:
        if line is None or column is None:
            return self._start
        return Location(self.file, line + 1, column + 1)


_MISSING = object()


def _merged_position(mapping: CommentedMap, key: Any) -> list[int] | None:
    """Where a key brought in by a `<<:` merge is written: in the first merged mapping that
    has it (YAML's order of precedence), which may itself merge others. The mapping that
    merges it records no position for it."""
    for merged in getattr(mapping, "merge", None) or ():
        # ruamel 0.19 keeps the mappings themselves; 0.18 (pos, mapping) pairs.
        source = merged[1] if isinstance(merged, tuple) else merged
        if not isinstance(source, CommentedMap) or key not in source:
            continue
        return (source.lc.data or {}).get(key) or _merged_position(source, key)
    return None


def _find_key(mapping: CommentedMap, element: PathElement) -> Any:
    try:
        if element in mapping:
            return element
    except TypeError:
        return _MISSING
    # pydantic reports a non-string key by its str() (`1:`, `null:`) or, for a date, its
    # repr ("datetime.date(2024, 1, 1)"), so match on those.
    for candidate in mapping:
        if str(element) in (str(candidate), repr(candidate)):
            return candidate
    return _MISSING
