"""Queries run in DuckDB, the embedded engine: Parquet files, and `sql` with `database`.

DuckDB streams a query's result: `fetchmany` pulls the next chunk through the query
pipeline, so a file or table far larger than memory is read without materialising it.

A manifest's query is untrusted (manifests arrive by pull request and `validate` runs in
CI), and DuckDB can write files, attach databases, install extensions and fetch URLs. So
every query of a manifest runs in a connection of its own (`open_connection`): external
access off except the repository's own files (not .git, not .reconciler), no extension
installed or loaded, the database file read-only, the configuration locked; and only a
single SELECT statement is accepted (`select_statement`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from reconciler.duckdb_connect import connect
from reconciler.errors import SourceChangedError, SourceError, display_path
from reconciler.leftovers import private_directory
from reconciler.manifest.model import MembersSpec
from reconciler.manifest.repository import (
    MAX_WALKED_ENTRIES,
    PRIVATE_ENTRIES,
    LinkOutOfRepository,
    RepositoryTooLarge,
    is_inside,
    readable_paths,
    real_path,
)
from reconciler.manifest.stand_in import stand_in
from reconciler.members.engine import settings as engine_settings
from reconciler.members.engine.workspace import UTC_SESSION
from reconciler.members.identity import ProjectType
from reconciler.render.masking import (
    DUCKDB_CSV_REASONS,
    SHOWN_FROM,
    marking_written,
    source_value,
    unmarked,
)
from reconciler.sources.identifier_types import identifier_sql, refusal
from reconciler.sources.result import SourceResult
from reconciler.sources.rows import CHUNK_ROWS, Columns, find_columns, members_from_rows
from reconciler.sources.snapshot import (
    TEMP_DIR_VARIABLE,
    FileState,
    Snapshot,
    file_state,
    file_system_clock,
    temp_dir_setting,
)
from reconciler.sources.time_limit import (
    QueryGuard,
    QueryTimedOut,
    query_timeout,
    timed_out,
)

IN_MEMORY = ":memory:"


@dataclass(frozen=True)
class DuckDbRelation:
    """A SELECT that runs in a locked-down connection of its own: the rows of a Parquet
    file or of a manifest's DuckDB query, for either engine.

    Relative file paths in the query (read_csv('data/x.csv')) start at `base_dir`, the
    manifest's directory, as every path in a manifest does. `subject` names what is read
    in messages ("the query", "Parquet file x.parquet"); `show_query=False` leaves out
    DuckDB's excerpt of the query, for queries the user did not write."""

    database: str  # a DuckDB database file, or IN_MEMORY
    query: str
    base_dir: Path
    repository: Path
    declared_at: str
    subject: str
    where: Callable[[int], str]  # names row n (1-based) in messages
    audience: str = ""
    show_query: bool = True
    # Snapshot copies the query reads (outside the repository): readable, and shown in
    # messages as the files they copy.
    snapshots: tuple[Snapshot, ...] = ()
    # Told each repository file the query read (the database file included) and its
    # FileState then, once it is known not to have changed while read: a saved plan
    # digests them (sources/sql.py), as it digests a CSV source.
    record: Callable[[Path, FileState], None] | None = None
    # Told the query's column names once DuckDB has described them (Source.columns_read).
    described: Callable[[list[str]], None] | None = None
    # API key files no query may be able to read (Audience.key_files).
    key_files: tuple[Path, ...] = ()

    def connection(
        self, writable: Path | None = None, memory_bytes: int | None = None
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return bounded_connection(
            self.database,
            self.base_dir,
            self.declared_at,
            self.repository,
            writable,
            memory_bytes,
            readable=tuple(s.copy for s in self.snapshots),
            audience=self.audience,
            record=self.record,
            key_files=self.key_files,
        )

    def select(self) -> str:
        """The query, once it is known to be a single SELECT (SourceError otherwise)."""
        return select_statement(self.query, self.declared_at)

    def error(self, exc: duckdb.Error) -> SourceError:
        error = query_error(
            exc,
            self.declared_at,
            self.subject,
            self.repository,
            self.show_query,
            self.base_dir,
            query=self.query,
            database=self.database,
        )
        for snapshot in self.snapshots:
            error.args = (snapshot.shown(str(error)),)
        return error


def read_with_duckdb(
    relation: DuckDbRelation,
    spec: MembersSpec,
    project_type: ProjectType,
    mapped: bool = False,
) -> SourceResult:
    """Run the relation's query and build members from its rows, a chunk at a time."""
    query = relation.select()
    budget = _python_budget()
    with relation.connection() as connection:
        try:
            described = connection.execute(f"DESCRIBE {query}").fetchall()
            names = [row[0] for row in described]
            if relation.described is not None:
                relation.described(names)
            # show_query: a query the user wrote (not a Parquet file's), whose columns
            # may be left unnamed.
            columns = find_columns(
                names, spec, f"{relation.declared_at}: {relation.subject}", relation.show_query
            )
            # Identifiers become text in DuckDB, by the SQL the DuckDB engine uses too
            # (identifier_types.py): the two engines then agree. Columns by position.
            identity = identifier_cells(columns, [row[1] for row in described])
            # Without a trait mapping only the identifier columns are read (README: other
            # columns "are not read"), as the DuckDB engine reads them: a column that fails
            # to evaluate (a cast) failed the audience in this engine alone.
            read = range(len(names)) if mapped else sorted(identity)
            types = [row[1] for row in described]
            cells = [identity.get(i, trait_cell(f"c{i}", types[i])) for i in range(len(names))]
            within = _within(query, len(names), budget, read)
            cursor = connection.execute(f"SELECT {', '.join(cells)} FROM ({within}) AS q")
            chunks = iter(lambda: cursor.fetchmany(CHUNK_ROWS), [])
            return members_from_rows(chunks, columns, project_type, relation.where, mapped)
        except duckdb.Error as exc:
            refused = refusal(str(exc))
            if refused is not None:
                raise SourceError(refused) from None
            if _OVER_BUDGET in str(exc):
                raise SourceError(
                    f"{relation.declared_at}: cannot read {relation.subject}: its rows hold more "
                    f"than {budget:,} bytes of values, more than RECONCILER_MEMORY_LIMIT lets a "
                    "plan hold in memory; make its values smaller, or raise the limit"
                ) from None
            raise relation.error(exc) from None


def identifier_cells(columns: Columns, types: Sequence[str]) -> dict[int, str]:
    """The SQL giving each identifier column (c0, c1, ... by position) as identifier
    text, by its DuckDB type; SourceError for a type no identifier has."""
    cells = {}
    for index, role in ((columns.email, "email"), (columns.user_id, "userId")):
        if index is not None:
            cells[index] = identifier_sql(
                f"c{index}", types[index], columns.source, columns.names[index], role
            )
    return cells


def trait_cell(cell: str, type_name: str) -> str:
    """The SQL giving a trait column `cell` of DuckDB type `type_name` as a mapping reads it,
    the same in both engines. A FLOAT (REAL, a Parquet file's float32) is the double its
    shortest text names, as PostgreSQL's driver gives a real: widened as it is, 19.99
    reached Python as 19.989999771118164, which went to Iterable, where a segment on 19.99
    matches no one."""
    if type_name == "FLOAT":
        return f"CAST(CAST({cell} AS VARCHAR) AS DOUBLE)"
    return cell


# The error a read over its budget raises inside DuckDB (error()), told from others by it.
_OVER_BUDGET = "reconciler: rows over the memory budget"


def _python_budget() -> int:
    """The bytes of values a source read into Python may hold: RECONCILER_MEMORY_LIMIT."""
    from reconciler.members.engine.settings import EngineSettings

    return EngineSettings.from_env().memory_bytes


def _within(query: str, width: int, budget: int, read: Iterable[int] | None = None) -> str:
    """`query`'s rows, columns named c0, c1, ..., failing inside DuckDB once their values
    (as text) pass `budget` bytes in all, before they reach Python. DuckDB streams a
    query within its memory limit, but each chunk fetched becomes Python objects: 30 rows
    of `repeat('x', 100000000)`, or a Parquet file of a few kilobytes holding one long
    value many times, took 6 GB when the limit was 1 GB. A running sum is a streaming
    window: the rows are not held to compute it. Only the columns in `read` (all when
    None) are computed; the others are NULL."""
    wanted = set(range(width) if read is None else read)
    aliases = ", ".join(f"c{i}" for i in range(width))
    outer = ", ".join(f"c{i}" if i in wanted else f"NULL AS c{i}" for i in range(width))
    size = " + ".join(f"coalesce(strlen(CAST(c{i} AS VARCHAR)), 0)" for i in sorted(wanted))
    size = size or "0"
    return (
        f"SELECT {outer} FROM (SELECT {aliases}, sum({size}) OVER (ROWS BETWEEN UNBOUNDED "
        f"PRECEDING AND CURRENT ROW) AS read_bytes FROM ({query}\n) AS q({aliases})) "
        f"WHERE CASE WHEN read_bytes > {int(budget)} THEN error('{_OVER_BUDGET}') ELSE true END"
    )


def select_statement(query: str, declared_at: object) -> str:
    """`query` if it is a single SELECT (or WITH ... SELECT, VALUES, FROM-first) statement,
    without its trailing semicolon; SourceError naming `declared_at` otherwise. DuckDB's
    own parser decides, so no spelling of COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA or a
    second statement slips through."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise SourceError(f"{declared_at}: cannot read the query: {exc}") from None
    if len(statements) != 1:
        raise SourceError(
            f"{declared_at}: the query must be a single SELECT statement; found "
            f"{len(statements)} statements"
        )
    (statement,) = statements
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name.replace("_", " ")
        raise SourceError(
            f"{declared_at}: the query must be a single SELECT statement; found {kind} "
            "(a member source only reads: reconciler refuses anything that could write, "
            "attach, load or configure)"
        )
    return _without_final_semicolons(query).rstrip()


def _without_final_semicolons(query: str) -> str:
    """`query` with the semicolons that end it blanked, also those before a last comment
    (`SELECT ...; -- the VIP list`): reconciler runs it inside its own SELECTs, where one
    was a syntax error pointing at reconciler's text. DuckDB's tokenizer tells a comment
    or a string holding ';' from the statement's end."""
    ends = []
    for offset, kind in reversed(duckdb.tokenize(query)):
        if kind == duckdb.token_type.comment:
            continue
        if kind != duckdb.token_type.operator or not query.startswith(";", offset):
            break
        ends.append(offset)
    for offset in ends:
        query = f"{query[:offset]} {query[offset + 1 :]}"
    return query


# How DuckDB's Out of Memory error says the spill files, not memory, ran out.
_SPILL_LIMIT = "max_temp_directory_size"


def query_error(
    exc: duckdb.Error,
    declared_at: object,
    subject: str,
    repository: Path,
    show_query: bool,
    base_dir: Path | None = None,
    query: str = "",
    database: str = "",
) -> SourceError:
    if isinstance(exc, duckdb.InterruptException):
        return timed_out(declared_at, subject)
    raw = unmarked(str(exc))  # before anything here marks it
    message = raw if show_query else raw.split("\n\nLINE ")[0]
    message = _without_describe(message)
    message = _table_advice(message, database)
    message = _raised_data_marked(message, query)
    message = marking_written(message, _written_by(query))
    if isinstance(exc, duckdb.OutOfMemoryException) and _SPILL_LIMIT in message:
        from reconciler.members.engine.settings import QUERY_SPILL_FACTOR, EngineSettings

        spill = EngineSettings.from_env().query_spill_bytes
        message = (
            f"{message.partition(chr(10))[0]} (its spill files reached the {spill:,} bytes of "
            f"disk a query may use, {QUERY_SPILL_FACTOR} times RECONCILER_MEMORY_LIMIT; make "
            "the query lighter, or raise the limit)"
        )
    elif isinstance(exc, duckdb.OutOfMemoryException):
        # DuckDB's advice (a temporary directory, a higher limit) is not the user's to take.
        message = (
            f"{message.partition(chr(10))[0]} (a query may use what a plan's DuckDB may: "
            "a share of RECONCILER_MEMORY_LIMIT, 1GB by default; make the query lighter, or "
            "raise the limit)"
        )
    message = _without_extension_advice(message)
    message = _without_csv_advice(message)
    if _NOT_WHOLE_PARQUET.search(message):
        first, newline, rest = message.partition("\n")
        message = f"{first} ({_NOT_WHOLE_ADVICE}){newline}{rest}"
    if isinstance(exc, duckdb.PermissionException):
        # The reason goes on DuckDB's first line, before its excerpt of the query.
        first, newline, rest = message.partition("\n")
        message = (
            first
            + (
                f" (a query may read only files inside the repository {repository}, not in its "
                ".git or .reconciler, in a git work tree only under the top-level files and "
                "directories git tracks (`git add` a new one), and no URL; a relative path is "
                "looked for from the working directory first, so it works when reconciler runs "
                "inside the repository" + _climbing_out(first, repository, base_dir) + ")"
            )
            + newline
            + rest
        )
    first, newline, rest = message.partition("\n")
    message = first + _not_found_here(first, repository, base_dir) + newline + rest
    return SourceError(f"{declared_at}: cannot read {subject}: {message}")


# DuckDB's excerpt of the statement reconciler sent to learn the query's columns: its
# first line starts with the DESCRIBE the user never wrote, the caret shifted past it.
_DESCRIBED = re.compile(r"\n\nLINE 1: DESCRIBE (?P<line>[^\n]*)\n(?P<indent> {17,})(?P<marks>\^+)")


def _without_describe(message: str) -> str:
    """`message` with DuckDB's `LINE 1:` excerpt of `DESCRIBE <query>` shown as the
    manifest's query, the caret still under the text it marks (PostgreSQL's excerpt is
    drawn from the query likewise, sources/error_excerpt.py)."""
    return _DESCRIBED.sub(
        lambda m: f"\n\nLINE 1: {m['line']}\n{m['indent'][9:]}{m['marks']}", message, count=1
    )


# A table DuckDB did not find, and its guess among the names it knows: in a database
# without the table, the nearest of its own catalog views (pg_tables, sqlite_master).
_NO_TABLE = re.compile(r"\ACatalog Error: Table with name [^\n]* does not exist!")
_CATALOG_GUESS = re.compile(
    r'\nDid you mean "(?:pg_|sqlite_|duckdb_|pragma_|information_schema\.)[^"\n]*"\?'
)


def _table_advice(message: str, database: str) -> str:
    """`message` without DuckDB's guess of a catalog view for a table it did not find
    ('Did you mean "pg_tables"?', no table of the user's), and, in `database: ':memory:'`,
    which holds no tables, with where a query's rows can come from."""
    found = _NO_TABLE.match(message)
    if found is None:
        return message
    message = _CATALOG_GUESS.sub("", message, count=1)
    if database != IN_MEMORY:
        return message
    advice = (
        " (database: ':memory:' holds no tables: a query there reads files, "
        "FROM read_csv('data/members.csv') or read_parquet('data/members.parquet'), "
        "or give database: the DuckDB file that has the table)"
    )
    return message[: found.end()] + advice + message[found.end() :]


# What DuckDB's error() raises: its argument, after the error's kind, line ends and all
# (a member's note or address), up to DuckDB's excerpt of the query if it follows.
_RAISED = re.compile(r"\AInvalid Input Error: (?P<text>[\s\S]*?)(?=\n\nLINE \d+:|\Z)")
_CALLS_ERROR = re.compile(r"\berror\s*\(", re.IGNORECASE)


def _raised_data_marked(message: str, query: str) -> str:
    """`message` with the text a query's error() raised marked as source data (masked in
    output unless --show-members), unless the query wrote it: `error(user_id)` put a
    member's userId, whole, in the CI log of a pull request's plan. What the query wrote is
    what its constants hold (_written_by), not any word of its text: a member's value that
    is also a name the query writes (`AS premium`) is still the member's. Reconciler's own
    error() (the memory budget) is not the query's."""
    raised = _RAISED.match(message)
    if raised is None or not _CALLS_ERROR.search(query):
        return message
    text = raised["text"]
    written = _written_by(query)(text)  # `'a' || chr(10) || 'b'`, line by line
    if not text or written or text == _OVER_BUDGET:
        return message
    start, end = raised.span("text")
    return f"{message[:start]}{source_value(text)}{message[end:]}"


def _written_by(query: str) -> Callable[[str], bool]:
    """Whether a value an error quotes is text of one of the query's own constants (its
    string literals, as the query means them, and its numbers): a date part, a time zone,
    a regular expression or a cast the author mistyped (`date_part('dayy', ...)`), which
    the masking would hide as if a member's. Only a constant counts, not a name or a
    keyword of the query (`users`, `plan`): the value a member has is shown only if the
    manifest's own text holds it between quotes or as a number. What a file the query
    reads holds is never in the query's text. A whole constant counts at any length; a
    part of one (a regular expression's, from where it failed) from SHOWN_FROM characters,
    as the masking would show its first: a short one ('300' of '2300-01-01') is too likely
    a member's by chance. A value over lines is the query's when each line is, or blank
    (`chr(10) || 'a'`). DuckDB puts double quotes around some (malformed JSON's input):
    the text between them is the value."""
    constants = _constants(query)

    def line_written(line: str) -> bool:
        if not line or line in constants:
            return True
        return len(line) >= SHOWN_FROM and any(line in constant for constant in constants)

    def written(value: str) -> bool:
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return all(map(line_written, value.split("\n")))

    return written


# A string constant's prefix (E'...', x'...') and a dollar quote's tag ($tag$...$tag$).
_PREFIX = re.compile(r"\A[A-Za-z]*")
_DOLLAR_TAG = re.compile(r"\A\$[^$]*\$")


def _constants(query: str) -> list[str]:
    """The text of the query's string and number constants, as DuckDB's tokenizer finds
    them (not inside comments or names); a string's doubled quotes are one."""
    try:
        tokens = duckdb.tokenize(query)
    except duckdb.Error:
        return []
    ends = [offset for offset, _ in tokens[1:]] + [len(query)] if tokens else []
    constants = []
    for (offset, kind), end in zip(tokens, ends, strict=True):
        text = query[offset:end].rstrip()
        if kind == duckdb.token_type.numeric_const:
            constants.append(text)
        elif kind == duckdb.token_type.string_const:
            constants.append(_string_text(text))
    return constants


def _string_text(token: str) -> str:
    """What a string constant's token means: `'it''s'` is it's, `$$a$$` is a."""
    token = _PREFIX.sub("", token, count=1)
    tag = _DOLLAR_TAG.match(token)
    if tag is not None:
        return token[tag.end() : len(token) - len(tag[0])]
    return token[1:-1].replace("''", "'")


# DuckDB's words for a Parquet file whose footer (at its end: the schema and where every
# row group lies) is missing or unreadable: a copy or an upload that did not finish, or a
# file of another kind. Its "Invalid data" alone said nothing of either.
_NOT_WHOLE_PARQUET = re.compile(
    r"No magic bytes found at end of file|too small to be a Parquet file|TProtocolException"
)
_NOT_WHOLE_ADVICE = (
    "a Parquet file ends in a footer that describes it, and this one's is missing or "
    "unreadable: the file was cut short, by a copy or an upload that did not finish, or is "
    "not Parquet; write or copy it again"
)


# DuckDB's advice after "... but it exists in the excel extension.": INSTALL and LOAD it,
# or SET autoinstall_known_extensions; up to the excerpt of the query, if any.
_EXTENSION_ADVICE = re.compile(
    r"\.?\n\nPlease try installing and loading the \w+ extension.*?(?=\n\nLINE |\Z)", re.S
)


def _without_extension_advice(message: str) -> str:
    """`message` with DuckDB's advice to install or auto-load an extension replaced by why
    that cannot work: a manifest's query may run neither INSTALL, LOAD nor SET, and loads
    no extension (none is fetched: CI runners may have no network). What this DuckDB
    builds in (json, parquet, ...) is named, so the user knows what a query can use."""
    if _EXTENSION_ADVICE.search(message) is None:
        return message
    advice = (
        " (a manifest's query loads no DuckDB extension: only those built into the duckdb "
        f"package work, {', '.join(_built_in_extensions())}; read the data from a CSV or "
        "Parquet file instead)"
    )
    return _EXTENSION_ADVICE.sub(lambda _: advice, message, count=1)


# A CSV reader error's first line: `Conversion Error: CSV Error on Line: 30002`.
_CSV_ERROR = re.compile(r"CSV Error on Line: \d+")
# What it names the file by, in the dump of the reader's options that follows its advice.
_CSV_FILE = re.compile(r"^  file = (?P<file>.*)$", re.MULTILINE)
# The column a conversion failed in, as DuckDB names it.
_CSV_COLUMN = re.compile(r'^Error when converting column "(?P<column>[^"\n]*)"', re.MULTILINE)


def _without_csv_advice(message: str) -> str:
    """DuckDB's read_csv error in a manifest's query, 25 lines with its advice and a dump
    of the reader's options, without them: its first line (the CSV line) with the file,
    the quoted line (masked in output, shown with --show-members), the reason, and for a
    type the data does not fit, what the query can change. DuckDB's advice names a COPY
    statement, which a manifest's query cannot run, and ignore_errors, which would drop
    members without a word; the options are noise. Any other message is returned as it
    is."""
    head, excerpt, tail = message.partition("\n\nLINE ")
    lines = head.split("\n")
    if not _CSV_ERROR.search(lines[0]):
        return message
    reasons = [
        i
        for i, line in enumerate(lines)
        if i and line.startswith((*DUCKDB_CSV_REASONS, "Error when converting"))
    ]
    file = _CSV_FILE.search(head)
    kept = [lines[0] + (f" of {file['file'].strip()}" if file else "")]
    if reasons:
        # The last: a member's value could read like one, DuckDB's comes after. The quoted
        # line is kept whole before it, as the masking of output finds it.
        reason = reasons[-1]
        if lines[1].startswith("Original Line:"):
            kept += lines[1:reason]
        kept.append(lines[reason].strip())
    column = _CSV_COLUMN.search(head)
    if column is not None:
        kept[-1] += _type_hint(column["column"], "auto-detected" in head)
    return "\n".join(kept) + (excerpt + tail if excerpt else "")


def _type_hint(column: str, guessed: bool) -> str:
    """What a query can change when a CSV column's values do not fit its type: the type
    (read_csv's `types`), or, when DuckDB guessed it from a sample, the sample."""
    name = column.replace("'", "''")
    why = "the column type was guessed from the first rows" if guessed else "the query sets it"
    hint = f" ({why}: set one the data fits, read_csv(..., types={{'{name}': 'VARCHAR'}})"
    if guessed:
        hint += ", or have it guessed from every row, read_csv(..., sample_size=-1)"
    return hint + ")"


def _built_in_extensions() -> list[str]:
    """The extensions this duckdb package links in (core_functions, icu, json, parquet
    in the PyPI wheels): asked of DuckDB, since other builds link in others."""
    with connect() as connection:
        rows = connection.execute(
            "SELECT extension_name FROM duckdb_extensions() "
            "WHERE install_mode = 'STATICALLY_LINKED' ORDER BY extension_name"
        ).fetchall()
    return [str(row[0]) for row in rows]


_REFUSED_PATH = re.compile(r'Cannot access (?:file|directory) "([^"]+)"')
# What makes a path a pattern to DuckDB's glob.
_PATTERN = re.compile(r"[*?\[]")


def _climbing_out(message: str, repository: Path, base_dir: Path | None) -> str:
    """Advice for a relative path that `..` leads out of the repository from the working
    directory, where DuckDB looks first and refuses, though from the manifest's directory
    it names a file in the repository (a manifest in teams/growth/ reading
    ../../data/x.csv): the spelling that works from here, or "" for another refusal."""
    found = _REFUSED_PATH.search(message)
    if found is None or base_dir is None:
        return ""
    written = found.group(1)
    if Path(written).is_absolute() or ".." not in Path(written).parts:
        return ""
    root = real_path(repository)
    from_here = Path(os.path.normpath(Path.cwd() / written))
    meant = Path(os.path.normpath(base_dir.absolute() / written))
    if from_here.is_relative_to(root) or not meant.is_relative_to(root):
        return ""
    said = (
        f"; {written!r} is looked for from the working directory first, where it leads out "
        "of the repository, so it is refused before it is looked for beside the manifest"
    )
    if _PATTERN.search(written):
        # DuckDB matches a pattern beside the manifest only: no spelling from the working
        # directory finds it (the advice below for a file's name led to 'No files found').
        return said + _pattern_advice(_matches(meant, root), base_dir, root)
    return (
        f"{said}: write it as {os.path.relpath(meant, Path.cwd().absolute())!r}, from the "
        "working directory, and run reconciler there"
    )


def _pattern_advice(files: list[Path], base_dir: Path, root: Path) -> str:
    """What to write for a pattern whose files (`files`, some of them) DuckDB cannot reach:
    it matches a pattern from the manifest's directory only, never from the working
    directory, and refuses a `..` that leaves the repository from the working directory.
    The files are named from the repository's top, where CI and pre-commit run."""
    listed = ", ".join(repr(f.relative_to(root).as_posix()) for f in files[:2])
    names = f", in a list: [{listed}{', ...' if len(files) > 2 else ''}]" if files else ""
    return (
        "; DuckDB matches a pattern (*, ?, [) only from the manifest's directory "
        f"{display_path(base_dir)}, never from the working directory, so it reaches only "
        "files below that directory: keep the files there, or name them one by one from "
        f"the repository's top{names}"
    )


def _matches(pattern: Path, root: Path) -> list[Path]:
    """The first few files, in order, that the absolute `pattern` matches where a query
    may read them (readable_paths: never a name outside the repository, in .git, or at its
    top untracked, such as the credentials a CI step writes there)."""
    try:
        directories, files = readable_paths(root)
        found = sorted(
            real_path(Path(name))
            for name, _ in zip(glob.iglob(str(pattern), recursive=True), range(1000), strict=False)
        )
    except (OSError, ValueError, LinkOutOfRepository, RepositoryTooLarge):
        return []
    return [
        path
        for path in found
        if path.is_file()
        and (str(path) in files or any(str(path).startswith(d) for d in directories))
    ][:3]


_NOT_FOUND = re.compile(r'No files found that match the pattern "([^"]+)"$')


def _not_found_here(message: str, repository: Path, base_dir: Path | None) -> str:
    """Advice for a relative path DuckDB found nothing for where it names files in the
    repository: a file's name from the repository's top, run from below it (`cd manifests
    && reconciler validate .`), as DuckDB looks for it from the working directory and
    beside the manifest only; a pattern written from the working directory or the top,
    which DuckDB matches beside the manifest only. "" for another error."""
    found = _NOT_FOUND.search(message)
    if found is None or base_dir is None:
        return ""
    written = found.group(1)
    parts = Path(written).parts
    # Only where the query may read: never a word on what lies outside or in .git.
    if not parts or Path(written).is_absolute() or ".." in parts or parts[0] in PRIVATE_ENTRIES:
        return ""
    root = real_path(repository)
    here = real_path(Path.cwd())
    if _PATTERN.search(written):
        starts = [here] if here.is_relative_to(root) else []
        files = next((m for start in (*starts, root) if (m := _matches(start / written, root))), [])
        return (
            f" ({written!r} names files in the repository{_pattern_advice(files, base_dir, root)})"
            if files
            else ""
        )
    if here == root or not (root / written).is_file():
        return ""
    return (
        f" ({written!r} is looked for from the working directory and beside the manifest; "
        f"from the repository's top {root} it names a file: run reconciler there, as CI and "
        "pre-commit do)"
    )


def open_connection(
    database: str,
    base_dir: Path,
    declared_at: object,
    repository: Path,
    writable: Path | None = None,
    memory_bytes: int | None = None,
    readable: Sequence[Path] = (),
    key_files: Sequence[Path] = (),
) -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection for a manifest's query (see the module docstring).

    It may read the repository's files (`readable_paths`), `readable` (reconciler's own
    snapshots of source files) and `writable`, a directory of reconciler's own for a
    query's result (and DuckDB's spill files, within `memory_bytes`), and nothing else.
    Every file it opens is logged, to check none changed while it was read."""
    try:
        directories, files = readable_paths(repository, base_dir)
    except LinkOutOfRepository as link:
        raise SourceError(
            f"{declared_at}: the repository {repository} has a symbolic link {link.link} to "
            f"{link.target}, {link.why}; reconciler runs no query while one exists, since "
            "the query could read through it"
        ) from None
    except RepositoryTooLarge:
        raise SourceError(
            f"{declared_at}: {repository}, taken as the repository because no .git was "
            f"found above the manifests, has more than {MAX_WALKED_ENTRIES:,} entries to "
            "check for symbolic links leading out; keep the manifests in a git repository "
            "(its tracked links are checked instead)"
        ) from None
    _refuse_readable_keys(key_files, directories, files, declared_at)
    if writable is not None:
        directories = (*directories, f"{writable}/")
    files = (*files, *(str(path) for path in readable))
    stands_in = stand_in(Path(database)) if database != IN_MEMORY else None
    if stands_in is not None:
        raise SourceError(f"{declared_at}: DuckDB database {database} {stands_in}")
    try:
        # A database file is only read: reconciler never changes a member source. No
        # extension may be fetched or loaded, whatever the query names (connect's config).
        connection = connect(database, read_only=database != IN_MEMORY)
    except duckdb.Error as exc:
        raise SourceError(f"{declared_at}: cannot open DuckDB database {database}: {exc}") from None
    try:
        # stdout carries the plan (--format json): DuckDB's progress bar must not.
        connection.execute("SET enable_progress_bar = false")
        connection.execute(UTC_SESSION)
        # The files a query opens, to check afterwards that none changed meanwhile.
        connection.execute("CALL enable_logging('FileSystem')")
        connection.execute(f"SET allowed_directories = {_list_literal(directories)}")
        connection.execute(f"SET allowed_paths = {_list_literal(files)}")
        connection.execute(f"SET file_search_path = {_string_literal(str(base_dir))}")
        # Spill files go to reconciler's own directory, or nowhere: DuckDB's default is
        # `.tmp` in the working directory, inside the repository.
        spill = str(writable) if writable is not None else ""
        connection.execute(f"SET temp_directory = {_string_literal(spill)}")
        from reconciler.members.engine.settings import EngineSettings

        settings = EngineSettings.from_env()
        if memory_bytes is None:
            # Not DuckDB's default of 80% of the machine: a manifest's query must not take
            # gigabytes of a CI runner before its timeout, so it gets what a plan's DuckDB
            # workspace may use (RECONCILER_MEMORY_LIMIT's share), and spills beyond it
            # into `writable` (bounded_connection makes one), or fails without one.
            memory_bytes = settings.duckdb_memory_bytes
        connection.execute(f"SET memory_limit = '{int(memory_bytes)}B'")
        # Nor its disk: DuckDB's default lets spill files take 90% of the free disk.
        connection.execute(f"SET max_temp_directory_size = '{settings.query_spill_bytes}B'")
        # Python objects are not tables: a query naming one must not read the process.
        connection.execute("SET python_enable_replacements = false")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


def _refuse_readable_keys(
    key_files: Sequence[Path], directories: Sequence[str], files: Sequence[str], declared_at: object
) -> None:
    """SourceError when a query could read an API key file: one kept beside the manifests
    (git-ignored, but under a directory git tracks, or in a repository without git) is
    inside what a query may read, and `SELECT content AS userId FROM read_text('key')` made
    the key member data, printed with --show-members, saved in a plan file and sent to
    Iterable. The query is not run at all: what it reads is known only after it ran, and
    an error it raises may quote what it read."""
    # As paths, not text: a directory is written with a `/` after it, also on Windows.
    readable = [Path(directory.rstrip("/")) for directory in directories]
    for key_file in key_files:
        where = real_path(key_file)
        if str(where) in files or any(where.is_relative_to(place) for place in readable):
            raise SourceError(
                f"{declared_at}: an API key file ({display_path(key_file)}, a destination's "
                "apiKey) is inside the repository where this query could read it, so the "
                "query is not run; keep key files outside the repository (or untracked at "
                "its top, as .secrets/key), or use apiKey: {env: VARIABLE}"
            )


@contextmanager
def bounded_connection(
    database: str,
    base_dir: Path,
    declared_at: object,
    repository: Path,
    writable: Path | None = None,
    memory_bytes: int | None = None,
    readable: Sequence[Path] = (),
    audience: str = "",
    record: Callable[[Path, FileState], None] | None = None,
    key_files: Sequence[Path] = (),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`open_connection`, interrupted once RECONCILER_QUERY_TIMEOUT seconds have passed
    (DuckDB then raises InterruptException, which `query_error` words), closed on exit.

    When the query ran, every file it opened in the repository (the database file
    included) is checked not to have changed since the connection opened
    (SourceChangedError): such files are known only once the query has opened them, so
    they are judged by their change times against the file system's own clock when the
    read began, not copied first as CSV and Parquet sources are. Those
    inside the repository are then handed to `record` with their state as read."""
    seconds = query_timeout()
    began = file_system_clock()
    database_before = file_state(database) if database != IN_MEMORY else None
    spill: Path | None = None
    if writable is None:
        # Somewhere of reconciler's own for DuckDB's spill files, so that a query past the
        # memory limit spills there (not into `.tmp` in the repository) rather than fail.
        try:
            spill = private_directory("query", temp_dir_setting())
        except OSError as exc:
            raise SourceError(
                f"{declared_at}: cannot make a directory for the query's spill files: "
                f"{exc.strerror}; {TEMP_DIR_VARIABLE} chooses another place"
            ) from None
        writable = spill
    try:
        connection = open_connection(
            database, base_dir, declared_at, repository, writable, memory_bytes, readable, key_files
        )
    except BaseException:
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
        raise
    # What the query writes (its result, for the DuckDB engine, and its spill files) may
    # take no more disk than its spill files alone: COPY's output is not DuckDB's to bound.
    most = _query_disk_bytes()
    directory = writable
    assert directory is not None
    guard = QueryGuard(seconds, connection.interrupt, lambda: directory_bytes(directory) > most)
    try:
        try:
            yield connection
        except BaseException as exc:
            guard.stop()  # reads a signal DuckDB saw before the guard's thread did
            if guard.signalled:
                # DuckDB turns the interrupt into its own error (InterruptException, taken
                # for the time limit, or "RuntimeError: Query interrupted"): it was Ctrl-C.
                raise KeyboardInterrupt from None
            if guard.overflowed:
                raise SourceError(
                    f"{declared_at}: cannot read the query: what it wrote to disk (its result "
                    f"and spill files) passed {most:,} bytes, {engine_settings.QUERY_SPILL_FACTOR} "
                    "times RECONCILER_MEMORY_LIMIT; make the query lighter, or raise the limit"
                ) from None
            if isinstance(exc, duckdb.Error | SourceError) and not isinstance(
                exc, duckdb.InterruptException | QueryTimedOut | SourceChangedError
            ):
                # A query over a file the checkout left as a pointer fails as if its SQL
                # were wrong ("column email not found"): the file is the cause to name.
                _refuse_stand_ins(connection, base_dir, declared_at, readable)
            raise
        # The caller's queries are over: from here on the time limit must not interrupt
        # reconciler's own bookkeeping (the log of opened files), which would escape as
        # DuckDB's raw InterruptException, an internal error, for a query that finished
        # just in time.
        guard.stop()
        if guard.signalled:
            raise KeyboardInterrupt  # DuckDB may have swallowed it, the query done anyway
        # One that succeeded read the pointer's lines as rows (of invalid emails).
        _refuse_stand_ins(connection, base_dir, declared_at, readable)
        read = _files_read(
            connection,
            _Opened(database, database_before, base_dir, repository, readable, writable, began),
            declared_at,
            audience,
        )
        if record is not None:
            for path, state in read.items():
                record(path, state)
    finally:
        guard.stop()
        connection.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


