"""How psycopg loads a manifest's query's values: as PostgreSQL means them, where psycopg's
own loaders would fail the query or keep what PostgreSQL counts as no part of the value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# PostgreSQL's date and timestamp types hold what Python's cannot: `infinity` and
# `-infinity` (a common "valid until" value), years past 9999, years BC.
_DATE_TYPES = ("date", "timestamp", "timestamptz")


def load_values_as_postgresql_gives_them(connection: Any, _record: Any) -> None:
    """A SQLAlchemy `connect` listener for a psycopg connection: its dates, its `char(n)`
    values and its arrays of enums and domains are loaded as below; any other value as
    psycopg loads it."""
    _dates_beyond_python_as_text(connection)
    _char_without_padding(connection)
    _arrays_psycopg_does_not_know(connection)  # after char(n): a domain may be one


def _dates_beyond_python_as_text(connection: Any) -> None:
    """psycopg refuses such a value with an error that ends the whole query, so one
    `infinity` anywhere in a selected column failed the audience, mapped or not. They
    come as PostgreSQL's text of them instead ('infinity'): a mapping with `type: date`
    reports that one value and the members go ahead; any other value is loaded as before."""
    for name in _DATE_TYPES:
        _wrap_loader(connection, name, _text_beyond_python)


def _wrap_loader(
    connection: Any, type_name: str, wrapper: Callable[[type[Any]], type[Any]]
) -> None:
    """Register, for the type `type_name`, `wrapper` around psycopg's own text loader of it."""
    from psycopg.pq import Format

    info = connection.adapters.types.get(type_name)
    if info is None:
        return
    loader = connection.adapters.get_loader(info.oid, Format.TEXT)
    if loader is not None:
        connection.adapters.register_loader(info.oid, wrapper(loader))


def _text_beyond_python(base: type[Any]) -> type[Any]:
    # psycopg's C loaders cannot be subclassed: the fallback wraps one instead.
    import psycopg
    from psycopg.adapt import Loader

    class TextBeyondPython(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._loader = base(oid, context)

        def load(self, data: Any) -> Any:
            try:
                return self._loader.load(data)
            except psycopg.DataError:
                return bytes(data).decode("utf-8", "replace")

    return TextBeyondPython


def _char_without_padding(connection: Any) -> None:
    """A `char(n)` (bpchar) value comes padded with spaces to n characters, which
    PostgreSQL holds insignificant: it compares `'usr-1'::char(10) = 'usr-1'` true, and its
    cast to text drops them. psycopg kept them, so a legacy `user_id CHAR(10)` column gave
    'usr-1     ', a userId ending in a space that every row was skipped for, and a mapped
    `char(5)` tier was sent as 'gold ', which no segment on 'gold' matches. Such values
    (in arrays too) now come as the cast to text gives them."""
    _wrap_loader(connection, "bpchar", _unpadded)


def _unpadded(base: type[Any]) -> type[Any]:
    from psycopg.adapt import Loader

    class Unpadded(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._loader = base(oid, context)

        def load(self, data: Any) -> Any:
            value = self._loader.load(data)
            # Spaces only: PostgreSQL's bpchar-to-text cast keeps a trailing tab or newline.
            return value.rstrip(" ") if isinstance(value, str) else value

    return Unpadded


# Every base type, enum and domain of the database that has an array type: its name, its
# OID, its array's OID, whether it is a domain and the type a domain is of, and the
# delimiter of its arrays' text.
_TYPES_WITH_ARRAYS = (
    "SELECT t.typname, t.oid::int8, t.typarray::int8, t.typtype = 'd', t.typbasetype::int8, "
    "t.typdelim FROM pg_catalog.pg_type t WHERE t.typtype IN ('b', 'e', 'd') "
    "AND t.typarray <> 0"
)


def _arrays_psycopg_does_not_know(connection: Any) -> None:
    """psycopg knows the array types of PostgreSQL's own types only: an array of an enum
    (`interests interest[]`), of a domain or of an extension's type (`citext[]`) came as
    the text of PostgreSQL's array literal, '{sports,music}', which a mapping sent as one
    string (typing a new field as text for good), `type: list` refused as no JSON, and an
    identifier column took as an id. Each such array is loaded as a list, its items as
    psycopg loads the type (the domain's type; text where it knows none)."""
    import psycopg
    from psycopg.pq import Format
    from psycopg.types import TypeInfo
    from psycopg.types.array import register_array

    try:
        with connection.cursor() as cursor:
            cursor.execute(_TYPES_WITH_ARRAYS)
            types = cursor.fetchall()
    except psycopg.Error:
        # A server speaking PostgreSQL's protocol with a catalog of its own (Redshift's
        # pg_type has no typarray): its values are loaded as psycopg loads them.
        types = []
    connection.rollback()  # no transaction left open for the query's own settings
    domains = {oid: base for _, oid, _, is_domain, base, _ in types if is_domain}
    for name, oid, array_oid, is_domain, _, delimiter in types:
        if connection.adapters.get_loader(array_oid, Format.TEXT) is not None:
            continue  # int4[], text[], ...: psycopg's own
        if is_domain:
            base = oid
            while base in domains:  # a domain of a domain: the type at the bottom
                base = domains[base]
            loader = connection.adapters.get_loader(base, Format.TEXT)
            if loader is not None:
                connection.adapters.register_loader(oid, loader)
        # Items of a type psycopg does not know (an enum's, citext's) come as text.
        register_array(TypeInfo(name, oid, array_oid, delimiter=delimiter), connection)
