"""How psycopg loads a manifest's query's values: as PostgreSQL means them, where psycopg's
own loaders would fail the query or keep what PostgreSQL counts as no part of the value."""

from __future__ import annotations

from typing import Any

# PostgreSQL's date and timestamp types hold what Python's cannot: `infinity` and
# `-infinity` (a common "valid until" value), years past 9999, years BC.
_DATE_TYPES = ("date", "timestamp", "timestamptz")


def load_values_as_postgresql_gives_them(connection: Any, _record: Any) -> None:
    """A SQLAlchemy `connect` listener for a psycopg connection: its dates and its
    `char(n)` values are loaded as below; any other value as psycopg loads it."""
    _dates_beyond_python_as_text(connection)
    _char_without_padding(connection)


def _dates_beyond_python_as_text(connection: Any) -> None:
    """psycopg refuses such a value with an error that ends the whole query, so one
    `infinity` anywhere in a selected column failed the audience, mapped or not. They
    come as PostgreSQL's text of them instead ('infinity'): a mapping with `type: date`
    reports that one value and the members go ahead; any other value is loaded as before."""
    from psycopg.pq import Format

    for name in _DATE_TYPES:
        info = connection.adapters.types.get(name)
        if info is None:
            continue
        loader = connection.adapters.get_loader(info.oid, Format.TEXT)
        if loader is not None:
            connection.adapters.register_loader(info.oid, _text_beyond_python(loader))


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
    from psycopg.pq import Format

    info = connection.adapters.types.get("bpchar")
    if info is None:
        return
    loader = connection.adapters.get_loader(info.oid, Format.TEXT)
    if loader is not None:
        connection.adapters.register_loader(info.oid, _unpadded(loader))


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
