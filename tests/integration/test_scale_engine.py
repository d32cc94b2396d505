"""Large audiences planned in DuckDB (issue 6), through the CLI against the emulator: the
threshold is lowered so a handful of members takes the path ten million would."""

from __future__ import annotations

import gc
import gzip
import io
import json
import re
import tempfile
import threading
import unicodedata
import zipfile

import duckdb
import pytest

from tests.apply.limits import file_size_limit
from tests.integration.conftest import API_KEY_VAR, Workspace
from tests.integration.reliability import spawn_cli, subprocess_env


@pytest.fixture
def at_scale(monkeypatch):
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "3")
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "256MB")


def members(server, name: str, prefer_user_id: bool = False) -> set[str]:
    proj = server.emulator.project("default")
    (list_id,) = [i for i, record in proj.lists.items() if record.name == name]
    return set(proj.members(list_id, prefer_user_id))


def test_a_large_csv_audience_plans_applies_and_settles_in_duckdb(
    workspace: Workspace, cli, emulator_server, at_scale
):
    rows = [f"m{i}@example.com" for i in range(8)] + ["not-an-email", "M0@Example.com"]
    workspace.csv("data/big.csv", "email", rows)
    workspace.audience("big", {"csv": "data/big.csv"}, policy={"maxRemovalPercent": 50})

    first = cli("plan", workspace.manifests, "--format", "json", "--show-members")
    assert first.exit_code == 1, first.output  # a row was skipped as invalid
    (dest,) = first.json()["destinations"]
    (lst,) = dest["lists"]
    assert lst["desired_members"] == 8  # M0@Example.com is m0's duplicate; one row invalid
    add = next(c for c in lst["changes"] if c["type"] == "add_members")
    assert add["count"] == 8 and add["sample"][0] == "m0@example.com"
    assert any("not-an-email" in str(s) for s in dest["skipped_members"])

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1  # the invalid row is reported, the rest applied
    assert members(emulator_server, "big") == {f"m{i}@example.com" for i in range(8)}

    # 1 leaves, 2 join: only those are sent, and the next plan has nothing to do.
    rows = [f"m{i}@example.com" for i in range(1, 10)]
    workspace.csv("data/big.csv", "email", rows)
    second = cli("plan", workspace.manifests, "--format", "json", "--show-members")
    (lst,) = second.json()["destinations"][0]["lists"]
    assert lst["changes"] == [
        {
            "type": "add_members",
            "count": 2,
            "sample": ["m8@example.com", "m9@example.com"],
            "update_existing_users_only": False,
        },
        {
            "type": "remove_members",
            "count": 1,
            "sample": ["m0@example.com"],
            "channel_unsubscribe": False,
            "campaign_id": None,
        },
    ]
    assert "diffed in DuckDB" in second.json()["destinations"][0]["member_read"]
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert members(emulator_server, "big") == set(rows)
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_a_saved_plan_of_a_large_audience_applies_exactly(
    workspace: Workspace, cli, emulator_server, at_scale, tmp_path
):
    rows = [f"s{i}@example.com" for i in range(6)]
    workspace.csv("data/big.csv", "email", rows)
    workspace.audience("big", {"csv": "data/big.csv"})
    planfile = tmp_path / "big.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    # The members are read back into DuckDB (6 >= the threshold of 3) and sent from there.
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 0, result.output
    assert members(emulator_server, "big") == set(rows)


