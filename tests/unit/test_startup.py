"""What every `reconciler` process loads before it does any work (issue 17).

Each command is a fresh process that imports the whole command tree to register its
commands, so a module imported at the top of any command module is paid for by all of
them. What only one command needs is imported where that command uses it; this keeps it
so, in a fresh interpreter (`bench/startup.py` measures what it saves)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canonical

ROOT = Path(__file__).resolve().parents[2]

# Loaded only by the command that uses them: the emulator (and jsonschema, with which it
# checks request bodies) by `emulator serve` and the sandbox region, the executor and its
# run record by `apply`, the adoption of lists by `import`.
COMMAND_ONLY = (
    "reconciler.emulator",
    "jsonschema",
    "reconciler.apply.executor",
    "reconciler.apply.run",
    "reconciler.apply.runrecord",
    "reconciler.adopt",
)


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (which may exit)."""
    script = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n" + code
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def command_only(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == name or m.startswith(name + ".") for name in COMMAND_ONLY)
    )


# What only some commands need, and none of `--version`, `version` and `--help` of one
# command: the manifest models and YAML, the Iterable client (httpx), the member engine
# (DuckDB), templates (jinja2), the planner and the GitHub client. (pydantic is left out:
# typer imports it itself to build a command's parameters.)
HEAVY = (
    "ruamel",
    "httpx",
    "duckdb",
    "jinja2",
    "reconciler.manifest",
    "reconciler.iterable",
    "reconciler.members.engine",
    "reconciler.planning",
    "reconciler.plan",
    "reconciler.github",
    "reconciler.cli.plan",
    "reconciler.cli.apply",
)


def heavy(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == name or m.startswith(name + ".") for name in HEAVY)
    )


def test_importing_the_cli_loads_no_command_only_module():
    modules = loaded_by("import reconciler.cli\n")
    assert command_only(modules) == []
    # Each command's module is imported when that command runs (or shows its help):
    # `--version` paid for all of them, about 0.5 s of CPU.
    assert heavy(modules) == []
    assert "pydantic" not in modules


def test_version_loads_only_what_it_prints_with():
    for args in (["--version"], ["version"]):
        modules = loaded_by(f"from reconciler.cli import main\nsys.argv[1:] = {args!r}\nmain()\n")
        assert heavy(modules) == [], args


def test_a_commands_help_loads_that_command_alone():
    modules = loaded_by(
        "from reconciler.cli import main\nsys.argv[1:] = ['validate', '--help']\nmain()\n"
    )
    assert "reconciler.cli.validate" in modules
    # Its options alone: the manifests' models, YAML, DuckDB and templates wait for a run.
    assert heavy(modules) == []
    others = {"reconciler.cli.plan", "reconciler.cli.apply", "reconciler.cli.status"}
    assert others.isdisjoint(modules)
    assert "reconciler.cli.import_" not in modules and "reconciler.cli.github" not in modules


@pytest.mark.parametrize("command", ["plan", "status", "import", "apply"])
def test_a_commands_help_loads_none_of_what_it_runs_with(command):
    # A command's help is its options: the client, the planner, DuckDB, the renderers and
    # (apply's) the executor wait for a run.
    modules = loaded_by(
        f"from reconciler.cli import main\nsys.argv[1:] = [{command!r}, '--help']\nmain()\n"
    )
    own = f"reconciler.cli.{command.replace('import', 'import_')}"
    assert own in modules
    assert heavy(modules - {own}) == [], command
    assert command_only(modules) == [], command


def test_only_help_loads_typers_help_formatting():
    # typer.rich_utils brings rich's markdown, syntax and traceback (markdown-it, attrs):
    # typer imports it to format help, and reconciler's tidying of it waits until then.
    assert "typer.rich_utils" not in loaded_by("import reconciler.cli\n")
    helped = loaded_by(
        "from reconciler.cli import main\nsys.argv[1:] = ['plan', '--help']\nmain()\n"
    )
    assert "typer.rich_utils" in helped


def test_help_lists_the_commands_without_loading_them():
    # The list names each command by the summary kept beside the lazy table: building the
    # commands for it imported every command's module, httpx, DuckDB and jinja2 with them.
    for args in (["--help"], []):
        # `reconciler` alone shows the help as a usage error (exit 1).
        modules = loaded_by(
            f"from reconciler.cli import main\nsys.argv[1:] = {args!r}\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
        )
        assert "typer.rich_utils" in modules, args
        assert command_only(modules) == [], args
        assert heavy(modules) == [], args
        commands = {m for m in modules if m.startswith("reconciler.cli.")}
        assert not commands & {f"reconciler.cli.{name}" for name in COMMAND_MODULES}, args


COMMAND_MODULES = ("validate", "plan", "apply", "status", "import_", "schema", "emulator", "github")


