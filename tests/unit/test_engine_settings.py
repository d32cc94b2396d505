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


def test_a_wide_trait_mapping_takes_duckdb_from_as_many_values_not_rows() -> None:
    # The Python path holds every mapped value: 60,000 rows of 50 fields took 1.4 GB there,
    # as many values as 1,000,000 rows of the 3-field mapping the threshold was measured with.
    settings = EngineSettings.from_env({})
    assert settings.use_duckdb(60_000, traits=True, fields=50)
    assert not settings.use_duckdb(59_999, traits=True, fields=50)
    assert settings.use_duckdb(750_000, traits=True, fields=4)
    # A narrower mapping is not held in Python longer, and the member threshold is untouched.
    assert not settings.use_duckdb(999_999, traits=True, fields=1)
    assert settings.use_duckdb(1_000_000, traits=True, fields=1)
    assert settings.use_duckdb(10_000, fields=50)


def test_an_audience_is_planned_at_scale_by_its_mapping_s_width(tmp_path) -> None:
    from reconciler.manifest.loader import load_manifests
    from reconciler.members.model import Engine
    from reconciler.state.desired import at_scale

    rows = 60_000
    (tmp_path / "m.csv").write_text(
        "email,c\n" + "".join(f"u{i}@example.com,{i}\n" for i in range(rows))
    )
    fields = "".join(f"    f{j}: c\n" for j in range(50))
    (tmp_path / "all.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: d}\n"
        "spec: {region: sandbox, projectType: email}\n---\n"
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: wide}\n"
        f"spec:\n  fields:\n{fields}---\n"
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: narrow}\n"
        "spec:\n  fields: {f0: c}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\n"
        "spec: {destination: d, traits: wide, members: {csv: m.csv}}\n---\n"
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: b}\n"
        "spec: {destination: d, traits: narrow, members: {csv: m.csv}}\n"
    )
    manifests = load_manifests(tmp_path)
    engine = Engine(EngineSettings.from_env({}))
    assert at_scale(engine, manifests.audiences["a"], manifests)
    assert not at_scale(engine, manifests.audiences["b"], manifests)


def test_a_memory_limit_or_thread_count_duckdb_cannot_take_is_refused_naming_it() -> None:
    """RECONCILER_MEMORY_LIMIT=99999999TB ended plan in an internal ParserException from
    DuckDB; RECONCILER_DUCKDB_THREADS=100000 hung the plan starting threads, and
    99999999999 aborted the process (std::bad_alloc, a core dump)."""
    import pytest

    from reconciler.errors import ConfigError

    with pytest.raises(ConfigError, match=r"RECONCILER_MEMORY_LIMIT must be a size from 64MB"):
        EngineSettings.from_env({"RECONCILER_MEMORY_LIMIT": "99999999TB"})
    assert EngineSettings.from_env({"RECONCILER_MEMORY_LIMIT": "1000TB"}).memory_limit == "1000TB"
    for threads in ("100000", "99999999999"):
        with pytest.raises(
            ConfigError,
            match=rf"^RECONCILER_DUCKDB_THREADS must be a whole number from 0 to 1024; "
            rf"got '{threads}'",
        ):
            EngineSettings.from_env({"RECONCILER_DUCKDB_THREADS": threads})
    assert EngineSettings.from_env({"RECONCILER_DUCKDB_THREADS": "1024"}).threads == 1024


def test_a_blank_temp_dir_is_refused_not_made_in_the_working_directory(
    tmp_path, monkeypatch
) -> None:
    """RECONCILER_DUCKDB_TEMP_DIR=" " made a directory named " " in the working directory
    (the repository) for the copies of member files, left there after the run."""
    import pytest

    from reconciler.errors import ConfigError
    from reconciler.sources.snapshot import take_snapshot

    members = tmp_path / "members.csv"
    members.write_text("email\na@example.com\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", " ")
    with pytest.raises(ConfigError, match=r"RECONCILER_DUCKDB_TEMP_DIR is blank"):
        take_snapshot(members, "vip", "m.yaml:3:5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["members.csv"]
    with pytest.raises(ConfigError, match=r"RECONCILER_DUCKDB_TEMP_DIR is blank"):
        EngineSettings.from_env({"RECONCILER_DUCKDB_TEMP_DIR": " "})
    assert EngineSettings.from_env({"RECONCILER_DUCKDB_TEMP_DIR": ""}).temp_dir is None


def test_duckdb_spill_files_without_room_are_said_as_a_full_temp_dir(tmp_path) -> None:
    """A workspace whose spill files found no room (a full disk, here a file size limit)
    failed the plan as an internal error, or, reading a CSV in DuckDB, as "huge.csv: not
    valid CSV: Out of Memory Error: failed to offload data block" about a file that was
    fine. The engine knows DuckDB's words for it, and says the directory and variable."""
    import duckdb
    import pytest

    from reconciler.members.model import Engine
    from tests.apply.limits import file_size_limit

    settings = EngineSettings.from_env(
        {
            "RECONCILER_MEMORY_LIMIT": "64MB",
            "RECONCILER_DUCKDB_TEMP_DIR": str(tmp_path),
            "RECONCILER_DUCKDB_THREADS": "1",
        }
    )
    with Engine(settings) as engine:
        connection = engine.connection  # the workspace is made before the limit
        with file_size_limit(1_000_000), pytest.raises(duckdb.Error) as spilled:
            connection.execute(
                "CREATE TABLE t AS SELECT md5(i::VARCHAR) AS h FROM range(2000000) r(i) ORDER BY h"
            )
        said = engine.no_room(spilled.value)
        with pytest.raises(duckdb.Error) as other:
            connection.execute("SELECT * FROM no_such_table")
        assert engine.no_room(other.value) is None
    assert said is not None, spilled.value
    assert str(said).startswith(
        f"cannot write in the temporary directory {tmp_path} (File too large): "
    )
    assert "set RECONCILER_DUCKDB_TEMP_DIR to a directory with more room" in str(said)
