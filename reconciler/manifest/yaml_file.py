"""Read one manifest file into YAML documents that remember where each value was written.

Every way a file can be unreadable becomes a `Problem` in that file, never an exception:
not UTF-8, a syntax error, a duplicate key, an unsupported tag, an alias that refers to
itself or expands without bound. A syntax error ends the file (the parser cannot resync),
but the documents before it are still returned and checked, and a document that only
fails to construct does not stop the ones after it.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarint import ScalarInt

from reconciler.errors import Problem, quoted
from reconciler.manifest.location import Location, YamlPositions
from reconciler.manifest.stand_in import stand_in_bytes
from reconciler.manifest.yaml_indicators import (
    ANCHOR_MESSAGE,
    SECRET_ALIAS_MESSAGE,
    alias_message,
    in_inline_members,
    in_secret,
    tag_message,
)
from reconciler.utf16 import UTF16_SAMPLE_BYTES, looks_utf16

# Far above any real manifest, far below what an alias bomb (`a: &a [*b, *b, ...]`
# nested a few levels) expands to.
MAX_EXPANDED_NODES = 1_000_000

# Lists and mappings within each other. A manifest nests about 6 deep; libyaml's composer
# recurses in C without Python's recursion limit, so `[[[[...]]]]` 100,000 deep (200 KB)
# overflowed the C stack and killed the process (a segfault, no message) before this.
MAX_NESTING = 500

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_TAG_NAMES = {"int": "number", "float": "number", "bool": "boolean", "timestamp": "date"}


@dataclass(frozen=True)
class YamlDocument:
    """One non-empty document of a file: its round-trip data and their positions."""

    file: Path
    index: int  # 0-based position among the file's documents
    data: Any  # ruamel round-trip value: CommentedMap, CommentedSeq or a scalar
    positions: YamlPositions

    def plain(self) -> Any:
        """The data as plain dicts, lists, str, int, float, bool, None and dates."""
        return to_plain(self.data)


def read_yaml_file(path: Path, display: str) -> tuple[list[YamlDocument], list[Problem]]:
    """The non-empty documents of `path` and the problems that kept others from loading."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        return [], [Problem(display, 0, 0, f"cannot read file: {error.strerror or error}")]
    return read_yaml_bytes(raw, path, display)


def read_yaml_bytes(
    raw: bytes, path: Path, display: str
) -> tuple[list[YamlDocument], list[Problem]]:
    """As read_yaml_file, of `raw`, the content of `path` read already (by a reader that
    bounds its size: a workflow file)."""
    stands_in = stand_in_bytes(raw, path)
    if stands_in is not None:
        # Located at its first line, as validate prints every problem (FILE:LINE:COL):
        # the line a pointer's `version https://git-lfs...` is on.
        return [], [Problem(display, 1, 1, f"this file {stands_in}")]
    if looks_utf16(raw[:UTF16_SAMPLE_BYTES]):
        return [], [
            Problem(
                display,
                1,
                1,
                "file is UTF-16 text, not UTF-8 (as Windows PowerShell's > and Notepad's "
                '"Unicode" save it); save it as UTF-8',
            )
        ]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _byte_position(raw, error.start)
        bad = raw[error.start : error.start + 1].hex()
        return [], [
            Problem(
                display, line, column, f"file is not UTF-8 text (byte 0x{bad}); save it as UTF-8"
            )
        ]
    text = text.removeprefix("\ufeff")
    return _read_documents(text, path, display)


# The attribute on a number that keeps its text as the file writes it (`yaml_text`).
WRITTEN_AS = "yaml_text"


class WrittenInt(int):
    """An int as pydantic's strict mode takes it (a typed field makes it a plain int),
    with the text the file writes it in (`yaml_text`), for a trait mapping's text."""

    yaml_text: str

    def __new__(cls, value: int, written: str) -> WrittenInt:
        number = super().__new__(cls, value)
        number.yaml_text = written
        return number


