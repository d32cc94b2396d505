"""Plans are safe to post: identifiers masked by default, full only with --show-members
(issue 10)."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from reconciler.render.masking import mask_identifier
from tests.integration.conftest import Workspace

MEMBERS = [
    {"email": "jane.doe@example.com", "userId": "usr_00012391"},
    {"email": "kim@corp.example.org"},
    {"userId": "customer-77731"},
]
LIVE_ONLY = ["leaving.person@example.com"]
INVALID = "broken@@example.com"
SECRETS = [
    "jane.doe@example.com",
    "usr_00012391",
    "kim@corp.example.org",
    "customer-77731",
    "leaving.person@example.com",
    INVALID,
]


def setup(workspace, server):
    proj = server.emulator.project("default")
    list_id = proj.add_list("vip")
    for email in LIVE_ONLY:
        proj.subscribe_direct(list_id, email=email)
    workspace.audience("vip", {"inline": [*MEMBERS, INVALID]}, policy={"maxRemovalPercent": 100})


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_every_plan_format_and_the_summary_file_mask_members(
    workspace, cli, emulator_server, tmp_path
):
    setup(workspace, emulator_server)
    summary = tmp_path / "summary.md"
    for fmt in ("text", "markdown", "json"):
        result = cli("plan", workspace.manifests, "--format", fmt, "--summary-file", summary)
        assert result.exit_code == 1  # the invalid member is skipped, so not 0
        assert leaked(result.output) == [], fmt
        assert mask_identifier("leaving.person@example.com") in result.stdout
    assert leaked(summary.read_text()) == []
    assert "l***@***" in summary.read_text()


def test_a_summary_file_it_creates_is_owner_only(workspace, cli, emulator_server, tmp_path):
    setup(workspace, emulator_server)
    made, existing = tmp_path / "new" / "summary.md", tmp_path / "step-summary.md"
    existing.write_text("")
    existing.chmod(0o644)  # as GitHub makes $GITHUB_STEP_SUMMARY: left as it is
    for summary in (made, existing):
        cli("plan", workspace.manifests, "--show-members", "--summary-file", summary)
        assert "jane.doe@example.com" in summary.read_text()
    assert made.stat().st_mode & 0o777 == 0o600
    assert existing.stat().st_mode & 0o777 == 0o644


def test_show_members_shows_them_in_full(workspace, cli, emulator_server):
    setup(workspace, emulator_server)
    result = cli("plan", workspace.manifests, "--show-members")
    assert "usr_00012391 <jane.doe@example.com>" in result.stdout
    assert "leaving.person@example.com" in result.stdout
    assert repr(INVALID) in result.stdout


def test_apply_output_masks_members_too(workspace, cli, emulator_server, tmp_path):
    setup(workspace, emulator_server)
    summary = tmp_path / "summary.md"
    for fmt in ("text", "markdown", "json"):
        result = cli(
            "apply", workspace.manifests, "--yes", "--format", fmt, "--summary-file", summary
        )
        assert leaked(result.output) == [], fmt
    assert leaked(summary.read_text()) == []


def test_validate_masks_a_user_id_yaml_read_as_a_number(workspace, cli):
    """`- 4915112345678` (a userId written bare) is a number to YAML, refused saying to
    quote it: the message printed the member's userId in full, where every other identity
    in validate's output is masked."""
    (workspace.manifests / "numbers.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: numbers}\n"
        "spec:\n  destination: prod\n  members:\n    inline:\n"
        "      - 4915112345678\n      - {userId: 0049151}\n",
        encoding="utf-8",
    )
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1 and "got the number 4***" in result.output, result.output
    assert "4915112345678" not in result.output and "49151" not in result.output
    shown = cli("validate", workspace.manifests, "--show-members").output
    assert "got the number 4915112345678" in shown and "got the number 0049151" in shown, shown


def test_validate_masks_invalid_values(workspace, cli):
    workspace.audience("vip", {"inline": [INVALID]})
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1
    assert INVALID not in result.output and "invalid email" in result.output
    assert INVALID in cli("validate", workspace.manifests, "--show-members").output