@dataclass(frozen=True)
class _Opened:
    """What a query's connection was opened over, for the check of the files it read."""

    database: str
    database_before: FileState | None
    base_dir: Path
    repository: Path
    readable: Sequence[Path]
    writable: Path | None
    began: int


def _files_read(
    connection: duckdb.DuckDBPyConnection, opened: _Opened, declared_at: object, audience: str
) -> dict[Path, FileState]:
    """Every repository file the finished query opened (its database file included), with
    its state as read; SourceChangedError if any changed since the read began."""
    ours = {str(path) for path in opened.readable}
    read: dict[Path, FileState] = {}
    changed = []
    for path in _opened_files(connection, opened.base_dir):
        if str(path) in ours or (opened.writable is not None and is_inside(path, opened.writable)):
            continue
        # Its state first, then the check: what is recorded is a state the query read.
        state = file_state(str(path))
        # The change time alone: any write sets it to now, and nothing sets it back. A
        # modification time can be anything (`unzip` of an archive made where the clock
        # reads later, `touch -d`, `cp -p` from a share whose clock runs ahead): one
        # ahead of the clock would refuse an untouched file on every run.
        if state is None or state[3] > opened.began:
            changed.append((path, "it was written to"))
        elif is_inside(path, opened.repository):  # all a query may read (open_connection)
            read[path] = state
    if opened.database_before is not None:
        if file_state(opened.database) != opened.database_before:
            changed.append((Path(opened.database), "it was written to"))
        else:
            read[Path(opened.database)] = opened.database_before
    if changed:
        path, what = changed[0]
        who = f"audience {audience!r}: " if audience else ""
        raise SourceChangedError(
            f"{declared_at}: {who}guard source_changed: {display_path(path)} changed while "
            f"the query read it ({what}); nothing was planned or changed. Run again once "
            "whatever writes it has finished (no override: no plan is made from a file "
            "that was half rewritten)"
        )
    return read