class WrittenFloat(float):
    """A float with the text the file writes it in, as WrittenInt."""

    yaml_text: str

    def __new__(cls, value: float, written: str) -> WrittenFloat:
        number = super().__new__(cls, value)
        number.yaml_text = written
        return number


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, keeping on each number whose text is not Python's
    own the text as written (`zip: 01234`, `phone: +4912345`, `version: 1.10`): a trait
    mapping's `type: string` sends that text (traits/convert.py to_string), where the
    number's own text lost the leading zero, the plus and the trailing zero."""

    def construct_yaml_int(self, node: Any) -> Any:
        return _with_text(super().construct_yaml_int(node), node)

    def construct_yaml_float(self, node: Any) -> Any:
        return _with_text(super().construct_yaml_float(node), node)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)
_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_yaml_float)


def _with_text(value: Any, node: Any) -> Any:
    written = node.value
    if not isinstance(written, str) or isinstance(value, bool) or written == repr(value):
        return value
    if type(value) is int:  # a plain int takes no attribute; ruamel's own int type does
        value = ScalarInt(value)
    elif type(value) is float:  # ruamel's own float type is not made for .inf and .nan
        return WrittenFloat(value, written)
    with contextlib.suppress(AttributeError):  # a number type without a __dict__: as it is
        setattr(value, WRITTEN_AS, written)
    return value


def _read_documents(
    text: str, path: Path, display: str
) -> tuple[list[YamlDocument], list[Problem]]:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    documents: list[YamlDocument] = []
    problems: list[Problem] = []
    with warnings.catch_warnings():
        # ruamel warns about legal but unusual YAML (a reused anchor); nothing to report.
        warnings.simplefilter("ignore")
        try:
            for index, node in enumerate(_compose_all(yaml, text)):
                start = Location(display, node.start_mark.line + 1, node.start_mark.column + 1)
                node_problems = _join_surrogates(node, display) or _check_node_tree(
                    node, display, text
                )
                if node_problems:
                    problems.extend(node_problems)
                    continue
                data, problem = _construct(yaml, node, display, start)
                if problem is not None:
                    problems.append(problem)
                elif data is not None:
                    positions = YamlPositions(display, data, start)
                    documents.append(YamlDocument(path, index, data, positions))
        except ReaderError as error:
            line, column = _char_position(text, error.position)
            character = error.character
            code = f"#x{character:04x}" if isinstance(character, int) else repr(character)
            problems.append(
                Problem(display, line, column, f"invalid YAML: character {code} is not allowed")
            )
        except MarkedYAMLError as error:
            problems.append(_marked_problem(error, display, text=text))
        except YAMLError as error:
            problems.append(Problem(display, 0, 0, f"invalid YAML: {error}"))
        except RecursionError:
            problems.append(Problem(display, 0, 0, "invalid YAML: nested too deeply"))
    return documents, problems


# A line starting with `%` (a directive: `%YAML 1.1`, `%TAG`); one inside a quoted text
# only sends that file to the slower parser, which reads it the same.
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)


def _compose_all(yaml: YAML, text: str) -> Iterator[Node]:
    """The file's documents as node trees.

    Parsing is most of loading a large manifest (10,000 inline members: 3 s in ruamel's
    pure-Python round-trip parser, 0.3 s in libyaml). Manifests are only read, never
    written back, so comments need not be kept: the C parser (ruamel.yaml.clib) composes
    the nodes, under the same YAML 1.2 resolver, and the round-trip constructor builds
    from them the values that carry every key's position. A file the C parser refuses
    is parsed again by the pure one, so messages and the documents before a syntax error
    are the same whichever parser is installed.
    """
    fast = YAML(typ="safe")
    if fast.Parser is not YAML(typ="safe", pure=True).Parser:
        _check_nesting(YAML(typ="safe"), text)
        # A `%YAML 1.1` directive asks for YAML 1.1 (`on` is true, `0777` is 511), which
        # the pure parser honours and libyaml's composer here ignores: such a file is
        # read by the pure one, so that it means the same whichever parser is installed.
        if _DIRECTIVE.search(text) is None:
            try:
                return iter(list(fast.compose_all(text)))
            except (YAMLError, RecursionError):
                pass
    return yaml.compose_all(text)


