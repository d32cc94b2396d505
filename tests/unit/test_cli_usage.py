"""The command line's own contract: usage errors, help texts, and the README's option lists."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from reconciler.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcod"],  # a typo of the option plan.yml passes
        ["plan", "--format", "yaml"],
        ["apply", "--plan"],  # an option without its value
        ["nosuchcommand"],
        ["github", "comment", "--no-such-option"],
        ["emulator", "serve", "--port", "many"],
    ],
)
def test_usage_errors_exit_1_not_2(args: list[str]) -> None:
    """2 is `plan --detailed-exitcode`'s "changes present": a typo must not look like it."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Error" in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["plan", "--format", "json", "--detailed-exitcod"], "No such option: --detailed-exitcod"),
        (["plan", "-fjson", "--bogus"], "No such option: --bogus"),
        (["apply", "--format=json", "--yes", "--plan"], "Option '--plan' requires an argument"),
        (["status", "-f", "json", "--target"], "Option '--target' requires an argument"),
    ],
)
def test_a_usage_error_under_format_json_is_still_one_json_object(
    args: list[str], said: str
) -> None:
    """The README: `json` gives exactly one object on stdout, whatever the outcome. A usage
    error gave an empty stdout, so `plan --format json ... | jq` had nothing to read."""
    import json

    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["exit_code"] == 1 and said in body["error"], body
    assert "Error" in result.stderr  # people still get click's usage message


def test_a_usage_error_without_format_json_prints_nothing_on_stdout() -> None:
    for args in (["plan", "--format", "jsn"], ["plan", "--bogus"], ["validate", "-f", "json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and result.stdout == "", (args, result.stdout)


def _commands() -> dict[str, object]:
    """Every command of the CLI by its full name ("plan", "github comment", ...)."""
    import typer.main

    found: dict[str, object] = {}

    def walk(command: object, prefix: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            found[prefix] = command

    walk(typer.main.get_command(app), "")
    return found


def _options(command: object) -> set[str]:
    return {
        opt
        for param in command.params  # type: ignore[attr-defined]
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--")
    }


def _readme() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_option_is_in_the_readme_and_every_option_there_exists() -> None:
    import re

    readme = _readme()
    options = {name: _options(command) for name, command in _commands().items()}
    missing = sorted(
        f"{name} {opt}"
        for name, opts in options.items()
        for opt in opts
        if opt != "--help" and f"`{opt}" not in readme and f" {opt}" not in readme
    )
    assert missing == [], f"options missing from the README: {missing}"
    # The README's own command and option lists name no option the CLI does not have.
    section = readme[readme.index("## Commands") : readme.index("## Safety")]
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section))
    known = set().union(*options.values()) | {"--version"}
    assert sorted(named - known) == []


def test_the_readme_gives_each_command_exactly_the_options_it_has() -> None:
    """The option table of `plan` and `apply` (a row marked for one of them is that one's),
    the sentences on `validate`, `status` and `import`, and the table of the other commands:
    an option added to one command, or dropped, is said there for that command too."""
    import re

    readme = _readme()
    section = readme[readme.index("## Commands") : readme.index("### Exit codes")]
    said: dict[str, set[str]] = {"plan": set(), "apply": set()}
    table = section[section.index("Options of `plan` and `apply`:") :].split("\n\n")[1]
    for row in table.splitlines()[2:]:
        option_cell, meaning = row.strip("|").split("|", 1)
        marked = re.match(r"\s*\((`plan`|`apply`)", meaning)
        for name in ("plan", "apply"):
            if marked is None or marked.group(1) == f"`{name}`":
                said[name] |= set(re.findall(r"--[a-z][a-z-]*", option_cell))
    # --annotations is `plan`'s (and validate's), as its row says in words.
    said["apply"].discard("--annotations")
    for name in ("validate", "status", "import"):
        sentence = re.search(rf"`{name}` takes (.*?)(?:\.|;)", section, re.S)
        assert sentence is not None, name
        said[name] = set(re.findall(r"--[a-z][a-z-]*", sentence.group(1)))
    other = section[section.index("Options of the other commands:") :].split("\n\n")[1]
    for row in other.splitlines()[2:]:
        command, options = row.strip("|").split("|", 1)
        # An option's text may name another's (`--profile` in --time-scale's): only those
        # that open an entry count.
        said[command.strip().strip("`")] = set(re.findall(r"`(--[a-z][a-z-]*)", options))
    commands = {
        name: _options(command) - {"--help"}
        for name, command in _commands().items()
        if _options(command) - {"--help"}
    }
    assert sorted(said) == sorted(commands)
    # Per command: (said there but no option of it, an option of it not said there).
    wrong = {
        name: (sorted(said[name] - options), sorted(options - said[name]))
        for name, options in commands.items()
        if said[name] != options
    }
    assert wrong == {}
    # The short forms, each said once for the long option it stands for.
    shorts = {
        (opt, next(long for long in param.opts if long.startswith("--")))
        for command in _commands().values()
        for param in command.params  # type: ignore[attr-defined]
        for opt in param.opts
        if re.fullmatch(r"-[a-zA-Z]", opt)
    }
    sentence = section[section.index("Short forms:") :].split("\n\n")[0]
    assert shorts == set(re.findall(r"`(-[a-zA-Z])` for (?:`\w+`'s )?`(--[a-z-]+)`", sentence))


def test_help_shows_real_metavars_and_every_exit_code() -> None:
    for name in _commands():
        result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        assert "<bool>" not in result.output, name
        assert "list[" not in result.output, name
        # A value is named as the other commands name theirs (FILE, DIR, NAME, PORT...),
        # not by its Python type; choices stay listed (`<text|markdown|json>`).
        for python_type in ("<str>", "<int", "<float", "<file>", "<path>"):
            assert python_type not in result.output, (name, python_type)
    for name in ("plan", "apply"):
        text = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        assert "130" in text, name
    plan = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"}).output
    assert "AUDIENCE" in plan and "FILE" in plan


def test_help_paragraphs_flow_at_80_columns() -> None:
    """A docstring's line breaks are not kept: each paragraph wraps as a whole, so no
    line of the description stops short before its paragraph ends."""
    for name in _commands():
        output = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "80"}).output
        description = output.split("╭")[0].split("\n")[2:]  # after the usage line
        paragraphs: list[list[str]] = [[]]
        for line in (x.strip() for x in description):
            if line:
                paragraphs[-1].append(line)
            else:
                paragraphs.append([])
        short = [line for p in paragraphs for line in p[:-1] if len(line) < 50]
        assert short == [], (name, short)


