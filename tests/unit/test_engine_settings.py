"""Which engine `auto` picks for an audience, by its source rows (members/engine/settings.py)."""

from __future__ import annotations

from reconciler.members.model import EngineSettings


def test_auto_picks_duckdb_from_ten_thousand_rows_and_a_million_for_trait_mappings() -> None:
    settings = EngineSettings.from_env({})
    assert not settings.use_duckdb(9_999)
    assert settings.use_duckdb(10_000)
    assert not settings.use_duckdb(999_999, traits=True)
    assert settings.use_duckdb(1_000_000, traits=True)
    assert not settings.use_duckdb(None)  # a size that is not cheap to know: Python


def test_a_threshold_set_in_the_environment_holds_for_both() -> None:
    settings = EngineSettings.from_env({"RECONCILER_ENGINE_THRESHOLD": "500"})
    assert (settings.threshold, settings.traits_threshold) == (500, 500)
    assert settings.use_duckdb(500) and settings.use_duckdb(500, traits=True)
    assert not settings.use_duckdb(499, traits=True)


def test_a_forced_engine_ignores_the_thresholds() -> None:
    python = EngineSettings.from_env({"RECONCILER_ENGINE": "python"})
    duckdb = EngineSettings.from_env({"RECONCILER_ENGINE": "duckdb"})
    assert not python.use_duckdb(10**9, traits=True)
    assert duckdb.use_duckdb(1) and duckdb.use_duckdb(1, traits=True)