def test_markdown_of_a_100k_member_plan_fits_a_comment_and_stays_readable(workspace, cli):
    rows = [f"person{i}@example.com" for i in range(100_000)]
    workspace.csv("data/big.csv", "email", rows)
    workspace.audience("big", {"csv": "data/big.csv"})
    result = cli("plan", workspace.manifests, "--format", "markdown")
    assert result.exit_code == 0, result.output
    body = result.stdout
    assert len(body) < 65_536
    assert "**+100,000** members to add" in body
    assert re.search(r"\| big \| new \| 100,000 \| 0 \|", body)
    assert "... and 99,990 more" in body
    assert "person5@example.com" not in body


def test_exit_codes_are_distinct(workspace, cli, emulator_server, tmp_path):
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    for i in range(10):
        proj.subscribe_direct(list_id, email=f"m{i}@example.com")
    workspace.audience("vip", {"inline": [f"m{i}@example.com" for i in range(10)]})
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
    workspace.audience("vip", {"inline": [f"m{i}@example.com" for i in range(11)]})
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 2
    assert cli("plan", workspace.manifests).exit_code == 0
    workspace.audience("vip", {"inline": [f"m{i}@example.com" for i in range(5)]})
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 3
    planfile = tmp_path / "p.plan"
    workspace.audience("vip", {"inline": [f"m{i}@example.com" for i in range(11)]})
    cli("plan", workspace.manifests, "--out", planfile)
    proj.subscribe_direct(list_id, email="new@example.com")
    assert cli("apply", "--plan", planfile, "--yes").exit_code == 4


def test_internal_errors_mask_emails_with_and_without_debug(workspace, monkeypatch, capsys):
    import pytest

    from reconciler import cli as cli_module

    def broken(*_args, **_kwargs):
        raise KeyError("jane.doe@example.com")

    monkeypatch.setattr("reconciler.cli.session.make_plan", broken)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    for extra in ([], ["--debug"]):
        monkeypatch.setattr("sys.argv", ["reconciler", "plan", str(workspace.manifests), *extra])
        with pytest.raises(SystemExit) as done:
            cli_module.main()
        assert done.value.code == 1
        stderr = capsys.readouterr().err
        assert "jane.doe@example.com" not in stderr
        assert "j***@***" in stderr
        assert ("Traceback" in stderr) == bool(extra)


def test_the_run_record_masks_members_even_with_show_members(workspace, cli, emulator_server):
    """The run record (--summary-json) is kept as a CI artifact for 90 days and holds no
    member identifiers; an apply stopped by an error quoting a member wrote it in full
    there under --show-members, which is for the output people read locally."""
    workspace.csv("data/m.csv", "email,uid", ["jane.doe@example.com,usr_00012391"])
    query = "SELECT email, CAST(uid AS INTEGER) AS userId FROM read_csv('data/m.csv')"
    workspace.audience("vip", {"sql": query, "database": ":memory:"})
    record = workspace.root / "run.json"
    result = cli("apply", workspace.manifests, "--yes", "--show-members", "--summary-json", record)
    assert result.exit_code == 1 and "usr_00012391" in result.output  # shown, as asked
    message = json.loads(record.read_text())["message"]
    assert "Could not convert string" in message and "usr_0" not in message, message


def test_an_internal_error_on_a_member_s_userid_masks_it(workspace, monkeypatch, capsys):
    import pytest

    from reconciler import cli as cli_module

    def lookup(*_args, **_kwargs):
        # Lookups by members' identifiers that fail, as a bug in planning might: KeyError
        # shows the key, in the one-line message and in the traceback, with the one it
        # was handling. (The keys are variables: a traceback shows the code's lines.)
        members: dict[str, int] = {}
        first, second = MEMBERS[0]["userId"], MEMBERS[2]["userId"]
        try:
            members[first]
        except KeyError:
            members[second]

    monkeypatch.setattr("reconciler.cli.session.make_plan", lookup)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    for extra in ([], ["--debug"], ["--show-members"]):
        monkeypatch.setattr("sys.argv", ["reconciler", "plan", str(workspace.manifests), *extra])
        with pytest.raises(SystemExit) as done:
            cli_module.main()
        assert done.value.code == 1
        stderr = capsys.readouterr().err
        assert ("Traceback" in stderr) == ("--debug" in extra)
        if "--show-members" in extra:
            assert "KeyError: 'customer-77731'" in stderr
            continue
        assert "customer-77731" not in stderr and "usr_00012391" not in stderr, stderr
        assert "KeyError: 'c***'" in stderr
        if extra:
            assert "KeyError: 'u***'" in stderr  # the exception it was handling, too


