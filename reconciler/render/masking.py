"""Masking of member identifiers in output that may be published.

Plans are posted as pull-request comments, job summaries and CI logs, readable by many and
kept for months; emails and userIds are personal data. Output masks them by default and
shows them only when asked (`--show-members`).

The rule, whatever an identifier's shape or length: at most its first character survives,
followed by a fixed `***`; an email keeps only the `@` as a hint of its kind, never any of
its domain (`jane.doe@example.com` -> `j***@***`, `usr_00012391` -> `u***`), and anything
under four characters shows nothing at all. So a mask says nothing about an identifier's
length or domain, and no two masks of different people can be told apart by the mask alone.

That would make a sample of ten members read as ten identical lines, so the masker of one
output numbers the distinct identifiers it shows (`j***@***#1`, `j***@***#2`): the same
member gets the same number throughout that output. The number is an ordinal, not a hash:
a hash of an email, even a truncated one, can be reversed by hashing a list of candidate
addresses, and an ordinal reveals nothing beyond "these are different people".

Messages are built far from the command line, before anyone knows whether --show-members
was given, yet some quote source data (a field value that is not a number, a header row
that is really a member). Such a message marks what it quotes with `source_value()`; every
edge that shows a message (`reveal`, and `mask_emails`, which every free text passes
through) shows the marked text in full or masked.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from reconciler.words import quantity

Show = Callable[[str], str]

MASK = "***"
# Below this length even one character is too much of an identifier.
SHOWN_FROM = 4
# Anything with an '@' between non-separators is treated as an email in free text, whatever
# follows it (`jane@example.c0m`, `a@b`, `x@@y`): recognising only valid addresses would let
# an invalid one through unmasked. Apostrophes in or ending a local part are part of it
# (o'brien@..., or o''brien@... as SQL quotes it), and so is a quoted local part
# ("jo smith"@...): either would otherwise end the token and be printed.
_SEPARATORS = r"\s'\"<>(),;:\[\]{}`|"
_EMAIL_IN_TEXT = re.compile(
    rf"(?:\"[^\"\n@]*\"|[^{_SEPARATORS}]+(?:'+[^{_SEPARATORS}]+)*'*)@[^{_SEPARATORS}]*"
)
# Where an email can be: a block of non-separators, or of runs of them joined by apostrophes
# (and ending in some). Blocks are found without backtracking (possessive quantifiers), and
# _EMAIL_IN_TEXT runs only over those holding an '@' (with the quoted local part before
# one that starts with it): run over the whole text, it tried every position of a long
# token without an '@' and ran to the token's end each time, so a 70,000-character name
# in a message held the command for minutes. No email spans two blocks, so the matches
# are those _EMAIL_IN_TEXT finds in the whole text.
_EMAIL_BLOCK = re.compile(rf"[^{_SEPARATORS}]++(?:'++[^{_SEPARATORS}]++)*+'*+")
_SEPARATOR = re.compile(rf"[{_SEPARATORS}]")


def _first(part: str) -> str:
    return part[:1] if len(part) >= SHOWN_FROM else ""


def mask_identifier(identifier: str) -> str:
    """`j***@***` for anything with an '@', `u***` otherwise (see the module docstring)."""
    if "@" in identifier:
        local = identifier.split("@", 1)[0]
        return f"{_first(local)}{MASK}@{MASK}"
    return f"{_first(identifier)}{MASK}"


# How DuckDB's CSV reader (2.0) says why, after quoting the line it could not read.
DUCKDB_CSV_REASONS = (
    "Expected Number of Columns",
    "Maximum line size",
    "Invalid unicode",
    "Value with unterminated quote",
    "The CSV Parser state machine",
)
# The quoted line ends at the reason, at DuckDB's words on a cast (which quote the value:
# masked by the pattern of casts), or at its advice.
_CSV_REASONS = "|".join((*DUCKDB_CSV_REASONS, "Error when converting column", "Possible "))

# DuckDB's words before a value it could not cast, parse or decode, which it quotes.
_CASTS = (
    r"(?:Could not (?:convert|parse|decode) string |field format: |with value |"
    r"field value out of range: |Cannot cast to list of JSON\. Input |"
    r"Casting value |Unable to cast )"
)
# The words DuckDB goes on with after such a value.
_THEN = r"\s+(?:to|as|according|can't|when)\b|,\s+expected"


# DuckDB's reasons after a strftime or strptime format it could not parse.
_FORMAT_REASON = r": (?:Trailing format character|Unrecognized format for strftime/strptime)"


def _until(words: str) -> str:
    """A value over any lines, read no further than the next `words` (a pattern): a text
    holding thousands of them with no value ended (a query's error() can raise one) was
    read to its end from each, 20 s for 140 kB; so each is read to the next at most."""
    return rf"(?:(?!{words})[\s\S])*?"


# Where a database's own error text (or Python's) quotes a value it read (a cell, a CSV
# line, a JSON text): the value is source data, whatever its shape. Group `value` of each pattern is
# the value; its quote ends it, or the end of the line where it can hold quotes itself.
_DATA_IN_ERRORS = tuple(
    re.compile(pattern, re.MULTILINE)
    for pattern in (
        # DuckDB: a cast, strptime, a date or timestamp, a cast of a whole value, base64.
        # A value may hold quotes (['x', a text cast to a list): it ends at the quote
        # before DuckDB's next words, not at the first quote; and line ends (a CSV cell
        # of a note or an address, JSON written over lines): it ends before a blank line
        # or the text's end, not at a line's; failing that, at the line's.
        rf"""{_CASTS}(?P<q>['"])(?P<value>{_until(_CASTS)})(?P=q)(?={_THEN}|\n\n|\n?\Z)""",
        # DuckDB: a number it could not cast (out of range) or compute with (an overflow),
        # quoted bare: a numeric userId is a member's identity in a userID-based project.
        r"""(?:with value |Could not cast value |Failed to cast decimal value )"""
        r"""(?P<value>[^\s'"]\S*)""",
        r"Overflow in \w+ of \w+ \((?P<value>[^)\n]*)\)",
        # DuckDB: the CSV line a reader error is on, up to the reason that follows it: a
        # line ending \r\n is quoted from the next line, and a quoted cell's line ends
        # spread it over several (to the end of the text when no reason is found).
        rf"Original Line: (?P<value>[\s\S]*?)(?=\n(?:{_CSV_REASONS})|\Z)",
        # DuckDB: the text of malformed JSON, the value a JSON line holds where another
        # type was expected (an export's line).
        rf"Malformed JSON[^\n]*? Input: (?P<value>{_until('Malformed JSON')})"
        r"(?=\s+when casting\b|\n\n|\n?\Z)",
        r"Malformed JSON[^\n]*? Input: (?P<value>[^\n]*)",
        r'JSON transform error in file "[^"\n]*", in line \d+: [^\n]*?: "(?P<value>[^\n]*)"$',
        # PostgreSQL: invalid input and enum values, to_date's fields, dates and numbers
        # out of range, a JSON token and the JSON text around it.
        r"(?:invalid input syntax for type [\w ]+: |invalid input value for enum \w+: |"
        r'invalid value |field value out of range: |Token )"(?P<value>[^"\n]*)"',
        r'(?:^|value )"(?P<value>[^"\n]*)" is out of range',
        r"JSON data, line \d+: (?P<value>[^\n]*)",
        # PostgreSQL: a date, time or character made from a number (make_date, chr), said
        # bare: in a userID-based project a numeric userId is a member's identity.
        r"(?:[Dd]ate field value|[Tt]ime field value|[Dd]ate|[Tt]ime|[Tt]imestamp) out of range: "
        r"""(?P<value>[^\s'"][^\n]*)""",
        r"requested character too large for encoding: (?P<value>[^\n]*)",
        # DuckDB: a function's argument it could not use, which a query can build from a
        # member's values: a regular expression (RE2's reason, then the pattern from where
        # it failed), a date part or time zone name, a format string or its argument's
        # name, a JSON path, the JSON text a cast could not read as a STRUCT or a list,
        # paths path_join could not join. regexp_extract_all words RE2's reason as
        # "Pattern failed to parse, error: '...'".
        r"(?:Error: |Pattern failed to parse, error: ')"
        r"(?:missing [\])]|unexpected \)|invalid escape sequence|"
        r"invalid character class(?: range)?|no argument for repetition operator|"
        r"invalid repetition size|bad repetition operator|invalid perl operator|"
        r"invalid UTF-8|invalid named capture group|duplicate capture group name): "
        r"(?P<value>[^\n]*)",
        r'cannot join incompatible paths: "(?P<value>[^\n]*?)" onto "',
        r'cannot join incompatible paths: "[^\n]*?" onto "(?P<value>[^\n]*)"$',
        r"Cannot resize vector to (?P<value>\d+) rows",
        r"Invalid UTF8 Codepoint (?P<value>-?\d+)",
        # unhex, unbin and a cast to BIT name the first character they could not read.
        r"Invalid input for (?:hex|binary) digit: (?P<value>[^\n]*)",
        r"in string -> bit conversion: '(?P<value>[^\n]*)'",
        r"Interval value (?P<value>-?[\d.]+) \w+ out of range",
        rf'extract specifier "(?P<value>{_until("extract specifier")})" '
        r"not (?:recognized|supported)",
        rf"Unknown TimeZone '(?P<value>{_until('Unknown TimeZone')})'!",
        r'Argument with name "(?P<value>[^\n]*)" not found, did you mean',
        r"as a format specifier \(e\.g\. \{:(?P<value>[^\n]*)",
        # strftime's and strptime's format, up to DuckDB's reason, which names the
        # specifier it could not use (after it, the value is masked to the line's end);
        # the whole line when another reason follows.
        rf"Failed to parse format specifier (?P<value>[^\n]*?)(?={_FORMAT_REASON})",
        rf"Failed to parse format specifier [^\n]*?{_FORMAT_REASON}:? (?P<value>[^\n]*)",
        rf"Failed to parse format specifier (?P<value>(?![^\n]*{_FORMAT_REASON})[^\n]*)",
        r"JSON path error near '(?P<value>[^\n]*)'",
        r'Expected \w+, but got \w+: "?(?P<value>[^\n]*?)"?$',
        r"Expected array of size \d+, but got '(?P<value>[^\n]*)' with size \d+",
        # DuckDB: JSON read as a number, a decimal or a STRUCT (from_json_strict, a JSON
        # cast): the value, quoted as JSON or bare, the object around a key, and a key
        # the object holds (a member's values can be keys).
        r'Failed to cast value(?: to \w+)?: "?(?P<value>[^\n]*?)"?$',
        r'Object (?P<value>[^\n]*?) (?:does not have|has duplicate|has unknown) key "',
        r'has (?:duplicate|unknown) key "(?P<value>[^"\n]*)"',
        r"Found object containing unknown key, instead of union: (?P<value>[^\n]*)",
        # DuckDB: text cast to a BLOB with a bad \x escape, and the escape itself.
        r'blob conversion of string "(?P<value>[^\n]*)": \\x',
        r'blob conversion of string "[^\n]*": (?P<value>\\x[^\n]*)',
        r"Cannot create a string of size: '(?P<value>[^'\n]*)'",
        # Python's own conversions, in an internal error's message or traceback.
        r"(?:invalid literal for int\(\) with base \d+: |could not convert string to float: |"
        r"""Invalid isoformat string: |time data )(?P<q>['"])(?P<value>.*?)(?P=q)"""
        r"(?= does not match|$)",
    )
)


def marking_written(text: str, written: Callable[[str], bool]) -> str:
    """A database's error (`text`) with each value it quotes that the masking would hide
    marked as the query's own where `written(value)` says the query's text wrote it (a
    date part's typo, `date_part('dayy', ...)`): each output shows it as it is, so an
    author sees their mistake in CI. The patterns that find values are the masking's
    own (_IN_ORDER), so what it hides and what may be shown are found alike."""

    def mark(match: re.Match[str]) -> str:
        value = match["value"]
        if not value or _WRITTEN_MARKS[0] in value or not written(value):
            return match[0]
        whole, at = match[0], match.start()
        start, end = match.span("value")
        opened, closed = _WRITTEN_MARKS
        return f"{whole[: start - at]}{opened}{value}{closed}{whole[end - at :]}"

    text = _unwritten(text)  # a value's own (unmarked), never the query's
    for pattern in _IN_ORDER:
        text = pattern.sub(mark, text)
    return text


class _ClosedOnItsLine:
    """`pattern` (a value quoted by `quote`, on one line) matched in each line only as far
    as the last `quote` that can end it (`closes`): from each beginning with none after it
    a lazy value was read to the line's end, quadratic in the line (a query's error() can
    raise one line of thousands of "Could not convert string '": 112 kB took 10 s)."""

    def __init__(self, pattern: str, closes: str) -> None:
        self.pattern = re.compile(pattern)
        self._closes = re.compile(closes)

    def sub(self, repl: Callable[[re.Match[str]], str], text: str) -> str:
        lines = text.split("\n")
        for n, line in enumerate(lines):
            end = max((m.end() for m in self._closes.finditer(line)), default=0)
            if end:
                lines[n] = self.pattern.sub(repl, line[:end]) + line[end:]
        return "\n".join(lines)


# DuckDB's cast of a value on one line, failing one over lines: it ends at the quote
# before DuckDB's next words, or the line's end.
_CASTS_ON_A_LINE = tuple(
    _ClosedOnItsLine(rf"{_CASTS}{q}(?P<value>[^\n]*?){q}(?={_THEN}|$)", rf"{q}(?={_THEN}|$)")
    for q in ("'", '"')
)

# Every pattern of a value in a database's error, in the order they are matched: a value
# over lines before one on a line.
_IN_ORDER: tuple[re.Pattern[str] | _ClosedOnItsLine, ...] = (
    _DATA_IN_ERRORS[0],
    *_CASTS_ON_A_LINE,
    *_DATA_IN_ERRORS[1:],
)


def _mask_quoted_data(text: str) -> str:
    quoted: set[str] = set()

    def mask(match: re.Match[str]) -> str:
        value = match["value"]
        if _WRITTEN.fullmatch(value):  # the query's own text (marking_written)
            return match[0]
        quoted.add(value)
        whole, at = match[0], match.start()
        start, end = match.span("value")
        return f"{whole[: start - at]}{_first(value)}{MASK}{whole[end - at :]}"

    for pattern in _IN_ORDER:
        text = pattern.sub(mask, text)
    if not quoted:
        return _unwritten(text)
    # DuckDB's strptime error repeats the value on a line of its own (on lines of their
    # own, one written over lines), above a caret.
    lines = {line for value in quoted for line in value.split("\n")}
    return _unwritten(
        "\n".join(
            f"{_first(line)}{MASK}" if line and line in lines else line for line in text.split("\n")
        )
    )


def _unwritten(text: str) -> str:
    """`text` without the marks of what the query wrote (marking_written)."""
    return text.replace(_WRITTEN_MARKS[0], "").replace(_WRITTEN_MARKS[1], "")


def mask_emails(text: str) -> str:
    """Mask every email-shaped token in free text (tracebacks, third-party messages), the
    source data the text marks (`source_value`), and values a database's error quotes
    (not those marked as the query's own: marking_written)."""
    return _mask_quoted_data(_mask_email_regions(_revealed(text, False)))


def _mask_email_regions(text: str) -> str:
    if "@" not in text:
        return text
    parts: list[str] = []
    done = 0
    for block in _EMAIL_BLOCK.finditer(text):
        start, end = block.span()
        last = text.rfind("@", start, end)
        if last < 0:
            continue
        if text[start] == "@" and text[start - 1 : start] == '"':
            # A quoted local part ('"jo smith"@...') ends right before the block.
            opening = text.rfind('"', done, start - 1)
            if opening >= 0 and not any(c in text[opening + 1 : start - 1] for c in "\n@"):
                start = opening
        # No email reaches past the run that holds the block's last '@' (a domain ends at
        # an apostrophe): what follows is left unsearched, or every position of a long
        # tail ("a@b'x'x'x...") was tried again.
        after = _SEPARATOR.search(text, last, end)
        cut = after.start() if after else end
        parts.append(text[done:start])
        parts.append(_EMAIL_IN_TEXT.sub(lambda m: mask_identifier(m.group(0)), text[start:cut]))
        done = cut
    parts.append(text[done:])
    return "".join(parts)


# Private-use characters around source data quoted in a message (see the module docstring).
_OPEN, _CLOSE = "\ue000", "\ue001"
SOURCE_MARKS = _OPEN + _CLOSE  # for a pattern that must not reach into a marked value
_MARKED = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.DOTALL)
# Private-use characters around a value an error quotes that the query itself wrote
# (marking_written): shown as it is, whatever the output.
_WRITTEN_MARKS = ("\ue002", "\ue003")
_WRITTEN = re.compile(f"{_WRITTEN_MARKS[0]}[^{''.join(_WRITTEN_MARKS)}]*{_WRITTEN_MARKS[1]}")
_VALUE_SHOWN = 60
# Every mark the masking reads: text from outside holding one (a member's value, so a
# database's error quoting it) could end a masked value early, or pass a value off as the
# query's own, shown unmasked (a CSV cell "\ue002usr_99999\ue003").
_EVERY_MARK = dict.fromkeys(map(ord, SOURCE_MARKS + "".join(_WRITTEN_MARKS)))


