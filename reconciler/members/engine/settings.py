"""Which engine plans an audience, and how much memory and disk DuckDB may use.

Read from the environment like the client's settings (RECONCILER_<NAME>):

    RECONCILER_ENGINE               auto (default), python or duckdb
    RECONCILER_ENGINE_THRESHOLD     members (source rows) from which auto picks DuckDB; 10000,
                                    and 1000000 for audiences with a trait mapping of up to
                                    3 fields, proportionally fewer for more fields (when set,
                                    it is the threshold for both)
    RECONCILER_MEMORY_LIMIT         memory a plan may use, e.g. 1GB (default), 500MB; DuckDB
                                    gets 55% of it, the rest is Python's and the HTTP client's
    RECONCILER_DUCKDB_THREADS       DuckDB's worker threads; default: one per core
    RECONCILER_DUCKDB_TEMP_DIR      where DuckDB's working files go; default: the system's
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.env_numbers import COUNT, NumberRule, env_int, is_unset
from reconciler.errors import ConfigError, quoted
from reconciler.sources.snapshot import temp_dir_setting

ENGINES = ("auto", "python", "duckdb")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
# DuckDB's limit covers its own buffers only; the interpreter, the HTTP client and the
# rows in flight need the rest (measured: a 10M plan peaks about 110 MB above DuckDB's
# limit). 55% keeps a 10M email plan under 700 MB at the default 1GB (issue 17; 70% gave
# 806 MB), at the cost of one more pass of the join with the list.
DUCKDB_SHARE = 0.55
# DuckDB refuses a memory limit much above this (9.2e18 bytes); no machine has it.
MAX_MEMORY = 1000 * 1000**4
# DuckDB starts every thread it is given: 100,000 hung the plan starting them, and
# 99,999,999,999 aborted the process (std::bad_alloc). 1,024 start in about 3 s.
MAX_THREADS = 1024
THREADS = NumberRule(whole=True, most=MAX_THREADS)
# A manifest's DuckDB query may spill this many times RECONCILER_MEMORY_LIMIT to disk,
# not DuckDB's default of 90% of the free disk: a hostile DISTINCT over range() wrote
# 130 MB/s, 40 GB within the time limit, filling a laptop running `validate`. The
# heaviest query of a 10M-member audience measured (DISTINCT and ORDER BY over 10M rows
# of three columns, at the default 1GB) spilled 1 GB.
QUERY_SPILL_FACTOR = 10


# The fields of the mapping `traits_threshold` was measured with (bench/plan_traits.py). The
# Python path's memory grows with the values it holds, rows x fields (60,000 rows of a
# 50-field mapping took 1,395 MB there, 678 MB in DuckDB), so a wider mapping takes DuckDB
# from as many values, not rows: 60,000 rows of 50 fields as 1,000,000 rows of 3.
TRAITS_THRESHOLD_FIELDS = 3


@dataclass(frozen=True)
class EngineSettings:
    engine: str = "auto"
    # Measured (bench/plan_apply.py N --load seed --churn removes, each engine forced): the
    # Python engine checks a row in about 12 µs, DuckDB's plan costs about the same at 5,000
    # members and less from 20,000 (50,000: 1.1-1.2 s against 1.5-1.7 s; 990,000: about
    # 1 s against 13 s). Trait-mapped audiences stay in Python longer: there DuckDB's path
    # trades time for bounded memory (Parquet at 200,000: 34 s against 24 s).
    threshold: int = 10_000
    traits_threshold: int = 1_000_000
    memory_limit: str = "1GB"
    threads: int | None = None
    temp_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineSettings:
        env = os.environ if environ is None else environ
        engine = _text(env, "RECONCILER_ENGINE", cls.engine)
        if engine not in ENGINES:
            raise ConfigError(
                f"RECONCILER_ENGINE must be one of {', '.join(ENGINES)}; got {quoted(engine)}"
            )
        threshold = env_int(env, "RECONCILER_ENGINE_THRESHOLD", cls.threshold, COUNT)
        given = not is_unset(env.get("RECONCILER_ENGINE_THRESHOLD"))
        traits_threshold = threshold if given else cls.traits_threshold
        memory = _text(env, "RECONCILER_MEMORY_LIMIT", cls.memory_limit)
        if not _MEMORY.match(memory) or not 64 * 1000**2 <= _bytes(memory) <= MAX_MEMORY:
            # Above the largest, DuckDB refused the setting: an internal ParserException.
            raise ConfigError(
                f"RECONCILER_MEMORY_LIMIT must be a size from 64MB to 1000TB, such as 500MB "
                f"or 2GB; got {quoted(memory)}"
            )
        threads = env_int(env, "RECONCILER_DUCKDB_THREADS", 0, THREADS) or None
        temp = temp_dir_setting(env)
        return cls(
            engine,
            threshold,
            traits_threshold,
            memory.strip(),
            threads,
            Path(temp) if temp else None,
        )

    @property
    def memory_bytes(self) -> int:
        return int(_bytes(self.memory_limit))

    @property
    def query_spill_bytes(self) -> int:
        """What a manifest's DuckDB query may write to its spill directory."""
        return self.memory_bytes * QUERY_SPILL_FACTOR

    @property
    def duckdb_memory_bytes(self) -> int:
        return int(_bytes(self.memory_limit) * DUCKDB_SHARE)

    def use_duckdb(
        self, rows: int | None, traits: bool = False, fields: int = TRAITS_THRESHOLD_FIELDS
    ) -> bool:
        """`rows` is the source's size when it is cheap to know, else None; `traits`: the
        audience has a trait mapping, of `fields` fields."""
        if self.engine != "auto":
            return self.engine == "duckdb"
        if rows is None or not traits:
            return rows is not None and rows >= self.threshold
        wide = max(fields, TRAITS_THRESHOLD_FIELDS)
        return rows * wide >= self.traits_threshold * TRAITS_THRESHOLD_FIELDS


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable's value, or `default` when unset, empty or blank (as env_numbers reads
    a number)."""
    raw = env.get(name)
    return default if raw is None or is_unset(raw) else raw


def _bytes(size: str) -> float:
    match = _MEMORY.match(size)
    assert match is not None
    return float(match.group(1)) * _UNITS[match.group(2).lower()]