def test_parquet_and_duckdb_query_sources_at_scale(
    workspace: Workspace, cli, emulator_server, at_scale
):
    data = workspace.manifests / "data"
    data.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(data / "crm.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE users AS SELECT 'q' || i || '@example.com' AS email, i AS id "
            "FROM range(5) t(i)"
        )
        connection.execute(
            f"COPY (SELECT 'p' || i || '@example.com' AS email, 'P' || i AS userId "
            f"FROM range(4) t(i)) TO '{data / 'p.parquet'}' (FORMAT parquet)"
        )
    workspace.audience("from-parquet", {"parquet": "data/p.parquet"})
    workspace.audience(
        "from-query",
        {
            "sql": "SELECT email, id AS userId FROM users WHERE id < 4;",
            "database": "data/crm.duckdb",
        },
    )
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert members(emulator_server, "from-parquet", prefer_user_id=True) == {
        f"P{i}" for i in range(4)
    }
    # Integer ids become the text Iterable's userIds are.
    assert members(emulator_server, "from-query", prefer_user_id=True) == {str(i) for i in range(4)}
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_hybrid_member_known_by_email_keeps_its_place_once_it_has_a_user_id(
    workspace: Workspace, cli, emulator_server, at_scale
):
    # Members with userIds make getUsers report userIds; one member is known by email only.
    rows = ["a@example.com,A", "b@example.com,B", "c@example.com,C", "late@example.com,"]
    workspace.csv("data/big.csv", "email,userId", rows)
    workspace.audience("big", {"csv": "data/big.csv"})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = emulator_server.emulator.project("default")
    proj.set_user_id(proj.user_by_email("late@example.com"), "LATE-1")
    result = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECONCILER_ENGINE", "spark", "RECONCILER_ENGINE must be one of auto, python, duckdb"),
        ("RECONCILER_MEMORY_LIMIT", "lots", "must be a size from 64MB to 1000TB"),
        ("RECONCILER_ENGINE_THRESHOLD", "1e6", "must be a whole number"),
    ],
)
def test_bad_engine_settings_are_named(
    workspace: Workspace, cli, name, value, message, monkeypatch
):
    monkeypatch.setenv(name, value)
    workspace.audience("a", {"inline": ["a@example.com"]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1
    assert message in result.stderr


@pytest.mark.parametrize("project_type", ["hybrid", "userId", "email"])
def test_both_engines_and_both_member_reads_plan_the_same(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli, project_type
):
    server = make_emulator_server(project_type=project_type)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, project_type)
    ws.destination()
    proj = server.emulator.project("default")
    for n in range(3):
        list_id = proj.add_list(f"list-{n}")
        for i in range(6):
            proj.subscribe_direct(list_id, email=f"l{n}-{i}@example.com", user_id=f"U{n}-{i}")
        # One leaves, one joins; in hybrid projects one member is known by email only.
        rows = [f"l{n}-{i}@example.com,U{n}-{i}" for i in range(1, 6)] + [
            f"new{n}@example.com,N{n}"
        ]
        if project_type == "hybrid":
            rows[0] = f"l{n}-1@example.com,"
        ws.csv(f"data/list-{n}.csv", "email,userId", rows)
        ws.audience(f"list-{n}", {"csv": f"data/list-{n}.csv"}, policy={"maxRemovalPercent": 50})
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "3")
    plans = {}
    for engine in ("python", "duckdb"):
        for strategy in ("getUsers", "export"):
            monkeypatch.setenv("RECONCILER_ENGINE", engine)
            monkeypatch.setenv("RECONCILER_MEMBER_READS", strategy)
            before = len(server.emulator.request_log)
            result = cli("plan", ws.manifests, "--format", "json", "--show-members")
            assert result.exit_code == 0, result.output
            # Each list read once, however early (downloads start while sources are read).
            log = server.emulator.request_log[before:]
            # Member exports only: adds also export unsubscribe events and the profiles'
            # unsubscribedChannelIds (consent).
            exports = [r for r in log if r.path == "/api/export/data.json"]
            reads = (
                [r.path for r in log].count("/api/lists/getUsers"),
                sum("dataTypeName=user" in r.query and "ListIds" in r.query for r in exports),
            )
            assert reads == ((3, 0) if strategy == "getUsers" else (0, 1))
            body = result.json()
            for dest in body["destinations"]:
                assert ("DuckDB" in dest.pop("member_read")) == (engine == "duckdb")
                # How consent was read differs by route (an export of the members carries
                # the profiles' channel unsubscribes; getUsers does not); what it found,
                # the plan itself, may not.
                assert any("consent read" in x for x in dest.pop("other_reads"))
            plans[engine, strategy] = body
    first = plans["python", "getUsers"]
    assert first["summary"]["members_to_remove"] == 3
    assert first["summary"]["members_to_add"] == 3
    for key, body in plans.items():
        assert body == first, key

    assert cli("apply", ws.manifests, "--yes").exit_code == 0  # duckdb, export
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    ("sql", "database", "expected"),
    [
        # A trailing comment must not swallow the parenthesis the engine wraps the query in.
        ("SELECT 'a@example.com' AS email -- the audience", ":memory:", "a@example.com"),
        # A database that cannot be opened is named, not an internal error from detaching it.
        ("SELECT email FROM users", "data/missing.duckdb", "cannot open DuckDB database"),
        ("SELECT email FROM users", "data/not-a.duckdb", "cannot open DuckDB database"),
    ],
)
def test_duckdb_queries_read_alike_in_both_engines(
    workspace: Workspace, cli, emulator_server, monkeypatch, sql, database, expected
):
    workspace.write("data/not-a.duckdb", "not a database")
    workspace.audience("q", {"sql": sql, "database": database})
    outputs = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", workspace.manifests, "--format", "json", "--show-members")
        assert "internal error" not in result.output
        assert expected in result.output
        outputs[engine] = (result.exit_code, result.stdout.replace("; 1 large list diffed", ""))
    assert outputs["python"][0] == outputs["duckdb"][0]