def unmarked(text: str) -> str:
    """`text` from outside (a value read, a database's error) without the masking's marks:
    called where such text enters a message, before anything marks it."""
    return text.translate(_EVERY_MARK)


def source_value(value: Any) -> str:
    """A value read from a member source, to quote in a message: each output edge shows it
    in full (with --show-members) or masked. Callers add the quotes around it."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # No edge shows more than _VALUE_SHOWN characters of it, and a value refused for its
    # size (traits.limits) may be megabytes, kept in up to 1,000 issues per field.
    text = text[: _VALUE_SHOWN + 1]
    if not text.isascii():
        # Half a surrogate pair (a template's '\ud83d', refused for it) has no UTF-8 form:
        # written as its escape, as json.dumps writes one, or printing the message failed.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _OPEN + unmarked(text) + _CLOSE


def _shown_in_full(text: str) -> str:
    # Escaped as repr does (a CSV cell can hold a terminal escape), without repr's quotes.
    text = text if len(text) <= _VALUE_SHOWN else text[: _VALUE_SHOWN - 3] + "..."
    return repr(text)[1:-1]


def reveal(text: str, show_members: bool) -> str:
    """A message with the source data it marks shown in full, or masked like a field value."""
    return _unwritten(_revealed(text, show_members))


def _revealed(text: str, show_members: bool) -> str:
    if _OPEN not in text:
        return text
    if show_members:
        return _MARKED.sub(lambda m: _shown_in_full(m.group(1)), text)
    return _MARKED.sub(lambda m: f"{_first(m.group(1))}{MASK}", text)


def without_data(text: str) -> str:
    """A message with the source data it marks left out: two rows failing for one reason
    with different values ('lots', 'many' is not a number) give the same text."""
    return _unwritten(_MARKED.sub("...", text))


class Masker:
    """Masks identifiers for one output, numbering the distinct ones (module docstring).
    Make one per output: the numbers mean something only within it."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def __call__(self, identifier: str) -> str:
        number = self._numbers.setdefault(identifier, len(self._numbers) + 1)
        return f"{mask_identifier(identifier)}#{number}"