def test_an_iterable_error_quoting_the_request_is_masked(workspace, cli, emulator_server, tmp_path):
    """A failed write whose error quotes the request back (members, field values) showed
    every userId and value it quoted in the apply report, the summary and the JSON: only
    emails were masked in Iterable's error texts."""
    traits = {"nick": "nick"}
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        f' "spec": {{"fields": {json.dumps(traits)}}}}}',
    )
    workspace.audience("vip", {"csv": "data/m.csv", "userId": "uid"}, traits="crm")
    summary = tmp_path / "summary.md"
    secrets = ("usr_00012391", "jane.doe")

    def failing(path: str, nick: str) -> None:
        workspace.csv("data/m.csv", "email,uid,nick", [f"jane.doe@example.com,usr_00012391,{nick}"])
        emulator_server.emulator.faults.update(
            {"echo_request": True, "fail_every": 1, "fail_status": 400, "paths": [path]}
        )
        for fmt in ("text", "json", "markdown"):
            args = ("apply", workspace.manifests, "--yes", "--summary-file", summary)
            result = cli(*args, "--format", fmt)
            assert result.exit_code == 1, result.output
            assert "(request: POST" in result.output, result.output  # the request was quoted
            output = result.output + summary.read_text()
            for secret in (*secrets, nick, json.dumps(nick)[1:-1]):
                assert secret not in output, (path, fmt, secret, output)
            assert "\ue000" not in output
        shown = cli("apply", workspace.manifests, "--yes", "--show-members").output
        assert "usr_00012391" in shown and nick in shown, shown

    # A new member goes out with its fields in the subscribe; a changed field, in bulkUpdate.
    failing("/api/lists/subscribe", "Zoë Nick")
    emulator_server.emulator.faults = type(emulator_server.emulator.faults)()
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    failing("/api/users/bulkUpdate", "Zoë Newnick")


def test_the_run_journal_keeps_an_echoed_request_masked(workspace, cli, emulator_server, tmp_path):
    """The run journal (.reconciler/runs/apply-*.jsonl, the last 100 kept) wrote a failed
    write's error as Iterable sent it: a server that quotes the request back put every
    email, userId and field value of the batch in a file kept for months, which README
    describes as holding the errors the report shows (masked) and no copy of the audience.
    It now keeps them masked, as the report does, also with --show-members (a log on
    disk is not the terminal it was asked for)."""
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"nick": "nick"}}}',
    )
    workspace.audience(
        "vip",
        {"csv": "data/m.csv", "userId": "uid"},
        traits="crm",
        policy={"maxRemovalPercent": 100},
    )
    workspace.csv("data/m.csv", "email,uid,nick", ["jane.doe@example.com,usr_00012391,Zoë Nick"])
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    secrets = ("jane.doe", "usr_00012391", "Zoë Nick", "Zo\\u00eb Nick", "leaving.person")
    for path in ("/api/lists/subscribe", "/api/users/bulkUpdate", "/api/lists/unsubscribe"):
        emulator_server.emulator.faults = type(emulator_server.emulator.faults)()
        if path == "/api/users/bulkUpdate":
            assert cli("apply", workspace.manifests, "--yes").exit_code == 0
            workspace.csv("data/m.csv", "email,uid,nick", ["jane.doe@example.com,usr_00012391,Zoë"])
        if path == "/api/lists/unsubscribe":
            proj.subscribe_direct(list_id, email="leaving.person@example.com")
        emulator_server.emulator.faults.update(
            {"echo_request": True, "fail_every": 1, "fail_status": 400, "paths": [path]}
        )
        for extra in ((), ("--show-members",)):
            result = cli("apply", workspace.manifests, "--yes", *extra)
            assert result.exit_code == 1 and "(request: POST" in result.output, result.output
            journal = max((tmp_path / ".reconciler" / "runs").glob("apply-*.jsonl")).read_text()
            assert "(request: POST " + path in journal, journal
            for secret in secrets:
                assert secret not in journal, (path, extra, secret, journal)
            assert "\ue000" not in journal and "\\ue000" not in journal


