"""A recognisable fake API key, run through every command on its success and failure paths
(faults, a rejected key, a bad key file, an internal error with --debug, the emulator's own
server): it appears in no output and in no file the tool writes. Issue 8."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.iterable import IterableClient
from tests.integration.conftest import API_KEY_VAR
from tests.integration.reliability import build_scenario, spawn_cli, subprocess_env

FAKE_KEY = "sk-FAKE-7f3a9c2e51d04b8e-do-not-print"
# Any 12 characters of the key in a row would be a leak too (a truncated or split key).
PIECES = [FAKE_KEY[i : i + 12] for i in range(len(FAKE_KEY) - 11)]


def leaks(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


def files_written(root: Path) -> dict[Path, str]:
    """Every file under root as text, gzip (saved plans) opened."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            out[path] = raw.decode("utf-8", "replace")
    return out


@pytest.fixture
def keyed(workspace, emulator_server, monkeypatch):
    monkeypatch.setenv(API_KEY_VAR, FAKE_KEY)
    emulator_server.emulator.set_api_key("default", FAKE_KEY)
    return workspace


def run_all(cli, keyed, *args: str) -> list[tuple[tuple[str, ...], int, str]]:
    """The command, then again with --debug; (args, exit code, everything printed)."""
    seen = []
    for extra in ((), ("--debug",)):
        result = cli(*args, *extra)
        seen.append(((*args, *extra), result.exit_code, result.output))
    return seen


def test_no_command_prints_or_writes_the_key(keyed, cli, emulator_server, monkeypatch):
    ws = keyed
    build_scenario(ws, emulator_server, adds=30, creates=30)
    m = ws.manifests
    summary, summary_json, planfile = ws.root / "s.md", ws.root / "s.json", ws.root / "p.gz"
    faults = emulator_server.emulator.faults
    runs = []
    runs += run_all(cli, ws, "validate", m)
    runs += run_all(cli, ws, "schema")
    runs += run_all(cli, ws, "version")
    for fmt in ("text", "json", "markdown"):
        runs += run_all(cli, ws, "plan", m, "--format", fmt, "--summary-file", summary)
    runs += run_all(cli, ws, "plan", m, "--out", planfile, "--show-members")
    runs += run_all(cli, ws, "status", m)

    # Failure paths while applying: every kind of fault, each ending in an error.
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "0")
    monkeypatch.setenv("RECONCILER_TIMEOUT", "0.2")
    wanted: list[str] = []
    for n, setting in enumerate(
        (
            {"fail_every": 1, "fail_status": 429},
            {"fail_every": 1, "fail_status": 503},
            {"drop_every": 1},
            {"bad_body_every": 1, "bad_body": "html"},
            {"latency_seconds": 0.4},
        )
    ):
        faults.update({"paths": ["/api/lists/subscribe"], **setting})
        for extra in ((), ("--debug",), ("--format", "json")):
            # New members every time: a dropped answer still did the work before.
            wanted.append(f"f{n}-{len(runs)}@example.com")
            ws.audience("faulted", {"inline": wanted})
            result = cli("apply", m, "--yes", "--summary-json", summary_json, *extra)
            assert result.exit_code == 1, (setting, result.output)
            runs.append((("apply", *extra, str(setting)), result.exit_code, result.output))
        emulator_server.emulator.faults = type(faults)()
        faults = emulator_server.emulator.faults
    monkeypatch.delenv("RECONCILER_MAX_RETRIES")
    monkeypatch.delenv("RECONCILER_TIMEOUT")

    # Success, then a saved plan (stale by now, so refused), then nothing to do.
    runs += run_all(cli, ws, "apply", m, "--yes", "--summary-file", summary)
    runs += run_all(cli, ws, "apply", "--plan", planfile, "--yes")
    runs += run_all(cli, ws, "apply", m, "--yes", "--show-members", "--format", "json")

    # A key Iterable rejects (the key is right in the environment, wrong for the project).
    emulator_server.emulator.set_api_key("default", "another-key")
    for args in (("plan", m), ("apply", m, "--yes"), ("status", m)):
        runs += run_all(cli, ws, *args)
        assert "rejected the API key" in runs[-1][2]
    emulator_server.emulator.set_api_key("default", FAKE_KEY)

    # The key from a file, then a file whose key has a character no header can carry.
    key_file = ws.root / "key.txt"
    key_file.write_text(FAKE_KEY + "\n")
    ws.destination(apiKey={"file": str(key_file)})
    runs += run_all(cli, ws, "plan", m)
    assert runs[-1][1] == 0, runs[-1][2]
    key_file.write_text(FAKE_KEY.replace("FAKE", "FAKÉ") + "\n")
    runs += run_all(cli, ws, "plan", m)
    assert runs[-1][1] == 1 and "characters an API key cannot have" in runs[-1][2]
    assert "internal error" not in runs[-1][2]

    assert len(runs) > 40
    for args, _code, output in runs:
        assert leaks(output) == [], args
    written = files_written(ws.root)
    assert any(".reconciler/runs/apply-" in str(p) for p in written)  # journals were written
    assert planfile in written and summary_json in written
    for path, text in written.items():
        if path == key_file:
            continue
        assert leaks(text) == [], path