def marking_sent(text: str, sent: Iterable[Any]) -> str:
    """A server's error about a request (`text`) with every text value the request carried
    (`sent`: its members, as payloads) marked as source data wherever it is quoted, as
    sent, JSON-escaped or URL-encoded (a path): a server may echo its input, and a userId or
    a field value has no shape to be recognised by. Each output then masks it, or shows it
    with --show-members."""
    values: set[str] = set()
    for item in sent:
        _text_values(item, values)
    forms: dict[str, str] = {}  # as quoted -> the value
    for value in values:
        escaped = (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1])
        for form in (value, *escaped, _url_encoded(value)):
            if len(form) >= 2 and form in text:
                forms.setdefault(form, value)
    if not forms:
        return text
    # One pass, longest first: a value inside a longer one is not marked again. Whole
    # values only: a member "ann" must not mark the word in "planned", nor a field value
    # "lists" a step of the endpoint's path (a path's last step is a userId).
    either = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w@.+-])(?:{either})(?![\w@+/-])")
    return pattern.sub(lambda m: source_value(forms[m[0]]), text)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _url_encoded(value: str) -> str:
    """urllib's quote(value, safe=""), without urllib: the planner, which reaches this
    module, imports nothing that does I/O (tests/unit/test_import_graph.py)."""
    return "".join(
        chr(byte) if chr(byte) in _UNRESERVED else f"%{byte:02X}" for byte in value.encode()
    )