def test_a_per_user_read_error_quoting_its_path_is_masked(workspace, cli, emulator_server):
    """A refused read of one profile (users/byUserId/{userId}, users/{email}) whose error
    quotes its path showed the userId, or the URL-encoded email, in full."""
    workspace.csv("data/m.csv", "email,uid,nick", ["jane.doe@example.com,usr_00012391,Gold"])
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"nick": "nick"}}}',
    )
    workspace.audience("vip", {"csv": "data/m.csv", "userId": "uid"}, traits="crm")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.csv("data/m.csv", "email,uid,nick", ["jane.doe@example.com,usr_00012391,Silver"])
    emulator_server.emulator.faults.update(
        {"echo_request": True, "fail_every": 1, "fail_status": 400, "paths": ["/api/users/"]}
    )
    for fmt in ("text", "json"):
        result = cli("plan", workspace.manifests, "--format", fmt)
        assert result.exit_code == 1 and "(request: GET /api/users/" in result.output, result.output
        for secret in ("usr_00012391", "jane.doe", "jane.doe%40example.com"):
            assert secret not in result.output, (fmt, secret, result.output)
    shown = cli("plan", workspace.manifests, "--show-members").output
    assert "usr_00012391" in shown or "jane.doe%40example.com" in shown, shown


SECRET_DOMAIN = "secret-merger-target.example"


def test_masks_keep_no_domain_or_tld_and_a_sample_is_ten_distinct_lines(
    workspace, cli, emulator_server
):
    """Issue 15.5 and 20.18: `o***@a***.<anything>` carried a domain's last label out, an
    8-character userId kept 6 characters, and ten masked members read as one line ten times."""
    people = [f"person{i}@{SECRET_DOMAIN}" for i in range(12)]
    odd = ["jane@example.cxm", "o@a.confidentialtld"]
    workspace.audience("vip", {"inline": [*people, *odd, {"userId": "usr_00012391"}]})
    for fmt in ("text", "markdown", "json"):
        result = cli("plan", workspace.manifests, "--format", fmt)
        assert result.exit_code == 0, result.output
        for secret in (SECRET_DOMAIN, "example", "cxm", "confidentialtld", "usr_0001", "2391"):
            assert secret not in result.output, (fmt, secret)
    text = cli("plan", workspace.manifests).stdout
    sample = [line.strip() for line in text.splitlines() if "***" in line]
    assert len(sample) == 10 and len(set(sample)) == 10, sample


def test_a_csv_without_a_header_row_does_not_print_its_first_member(
    workspace, cli, emulator_server
):
    """Issue 15.6: the first data row became the header, and "columns are: ..." printed it."""
    first = "jane.doe@example.com,usr_00012391,Jane Doe"
    workspace.csv("data/members.csv", first, ["kim@example.org,usr_2,Kim"])
    workspace.audience("vip", {"csv": "data/members.csv"})
    for args in (("validate",), ("plan",), ("apply", "--yes")):
        result = cli(*args, workspace.manifests)
        assert result.exit_code == 1, result.output
        assert "columns are:" in result.output and "header row" in result.output
        for value in first.split(","):
            assert value not in result.output, (args, value)
    shown = cli("validate", workspace.manifests, "--show-members").output
    assert "columns are: jane.doe@example.com, usr_00012391, Jane Doe" in shown
    # A proper header is still shown in full: it is what helps fix the manifest.
    workspace.csv("data/members.csv", "mail,user_ref", ["kim@example.org,usr_2"])
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1 and "columns are: mail, user_ref" in result.output


def test_trait_column_checks_do_not_print_member_data(workspace, cli, emulator_server):
    first = "jane.doe@example.com,usr_00012391,Gold"
    workspace.csv("data/members.csv", first, ["kim@example.org,usr_2,Free"])
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"tier": "plan"}}}',
    )
    workspace.audience("vip", {"csv": "data/members.csv", "email": "email"}, traits="crm")
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1 and "columns are:" in result.output
    for value in first.split(","):
        assert value not in result.output, value