def _check_nesting(fast: YAML, text: str) -> None:
    """ComposerError at the first list or mapping nested over MAX_NESTING deep. libyaml's
    parser is iterative, so its events are safe to count; this stops at that point, which
    the pure parser would reach only after seconds (its flow scanner is quadratic)."""
    depth = 0
    try:
        for event in fast.parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise ComposerError(
                        problem=f"nested too deeply (over {MAX_NESTING} levels)",
                        problem_mark=event.start_mark,
                    )
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except ComposerError:
        raise
    except YAMLError:
        pass  # a syntax error: the composers below report it as they always have


def _construct(yaml: YAML, node: Node, display: str, start: Location) -> tuple[Any, Problem | None]:
    constructor = yaml.constructor
    try:
        return constructor.construct_document(node), None
    except DuplicateKeyError as error:
        # Keys equal only once constructed (1 and 0x1); the node check catches the rest.
        # ruamel's own message quotes both values, and one of them may be an API key.
        _reset(constructor)
        message = "duplicate key: equal to an earlier key of this mapping"
        return None, _marked_problem(error, display, message=message)
    except RecursionError:
        _reset(constructor)
        return None, start.problem("invalid YAML: nested too deeply")
    except MarkedYAMLError as error:
        _reset(constructor)
        return None, _marked_problem(error, display)
    except Exception:
        # A scalar that matched a resolver's pattern but not its constructor, such as
        # the date 2024-13-45; find it rather than quote Python's message, which would
        # echo the value.
        _reset(constructor)
        return None, _unconstructable_scalar(constructor, node, display) or start.problem(
            "a value in this document cannot be read"
        )


def _reset(constructor: Any) -> None:
    # construct_document clears these only on success; stale entries would leak partly
    # built objects into the next document.
    constructor.constructed_objects = {}
    constructor.recursive_objects = {}
    constructor.state_generators = []
    constructor.deep_construct = False


def _unconstructable_scalar(constructor: Any, root: Node, display: str) -> Problem | None:
    for node in _walk(root):
        if not isinstance(node, ScalarNode):
            continue
        try:
            constructor.construct_non_recursive_object(node)
        except Exception:
            tag = str(node.tag).removeprefix(_CORE)
            name = _TAG_NAMES.get(tag, tag)
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
            return Problem(
                display,
                line,
                column,
                f"invalid YAML: this looks like a {name} but is not a valid one; "
                "put it in quotes to make it text",
            )
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")
_LONE_SURROGATE = re.compile(
    "[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]"
)


def _join_surrogates(root: Node, display: str) -> list[Problem]:
    """Text holding UTF-16 escapes ("\\ud83d\\ude80", as JSON tools write an emoji, and
    JSON is YAML) as the characters they mean: the YAML reader gives each half as a lone
    surrogate, which no request can carry (UTF-8 has no form for it). A half without its
    partner is a problem, named where it is written."""
    problems = []
    for node in _walk(root):
        value = node.value
        if not isinstance(node, ScalarNode) or not isinstance(value, str):
            continue
        if _SURROGATE.search(value) is None:
            continue
        lone = _LONE_SURROGATE.search(value)
        if lone is None:
            node.value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        else:
            half = ord(lone.group())
            mark = node.start_mark
            problems.append(
                Problem(
                    display,
                    mark.line + 1,
                    mark.column + 1,
                    f"invalid YAML: \\u{half:04x} is half of a UTF-16 surrogate pair, which is "
                    "no character on its own; write the character itself (or \\U0001F600 for "
                    "U+1F600)",
                )
            )
    return problems


