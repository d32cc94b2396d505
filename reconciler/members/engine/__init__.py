"""Member sets at scale: above a size threshold an audience is planned in DuckDB.

Below the threshold (about a million members) members are Python objects and the planner
diffs Python sets, which is quickest for small audiences and keeps every row's message.
Above it, DuckDB reads and checks the source where it is, the bodies of getUsers (or the
user export) stream to files, adds and removes come from a join under a memory limit
(spilling to disk beyond it), trait-mapped values are made in batches into tables and
compared a batch at a time (field_tables.py), and apply streams them in batches: a
ten-million-member audience is never ten million Python objects.
"""

from reconciler.members.engine.settings import EngineSettings
from reconciler.members.engine.workspace import Engine

__all__ = ["Engine", "EngineSettings"]