def _zipped(name: str, data: bytes) -> bytes:
    """A ZIP archive holding one file, as an .xlsx workbook starts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # An unclosed quote: refused, never read as one bad row with every row after it
        # skipped (which would plan their removal).
        (b'email,userId\na@x.com,u1\n"b@x.com,u2\n' + b"c@x.com,u3\n" * 50, "not valid CSV"),
        # Bytes that are not UTF-8, past the part of the file read for the header: named
        # by line and column, as a text editor shows them, not by a byte offset.
        # Said as the encoding Excel's plain "CSV (Comma delimited)" writes, and how to
        # save it, not "save it as UTF-8" alone.
        (
            b"email,userId\n" + b"a@x.com,u1\n" * 2000 + b"j\xe9r\xf4me@x.com,u2\n",
            "data/m.csv:2002:2: not UTF-8 text (byte 0xe9): it reads as Windows-1252 or "
            'Latin-1, as Excel saves "CSV (Comma delimited)"; save it as "CSV UTF-8 (Comma '
            'delimited)"\n',
        ),
        # On a German or French machine the same file is separated by semicolons too:
        # both said at once, not the separator only once the encoding is fixed.
        (
            "email;userId;name\nelise@x.com;u1;\u00c9lise\n".encode("cp1252"),
            "data/m.csv:2:16: not UTF-8 text (byte 0xc9): it reads as Windows-1252 or Latin-1, "
            'as Excel saves "CSV (Comma delimited)"; save it as "CSV UTF-8 (Comma delimited)", '
            "with commas (it is separated by semicolons)",
        ),
        # A row with too few cells is named in the Python engine's words; a row of spaces
        # is blank and skipped silently.
        (b"email,userId\na@x.com,u1\n   \nbad\n", "row has 1 cell, header has 2"),
        # UTF-16, as Excel saves "Unicode Text" (with a byte-order mark) and some exports
        # without one: named for what it is, not "byte 0xff", nor a header of NUL-spelt
        # names with a hint to write them (NULs and all) under members.
        (
            "email\tuserId\r\na@x.com\tu1\r\n".encode("utf-16"),
            'm.csv is UTF-16 text, not UTF-8 (as Excel saves "Unicode Text"); save it as "CSV',
        ),
        ("email,userId\na@x.com,u1\n".encode("utf-16-le"), "m.csv is UTF-16 text, not UTF-8"),
        # A compressed export (bq extract --compression GZIP, Snowflake's COPY INTO) or a
        # workbook under a .csv name: named for what it is, not "not UTF-8 text (byte
        # 0x8b)" at 1:2, nor a header of binary noise "that looks like member data".
        (
            gzip.compress(b"email,userId\na@x.com,u1\n"),
            "m.csv is gzip-compressed, not CSV text: decompress it (`gzip -d`)",
        ),
        (_zipped("[Content_Types].xml", b"<Types/>"), "m.csv is a ZIP file (an Excel .xlsx"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
            "m.csv is an Excel 97-2003 workbook (.xls), not CSV text: open it in the "
            'spreadsheet and save it as "CSV UTF-8 (Comma delimited)"',
        ),
    ],
    ids=[
        "unclosed-quote",
        "not-utf8",
        "not-utf8-semicolons",
        "short-row",
        "utf16",
        "utf16-no-bom",
        "gzip",
        "xlsx",
        "xls",
    ],
)
def test_csv_problems_are_reported_alike_in_both_engines(
    workspace: Workspace, cli, monkeypatch, content, expected
):
    path = workspace.manifests / "data" / "m.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    workspace.audience("m", {"csv": "data/m.csv"})
    results = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("validate", workspace.manifests)
        assert expected in result.stderr, (engine, result.stderr)
        assert "internal error" not in result.output
        assert "\0" not in result.output
        results[engine] = result.exit_code
    assert results == {"python": 1, "duckdb": 1}


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 123456\n"
)


@pytest.mark.parametrize(
    ("field", "content", "expected"),
    [
        ("csv", LFS_POINTER, "is a Git LFS pointer of a 123,456-byte file, not its content"),
        ("parquet", LFS_POINTER, "actions/checkout `lfs: true`"),
        ("csv", b"\x00GITCRYPT\x00\x8f\x01\xfe", "is encrypted by git-crypt"),
        ("csv", b"/annex/objects/SHA256E-s42--0a1b.csv\n", "is a git-annex pointer"),
    ],
    ids=["lfs-csv", "lfs-parquet", "git-crypt", "git-annex"],
)
def test_a_source_the_checkout_left_as_a_stand_in_is_named_for_what_it_is(
    workspace: Workspace, cli, monkeypatch, field, content, expected
):
    """A CI checkout without LFS leaves a three-line pointer where the member file goes:
    read as a CSV it looked like a file without a header row, as Parquet "no magic bytes".
    It is refused under both engines, saying what it is and how to fetch the file."""
    path = workspace.manifests / "data" / f"m.{field}"
    workspace.csv("data/m.csv", "email", ["a@x.com", "b@x.com"])
    if field == "parquet":
        with duckdb.connect() as connection:
            connection.execute(f"COPY (SELECT 'a@x.com' AS email) TO '{path}' (FORMAT parquet)")
    workspace.audience("m", {field: f"data/m.{field}"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    path.write_bytes(content)
    results = {}
    for engine, threshold in (("python", "1000000"), ("duckdb", "1")):
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
        result = cli("plan", workspace.manifests, "--format", "json")
        # The manifest line that names the file, then the file.
        assert re.search(rf"aud-m.yaml:\d+:\d+: manifests/data/m.{field} is ", result.stderr)
        assert expected in result.stderr, (engine, result.stderr)
        assert "remove" not in result.stdout
        results[engine] = result.exit_code
    assert results == {"python": 1, "duckdb": 1}


@pytest.mark.parametrize("cut", ["half", "first-bytes", "footer-damaged"])
def test_a_parquet_file_cut_short_is_named_as_such_by_both_engines(
    workspace: Workspace, cli, monkeypatch, cut
):
    """An upload or a copy that did not finish leaves a Parquet file without its footer:
    DuckDB's 'No magic bytes found at end of file', 'too small to be a Parquet file' or,
    for a damaged footer, 'TProtocolException: Invalid data' said nothing of the cause."""
    path = workspace.manifests / "data" / "m.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(
            "COPY (SELECT 'user' || i || '@x.com' AS email FROM range(5000) t(i)) "
            f"TO '{path}' (FORMAT parquet)"
        )
    whole = path.read_bytes()
    path.write_bytes(
        {
            "half": whole[: len(whole) // 2],
            "first-bytes": whole[:4],
            # The footer's length and the magic bytes after a half: the footer is garbage.
            "footer-damaged": whole[: len(whole) // 2] + whole[-8:],
        }[cut]
    )
    workspace.audience("m", {"parquet": "data/m.parquet"})
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", workspace.manifests)
        assert result.exit_code == 1
        assert re.search(
            r"aud-m.yaml:\d+:\d+: cannot read Parquet file manifests/data/m.parquet: .*\(a "
            "Parquet file ends in a footer that describes it, and this one's is missing or "
            "unreadable: the file was cut short, by a copy or an upload that did not finish, "
            r"or is not Parquet; write or copy it again\)",
            result.stderr,
        ), (engine, result.stderr)


def test_a_duckdb_database_left_as_an_lfs_pointer_is_named_for_what_it_is(
    workspace: Workspace, cli
):
    workspace.write("data/m.duckdb", LFS_POINTER.decode())
    workspace.audience("q", {"sql": "SELECT email FROM users", "database": "data/m.duckdb"})
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1
    assert "DuckDB database manifests/data/m.duckdb is a Git LFS pointer" in result.stderr, (
        result.stderr
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email FROM read_csv('data/x.csv')",  # failed: column "email" not found
        "SELECT column0 AS email FROM read_csv('data/x.csv', header = false)",  # read its lines
    ],
    ids=["failing", "succeeding"],
)
def test_a_query_over_a_file_left_as_an_lfs_pointer_names_the_file(
    workspace: Workspace, cli, monkeypatch, sql
):
    """A query's own reads are not snapshots: the pointer failed it as if the SQL were
    wrong, or gave its three lines as rows (invalid emails, every member to remove)."""
    workspace.write("data/x.csv", LFS_POINTER.decode())
    workspace.audience("q", {"sql": sql, "database": ":memory:"})
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", workspace.manifests)
        assert result.exit_code == 1
        assert "manifests/data/x.csv, read by the query, is a Git LFS pointer of a " in (
            result.stderr
        ), (engine, result.stderr)


@pytest.mark.parametrize("threshold", ["1000000", "1"], ids=["python", "duckdb"])
def test_a_csv_named_in_another_unicode_form_is_read_by_both_engines(
    workspace: Workspace, cli, monkeypatch, threshold
):
    """git on macOS records file names composed (NFC); a manifest spelling the name
    decomposed (NFD, pasted from Finder) opened it on the Mac and was "CSV file not
    found" in CI, naming a file that read exactly like the one there."""
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    workspace.csv(unicodedata.normalize("NFC", "data/café.csv"), "email", ["a@x.com", "b@x.com"])
    workspace.audience("m", {"csv": unicodedata.normalize("NFD", "data/café.csv")})
    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.stderr
    (lst,) = result.json()["destinations"][0]["lists"]
    assert lst["desired_members"] == 2