def test_show_members_is_the_parsed_option_not_a_word_in_argv(
    workspace, monkeypatch, capsys, tmp_path
):
    """`--show-members` given as a path (after `--`) is not the option: an internal error's
    message stays masked (the unmasking used to be decided by scanning sys.argv)."""
    import pytest

    from reconciler import cli as cli_module

    def broken(*_args, **_kwargs):
        raise KeyError("jane.doe@example.com")

    monkeypatch.setattr("reconciler.cli.session.make_plan", broken)
    odd = tmp_path / "--show-members"
    odd.mkdir()
    (odd / "dest.yaml").write_text((workspace.manifests / "dest-prod.yaml").read_text())
    workspace.audience("vip", {"inline": ["a@example.com"]})
    (odd / "aud.yaml").write_text((workspace.manifests / "aud-vip.yaml").read_text())
    monkeypatch.setattr("sys.argv", ["reconciler", "plan", "--", "--show-members"])
    with pytest.raises(SystemExit) as done:
        cli_module.main()
    assert done.value.code == 1
    stderr = capsys.readouterr().err
    assert "internal error" in stderr
    assert "jane.doe@example.com" not in stderr and "j***@***" in stderr


def test_format_json_is_the_parsed_option_not_words_in_argv(workspace, monkeypatch, capsys):
    """`--out --format json` saves the plan to a file named --format and plans the manifests
    in ./json: an internal error then is no JSON object on stdout (whether the command asked
    for JSON used to be decided by scanning sys.argv)."""
    import shutil

    import pytest

    from reconciler import cli as cli_module

    def broken(*_args, **_kwargs):
        raise KeyError("jane.doe@example.com")

    monkeypatch.setattr("reconciler.cli.session.make_plan", broken)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    shutil.copytree(workspace.manifests, workspace.root / "json")
    monkeypatch.setattr("sys.argv", ["reconciler", "plan", "--out", "--format", "json"])
    with pytest.raises(SystemExit) as done:
        cli_module.main()
    assert done.value.code == 1
    out = capsys.readouterr()
    assert "internal error: KeyError" in out.err
    assert out.out == ""
    # Asked for by the option itself, the error is the one JSON object on stdout.
    monkeypatch.setattr("sys.argv", ["reconciler", "plan", "json", "--format", "json"])
    with pytest.raises(SystemExit) as done:
        cli_module.main()
    assert json.loads(capsys.readouterr().out) == {
        "error": "internal error: KeyError",
        "exit_code": 1,
    }


def test_field_values_quoted_in_messages_are_masked_unless_shown(workspace, cli, emulator_server):
    """Issue 15.6: a value that cannot be converted, or two audiences giving one user two
    values, quoted the source's text (personal data) in every plan format."""
    workspace.csv("data/a.csv", "email,ltv,nick", ["jane.doe@example.com,Jane Private,Gold"])
    workspace.csv("data/b.csv", "email,ltv,nick", ["jane.doe@example.com,3,Secretnick"])
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"ltv": {"from": "ltv", "type": "number"}, "nick": "nick"}}}',
    )
    workspace.audience("a", {"csv": "data/a.csv"}, traits="crm")
    workspace.audience("b", {"csv": "data/b.csv"}, traits="crm")
    for fmt in ("text", "markdown", "json"):
        result = cli("plan", workspace.manifests, "--format", fmt)
        assert "is not a number" in result.output, result.output
        assert "from the other" in result.output
        for secret in ("Jane Private", "Secretnick", "Gold", "jane.doe"):
            assert secret not in result.output, (fmt, secret)
        assert "\ue000" not in result.output  # no marker reaches output
    shown = cli("plan", workspace.manifests, "--show-members").output
    assert "'Jane Private' is not a number" in shown and '"Secretnick"' in shown