INJECTED_BUG = textwrap.dedent(
    """
    import sys
    from reconciler.iterable import client

    def broken(self, method, path, parse, **kwargs):
        # Deep in the request, with the key in scope (self._http holds it).
        raise RuntimeError("injected bug while sending " + method + " " + path)

    client.IterableClient._send_once = broken
    from reconciler.cli import main
    sys.argv = ["reconciler", *sys.argv[1:]]
    main()
    """
)


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_shows_no_key_with_or_without_debug(keyed, debug):
    args = ["plan", "manifests", *(["--debug"] if debug else [])]
    env = subprocess_env(keyed, **{API_KEY_VAR: FAKE_KEY})
    done = subprocess.run(
        [sys.executable, "-c", INJECTED_BUG, *args],
        cwd=keyed.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    if debug:
        assert "Traceback (most recent call last)" in done.stderr
        assert "RuntimeError: injected bug while sending GET /api/lists" in done.stderr
    else:
        # Where it was raised: enough for a bug report without a second run with --debug.
        assert re.search(
            r"internal error: RuntimeError: injected bug while sending GET /api/lists "
            r"\(at reconciler/iterable/client\.py:\d+ in \w+, from <string>:\d+ in broken\)",
            done.stderr,
        ), done.stderr
        assert "Traceback" not in done.stderr
    assert leaks(done.stdout + done.stderr) == []


def test_apply_killed_and_interrupted_leave_no_key_behind(keyed, emulator_server):
    build_scenario(keyed, emulator_server, adds=300, creates=300)
    emulator_server.emulator.faults.latency_seconds = 0.05
    env = subprocess_env(keyed, **{API_KEY_VAR: FAKE_KEY, "RECONCILER_BATCH_SIZE": "20"})
    outputs = []
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = spawn_cli(keyed, "apply", "manifests", "--yes", "--debug", env=env)
        while not any(r.method == "POST" for r in list(emulator_server.emulator.request_log)):
            assert proc.poll() is None
        proc.send_signal(sig)
        outputs.append("".join(proc.communicate(timeout=30)))
        emulator_server.emulator.clear_log()
    for output in outputs:
        assert leaks(output) == []
    for path, text in files_written(keyed.root).items():
        assert leaks(text) == [], path


def test_the_sandbox_and_the_emulator_server_keep_no_key(tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "emulator.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["RECONCILER_EMULATOR_API_KEY"] = FAKE_KEY
    serve = subprocess.Popen(
        [
            *(sys.executable, "-m", "reconciler.cli", "emulator", "serve", "--port", "0"),
            *("--state", str(state), "--unlimited"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A failed assertion or a timeout below must not leave the server running.
    request.addfinalizer(lambda: serve.poll() is None and (serve.kill(), serve.wait()))
    assert serve.stdout is not None
    banner = serve.stdout.readline()
    base_url = banner.split("listening on ")[1].split()[0]

    # A whole plan and apply through it, over HTTP, with the key.
    (tmp_path / "manifests").mkdir()
    dest = {"region": "us", "projectType": "hybrid", "baseUrl": base_url}
    dest["apiKey"] = {"env": API_KEY_VAR}
    aud = {"destination": "prod", "members": {"inline": ["a@example.com"]}}
    for kind, name, spec in (("Destination", "prod", dest), ("Audience", "vip", aud)):
        doc = {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}}
        (tmp_path / "manifests" / f"{name}.yaml").write_text(json.dumps({**doc, "spec": spec}))
    env[API_KEY_VAR] = FAKE_KEY
    env["RECONCILER_LIST_READS_PER_MINUTE"] = "1000"
    # This emulator's reads do not lag: the apply need not wait for them before it ends.
    env["RECONCILER_READ_LAG"] = "0"
    applied = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply", "manifests", "--yes", "--debug"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    serve.send_signal(signal.SIGINT)
    out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert leaks(banner + out + err + applied.stdout + applied.stderr) == []

    # The in-process sandbox too (its key is not a secret, but the env's must not leak in).
    sandbox = tmp_path / "sandbox"
    (sandbox / "manifests").mkdir(parents=True)
    sdest = {"region": "sandbox", "projectType": "hybrid", "apiKey": {"env": API_KEY_VAR}}
    for kind, name, spec in (("Destination", "prod", sdest), ("Audience", "vip", aud)):
        doc = {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}}
        (sandbox / "manifests" / f"{name}.yaml").write_text(json.dumps({**doc, "spec": spec}))
    local = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply", "manifests", "--yes", "--debug"],
        env=env,
        cwd=sandbox,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert local.returncode == 0, local.stderr
    assert leaks(local.stdout + local.stderr) == []
    written = files_written(tmp_path)
    assert state in written
    for path, text in written.items():
        assert leaks(text) == [], path


def test_a_server_that_echoes_the_key_gets_it_shown_nowhere(keyed, cli, emulator_server):
    """Issue 15.7: an answer quoting the Api-Key back (errors, and bulk answers naming it as
    a failed member and a dropped field) reaches no output, journal, run record, summary or
    rejected-member file; a trait mapping makes the bulkUpdate answers part of it."""
    ws = keyed
    build_scenario(ws, emulator_server, adds=5, creates=5)
    ws.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "t"},'
        ' "spec": {"fields": {"origin": {"template": "csv"}}}}',
    )
    # Alpha's members exist, so their field goes out with bulkUpdate.
    ws.audience("alpha", {"csv": "data/alpha.csv"}, traits="t", policy={"maxRemovalPercent": 100})
    m = ws.manifests
    summary, summary_json = ws.root / "s.md", ws.root / "s.json"
    faults = emulator_server.emulator.faults
    faults.update({"echo_api_key": True})
    runs = []
    # A refused write, quoted back with the key (HTTP 400: not retried).
    faults.update({"paths": ["/api/lists/subscribe"], "fail_every": 1, "fail_status": 400})
    for extra in ((), ("--debug",), ("--show-members", "--format", "json")):
        result = cli("apply", m, "--yes", "--summary-json", summary_json, *extra)
        assert result.exit_code == 1, result.output
        assert "request Api-Key: [api key]" in result.output
        runs.append(result.output)
    assert "Iterable dropped the fields [api key]" in runs[0]  # from bulkUpdate's answer
    # A refused read while planning.
    faults.update({"paths": ["/api/lists"], "fail_status": 404})
    result = cli("plan", m, "--show-members")
    assert result.exit_code == 1 and "[api key]" in result.output, result.output
    runs.append(result.output)
    # Writes that succeed, whose answers name the key as a rejected member and a field.
    faults.update({"paths": None, "fail_every": 0})
    for extra in (("--show-members",), ("--format", "json", "--show-members")):
        result = cli(
            "apply", m, "--yes", "--summary-file", summary, "--summary-json", summary_json, *extra
        )
        runs.append(result.output)
    # A key Iterable refuses, quoted back in the 401.
    emulator_server.emulator.set_api_key("default", "another-key")
    runs.append(cli("plan", m).output)
    assert "rejected the API key" in runs[-1]

    for output in runs:
        assert leaks(output) == [], output
    written = files_written(ws.root)
    assert any(".reconciler/runs/apply-" in str(p) for p in written)
    for path, text in written.items():
        assert leaks(text) == [], path


def test_a_type_refusal_naming_the_key_as_a_field_shows_it_nowhere(emulator_server):
    """A whole-request type refusal names fields by the request's text; an answer quoting
    the key there (an echoing server) must not carry it into the members' reasons."""
    emulator_server.emulator.set_api_key("default", FAKE_KEY)
    faults = emulator_server.emulator.faults
    faults.update({"echo_api_key": True, "type_mismatch_rejects_request": True})
    proj = emulator_server.emulator.project("default")
    proj.add_user(email="seed@example.com", data_fields={"ltv": 10})
    list_id = proj.add_list("l")
    subscribers = [
        {"email": "a@example.com", "dataFields": {"ltv": "ten"}},
        {"email": "b@example.com", "dataFields": {"ltv": 11}},
    ]
    with IterableClient(emulator_server.base_url, FAKE_KEY) as client:
        result = client.subscribe(list_id, subscribers)
    assert "ltv is long" in result.failed["a@example.com"]
    assert "b@example.com" not in result.failed
    assert leaks(json.dumps(result.failed)) == []


LONG_NAME = "K" * 70_000


def _shows_the_name_cut(output: str) -> bool:
    return (
        "K" * 301 not in output
        and re.search(r"K{250}\.\.\. \(70,00\d characters\)", output) is not None
    )


@pytest.mark.parametrize(
    ("api_key_variable", "url_variable", "commands", "says"),
    [
        # The key's variable, unset: every command that needs the key, in every format.
        (
            LONG_NAME,
            None,
            [
                ("plan",),
                ("plan", "--format", "json"),
                ("plan", "--format", "markdown"),
                ("apply", "--yes"),
                ("apply", "--yes", "--format", "json"),
                ("status",),
                ("status", "--format", "json"),
                ("import", "--destination", "prod", "--out", "imported"),
            ],
            "environment variable KKK",
        ),
        # A database URL's variable, unset: validate runs the query.
        (API_KEY_VAR, LONG_NAME, [("validate",), ("plan", "--format", "json")], "not set"),
        # One that names the key's variable, or one of Iterable's.
        (LONG_NAME, LONG_NAME, [("validate",)], "reads its API key from it"),
        (API_KEY_VAR, "ITERABLE_" + LONG_NAME, [("validate",)], "${ITERABLE_KKK"),
    ],
    ids=["api-key", "url", "url-is-the-key", "url-forbidden"],
)
def test_a_long_variable_name_from_a_manifest_is_cut_in_every_message(
    workspace, cli, api_key_variable, url_variable, commands, says
):
    """`apiKey: {env: <70,000 characters>}` or `${<70,000 characters>}` in a database URL
    came back whole in every message naming the variable (70,000 characters of one line in
    a terminal, a CI log or a pull-request comment): it is cut as quoted() cuts names."""
    workspace.destination(apiKey={"env": api_key_variable})
    if url_variable is None:
        workspace.audience("vip", {"inline": ["a@example.com"]})
    else:
        url = f"postgresql://app:${{{url_variable}}}@127.0.0.1:9/db"
        workspace.audience("vip", {"sql": "SELECT 'a@example.com' AS email", "url": url})
    for args in commands:
        args = (args[0], workspace.manifests, *args[1:])
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output[:2000])
        assert says in result.output and _shows_the_name_cut(result.output), (
            args,
            result.output[:2000],
        )