def _text_values(item: Any, out: set[str]) -> None:
    # Field names (a mapping's keys) are the manifest's; numbers and booleans are shown.
    if isinstance(item, str):
        out.add(item)
    elif isinstance(item, Mapping):
        for child in item.values():
            _text_values(child, out)
    elif isinstance(item, list | tuple):
        for child in item:
            _text_values(child, out)


def message_for(text: str, show: Show) -> str:
    """A free-text message (an error Iterable sent, say) beside members shown by `show`."""
    return mask_emails(text) if masks(show) else reveal(text, True)


def _full(identifier: str) -> str:
    return identifier


def shower(show_members: bool) -> Show:
    """How identifiers are shown in one output: in full (local use) or masked (the default)."""
    return _full if show_members else Masker()


def masks(show: Show) -> bool:
    """Whether `show` masks (a Masker, or quoted() around one)."""
    if isinstance(show, _Quoted):
        return masks(show.show)
    return isinstance(show, Masker)


def mask_value(value: Any, show: Show) -> Any:
    """A field value beside a member: text (names, emails, dates) can be personal data, so
    it is masked whenever identifiers are; numbers, booleans and null are shown."""
    if not masks(show) or value is None or isinstance(value, bool | int | float):
        return value
    raw = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"{raw[:1]}{MASK}" if raw else ""