@pytest.mark.parametrize("columns", ["80", "60", "40"])
def test_help_never_cuts_a_word_short(columns: str) -> None:
    """A word too long for its column of the help (an option, an environment variable, a
    manifest key) is folded onto the next line, never cut with "…": at 80 columns, a CI
    log's and a pipe's width, `emulator serve --help` named RECONCILER_EMULATOR_API_…
    and `apply --help` maxRemovalPercent/maxR…, which no one can type."""
    groups = {"": None, "emulator": None, "github": None}
    for name in [*groups, *_commands()]:
        result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": columns})
        assert result.exit_code == 0, (name, result.output)
        assert "\u2026" not in result.output, (name, columns, result.output)
        # The help is the last column: its folded lines join up once the frame is gone.
        joined = re.sub(r"[\s\u2502]", "", result.output)
        for word in _LONG_WORDS.get(name, ()):
            assert word in joined, (name, columns, word)


_LONG_WORDS = {
    "emulator serve": ("RECONCILER_EMULATOR_API_KEY", "get_users_stream_seconds=0.5"),
    "apply": ("maxRemovalPercent/maxRemovals", '"$GITHUB_STEP_SUMMARY"'),
    "plan": ("RECONCILER_STATE_DIR", "RECONCILER_ANNOTATIONS"),
}


def test_command_lists_flow_each_command_description_at_any_width() -> None:
    """A group's list of commands shows each description as one paragraph: a line
    continues a command's description only when the line above it is full."""
    for group in ([], ["emulator"], ["github"]):
        output = runner.invoke(app, [*group, "--help"], env={"COLUMNS": "100"}).output
        rows = [r for r in output.split("Commands")[1].split("\n") if r.startswith("│")]
        cells = [row.strip("│ ") for row in rows]
        # A continuation row starts with spaces where a command's name would be.
        broken = [
            (above, cell)
            for above, cell, row in zip(cells, cells[1:], rows[1:], strict=False)
            if row.startswith("│" + " " * 6) and len(above) < 60
        ]
        assert cells and broken == [], (group, broken)