@pytest.mark.parametrize(
    "content",
    [
        # Exported on Windows, a row appended on Linux (`echo ... >> members.csv`).
        b"email,userId,plan\r\na@x.com,u1,gold\r\nb@x.com,u2,silver\r\nc@x.com,u3,x\n",
        # The other way round, with an invalid row and a ragged one to be named by line.
        b"email,userId,plan\na@x.com,u1,gold\r\nb@x.com,u2,silver\nbad,,\r\n"
        b"c@x.com,u3,x\r\nd@x.com,u4,x,y\n",
        # Classic Mac OS line ends (a lone \r) beside Windows' and Linux's, and a quoted
        # cell holding a \r\n, kept as it is (found by a random differential test).
        b"email,userId,plan\r\na@x.com,u1,gold\rb@x.com,u2,silver\nc@x.com,u3,x\n",
        b'email,userId,plan\ra@x.com,u1,"go\r\nld"\rb@x.com,u2,silver\nc@x.com,u3,x\r',
    ],
    ids=["crlf-then-lf", "lf-then-crlf", "crlf-cr-lf", "cr-quoted-crlf-lf"],
)
def test_a_csv_whose_lines_end_both_ways_reads_alike_in_both_engines(
    workspace: Workspace, cli, monkeypatch, content
):
    """DuckDB's reader stopped at the first line ending otherwise than the header's ("The
    CSV Parser state machine reached an invalid state", no line named), so an audience
    the Python engine read failed as soon as it grew past the engine threshold."""
    path = workspace.manifests / "data" / "m.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    workspace.audience("m", {"csv": "data/m.csv"})
    plans = {}
    for engine, threshold in (("python", "1000000"), ("duckdb", "1")):
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
        result = cli("plan", workspace.manifests, "--format", "json", "--show-members")
        assert "not valid CSV" not in result.stderr, (engine, result.stderr)
        (dest,) = result.json()["destinations"]
        (lst,) = dest["lists"]
        add = next(c for c in lst["changes"] if c["type"] == "add_members")
        skipped = sorted(str(s) for s in dest["skipped_members"])
        plans[engine] = (result.exit_code, sorted(add["sample"]), skipped)
    assert plans["python"] == plans["duckdb"]
    assert plans["python"][1] == ["u1", "u2", "u3"]


@pytest.mark.parametrize(
    "rewrites",
    [["bom"], ["crlf"], ["cr"], ["blank_lines"], ["bom", "crlf", "blank_lines"]],
    ids=["bom", "crlf", "cr", "blank-lines", "all"],
)
def test_a_get_users_answer_a_proxy_rewrote_reads_alike_in_both_engines(
    workspace: Workspace, cli, emulator_server, monkeypatch, rewrites
):
    """A byte-order mark, line ends of both kinds or bare carriage returns, and lines of
    spaces in a getUsers answer (a proxy's or CDN's rewriting): Python kept the mark on the
    first member (removed and added again every run), DuckDB failed on mixed line ends
    (the list left out) and took a line of spaces for a member; import wrote them so."""
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("news")
    kept = [f"m{i}@example.com" for i in range(4)]
    for email in kept:
        proj.subscribe_direct(list_id, email=email)
    emulator_server.emulator.faults.update({"get_users_rewrites": rewrites})
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    engines = ("python", "duckdb")
    for engine in engines:
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        out = workspace.root / f"imported-{engine}"
        imported = cli("import", workspace.manifests, "-d", "prod", "--out", out)
        assert imported.exit_code == 0, (engine, imported.output)
        members_file = out / "news.csv"
        lines = members_file.read_text(encoding="utf-8").splitlines()
        assert lines == ["email,userId", *(f"{email}," for email in kept)], engine

    workspace.csv("data/news.csv", "email", [*kept, "new@example.com"])
    workspace.audience("news", {"csv": "data/news.csv"}, policy={"maxRemovalPercent": 100})
    for engine in engines:
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", workspace.manifests, "--format", "json", "--show-members")
        assert result.exit_code == 0, (engine, result.output)
        (dest,) = result.json()["destinations"]
        (lst,) = dest["lists"]
        assert lst["changes"] == [
            {
                "type": "add_members",
                "count": 1,
                "sample": ["new@example.com"],
                "update_existing_users_only": False,
            }
        ], engine


