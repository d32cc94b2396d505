"""The one place that looks at which kind of source an audience declares.

Everything else asks the Source it gets here. One Source is made per audience object (a
loaded manifest lives for one run), so a file is snapshotted once per run whoever asks.
"""

from __future__ import annotations

from reconciler.errors import SourceError
from reconciler.manifest.manifests import Audience
from reconciler.members.identity import ProjectType
from reconciler.sources.base import Source
from reconciler.sources.result import SourceResult

# Where an audience keeps its source: in the audience object's own __dict__, as
# functools.cached_property keeps a value (frozen dataclasses allow it), so the source and
# the snapshots of its files live exactly as long as the loaded manifests.
_ATTRIBUTE = "_member_source"


def source_for(audience: Audience) -> Source:
    """The audience's source, made on first use and kept while the audience lives."""
    kept = vars(audience)
    source = kept.get(_ATTRIBUTE)
    if source is None:
        source = kept[_ATTRIBUTE] = _make(audience)
    assert isinstance(source, Source)
    return source


def read_members(audience: Audience, project_type: ProjectType) -> SourceResult:
    return source_for(audience).read(project_type)


def _make(audience: Audience) -> Source:
    members = audience.spec.members
    # Imported here: DuckDB and SQLAlchemy load only for audiences that use them.
    if members.inline is not None:
        from reconciler.sources.inline import Inline

        return Inline(audience)
    if members.csv is not None:
        from reconciler.sources.csv_file import CsvFile

        return CsvFile(audience)
    if members.parquet is not None:
        from reconciler.sources.parquet import ParquetFile

        return ParquetFile(audience)
    if members.sql is not None and members.url is not None:
        from reconciler.sources.warehouse import Warehouse

        return Warehouse(audience)
    if members.sql is not None:
        from reconciler.sources.sql import DuckDbQuery

        return DuckDbQuery(audience)
    raise SourceError(f"{audience.location}: audience {audience.name!r} declares no members")
