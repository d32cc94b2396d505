"""A query's text as written in a manifest, made fit to wrap in a subquery.

Both query kinds (`database:` in DuckDB, `url:` at a server) run a manifest's query inside
another (`SELECT count(*) FROM (...)`, DuckDB's typed read), where what may end a query on
its own (a `;`, a `-- comment` after it) is a syntax error.
"""

from __future__ import annotations

import json
import re

# A dollar-quoted string's opening tag (`$$`, `$body$`), where PostgreSQL reads one.
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")


def statement_text(sql: str, backslashes: bool = False) -> str:
    """The query without the semicolons, comments and spaces after its last token. A `;`
    followed by a comment (`SELECT ...; -- members`) is one complete statement, but inside
    parentheses a syntax error. Quoted strings, quoted names, dollar quotes and (nested)
    block comments are stepped over whole, so a `;` or `--` in them is kept. A wrapper
    still ends the query with a newline: a `-- comment` may remain inside it.
    `backslashes`: a backslash escapes the next character in every string (MySQL's)."""
    end, _ = _scanned(sql, backslashes)
    return sql[:end]


def separated_statements(sql: str, backslashes: bool = False) -> bool:
    """Whether the query holds more than one statement: a `;` outside quoted text and
    comments before its last token (`SELECT ...; DROP TABLE t`, or `SELECT 1) AS q; ...`,
    which would close a wrapping query's parenthesis). `backslashes` as statement_text."""
    end, semicolons = _scanned(sql, backslashes)
    return any(at < end for at in semicolons)


def _scanned(sql: str, backslashes: bool = False) -> tuple[int, list[int]]:
    """Where the query's last token ends, and where each `;` outside quoted text and
    comments is."""
    end, i, size = 0, 0, len(sql)
    semicolons: list[int] = []
    while i < size:
        char = sql[i]
        if char.isspace() or char == ";":
            if char == ";":
                semicolons.append(i)
            i += 1
            continue
        if sql.startswith("--", i):
            line_end = sql.find("\n", i)
            i = size if line_end < 0 else line_end + 1
            continue
        if sql.startswith("/*", i):
            i = _block_comment_end(sql, i)
            continue
        tag = _DOLLAR_TAG.match(sql, i) if char == "$" and not _in_name(sql, i) else None
        if char in "'\"`":
            i = _quoted_end(sql, i, backslashes)
        elif tag is not None:
            close = sql.find(tag.group(), tag.end())
            i = size if close < 0 else close + len(tag.group())
        else:
            i += 1
        end = i
    return end, semicolons


def _in_name(sql: str, i: int) -> bool:
    # `a$1$`: a `$` inside a name (PostgreSQL allows them) opens no dollar quote.
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$")


def _quoted_end(sql: str, start: int, backslashes: bool = False) -> int:
    """Past the string or quoted name opening at `start`; a doubled quote stays inside,
    and in an E'...' string (or any string, `backslashes`: MySQL's, whose `"..."` is a
    string too) so does a backslash-escaped one."""
    quote = sql[start]
    escapes = (backslashes and quote in "'\"") or (
        quote == "'" and start > 0 and sql[start - 1] in "eE" and not _in_name(sql, start - 1)
    )
    i = start + 1
    while i < len(sql):
        if escapes and sql[i] == "\\":
            i += 2
        elif sql[i] != quote:
            i += 1
        elif sql.startswith(quote * 2, i):
            i += 2
        else:
            return i + 1
    return len(sql)


def _block_comment_end(sql: str, start: int) -> int:
    """Past the block comment opening at `start` (PostgreSQL's nest)."""
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


# `ORDER BY` as a word pair, for a query DuckDB's parser cannot read (another dialect).
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def orders_its_rows(sql: str) -> bool:
    """Whether the query's rows come in an order it sets: an ORDER BY on its outermost
    SELECT (or set operation), read by DuckDB's parser, which is PostgreSQL's grammar, so
    it reads most PostgreSQL queries as well. An ORDER BY only inside a subquery or a
    window orders nothing the query returns. A query it cannot parse (another
    warehouse's dialect) is taken at its word: any ORDER BY in its text counts."""
    import duckdb  # only for a query source, which has it loaded already

    from reconciler.duckdb_connect import connect

    text = statement_text(sql)
    try:
        with connect() as connection:
            found = connection.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
        tree = json.loads(found[0]) if found else {}
        statements = tree.get("statements") or []
        if tree.get("error") or len(statements) != 1:
            raise ValueError(tree.get("error_message", "no single statement"))
        modifiers = statements[0]["node"].get("modifiers") or []
    except (duckdb.Error, ValueError, KeyError, TypeError, AttributeError):
        return _ORDER_BY.search(_without_quoted(text)) is not None
    return any(m.get("type") == "ORDER_MODIFIER" for m in modifiers if isinstance(m, dict))


def _without_quoted(sql: str) -> str:
    """The query with its strings, quoted names and comments blanked out: an `order by`
    inside one orders nothing."""
    out, i = [], 0
    while i < len(sql):
        if sql[i] in "'\"`":
            end = _quoted_end(sql, i)
        elif sql.startswith("--", i):
            line_end = sql.find("\n", i)
            end = len(sql) if line_end < 0 else line_end
        elif sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
        else:
            out.append(sql[i])
            i += 1
            continue
        out.append(" ")
        i = end
    return "".join(out)