def field_path(path: str, show: Show) -> str:
    """A user field's path as an output shows it. Below the mapped field (its first part,
    from the manifest), an object's keys are data: an object keyed per member (its
    friends' emails or userIds, say) makes a field of every key, so keys below it with an
    `@`, or that do not look like names (`usr_00012391`, `1042`), are masked like an
    identifier (`refs.f***@***#1`, `refs.u***#2`), each path keeping a number of its own."""
    root, dot, rest = path.partition(".")
    if not masks(show) or _names_only(rest):
        return path
    return f"{root}{dot}{show(rest)}"


def quoted_path(path: str) -> str:
    """A user field's path quoted for a message built before its output is known: the
    keys below the mapped field that field_path masks are marked as source data."""
    root, dot, rest = path.partition(".")
    if _names_only(rest):
        return repr(path)
    return f"'{root}{dot}{source_value(rest)}'"


def _names_only(keys: str) -> bool:
    """Whether an object's keys (`a.b`, or none) all look like names, not identifiers."""
    return not keys or all(_looks_like_a_column(key) for key in keys.split("."))


class _Quoted:
    def __init__(self, show: Show) -> None:
        self.show = show

    def __call__(self, value: str) -> str:
        return repr(self.show(value))


def quoted(show: Show) -> Show:
    return _Quoted(show)