def _without_wall_time(member_read: str) -> str:
    """A plan's account of its member read less what is meant to differ between runs and
    engines: how long it took, and which lists were diffed in DuckDB."""
    member_read = re.sub(r" in [0-9][0-9.]* s \(", " (", member_read)
    return re.sub(r"; \d+ large lists? diffed in DuckDB", "", member_read)


def test_both_engines_choose_and_describe_the_same_member_read(
    workspace: Workspace, cli, emulator_server, monkeypatch
):
    # Sources with duplicate rows: the Python engine counted the distinct members, DuckDB
    # the valid rows, so the route's estimate (and at the margin the route) differed.
    proj = emulator_server.emulator.project("default")
    for name in ("a", "b"):
        list_id = proj.add_list(name)
        for i in range(4):
            proj.subscribe_direct(list_id, email=f"{name}{i}@example.com")
        rows = [f"{name}{i}@example.com" for i in range(6)] + [f"{name}0@example.com"] * 3
        workspace.csv(f"data/{name}.csv", "email", rows)
        workspace.audience(name, {"csv": f"data/{name}.csv"})
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "3")
    reads = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", workspace.manifests, "--format", "json")
        assert result.exit_code == 0, result.output
        (dest,) = result.json()["destinations"]
        assert dest["duplicate_rows"] == 6
        reads[engine] = _without_wall_time(dest["member_read"])
    assert "one user export of 18 members" in reads["python"]
    assert reads["python"] == reads["duckdb"]


@pytest.mark.parametrize("project_type", ["email", "userId"])
def test_both_engines_count_the_get_users_calls_of_lists_read_early(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli, project_type
):
    # In email- and userID-based projects the DuckDB engine starts a large list's getUsers
    # while its source is read; the plan counted its calls from after that, so it said
    # "(1 GET /api/lists/{id}/size)" with no getUsers where the Python engine said both.
    server = make_emulator_server(project_type=project_type)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, project_type)
    ws.destination()
    list_id = server.emulator.project("default").add_list("big")
    server.emulator.project("default").subscribe_direct(
        list_id, email="gone@example.com", user_id="gone"
    )
    ws.csv("data/big.csv", "email,userId", [f"e{i}@example.com,u{i}" for i in range(5)])
    ws.audience("big", {"csv": "data/big.csv"}, policy={"maxRemovalPercent": 100})
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    reads = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", ws.manifests, "--format", "json")
        assert result.exit_code == 0, result.output
        reads[engine] = _without_wall_time(result.json()["destinations"][0]["member_read"])
    assert "(1 GET /api/lists/getUsers)" in reads["python"]
    assert reads["duckdb"] == reads["python"]


def test_a_plan_saved_under_one_engine_applies_under_the_other(
    workspace: Workspace, cli, monkeypatch, tmp_path
):
    # One fingerprint for both engines (issue 17): the engine a plan was made with is not
    # a change in Iterable, so it does not make the plan stale.
    workspace.csv("data/big.csv", "email", [f"e{i}@example.com" for i in range(6)])
    workspace.audience("big", {"csv": "data/big.csv"})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.csv("data/big.csv", "email", [f"e{i}@example.com" for i in range(8)])
    planfile = tmp_path / "p.plan"
    monkeypatch.setenv("RECONCILER_ENGINE", "duckdb")
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    monkeypatch.setenv("RECONCILER_ENGINE", "python")
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 0, result.stderr
    assert "stale" not in result.output + result.stderr
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_a_plan_saved_under_either_engine_holds_the_same_changes(
    workspace: Workspace, cli, monkeypatch, tmp_path
):
    # The Python engine also wrote each add's source columns, which apply never reads
    # (it sends the list's mapped fields, saved beside the adds), and DuckDB did not.
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"greeting": {"template": "Hi {{ first_name }}"}}}}',
    )
    rows = [f"e{i}@example.com,Person{i}" for i in range(6)]
    workspace.csv("data/big.csv", "email,first_name", rows)
    workspace.audience("big", {"csv": "data/big.csv"}, traits="crm")
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "3")
    changes = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        planfile = tmp_path / f"{engine}.plan"
        assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
        lines = gzip.decompress(planfile.read_bytes()).splitlines()
        # The first line has the time it was made and the read's account, the last the
        # checksum of them all.
        changes[engine] = lines[1:-1]
    assert b"first_name" not in b"".join(changes["python"])
    assert changes["python"] == changes["duckdb"]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_ambiguous_or_misnamed_identifier_columns_are_refused(
    workspace: Workspace, cli, monkeypatch, engine
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    workspace.csv("data/two.csv", "email,userId,email", ["a@x.com,u1,", ",,y@x.com"])
    workspace.audience("two", {"csv": "data/two.csv"})
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1
    assert "has 2 columns named 'email'" in result.stderr

    (workspace.manifests / "aud-two.yaml").unlink()
    data = workspace.manifests / "data"
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT 'a@x.com' AS mail) TO '{data / 'p.parquet'}' (FORMAT parquet)"
        )
    workspace.audience("p", {"parquet": "data/p.parquet", "email": "e_mail"})
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1
    assert "has no column 'e_mail' (members.email)" in result.stderr


def test_invalid_rows_are_named_by_line_in_both_engines(workspace: Workspace, cli, monkeypatch):
    lines = ["email,userId", "a@x.com,u1", "", "bad1,", "   ", "b@x.com,u2,extra", "", "bad2,"]
    workspace.write("data/m.csv", "\n".join(lines) + "\n")
    workspace.audience("m", {"csv": "data/m.csv"})
    outputs = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("validate", workspace.manifests, "--show-members")
        assert result.exit_code == 1
        outputs[engine] = result.stderr
    assert outputs["python"] == outputs["duckdb"]
    assert "m.csv:4: invalid email 'bad1'" in outputs["duckdb"]
    assert "m.csv:6: row has 3 cells, header has 2" in outputs["duckdb"]
    assert "m.csv:8: invalid email 'bad2'" in outputs["duckdb"]