def test_a_database_error_quoting_a_member_is_masked(workspace, cli, emulator_server):
    workspace.csv("data/m.csv", "email,uid", ["jane.doe@example.com,usr_00012391"])
    query = "SELECT email, CAST(uid AS INTEGER) AS userId FROM read_csv('data/m.csv')"
    workspace.audience("vip", {"sql": query, "database": ":memory:"})
    for args in (("validate",), ("plan",)):
        result = cli(*args, workspace.manifests)
        assert result.exit_code == 1 and "Could not convert string" in result.output
        assert "usr_0001" not in result.output and "jane.doe" not in result.output, args
    assert "usr_00012391" in cli("plan", workspace.manifests, "--show-members").output


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_database_error_quoting_a_numeric_user_id_is_masked(
    workspace, cli, emulator_server, monkeypatch, engine
):
    """In a userID-based project the userId a database keeps as a number is the member's
    identity, and DuckDB quotes a number it cannot cast without quotes ('Type INT64 with
    value 98765432109 can't be cast ...'): validate and plan printed it in full."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws = Workspace(workspace.root, emulator_server.base_url, "userId")
    ws.destination()
    with duckdb.connect(str(ws.manifests / "accounts.duckdb")) as connection:
        connection.execute("CREATE TABLE accounts AS SELECT 98765432109::BIGINT AS account_id")
    query = "SELECT CAST(account_id AS INTEGER) AS userId FROM accounts"
    ws.audience("vip", {"sql": query, "database": "accounts.duckdb"})
    for args in (("validate",), ("plan",), ("plan", "--format", "json")):
        result = cli(*args, ws.manifests)
        assert result.exit_code == 1, result.output
        assert "Type INT64 with value 9*** can't be cast" in result.output, args
        assert "98765" not in result.output, args
    shown = cli("plan", ws.manifests, "--show-members")
    assert "with value 98765432109 can't be cast" in shown.output


@pytest.fixture
def no_umask() -> Iterator[None]:
    """The process umask 000 (a container's or a service's): what reconciler makes owner
    only must be so by its own mode, not by the umask's help."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(top: Path) -> dict[str, int]:
    return {
        str(path.relative_to(top)) + ("/" if path.is_dir() else ""): path.stat().st_mode & 0o777
        for path in [top, *top.rglob("*")]
    }


def test_the_state_directory_is_owner_only_whatever_the_umask(
    workspace, cli, emulator_server, tmp_path, no_umask
):
    """The journals, the lock and the file of rejected members (members in full) live in
    directories of reconciler's own: under umask 000 they were made 0777, so anyone on the
    machine could list them, and replace or plant a journal or a lock."""
    # An underscore in the domain passes reconciler's light check; Iterable refuses it.
    workspace.audience("mixed", {"inline": ["known@example.com", "two.dots@ex_ample.com"]})
    record = tmp_path / "records" / "run.json"
    result = cli("apply", workspace.manifests, "--yes", "--summary-json", record)
    assert result.exit_code == 1 and "Every rejected member, in full" in result.stdout
    # A directory the user names is made as `mkdir -p` would; the file in it owner-only,
    # as a saved plan and a summary file are.
    assert (tmp_path / "records").stat().st_mode & 0o777 == 0o777
    assert record.stat().st_mode & 0o777 == 0o600
    modes = _modes(tmp_path / ".reconciler")
    assert any(name.startswith("runs/rejected-") for name in modes), modes
    assert {name: mode for name, mode in modes.items() if name.endswith("/")} == {
        "./": 0o700,
        "locks/": 0o700,
        "runs/": 0o700,
    }
    assert {mode for name, mode in modes.items() if not name.endswith("/")} == {0o600}


def test_a_sandbox_s_state_directory_is_owner_only_and_a_named_parent_is_left_alone(
    workspace, cli, tmp_path, no_umask
):
    workspace.write(
        "dest-sandbox.yaml",
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: hybrid}\n",
    )
    workspace.audience("vip", {"inline": ["jane.doe@example.com"]}, destination="sandbox")
    state = tmp_path / "chosen" / "state"
    plan = tmp_path / "plans" / "plan.json"
    result = cli("plan", workspace.manifests, "--state-dir", state, "--out", plan)
    assert result.exit_code == 0, result.output
    result = cli("apply", "--plan", plan, "--yes", "--state-dir", state)
    assert result.exit_code == 0, result.output
    modes = _modes(state)
    assert "sandbox.json" in modes and any(name.startswith("runs/apply-") for name in modes)
    assert {name: mode for name, mode in modes.items() if name.endswith("/")} == {
        "./": 0o700,
        "locks/": 0o700,
        "runs/": 0o700,
    }
    assert {mode for name, mode in modes.items() if not name.endswith("/")} == {0o600}
    # The directories above it, and a saved plan's, are the user's: made as mkdir -p would.
    assert (tmp_path / "chosen").stat().st_mode & 0o777 == 0o777
    assert (tmp_path / "plans").stat().st_mode & 0o777 == 0o777
    assert plan.stat().st_mode & 0o777 == 0o600