def test_help_tells_a_newcomer_where_to_start_and_what_each_command_exits_with() -> None:
    def help_of(*name: str) -> str:
        result = runner.invoke(app, [*name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())  # rich wraps lines at any width

    assert "reconciler plan manifests" in help_of()
    for name in ("validate", "plan", "apply", "status", "import"):
        assert "Exit" in help_of(name), name
    assert "reconciler import --destination" in help_of("import")
    # The emulator is useless until a destination points at it: its help says how.
    assert "baseUrl: http://127.0.0.1:PORT" in help_of("emulator", "serve")


def test_plan_help_gives_the_engine_thresholds_the_code_uses() -> None:
    """It said DuckDB plans audiences "of a million rows or more" long after the threshold
    became 10,000 (a million stayed for trait-mapped audiences only)."""
    from reconciler.members.model import EngineSettings

    shown = " ".join(runner.invoke(app, ["plan", "--help"]).output.split())
    defaults = EngineSettings()
    assert f"Audiences of {defaults.threshold:,} source rows or more" in shown
    assert defaults.traits_threshold == 1_000_000 and "trait mapping, a million" in shown


@pytest.mark.parametrize("command", ["plan", "apply", "status"])
def test_target_help_says_which_other_audiences_are_read(command: str) -> None:
    """--help said other audiences are "neither read nor changed", though b57f6a9 reads the
    source of every audience mapping a field a target maps (README's --target row)."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    shown = " ".join(result.output.replace("│", " ").split())  # the options' box, wrapped
    assert "neither read nor changed" not in shown
    assert "the source of one mapping a field a target maps is read" in shown


def test_version_option() -> None:
    from reconciler import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


def test_the_version_is_written_once_and_every_command_prints_it() -> None:
    """pyproject.toml and reconciler/__init__.py each wrote 0.1.0: a release that bumped
    one left the package's metadata (pip show) or --version, saved plans, journals, run
    records and alerts saying the other. pyproject.toml now takes it from the package,
    through hatchling's version source (its default pattern, as hatchling reads it)."""
    import re
    import tomllib
    from pathlib import Path

    from reconciler import __version__

    root = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    source = pyproject["tool"]["hatch"]["version"]
    assert source.get("source", "regex") == "regex" and "pattern" not in source
    text = (root / source["path"]).read_text(encoding="utf-8")
    written = re.findall(r"""^(?:__version__|VERSION)\s*=\s*["']v?([^"']+)["']""", text, re.M)
    assert written == [__version__]
    for args in (["--version"], ["version"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and result.stdout == f"{__version__}\n", args


def test_python_dash_m_runs_the_same_command_line() -> None:
    """`python3 -m reconciler` works where the `reconciler` script is not on PATH."""
    import subprocess
    import sys

    from reconciler import __version__

    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert __version__ in done.stdout


@pytest.mark.parametrize("command", ["plan", "apply", "status"])
def test_a_state_dir_that_cannot_be_made_is_an_error_not_a_bug(tmp_path, command) -> None:
    """--state-dir naming a file (or a path under one): said as the option's problem, exit 1,
    not "internal error ... This is a bug" from whichever write reached it first."""
    import shutil
    from pathlib import Path

    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    (tmp_path / "taken").write_text("")
    for state in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        args = [command, str(manifests), "--state-dir", str(state)]
        result = runner.invoke(app, [*args, "--yes"] if command == "apply" else args)
        assert result.exit_code == 1, result.output
        assert f"--state-dir {state}: cannot be used as the state directory" in result.output
        assert "internal error" not in result.output


@pytest.mark.parametrize("command", ["plan", "apply", "status"])
def test_a_file_where_the_default_state_dir_goes_is_said_not_a_bug(tmp_path, command) -> None:
    """A file named .reconciler at the repository's top (a stray `touch`, a checkout of a
    branch that tracked one) ended every command as "internal error: FileExistsError ...
    This is a bug in reconciler"; it is now the state directory's problem, saying what to
    do."""
    import shutil
    from pathlib import Path

    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    (tmp_path / ".reconciler").write_text("")
    args = [command, str(manifests)]
    result = runner.invoke(app, [*args, "--yes"] if command == "apply" else args)
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    assert (
        f"{tmp_path / '.reconciler'} is not a directory, but reconciler keeps its local state "
        "there (the sandbox, apply locks, run journals); move that file away, or give the "
        "state another directory with --state-dir DIR"
    ) in " ".join(result.output.split())


def test_a_state_dir_is_named_as_it_was_given(tmp_path, monkeypatch) -> None:
    """RECONCILER_STATE_DIR naming a file was said as "--state-dir FILE", an option the user
    never gave; and a path under a file as "(File exists)", mkdir's word for it, which sent
    the user looking for the path rather than the file above it."""
    import shutil
    from pathlib import Path

    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    (tmp_path / "taken").write_text("")
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "taken"))
    result = runner.invoke(app, ["plan", str(manifests)])
    assert result.exit_code == 1, result.output
    assert (
        f"RECONCILER_STATE_DIR={tmp_path / 'taken'}: cannot be used as the state directory "
        "(a file, not a directory)"
    ) in " ".join(result.output.split())
    monkeypatch.delenv("RECONCILER_STATE_DIR")
    result = runner.invoke(app, ["plan", str(manifests), "--state-dir", f"{tmp_path}/taken/sub"])
    assert result.exit_code == 1, result.output
    assert (
        f"--state-dir {tmp_path}/taken/sub: cannot be used as the state directory "
        f"({tmp_path / 'taken'} is a file, not a directory)"
    ) in " ".join(result.output.split())


def test_a_blank_state_dir_is_refused_not_made_in_the_working_directory(
    tmp_path, monkeypatch
) -> None:
    """RECONCILER_STATE_DIR=" " (a CI variable set to a space) put the sandbox, the apply
    lock and the run journals in a directory named " " wherever the command ran, silently:
    an apply started from elsewhere took another lock. Empty stays the default, as an
    unset CI secret arrives."""
    import shutil
    from pathlib import Path

    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONCILER_STATE_DIR", " ")
    result = runner.invoke(app, ["plan", str(manifests)])
    assert result.exit_code == 1, result.output
    assert "state directory is blank" in result.output
    assert not (tmp_path / " ").exists()
    monkeypatch.setenv("RECONCILER_STATE_DIR", "")
    assert runner.invoke(app, ["plan", str(manifests)]).exit_code == 0
    assert (tmp_path / ".reconciler" / "sandbox.json").exists()  # the default's place


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["plan", "--out", "{dir}"], "--out {dir}: is a directory; give a file path"),
        (["plan", "--out", "{file}/p.gz"], "--out {file}/p.gz: {file} is a file, not a directory"),
        (["plan", "--summary-file", "{dir}"], "--summary-file {dir}: is a directory"),
        (["apply", "--yes", "--summary-json", "{dir}"], "--summary-json {dir}: is a directory"),
        (["apply", "--yes", "--summary-file", "{file}/s.md"], "{file} is a file, not a directory"),
        (
            ["import", "--destination", "sandbox", "--out", "{file}"],
            "--out {file}: is a file; give a directory path",
        ),
        # Found by fuzzing: a link to itself was an internal error (FileExistsError).
        (
            ["import", "--destination", "sandbox", "--out", "{loop}"],
            "--out {loop}: is a symbolic link that leads to no directory",
        ),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(
    tmp_path, args, said
) -> None:
    """Not an internal error after the work is done: an apply with a --summary-json naming a
    directory applied everything, then failed writing its record."""
    import shutil
    from pathlib import Path

    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-loop").symlink_to(tmp_path / "a-loop")
    where = {k: str(tmp_path / f"a-{k}") for k in ("dir", "file", "loop")}
    state = tmp_path / "state"
    command = [a.format(**where) for a in args]
    result = runner.invoke(app, [*command, str(manifests), "--state-dir", str(state)])
    assert result.exit_code == 1, result.output
    assert said.format(**where) in result.output
    assert "internal error" not in result.output
    assert not (state / "sandbox.json").exists()  # nothing was read, let alone applied