# A column name as people name columns: letters, digits, `_ . -` and spaces, not starting
# with a digit, and without a run of digits or a length that says "an id".
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_. -]{0,47}")
_DIGIT_RUN = re.compile(r"\d{3}")


def _looks_like_a_column(name: str) -> bool:
    return bool(_COLUMN_NAME.fullmatch(name)) and not _DIGIT_RUN.search(name)


# What a file separated by something else than commas (Excel saves "CSV" with semicolons
# in many European locales, "Unicode Text" with tabs) has in its one column's name.
_OTHER_SEPARATORS = ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'"))


def other_separator(names: Sequence[str]) -> str | None:
    """How a header read as one column is separated ("semicolons"), when its one name
    holds a separator other than a comma; None otherwise."""
    found = _separator(names)
    return found[1] if found else None


def _separator(names: Sequence[str]) -> tuple[str, str] | None:
    if len(names) != 1:
        return None
    return next(((mark, called) for mark, called in _OTHER_SEPARATORS if mark in names[0]), None)


def _looks_like_columns(names: Sequence[str]) -> bool:
    """Whether names are column names rather than member data; a header read as one
    column is judged by the names its separator divides it into."""
    found = _separator(names)
    parts = names[0].split(found[0]) if found else names
    return all(_looks_like_a_column(name.strip()) for name in parts)