def _files_naming(top: Path, secret: str) -> set[Path]:
    """Every file under `top` whose bytes (or, for a gzip file such as a saved plan, whose
    contents) hold `secret`."""
    found = set()
    for path in top.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if secret.encode() in data:
            found.add(path)
    return found


def test_every_file_left_holding_a_member_is_one_readme_lists(
    workspace, cli, emulator_server, tmp_path, monkeypatch
):
    """An EU data engineer erasing one person, or every member, from a machine needs every
    file reconciler leaves that names them: README's "Files on this machine that hold
    members' identities" lists them. A plan, an apply with a member Iterable rejects, a
    sandbox apply and an import leave exactly those files, owner-only, and the journals
    and run record name no member."""
    temp = tmp_path / "temp"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(temp))
    workspace.write(
        "dest-sandbox.yaml",
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: hybrid}\n",
    )
    members = ["jane.doe@example.com", "two.dots@ex_ample.com"]
    workspace.audience("vip", {"inline": members})
    workspace.audience("sand", {"inline": members[:1]}, destination="sandbox")
    emulator_server.emulator.project("default").subscribe_direct(
        emulator_server.emulator.project("default").add_list("theirs"), email="kim@example.org"
    )
    saved = tmp_path / "plans" / "plan.gz"
    assert cli("plan", workspace.manifests, "--out", saved).exit_code == 0
    record = tmp_path / "run.json"
    result = cli("apply", "--plan", saved, "--yes", "--summary-json", record)
    assert result.exit_code == 1 and "Every rejected member, in full" in result.stdout
    imported = tmp_path / "imported"
    result = cli("import", "--destination", "prod", workspace.manifests, "--out", imported)
    assert result.exit_code == 0, result.output
    state = tmp_path / ".reconciler"
    found = _files_naming(tmp_path, "jane.doe@example.com")
    found |= _files_naming(tmp_path, "two.dots@ex_ample.com")
    found |= _files_naming(tmp_path, "kim@example.org")
    found = {p for p in found if workspace.manifests not in p.parents}  # the sources
    named = {
        saved,
        state / "sandbox.json",
        imported / "theirs.csv",
        *state.glob("runs/rejected-*.csv"),
    }
    assert found == named, found ^ named
    assert {p.stat().st_mode & 0o777 for p in found} == {0o600}
    assert not [p for p in temp.rglob("*")]  # the private copies are gone
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("**Files on this machine that hold members' identities**")[1]
    section = section.split("\n## ")[0]
    for listed in (
        "`STATE/runs/rejected-*.csv`",
        "`STATE/sandbox.json`",
        "a `plan --out FILE`",
        "`import --out DIR`'s `*.csv`",
        "`TEMP/reconciler-",
    ):
        assert listed in section, listed


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_a_temporary_directory_every_user_can_write_to_is_refused_before_any_copy(
    workspace, tmp_path
):
    """Another user who can write there could rename the private directory a plan makes for
    its copies of a member file and read the copy written after: the plan stops first,
    naming the directory and the variable, and no copy of the members is made."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    workspace.csv("vip.csv", "email", ["jane.doe@example.com"])
    workspace.audience("vip", {"csv": "vip.csv"})
    command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    env = {**os.environ, "RECONCILER_DUCKDB_TEMP_DIR": str(shared)}

    run = subprocess.run(
        [*command, "plan", str(workspace.manifests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith(
        f"error: RECONCILER_DUCKDB_TEMP_DIR ({shared}) cannot hold copies of members' data: "
        "it is writable by every user and has no sticky bit"
    ), run.stderr
    assert "Traceback" not in run.stderr and list(shared.iterdir()) == []
    shared.chmod(0o1777)  # sticky, as /tmp: used
    run = subprocess.run(
        [*command, "plan", str(workspace.manifests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