def _check_node_tree(root: Node, display: str, text: str) -> list[Problem]:
    """Problems visible before construction: duplicate keys, tags, recursive aliases, size,
    and an anchor with no value where a member is written (`- &a1`, a userId left bare)."""
    problems: list[Problem] = []
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def at(node: Node, message: str) -> Problem:
        return Problem(display, node.start_mark.line + 1, node.start_mark.column + 1, message)

    def visit(node: Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in on_path:
            problems.append(at(node, "invalid YAML: an alias refers to a value that contains it"))
            return 0
        on_path.add(id(node))
        tag = _unsupported_tag(node)
        if tag is not None:
            start = (node.start_mark.line, node.start_mark.column)
            inline = in_inline_members(text, *start)
            scalar = isinstance(node, ScalarNode)
            problems.append(at(node, tag_message(tag, inline, scalar, in_secret(text, *start))))
        elif _bare_anchor(node, text) and in_inline_members(
            text, node.start_mark.line, node.start_mark.column
        ):
            problems.append(at(node, ANCHOR_MESSAGE))
        size = 1
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Node] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    identity = (str(key.tag), key.value)
                    if identity in seen:
                        first = seen[identity].start_mark
                        problems.append(
                            at(
                                key,
                                f"duplicate key {quoted(key.value)}; first written at line "
                                f"{first.line + 1}, column {first.column + 1}"
                                + _second_document_hint(node is root, key.value, problems),
                            )
                        )
                    else:
                        seen[identity] = key
                size += visit(key) + visit(value)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                size += visit(item)
        on_path.discard(id(node))
        sizes[id(node)] = size
        return size

    if visit(root) > MAX_EXPANDED_NODES:
        problems.append(
            at(
                root,
                f"document too large: its aliases expand to over {MAX_EXPANDED_NODES:,} values",
            )
        )
    return problems


_DOCUMENT_KEYS = ("apiVersion", "kind", "metadata", "spec")


def _second_document_hint(at_root: bool, key: str, problems: list[Problem]) -> str:
    """A document's own keys written twice at its top level: most likely two manifests
    without the `---` line between them. Said once per file, on the first such key."""
    if not at_root or key not in _DOCUMENT_KEYS:
        return ""
    if any("needs a line `---`" in p.message for p in problems):
        return ""
    return " (a second manifest in one file needs a line `---` before it)"


def _bare_anchor(node: Node, text: str) -> bool:
    """Whether `node` is an empty value written as an anchor alone (`&a1`): the C parser's
    nodes do not keep their anchor, so the text says."""
    if not isinstance(node, ScalarNode) or node.value != "" or node.tag != _CORE + "null":
        return False
    return _line_at(text, node.start_mark.line + 1)[node.start_mark.column :].startswith("&")


def _unsupported_tag(node: Node) -> str | None:
    """The tag of `node` as written, when it is not one reconciler takes."""
    # Judged by the tag alone, written or implied: the C parser does not say which.
    # An implied tag is always one of those allowed (or `<<`, a merge key).
    value = str(node.tag)
    if isinstance(node, ScalarNode) and value == _CORE + "merge":
        return None
    if isinstance(node, ScalarNode) and value in _SCALAR_TAGS:
        return None
    if isinstance(node, MappingNode) and value == _CORE + "map":
        return None
    if isinstance(node, SequenceNode) and value == _CORE + "seq":
        return None
    return "!!" + value.removeprefix(_CORE) if value.startswith(_CORE) else value


def _walk(root: Node) -> Iterator[Node]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


# The scanner's error for a token starting with one of YAML's reserved indicators.
_RESERVED_START = re.compile(r"found character '[@`]' that cannot start any token")
# A value that starts with `{{` (after `key:` or `- `): a template written bare.
_BARE_TEMPLATE = re.compile(r"(?:^|[:-])[ \t]+\{\{")