@pytest.mark.parametrize(
    ("content", "expected", "adds"),
    [
        # A blank line inside a quoted cell is part of the cell, not a skipped blank row;
        # the row after it is named by its line, as an editor shows it.
        (b'email,userId,n\r\na@x.com,u1,"\r\n\r\n"\r\nbad,u3,z\r\n', "m.csv:5: invalid email", 1),
        # Cells spanning lines: every row after them is named by the line it starts on
        # (its row number is smaller), and a long row by all its cells (DuckDB counted
        # one beyond the header).
        (
            b'email,userId,n\na@x.com,u1,"x\ny"\nb@x.com,u2,"p\nq\nr"\nbad,u3,z\n'
            b'c@x.com,u4,too,many,cells\nx@x.com,u1,"x\ny"\n',
            "m.csv:7: invalid email 'bad'\nmanifests/data/m.csv:8: row has 5 cells, header "
            "has 3\nwarning: manifests/data/m.csv:9: same userId as manifests/data/m.csv:2",
            2,
        ),
        # An unclosed quote after a cell spanning lines: named by the line it opens on.
        (
            b'email,userId,n\na@x.com,u1,"x\ny"\n"b@x.com,u2,z\nc@x.com,u3,z\n',
            "m.csv:4: not valid",
            None,
        ),
        # A lone CR ends a line, so a blank one is a blank row.
        (b"email,userId\ra@x.com,u1\r\rbad,u2\r", "m.csv:4: invalid email", 1),
        # Empty cells after the last column are dropped in both engines: the member is read.
        (b"email,userId\na@x.com,u1,\nb@x.com,u2,,\nbad,u3\n", "m.csv:4: invalid email", 2),
        # A row of quotes or commas only is blank (silently skipped) in both engines.
        (b'email,userId,n\na@x.com,u1,x\n""\n,\nbad,u3,z\n', "m.csv:5: invalid email", 1),
        # A cell longer than Python's default csv field limit (131,072) reads in both.
        (b"email,userId,n\na@x.com,u1," + b"x" * 150_000 + b"\nbad,u3,z\n", "m.csv:3: invalid", 1),
        # An unclosed quote is named at the row where it opens, not at the end of the file.
        (
            b'email,userId\na@x.com,u1\n"b@x.com,u2\nbad,u3\nc@x.com,u4\n',
            "m.csv:3: not valid CSV",
            None,
        ),
        # Under a one-column header DuckDB reads a blank line as a row: not added back twice.
        (b"email\na@x.com\n\n,\nbad\n", "m.csv:5: invalid email", 1),
        # A short row under a header with empty trailing names: one issue, not one per
        # missing column (DuckDB lists it twice).
        (b"email,userId,,\na@x.com,u1,,\nbad,u2\n", "m.csv:3: row has 2 cells", 1),
    ],
    ids=[
        "blank-in-quotes",
        "multi-line-cells",
        "open-quote-after-multi-line",
        "lone-cr",
        "trailing-empty-cells",
        "quotes-only",
        "long-cell",
        "open-quote",
        "one-column",
        "empty-header-names",
    ],
)
def test_odd_csv_files_read_alike_in_both_engines(
    workspace: Workspace, cli, monkeypatch, content, expected, adds
):
    path = workspace.manifests / "data" / "m.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    workspace.audience("m", {"csv": "data/m.csv"})
    outputs = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        validated = cli("validate", workspace.manifests, "--show-members")
        assert expected in validated.stderr, (engine, validated.stderr)
        planned = cli("plan", workspace.manifests, "--format", "json", "--show-members")
        assert planned.exit_code == 1, (engine, planned.output)  # skipped rows, or unreadable
        plan = json.loads(planned.stdout)
        if adds is not None:
            assert plan["summary"]["members_to_add"] == adds, engine
            # What the plans hold, without the note on where the list was diffed.
            for destination in plan["destinations"]:
                destination.pop("other_reads")
        outputs[engine] = (validated.exit_code, validated.stderr, plan)
    assert outputs["python"] == outputs["duckdb"]


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("'x'::BLOB", "x"),
        ("42::HUGEINT", "42"),
        ("123::DECIMAL(20,10)", "123"),
        ("7::DOUBLE", "7"),
        ("'00000000-0000-0000-0000-00000000000a'::UUID", "00000000-0000-0000-0000-00000000000a"),
    ],
)
def test_typed_identifier_columns_are_the_same_text_in_both_engines(
    workspace: Workspace, cli, monkeypatch, column, text
):
    # A Parquet file's or a DuckDB query's userId of another type than text becomes the
    # same text in both engines (the Python engine used str(): a BOOLEAN `True`), a whole
    # number its integer text (identifier_types.py; other types are refused).
    data = workspace.manifests / "data"
    data.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT {column} AS userId, 'a@x.com' AS email) "
            f"TO '{data / 'p.parquet'}' (FORMAT parquet)"
        )
    workspace.audience("p", {"parquet": "data/p.parquet"})
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result = cli("plan", workspace.manifests, "--format", "json", "--show-members")
        assert result.exit_code == 0, result.output
        assert f'"{text}"' in result.stdout, (engine, result.stdout)


def test_a_temp_dir_duckdb_cannot_work_in_is_named(
    workspace: Workspace, cli, monkeypatch, tmp_path
):
    """RECONCILER_DUCKDB_TEMP_DIR naming a file (or /proc) ended plan in "internal error:
    FileExistsError" or "FileNotFoundError", naming no variable."""
    taken = tmp_path / "not-a-directory"
    taken.write_text("", encoding="utf-8")
    monkeypatch.setenv("RECONCILER_ENGINE", "duckdb")
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(taken))
    workspace.csv("data/a.csv", "email", ["a@example.com"])
    workspace.audience("a", {"csv": "data/a.csv"})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert f"cannot make DuckDB's working directory in {taken}" in result.stderr
    assert "RECONCILER_DUCKDB_TEMP_DIR chooses another directory" in result.stderr
    assert "internal error" not in result.stderr