def _query_disk_bytes() -> int:
    return engine_settings.EngineSettings.from_env().query_spill_bytes


def directory_bytes(directory: Path) -> int:
    """The bytes of the files under `directory` now (files going as it is walked skipped)."""
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    total += directory_bytes(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _refuse_stand_ins(
    connection: duckdb.DuckDBPyConnection,
    base_dir: Path,
    declared_at: object,
    readable: Sequence[Path],
) -> None:
    """SourceError for the first file a query opened that stands in for content the
    checkout lacks (manifest/stand_in.py); reconciler's own snapshots were checked when
    they were taken."""
    ours = {str(path) for path in readable}
    for path in _opened_files(connection, base_dir):
        stands_in = None if str(path) in ours else stand_in(path)
        if stands_in is not None:
            raise SourceError(
                f"{declared_at}: {display_path(path)}, read by the query, {stands_in}"
            ) from None


def _opened_files(connection: duckdb.DuckDBPyConnection, base_dir: Path) -> list[Path]:
    """The local files the connection opened, as paths that exist now (DuckDB looks for a
    relative path from the working directory first, then from `file_search_path`)."""
    # Parenthesised: DuckDB 1.4-1.5 bound ->> more loosely than AND, reading the condition
    # as (... AND message)->>('op' = 'OPEN'), a cast of the JSON text to BOOL that failed.
    rows = connection.execute(
        "SELECT DISTINCT (message->>'path') FROM duckdb_logs "
        "WHERE type = 'FileSystem' AND (message->>'op') = 'OPEN'"
    ).fetchall()
    found = []
    for (name,) in rows:
        path = Path(name)
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, base_dir / path]
        existing = next((c for c in candidates if c.exists()), None)
        if existing is not None:
            found.append(existing)
    return found


def _list_literal(items: Sequence[str]) -> str:
    return "[" + ", ".join(_string_literal(item) for item in items) + "]::VARCHAR[]"


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