def separator_advice(called: str) -> str:
    return (
        f"its header reads as one column because the file is separated by {called}: a CSV "
        "source is comma-separated, so save it with commas"
    )


# The name PostgreSQL gives a column the query leaves unnamed (`SELECT 1`): never data.
POSTGRES_UNNAMED = "?column?"


def letters(name: str) -> str:
    """A column name's letters and digits, case aside: how `User ID` is `userid`."""
    return "".join(c for c in name.casefold() if c.isalnum())


# How people head a column of identifiers (`Email`, `E-mail Address`, `customer_email`,
# `User ID`), by its end: no member's value, in practice, ends so; and short headings
# whole (a name ending in `id`, `david`, may be a member's).
_IDENTIFIER_ENDINGS = ("email", "emailaddress", "userid")
_IDENTIFIER_HEADINGS = frozenset({"id", "uid", "mail"})


def _a_header(names: Sequence[str], reads: Collection[str] | None) -> bool:
    """Whether names that look like column names are a header row: `reads` (the columns
    the manifests read from the source) unknown, or one of the names is one of them or
    heads identifiers. A file without a header row has a member there, and a userId
    (`jsmith`) or a plan (`gold`) looks like a column name too."""
    if reads is None:
        return True
    found = _separator(names)  # a header read as one column, judged by its parts
    parts = names[0].split(found[0]) if found else names
    wanted = {letters(name) for name in reads}
    return any(
        plain in wanted or plain in _IDENTIFIER_HEADINGS or plain.endswith(_IDENTIFIER_ENDINGS)
        for plain in (letters(visible(name)) for name in parts)
    )


def column_names(
    names: Sequence[str], unnamed: str | None = None, reads: Collection[str] | None = None
) -> str:
    """A source's column names for a message. A CSV without a header row makes its first
    member the header, so names that do not look like column names are source data: then
    every name is marked as source data (masked unless --show-members) and the message
    says why. So are names that do look like column names when `reads` (the columns the
    manifests read of it) is given and none of them is one of those or heads identifiers
    (_a_header). So does a header that is one column because its file is not
    comma-separated, which would otherwise pass for a missing header row.

    A query's columns (`unnamed` given: how to name them) have no header row: a name that
    does not look like a column name is one the database made for a column the query
    left unnamed (PostgreSQL's `?column?`, DuckDB's text of the expression, which may
    quote a value), or a value a PIVOT made a name; each such name is marked, and the
    message says to name the columns instead."""
    if unnamed is not None:
        return _query_column_names(names, unnamed)
    if not names or list(names) == [""]:
        return "(none: the first line, where the header row goes, is blank)"
    if _excel_separator_line(names):
        # Excel writes `sep=,` (or `sep=;`) above the header when asked to, and reads it.
        return (
            f"{','.join(names)} (the first line is Excel's `sep=` line, not the header row: "
            'remove it, or save the file as "CSV UTF-8 (Comma delimited)", which writes none)'
        )
    called = other_separator(names)
    if not _looks_like_columns([visible(name) for name in names]):
        said = "they look like member data: does the source lack a header row?"
    elif not _a_header(names, reads):
        said = (
            f"{quantity(len(names), 'name')}, none of them a column the manifests read or "
            "an email or userId heading: does the file lack a header row? Then its first "
            "member is read as the header, so the names are masked; the file's first line "
            "shows them"
        )
    else:
        said = ""
    if not said:
        # A name holding a character no editor shows (a zero-width space, a byte-order
        # mark, a no-break space) is shown with it spelled out: `email` was said missing
        # from a header that, on screen, had it.
        shown = ", ".join(spelled_out(name) for name in names)
        hidden = unseen(names)
        if hidden:
            shown += f" ({hidden})"
    else:
        shown = ", ".join(source_value(name) for name in names)
        if called is None:
            return f"{shown} ({said})"
    return shown if called is None else f"{shown} ({separator_advice(called)})"