def test_a_short_key_inside_members_and_values_is_read_as_iterable_holds_it(emulator_server):
    """A key of one character (a sandbox's, an emulator's) is a letter of many identifiers
    and values: reads of members, profiles and the export are the data a plan compares,
    and cutting the key out of them read `LEAKU-1` back as `LEA[api key]U-1`, so the plan
    after an apply removed members it had just added and added them again."""
    emulator_server.emulator.set_api_key("default", "K")
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("l")
    proj.subscribe_direct(list_id, user_id="LEAKU-1", data_fields={"plan": "KEY-K"})
    with IterableClient(emulator_server.base_url, "K") as client:
        assert list(client.iter_list_members(list_id, prefer_user_id=True)) == ["LEAKU-1"]
        profile = client.get_user(user_id="LEAKU-1") or {}
        rows = list(client.export_users(["userId", "plan"]))
    assert (profile.get("userId"), profile.get("plan")) == ("LEAKU-1", "KEY-K")
    assert [(row.get("userId"), row.get("plan")) for row in rows] == [("LEAKU-1", "KEY-K")]


def test_a_real_length_key_stored_in_a_profile_is_still_cut_out_of_what_is_read(emulator_server):
    """A careless integration may store the key in a profile's field (sending its whole
    request as data fields): a key as long as Iterable's is still cut out of members'
    values read, so no plan, saved plan or --show-members output can hold it."""
    key = "0123456789abcdef0123456789abcdef"
    emulator_server.emulator.set_api_key("default", key)
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("l")
    proj.subscribe_direct(list_id, user_id="u-1", data_fields={"apiKey": key})
    with IterableClient(emulator_server.base_url, key) as client:
        profile = client.get_user(user_id="u-1") or {}
        rows = list(client.export_users(["userId", "apiKey"]))
    assert profile.get("userId") == "u-1" and key not in json.dumps(profile)
    assert [row.get("userId") for row in rows] == ["u-1"]
    assert key not in json.dumps(rows)
