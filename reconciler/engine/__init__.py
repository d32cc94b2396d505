"""Member sets at scale: above a size threshold an audience is planned in DuckDB.

Below the threshold (about a million members) members are Python objects and the planner
diffs Python sets, which is quickest for small audiences and keeps every detail (trait
mappings, per-row messages). Above it, source rows and the bodies of getUsers go to disk,
DuckDB validates and deduplicates them and computes adds and removes with anti-joins under
a memory limit (spilling to disk beyond it), and apply streams the results in batches: a
ten-million-member audience is never ten million Python objects.
"""

from reconciler.engine.settings import EngineSettings
from reconciler.engine.workspace import Engine

__all__ = ["Engine", "EngineSettings"]
