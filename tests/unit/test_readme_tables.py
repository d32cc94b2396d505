"""The README's tables of exit codes, run outcomes and alerts, against the code: scripts and
CI branch on these numbers and words, so a code or an outcome added, renamed or moved in
one place and not the other fails here."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from typer.testing import CliRunner

from reconciler import alerts, errors
from reconciler.apply.runrecord import Outcome
from reconciler.cli import app, exits, github

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _table(heading: str, first_column: str) -> dict[str, list[str]]:
    """The first table after `heading` whose header row starts with `first_column`: its rows
    by their first cell, backticks dropped."""
    section = README[README.index(heading) :]
    start = section.index(f"| {first_column} |")
    rows: dict[str, list[str]] = {}
    for line in section[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_the_exit_code_table_is_every_code_the_commands_exit_with() -> None:
    table = {int(code) for code in _table("### Exit codes", "code")}
    used = {exits.EXIT_OK, exits.EXIT_ERROR, exits.EXIT_CHANGES, exits.EXIT_INTERRUPTED}
    used |= {cls.exit_code for cls in _subclasses(errors.ReconcilerError)}
    used.add(github.EXIT_BUSY)  # check-idle's "a run is busy", said in the command table
    assert table == used


def test_plan_and_apply_help_name_what_the_exit_code_table_says_exits_1() -> None:
    """plan --help said exit 1 was "error, invalid members or a usage error" and apply's
    "error, rejected members or a usage error", where both exit 1 for field values not
    sent and audiences left out too, as the table says: a script's author reading --help
    took an exit 1 from a plan that left an audience out for a broken run."""
    exits_1 = _table("### Exit codes", "code")["1"][0]
    causes = ["invalid", "field values not sent", "left out", "usage error"]
    for command, own in (("plan", []), ("apply", ["rejected"])):
        shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        said = " ".join(shown[shown.index("Exit codes:") :].replace("│", " ").split())
        exit_1 = said[said.index(" 1 error") : said.index(" 3 blocked")]
        for cause in [*causes, *own]:
            assert cause in exit_1, (command, cause, exit_1)
            assert cause in exits_1, (cause, exits_1)


def test_the_run_outcome_table_is_every_outcome_with_its_exit_code() -> None:
    table = _table("## Scheduled sync", "outcome")
    assert sorted(table) == sorted(typing.get_args(Outcome))
    codes = {outcome: int(cells[-1]) for outcome, cells in table.items()}
    assert codes["blocked"] == errors.UnsafePlanError.exit_code
    assert codes["stale"] == errors.StalePlanError.exit_code
    assert codes["interrupted"] == codes["aborted"] == exits.EXIT_INTERRUPTED
    assert codes["success"] == codes["no_changes"] == exits.EXIT_OK
    assert codes["failed"] == codes["error"] == exits.EXIT_ERROR


def test_the_alert_table_quotes_the_titles_alerts_have() -> None:
    """Each quoted title is what alerts.py makes for that outcome and exit code; an outcome
    that alerts is in the table, and those said to send nothing do not alert."""
    table = _table("### Alerts", "outcome")
    titles = []
    for cells in table.values():
        titles += re.findall(r"`(reconciler (?:plan|apply) [^`]*\(exit \d+\))`", cells[-1])
    made = {
        f"reconciler {command} {words} (exit {code})"
        for command in ("plan", "apply")
        for words, code in (
            (alerts.ALERTED["blocked"], errors.UnsafePlanError.exit_code),
            (alerts.ALERTED["stale"], errors.StalePlanError.exit_code),
            (alerts.ALERTED["failed"], exits.EXIT_ERROR),
            (alerts.ALERTED["error"], exits.EXIT_ERROR),
        )
    }
    assert len(titles) == len(alerts.ALERTED) and set(titles) <= made, titles
    assert not {"success", "no_changes", "interrupted", "aborted"} & set(alerts.ALERTED)


def _variables(text: str) -> set[str]:
    # A name ending in `_` is a prefix a message or comment builds on, not a variable.
    return {v for v in re.findall(r"\bRECONCILER_[A-Z0-9_]*[A-Z0-9]\b", text)}


def _source(directory: str) -> str:
    root = Path(__file__).resolve().parents[2]
    return "\n".join(p.read_text(encoding="utf-8") for p in (root / directory).rglob("*.py"))


def test_every_environment_variable_is_in_the_readme_and_each_it_names_is_read() -> None:
    """A variable the code reads and the README never names is a setting nobody can find;
    one the README names and nothing reads (renamed, removed) is set and silently ignored."""
    package, tests = _source("reconciler"), _source("tests")
    from dataclasses import fields

    from reconciler.iterable.settings import ClientSettings

    # The client's settings are read by their fields' names (see test_client_settings.py).
    client = {f"RECONCILER_{f.name.upper()}" for f in fields(ClientSettings)}
    read = _variables(package) | client
    named = _variables(README)
    assert sorted(read - named) == []
    # The tests' own variables (RECONCILER_TEST_POSTGRES_URL) are read by the tests.
    assert sorted(named - read - _variables(tests)) == []


def test_the_runner_variables_table_is_every_github_variable_the_code_reads() -> None:
    """What a run reads from GitHub's runner (GITHUB_RUN_ID for the run's link, say) is
    listed under "What it reads from the runner", and nothing that list names goes unread."""
    # Quoted, as the code names a variable it reads (os.environ.get, typer's envvar=);
    # GITHUB_TOKEN is quoted to be refused (a manifest's URL may not name it), not read.
    read = set(re.findall(r"[\"'](GITHUB_[A-Z0-9_]*[A-Z0-9])[\"']", _source("reconciler")))
    read.discard("GITHUB_TOKEN")
    table = _table("**What it reads from the runner.**", "variable")
    listed = {name for key in table for name in re.findall(r"GITHUB_[A-Z0-9_]*[A-Z0-9]", key)}
    assert sorted(read - listed) == []
    assert sorted(listed - read) == []


def test_the_engine_settings_table_gives_the_defaults_the_code_has() -> None:
    from reconciler.members.engine.settings import MAX_THREADS, EngineSettings

    table = _table("### Large audiences: the DuckDB engine", "variable")
    defaults = EngineSettings()
    assert table["RECONCILER_ENGINE"][0] == defaults.engine
    threshold = table["RECONCILER_ENGINE_THRESHOLD"][0]
    assert threshold.startswith(f"{defaults.threshold} ({defaults.traits_threshold} "), threshold
    assert table["RECONCILER_MEMORY_LIMIT"][0] == defaults.memory_limit
    assert f"(at most {MAX_THREADS})" in table["RECONCILER_DUCKDB_THREADS"][1]