def test_an_emulator_port_out_of_range_is_a_usage_error_not_a_bug() -> None:
    result = runner.invoke(app, ["emulator", "serve", "--api-key", "k", "--port", "99999"])
    assert result.exit_code == 1, result.output
    # click's own range message ("... less than or equal to 65535"), before any bind()
    assert "65535" in " ".join(result.output.split())
    assert "internal error" not in result.output


def test_an_emulator_port_in_use_says_what_to_do() -> None:
    # It said "error: cannot listen on 127.0.0.1:PORT: Address already in use" and no more.
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["emulator", "serve", "--api-key", "k", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; another process "
        "listens there (an emulator started before?): stop it, or choose another --port "
        "(0 picks a free one)\n"
    )


def test_a_report_on_a_stream_that_cannot_encode_it_is_not_an_internal_error(tmp_path) -> None:
    """A Windows console piped to a file (or PYTHONIOENCODING=latin-1) cannot encode the
    report's check marks: the apply went through, so its report must not end as a bug."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(manifests), "--yes"],
        env={**os.environ, "PYTHONIOENCODING": "latin-1", "RECONCILER_STATE_DIR": str(tmp_path)},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode("latin-1")
    assert b"Apply complete" in done.stdout
    assert b"internal error" not in done.stderr


# Runs reconciler with stdout and stderr in the encoding a machine's locale gives them
# (`LANG=de_DE`: ISO-8859-1), as Python sets them up there before any code runs.
_IN_LOCALE_ENCODING = (
    "import sys; encoding = sys.argv.pop(1); sys.stdout.reconfigure(encoding=encoding); "
    "sys.stderr.reconfigure(encoding=encoding); sys.argv[0] = 'reconciler'; "
    "from reconciler.cli import main; main()"
)


def test_a_plan_written_to_a_file_is_the_same_utf8_under_any_locale(
    tmp_path, make_emulator_server
) -> None:
    """A plan redirected to a file is what `github comment --body-file` posts: under a
    legacy locale it was ISO-8859-1, with `?` for the characters it lacks, so the same plan
    differed by machine and its markdown was refused as an internal error when posted."""
    import json
    import os
    import subprocess
    import sys

    server = make_emulator_server()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    destination = {"region": "us", "projectType": "hybrid", "baseUrl": server.base_url}
    destination["apiKey"] = {"env": "RECONCILER_TEST_KEY"}
    # A dotless i: Turkish, and in no ISO-8859-1 text.
    audience = {"destination": "prod", "members": {"inline": ["\u0131lg\u0131n@example.com"]}}
    for kind, name, spec in (("Destination", "prod", destination), ("Audience", "vip", audience)):
        document = {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}}
        (manifests / f"{name}.yaml").write_text(json.dumps({**document, "spec": spec}))
    env = {**os.environ, "RECONCILER_TEST_KEY": "test-key", "RECONCILER_STATE_DIR": str(tmp_path)}
    env.pop("PYTHONIOENCODING", None)
    plan = ["plan", str(manifests), "--format", "markdown"]
    plans = {}
    for encoding in ("utf-8", "latin-1"):
        done = subprocess.run(
            [sys.executable, "-c", _IN_LOCALE_ENCODING, encoding, *plan],
            env=env,
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(encoding)
        plans[encoding] = done.stdout
    assert "+ vip: \u0131***@***#1" in plans["utf-8"].decode("utf-8")
    assert plans["latin-1"] == plans["utf-8"]


def test_a_typer_without_the_internals_reconciler_tidies_is_left_as_it_is() -> None:
    """The help's tidying replaces typer internals (TyperOption.display_type_rich,
    rich_utils._fix_linebreaks, ...) that typer adds and renames between releases, and
    nothing caps the typer a `pip install .` takes: read unguarded, one missing made every
    command fail on import with an AttributeError (typer 0.12-0.28 do lack them; with
    the guard, validate and --help ran under typer 0.15, 0.20 and 0.25)."""
    from reconciler.cli import _patched

    def replacement() -> str:
        return "reconciler's"

    lacking = SimpleNamespace()
    assert _patched(lacking, "display_type_rich", replacement) is None
    assert not hasattr(lacking, "display_type_rich")

    def typers() -> str:
        return "typer's"

    having = SimpleNamespace(display_type_rich=typers)
    assert _patched(having, "display_type_rich", replacement) is typers
    assert having.display_type_rich is replacement


def test_a_mistyped_command_is_told_the_one_meant() -> None:
    # The commands are built when first looked up (reconciler/cli/__init__.py): typer's
    # suggestion still knows every name, the emulator's and github's groups too.
    result = runner.invoke(app, ["plna"])
    assert result.exit_code == 1
    assert "No such command 'plna'. Did you mean 'plan'?" in result.output
    result = runner.invoke(app, ["githb", "comment"])
    assert "Did you mean 'github'?" in result.output


@pytest.mark.parametrize(
    ("repo", "said"),
    [
        (
            "https://github.com/acme/crm",
            "'https://github.com/acme/crm' is not the repository's OWNER/NAME (write acme/crm)",
        ),
        ("git@github.com:acme/crm.git", "(write acme/crm)"),
        ("crm", "'crm' is not the repository's OWNER/NAME"),
        ("acme/crm/x", "'acme/crm/x' is not the repository's OWNER/NAME"),
        ("acme/..", "'acme/..' is not the repository's OWNER/NAME"),
    ],
)
def test_a_github_repo_that_is_no_owner_and_name_is_a_usage_error(tmp_path, repo, said) -> None:
    """--repo (or GITHUB_REPOSITORY) pasted as the repository's URL, or its name alone, went
    into `gh api repos/<it>/issues/...`: GitHub's 404 quoted that path and said nothing of
    the option."""
    body = tmp_path / "plan.md"
    body.write_text("plan", encoding="utf-8")
    for command in (["comment", "--pr", "1", "--body-file", str(body)], ["close-issue"]):
        result = runner.invoke(app, ["github", *command, "--repo", repo])
        assert result.exit_code == 1, result.output
        assert said in " ".join(result.output.replace("│", " ").split()), result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["plan", "--format", "yaml"], "'yaml' is not one of 'text', 'markdown', 'json'."),
        (["status", "-f", "csv"], "'csv' is not one of 'text', 'markdown', 'json'."),
        (["validate", "--annotations", "gh"], "'gh' is not one of 'auto', 'github', 'none'."),
        (
            ["emulator", "serve", "--project-type", "users"],
            "'users' is not one of 'hybrid', 'userId', 'email'.",
        ),
    ],
)
def test_an_option_value_out_of_its_choices_is_said_without_pydantics_words(args, said) -> None:
    """typer 0.29 checks an option's choices with pydantic, whose message for them began
    "Value error, " ("Invalid value for '--format' / '-f': Value error, 'yaml' is not one
    of ..."): a validator's word, nothing of the user's."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    assert said in shown and "Value error" not in shown, shown


def test_a_choice_error_under_format_json_is_said_without_pydantics_words() -> None:
    import json

    result = runner.invoke(app, ["plan", "--format", "json", "--annotations", "gh"])
    assert result.exit_code == 1
    said = json.loads(result.stdout)["error"]
    assert said.endswith("'gh' is not one of 'auto', 'github', 'none'."), said
    assert "Value error" not in said


@pytest.mark.parametrize("pr", ["0", "-3"])
def test_a_github_pr_number_below_1_is_a_usage_error(tmp_path, pr) -> None:
    """--pr 0 (an unset variable's default) went into `gh api repos/<repo>/issues/0/...`:
    GitHub's 404 said nothing of the option."""
    body = tmp_path / "plan.md"
    body.write_text("plan", encoding="utf-8")
    for command in (
        ["comment", "--body-file", str(body)],
        ["mark-outdated", "--commit", "abcdef1"],
    ):
        result = runner.invoke(app, ["github", *command, "--pr", pr, "--repo", "acme/crm"])
        assert result.exit_code == 1, result.output
        shown = " ".join(result.output.replace("│", " ").split())
        assert f"{pr} is not a pull request's number (1 or more)" in shown, shown