def _unseen(ch: str) -> bool:
    """A character a column name may hold that an editor or a sheet does not show: a
    format character (U+200B, a byte-order mark), a space other than the ASCII one, a
    control character (not a tab: a tab-separated header is told as such)."""
    return ch not in " \t" and unicodedata.category(ch)[0] in "CZ"


def visible(name: str) -> str:
    """A column name as it shows: without its unseen characters."""
    return "".join(ch for ch in name if not _unseen(ch))


def spelled_out(name: str) -> str:
    """A column name with each unseen character written as its code point (`email<U+200B>`)."""
    return "".join(f"<U+{ord(ch):04X}>" if _unseen(ch) else ch for ch in name)


def unseen(names: Sequence[str]) -> str:
    """What the names hold that does not show, for a message ("the names hold <U+200B>,
    a zero width space, where it does not show: remove it"), or "" when nothing."""
    found = sorted({ch for name in names for ch in name if _unseen(ch)})
    if not found:
        return ""
    said = " and ".join(f"<U+{ord(ch):04X}>, {_called(ch)}," for ch in found)
    them = ("it does", "it") if len(found) == 1 else ("they do", "them")
    return f"the names hold {said} where {them[0]} not show: remove {them[1]}"


def _called(ch: str) -> str:
    if ch == "\ufeff":  # named ZERO WIDTH NO-BREAK SPACE, but known by this name
        return "a byte-order mark"
    name = unicodedata.name(ch, "").lower()
    if name:
        return f"a {name}"
    return "a control character" if unicodedata.category(ch) == "Cc" else "a character with no name"


def _query_column_names(names: Sequence[str], unnamed: str) -> str:
    if not names:
        return "(none: the query selects no columns)"
    # A name holding what does not show (a table's column `Email` and a zero-width space,
    # loaded from a pasted header) is a column all the same, spelled out as a file's is.
    plain = [name == POSTGRES_UNNAMED or _looks_like_a_column(visible(name)) for name in names]
    named = [name for name, fine in zip(names, plain, strict=True) if fine]
    shown = ", ".join(
        spelled_out(name) if fine else source_value(name)
        for name, fine in zip(names, plain, strict=True)
    )
    if unseen(named):
        shown += f" ({unseen(named)})"
    if all(plain) and POSTGRES_UNNAMED not in names:
        return shown
    return (
        f"{shown} (a column the query leaves unnamed gets a name the database makes, such "
        f"as PostgreSQL's {POSTGRES_UNNAMED} or DuckDB's text of the expression: {unnamed})"
    )


def _excel_separator_line(names: Sequence[str]) -> bool:
    """Whether a header is Excel's `sep=X` line: `sep=` and one character, which a comma
    splits into `sep=` and an empty name."""
    line = ",".join(names).strip()
    return line.lower().startswith("sep=") and len(line) == 5


def column_hint(wanted: str, names: Sequence[str], reads: Collection[str] | None = None) -> str:
    """ " (did you mean 'email'?)" when `wanted` is a near miss of one of the source's
    column names, and "" when none is close or the names may be member data (which a
    suggestion would print unmasked: column_names)."""
    if not names or not all(_looks_like_a_column(name) for name in names):
        return ""
    if not _a_header(names, reads):
        return ""
    close = difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.75)
    by_case = [name for name in names if name.lower() == wanted.lower()]
    meant = by_case or close
    return f" (did you mean {meant[0]!r}?)" if meant else ""