def test_the_commands_summaries_are_their_own_help():
    # What `reconciler --help` says of a command is what typer would show from the
    # command itself (its docstring's first paragraph, a group's help): no drift.
    import inspect

    import typer.main

    from reconciler import cli

    group = typer.main.get_group(cli.app)
    assert list(group.list_commands(None)) == list(cli._COMMANDS)
    for name, command in cli._COMMANDS.items():
        built = group.get_command(None, name)
        own = inspect.cleandoc(built.short_help or built.help or "").split("\n\n")[0]
        assert " ".join(own.split()) == command.summary, name


def test_validate_loads_no_http_client():
    # validate never contacts Iterable: the constants it names (a profile's channels
    # field, a cut stream's error) are out of the client, and httpx stays unloaded.
    modules = loaded_by(
        "from reconciler.cli import main\n"
        "sys.argv[1:] = ['validate', 'manifests']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    assert "reconciler.validation" in modules
    assert "httpx" not in modules
    assert "reconciler.iterable.client" not in modules


def test_the_member_engine_lower_cases_without_numpy():
    # Lower-casing as Python does was a Python function registered in DuckDB, which
    # imports numpy to register any (0.08 s and 10 MB, with the 10M plan at its 700 MB
    # target); lower_sql is SQL alone now.
    lowered = loaded_by(
        "from reconciler.members.engine.workspace import Engine, lower_sql\n"
        "engine = Engine()\n"
        "sql = 'SELECT ' + lower_sql(\"'ΟΔΟΣ'\")\n"
        "row = engine.connection.execute(sql).fetchone()\n"
        "assert row == ('ΟΔΟΣ'.lower(),), row\nengine.close()\n"
    )
    assert "duckdb" in lowered
    assert "numpy" not in lowered


def test_what_the_member_engine_imports_is_a_declared_dependency():
    # DuckDB imports some packages only when asked (numpy, to register a Python function),
    # and refuses the call where they are not installed. This machine has numpy from
    # elsewhere, so a missing declaration passed every test here while a clean install
    # (a CI runner's `pip install .`) failed every plan of 10,000 rows or more.
    lowered = loaded_by(
        "from reconciler.members.engine.workspace import Engine, lower_sql\n"
        "engine = Engine()\n"
        "sql = 'SELECT ' + lower_sql(\"'ΟΔΟΣ'\")\n"
        "engine.connection.execute(sql).fetchone()\nengine.close()\n"
    )
    declared = _declared_distributions("reconciler")
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        top: providers.get(top)
        for top in {name.partition(".")[0] for name in lowered}
        if top not in sys.stdlib_module_names
        and top != "reconciler"
        and not top.startswith("_")
        and top in providers
        and not {canonical(d) for d in providers[top]} & declared
    }
    assert undeclared == {}


def _declared_distributions(name: str) -> set[str]:
    """`name` and every distribution its requirements (no extras) bring, transitively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = canonical(todo.pop())
        if current in seen:
            continue
        seen.add(current)
        for line in importlib.metadata.requires(current) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_a_client_makes_one_tls_context_for_both_its_connections(monkeypatch):
    """Loading the certificate authorities costs about 25 ms, in every command that opens
    a client: the API's connections and the export files' share one context, made as
    httpx makes its default, and none is made for a given transport (the sandbox)."""
    import ssl

    import certifi
    import httpx

    from reconciler.iterable import IterableClient

    made: list[ssl.SSLContext] = []
    default = ssl.create_default_context

    def counted(*args, **kwargs):
        made.append(default(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    client = IterableClient("https://api.iterable.com", "a-key")
    client.close()
    assert len(made) == 1
    # Verification as httpx's default: certificates checked, against certifi's CAs.
    assert made[0].verify_mode == ssl.CERT_REQUIRED and made[0].check_hostname
    assert made[0].get_ca_certs() == default(cafile=certifi.where()).get_ca_certs()

    made.clear()
    sandbox = httpx.MockTransport(lambda request: httpx.Response(200))
    IterableClient("https://sandbox.invalid", "a-key", transport=sandbox).close()
    assert made == []


def test_the_iterable_package_gives_the_clients_names_when_asked():
    # reconciler.iterable imports its client (and httpx) when one of the client's names is
    # first taken from it, not with the package; the names every read uses are its own.
    import reconciler.iterable as iterable
    from reconciler.iterable import client, names

    assert iterable.IterableClient is client.IterableClient
    assert iterable.ListInfo is client.ListInfo
    assert iterable.StreamCut is names.StreamCut is client.StreamCut
    assert iterable.CHANNELS_FIELD == names.CHANNELS_FIELD == "unsubscribedChannelIds"
    with pytest.raises(AttributeError):
        _ = iterable.NoSuchName  # type: ignore[attr-defined]