def test_a_temp_dir_the_early_list_reads_cannot_work_in_is_said_once_without_a_traceback(
    tmp_path, monkeypatch, fast_client, make_emulator_server
):
    """A large list of an email-based project is read while the sources are, on a thread
    of its own, which opened the workspace first: its ConfigError was printed as that
    thread's raw traceback ("Exception in thread reconciler-prefetch") before the plan's
    own error said the same. Run as a process, where nothing catches a thread's error."""
    server = make_emulator_server(project_type="email")
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    proj = server.emulator.project("default")
    proj.subscribe_direct(proj.add_list("big"), email="gone@example.com")
    ws.csv("data/big.csv", "email", [f"m{i}@example.com" for i in range(5)])
    ws.audience("big", {"csv": "data/big.csv"})
    taken = tmp_path / "not-a-directory"
    taken.write_text("", encoding="utf-8")
    env = subprocess_env(
        ws,
        RECONCILER_ENGINE="duckdb",
        RECONCILER_MEMBER_READS="getUsers",
        RECONCILER_DUCKDB_TEMP_DIR=str(taken),
    )
    proc = spawn_cli(ws, "plan", "manifests", env=env)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.count(f"cannot make DuckDB's working directory in {taken}") == 1, err
    assert "Traceback" not in err and "Exception in thread" not in err


def test_large_lists_read_early_take_as_many_threads_as_reads_in_flight_not_one_each(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli
):
    """The early getUsers of large lists started a thread per list, each then waiting for
    one of RECONCILER_LIST_READ_CONCURRENCY places: a thousand large audiences were a
    thousand threads (and a container's process limit, threads it cannot start)."""
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    proj = server.emulator.project("default")
    names = [f"l{i}" for i in range(8)]
    for name in names:
        proj.subscribe_direct(proj.add_list(name), email=f"{name}-gone@example.com")
        ws.csv(f"data/{name}.csv", "email", [f"{name}-{i}@example.com" for i in range(4)])
        ws.audience(name, {"csv": f"data/{name}.csv"}, policy={"maxRemovalPercent": 100})
    monkeypatch.setenv("RECONCILER_ENGINE", "duckdb")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_LIST_READ_CONCURRENCY", "2")
    seen: list[int] = []
    handle = server.emulator.handle

    def counting(request):
        if request.url.path == "/api/lists/getUsers":
            seen.append(
                sum(
                    t.name == "reconciler-prefetch-list" and t.is_alive()
                    for t in threading.enumerate()
                )
            )
        return handle(request)

    monkeypatch.setattr(server.emulator, "handle", counting)

    result = cli("plan", ws.manifests, "--format", "json")

    assert result.exit_code == 0, result.output
    assert result.json()["summary"]["members_to_add"] == 4 * len(names)
    assert len(seen) == len(names)  # every list read early, once
    assert max(seen) <= 2, seen


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_no_usable_system_temporary_directory_is_said_as_such(
    workspace: Workspace, cli, monkeypatch, tmp_path, engine
):
    """A container with a read-only root (and working directory) and no TMPDIR: Python
    finds no temporary directory, and every CSV source was "CSV file not found", naming
    a file that is there (the message's own look-up of the directory raised again)."""
    workspace.csv("data/a.csv", "email", ["a@example.com"])
    workspace.audience("a", {"csv": "data/a.csv"})
    # Each of the places Python tries is unusable (a file where a directory would go),
    # as /tmp, /var/tmp and the working directory are on a read-only file system.
    blocked = tmp_path / "read-only"
    blocked.write_text("", encoding="utf-8")
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(blocked)])
    monkeypatch.delenv("RECONCILER_DUCKDB_TEMP_DIR", raising=False)
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert "not found" not in result.stderr
    assert "internal error" not in result.stderr
    assert "no usable temporary directory" in result.stderr
    assert "RECONCILER_DUCKDB_TEMP_DIR" in result.stderr


@pytest.mark.parametrize("route", ["getUsers", "export"])
def test_both_engines_read_the_list_index_once_per_plan(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli, route
):
    # The reads started while the sources are read (the DuckDB engine's getUsers of a
    # large list, either engine's export) asked GET /api/lists to choose their route,
    # and the plan asked again for the same index: one request more than a plan without
    # them, here the DuckDB engine's one more than the Python engine's.
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    proj = server.emulator.project("default")
    for name in ("a", "b"):
        proj.subscribe_direct(proj.add_list(name), email=f"{name}-gone@example.com")
        ws.csv(f"data/{name}.csv", "email", [f"{name}{i}@example.com" for i in range(5)])
        ws.audience(name, {"csv": f"data/{name}.csv"}, policy={"maxRemovalPercent": 100})
    monkeypatch.setenv("RECONCILER_MEMBER_READS", route)
    calls = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        server.emulator.clear_log()
        result = cli("plan", ws.manifests, "--format", "json")
        assert result.exit_code == 0, result.output
        assert result.json()["summary"]["members_to_add"] == 10
        calls[engine] = {}
        for r in server.emulator.request_log:
            key = re.sub(r"/api/users/.*%40.*", "/api/users/{email}", f"{r.method} {r.path}")
            calls[engine][key] = calls[engine].get(key, 0) + 1
    # Beside the list index, once: each list's members (two getUsers, or one export), the
    # consent guard's reads (the unsubscribe events' export, the channels, and each add's
    # profile where no export of every profile read the lists), forgotten users and the
    # campaigns.
    reads = (
        {"GET /api/lists/getUsers": 2, "GET /api/export/data.json": 1, "GET /api/users/{email}": 10}
        if route == "getUsers"
        else {"GET /api/export/data.json": 2}
    )
    expected = {
        "GET /api/lists": 1,
        **reads,
        "GET /api/channels": 1,
        "GET /api/users/forgotten": 1,
        "GET /api/campaigns": 1,
    }
    assert calls == {"python": expected, "duckdb": expected}