def _marked_problem(
    error: MarkedYAMLError, display: str, message: str | None = None, text: str = ""
) -> Problem:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    if message is None and _BARE_TEMPLATE.search(_line_at(text, line)):
        # `template: {{ first_name }} there`: `{` opened a mapping, whatever the parser
        # then says (most often "check this line's indentation") is not the cause.
        reason = error.problem or error.context or "cannot parse"
        return Problem(
            display,
            line,
            column,
            f"invalid YAML: {reason}; a value that starts with {{ is a YAML mapping: put a "
            "template ({{ ... }}) in quotes",
        )
    if message is None:
        # Only the short texts: str(error) adds a snippet of the line, which may hold a key.
        message = f"invalid YAML: {error.problem or error.context or 'cannot parse'}"
        if error.problem and error.context:
            message += f" ({error.context}"
            context_mark = error.context_mark
            if context_mark is not None and context_mark.line != mark.line:
                message += f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
            message += ")"
        if "'\\t'" in str(error.problem):
            message += "; " + _tab_advice(_line_at(text, line)[: max(column - 1, 0)])
        elif _RESERVED_START.match(str(error.problem)):
            # A social handle as a userId (`- @jane`): YAML reserves these two.
            message += "; YAML keeps @ and ` for itself: put a value that starts with one in quotes"
        elif str(error.problem).startswith("expected <block end>"):
            message += (
                "; check this line's indentation: a key lines up with the other keys of its mapping"
            )
        elif error.problem == "mapping values are not allowed here":
            message += "; a value that holds ': ' needs quotes, or this line is indented too far"
        elif str(error.problem).startswith("found undefined alias"):
            if mark is not None and in_secret(text, mark.line, mark.column):
                return Problem(display, line, column, SECRET_ALIAS_MESSAGE)
            if mark is not None and in_inline_members(text, mark.line, mark.column):
                # `- *vip`: a userId written bare, not an alias; its name is a member's.
                return Problem(display, line, column, alias_message(_alias_name(error)))
            # Anchors are per document in YAML: one file's `---` starts afresh.
            message += (
                "; an alias (*name) can only refer to an anchor (&name) written before it in "
                "the same document, not in another document of the file"
            )
        elif str(error.context).startswith("while parsing a flow ") and _other_line(error):
            # Most often a { or [ left open, which the parser only notices lines later.
            opened, closed = ("{", "}") if "mapping" in str(error.context) else ("[", "]")
            message += (
                f"; check that the {opened} opened there ends with {closed} and its entries "
                "are separated by ','"
            )
    return Problem(display, line, column, message)


def _alias_name(error: MarkedYAMLError) -> str:
    # ruamel's problem is "found undefined alias 'vip'": the name between the quotes.
    problem = str(error.problem)
    return problem[problem.find("'") + 1 : problem.rfind("'")]


def _tab_advice(before: str) -> str:
    """What to do about a tab YAML refuses, by what comes before it on its line: nothing
    but spaces (indentation), or a list item's dash or a key's colon (an editor that
    aligns values writes `-<TAB>value`)."""
    written = before.rstrip(" \t")
    if not written:
        return "indent with spaces, not tabs"
    if written[-1] in "-:?,":
        return f"put a space after '{written[-1]}', not a tab"
    return "use spaces, not tabs"


def _line_at(text: str, line: int) -> str:
    """Line `line` (1-based) of `text`, or "" when there is none."""
    lines = text.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _other_line(error: MarkedYAMLError) -> bool:
    mark, context = error.problem_mark, error.context_mark
    return mark is not None and context is not None and mark.line != context.line


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def _char_position(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def to_plain(value: Any) -> Any:
    """Round-trip YAML values as the plain Python values pydantic's strict mode expects."""
    if isinstance(value, CommentedMap | dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, CommentedSeq | list):
        return [to_plain(v) for v in value]
    if isinstance(value, TaggedScalar):
        # Only `!!str` survives the tag check as a tagged scalar.
        return str(value.value)
    if isinstance(value, bool | ScalarBoolean):
        # ScalarBoolean (an anchored true/false) is an int subclass, not a bool.
        return bool(value)
    if isinstance(value, int | float):
        written = getattr(value, WRITTEN_AS, None)
        if written is not None:
            return (
                WrittenInt(value, written)
                if isinstance(value, int)
                else WrittenFloat(value, written)
            )
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return value