def test_a_full_temp_dir_is_named_with_its_variable_not_a_bug_or_a_damaged_plan(
    workspace: Workspace, cli, emulator_server, at_scale, monkeypatch, tmp_path
):
    """A temporary directory without room for what a plan reads from Iterable was
    "internal error: OSError ... This is a bug in reconciler", and one without room for a
    saved plan's member sets said the plan file was damaged (so it was made again, to meet
    the same full disk). Both now name the directory and RECONCILER_DUCKDB_TEMP_DIR."""
    temp = tmp_path / "temp"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(temp))
    # The whole project is read by one user export, streamed into the workspace: far more
    # than the few rows of the source.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    project = emulator_server.emulator.project("default")
    listed = project.add_list("big")
    for i in range(3000):
        project.subscribe_direct(listed, email=f"someone-with-a-long-name-{i}@example.com")
    workspace.csv("data/big.csv", "email", [f"new-{i}@example.com" for i in range(10)])
    workspace.audience("big", {"csv": "data/big.csv"}, policy={"maxRemovalPercent": 100})
    # A saved plan adding 4,000 members: a set the workspace holds when it is read back.
    workspace.csv("data/new.csv", "email", [f"joining-member-{i}@example.com" for i in range(4000)])
    workspace.audience("new", {"csv": "data/new.csv"})
    saved = tmp_path / "saved.plan"
    made = cli("plan", workspace.manifests, "--out", saved)
    assert made.exit_code == 0, made.output

    said = f"cannot write in the temporary directory {temp} (File too large)"
    with file_size_limit(64_000):  # as a full disk refuses a write
        # (--target: the other audience's source alone would not fit)
        plan = cli("plan", workspace.manifests, "--target", "big")
        applied = cli("apply", "--plan", saved, "--yes", "--allow-unsafe")
    for result in (plan, applied):
        assert result.exit_code == 1, result.output
        assert said in result.stderr, result.stderr
        assert "RECONCILER_DUCKDB_TEMP_DIR to a directory with more room" in result.stderr
        assert "internal error" not in result.stderr
    assert "not a reconciler plan file" not in applied.stderr
    # What did fit is removed (the source copies as their snapshots are collected, which
    # in a process of its own is at its end).
    gc.collect()
    assert list(temp.iterdir()) == []


def test_validate_in_a_full_temp_dir_names_it_not_a_bug(
    workspace: Workspace, cli, monkeypatch, tmp_path
):
    """validate, whose DuckDB engine writes a trait mapping's values to its workspace, was
    "internal error: OSError ... This is a bug in reconciler" in a full temporary directory."""
    temp = tmp_path / "temp"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(temp))
    monkeypatch.setenv("RECONCILER_ENGINE", "duckdb")
    source = workspace.csv(
        "data/t.csv", "email,tier", [f"p{i}@example.com,{i % 7}" for i in range(3000)]
    )
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"tier": {"from": "tier", "type": "number"}}}}',
    )
    workspace.audience("t", {"csv": "data/t.csv"}, traits="crm")
    # Room for the copy of the source, not for the mapped values beside it.
    with file_size_limit(source.stat().st_size + 1):
        result = cli("validate", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert f"cannot write in the temporary directory {temp} (File too large)" in result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_sources_are_read_with_an_unusable_system_temp_dir_and_the_variable_set(
    workspace: Workspace, cli, monkeypatch, tmp_path, engine
):
    """A container with a read-only root file system and RECONCILER_DUCKDB_TEMP_DIR on
    its writable volume: the clock marker every source read makes went to the system's
    temporary directory all the same, whose FileNotFoundError ("No usable temporary
    directory") was said as "CSV file not found: data/a.csv" of a file that was there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "read-only-root" / "tmp"))
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path / "volume"))
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    workspace.csv("data/a.csv", "email", ["a@example.com", "b@example.com"])
    workspace.audience("a", {"csv": "data/a.csv"})
    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    (listed,) = result.json()["destinations"][0]["lists"]
    assert listed["desired_members"] == 2


@pytest.mark.parametrize("field", ["csv", "parquet"])
def test_a_source_link_the_checkout_left_as_a_plain_file_is_named_for_what_it_is(
    workspace: Workspace, cli, monkeypatch, field
):
    """Git with core.symlinks false (Git for Windows' default, a checkout on a drive
    without links, as WSL's /mnt/c may be) writes a link as a file holding its target:
    read as members, `../exports/m.csv` was a CSV header naming no identifier column, or
    a Parquet file without magic bytes, neither saying the link was not made."""
    target = workspace.manifests / "exports" / f"m.{field}"
    target.parent.mkdir(parents=True)
    if field == "parquet":
        with duckdb.connect() as connection:
            connection.execute(f"COPY (SELECT 'a@x.com' AS email) TO '{target}' (FORMAT parquet)")
    else:
        target.write_text("email\na@x.com\n")
    (workspace.manifests / "data").mkdir(exist_ok=True)
    (workspace.manifests / "data" / f"m.{field}").write_bytes(f"../exports/m.{field}".encode())
    workspace.audience("m", {field: f"data/m.{field}"})
    for engine, threshold in (("python", "1000000"), ("duckdb", "1")):
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
        result = cli("validate", workspace.manifests)
        assert re.search(rf"aud-m.yaml:\d+:\d+: manifests/data/m.{field} is ", result.stderr)
        assert "a symbolic link to ../exports/m." in result.stderr, (engine, result.stderr)
        assert "core.symlinks" in result.stderr
        assert result.exit_code == 1
