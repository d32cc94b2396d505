"""reconciler.emulator.serving: what `emulator serve` makes of its options, tested directly
(tests/emulator/test_cli.py runs the command itself)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator, EmulatorServer
from reconciler.emulator.serving import (
    ServeOptionError,
    ServeOptions,
    fault_settings,
    listening_line,
    open_emulator,
    sendable,
    serve_until_stopped,
)

KEY = "made-up-key"
ENV = "RECONCILER_EMULATOR_API_KEY"


def options(**given: Any) -> ServeOptions:
    return ServeOptions(key_env=ENV, **given)


def refusal(**given: Any) -> tuple[str, str]:
    with pytest.raises(ServeOptionError) as raised:
        open_emulator(options(**given))
    return str(raised.value), raised.value.option


def test_a_new_project_is_made_with_the_key_and_type_given() -> None:
    emulator, project = open_emulator(options(api_key=KEY, project="p", project_type="email"))
    assert (project.name, project.project_type) == ("p", "email")
    assert emulator.projects == {"p": project}
    _, default = open_emulator(options(api_key=KEY))
    assert (default.name, default.project_type) == ("default", "hybrid")


def test_the_profile_and_unlimited_options_choose_faults_and_limits() -> None:
    emulator, _ = open_emulator(options(api_key=KEY, profile="field", time_scale=6.0))
    assert emulator.faults.read_lag_seconds == pytest.approx(10)
    assert emulator.limits.list_reads == (5, pytest.approx(10.0))
    unlimited, _ = open_emulator(options(api_key=KEY, unlimited=True, faults=("fail_every=3",)))
    assert unlimited.faults.fail_every == 3
    assert unlimited.limits.list_reads is None


@pytest.mark.parametrize(
    ("given", "message", "option"),
    [
        ({"time_scale": 2.0}, "only with --profile", "--time-scale"),
        (
            {"api_key": KEY, "profile": "field", "time_scale": float("inf")},
            "must be a finite number",
            "--time-scale",
        ),
        ({"lost_replies_every": 3}, "only with --profile", "--lost-replies-every"),
        ({"time_scale": 2.0, "lost_replies_every": 3}, "only with --profile", "--time-scale"),
        ({"faults": ("fail_every",)}, "expected NAME=VALUE, got 'fail_every'", "--fault"),
        ({"faults": ("fail_every=x",)}, "the value of fail_every is not JSON: 'x'", "--fault"),
        ({"faults": ("nonsense=1",)}, "unknown fault setting: nonsense", "--fault"),
        (
            {"faults": ("fail_every=-1",)},
            "invalid value for fault setting fail_every: -1 (it takes a whole number, 0 or more)",
            "--fault",
        ),
        ({}, f"give --api-key or set {ENV} to create project 'default'", "--api-key"),
        (
            {"api_key": " made-up-key"},
            "the key has spaces around or inside it, or characters an HTTP header cannot "
            "carry; reconciler could never send it (the key itself is not shown)",
            f"--api-key / {ENV}",
        ),
    ],
)
def test_each_refusal_names_its_option(given: dict[str, object], message: str, option: str) -> None:
    assert refusal(**given) == (message, option)


def test_a_state_file_keeps_its_project_type_and_takes_a_new_key(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    emulator, _ = open_emulator(options(state=state, api_key=KEY, project_type="userId"))
    emulator.save()
    assert refusal(state=state, project_type="email") == (
        "project 'default' in the state file is userId; a project's type never changes",
        "--project-type",
    )
    again, project = open_emulator(options(state=state, api_key="another-made-up-key"))
    assert project.project_type == "userId"
    assert again.projects["default"] is project


def test_a_damaged_state_file_is_refused_naming_the_state_option(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json", encoding="utf-8")
    message, option = refusal(state=state, api_key=KEY)
    assert message.startswith("cannot read the state file: ")
    assert option == "--state"


def test_fault_settings_read_each_value_as_json() -> None:
    assert fault_settings(["failing_list_ids=[7, 8]", " paths = null"]) == {
        "failing_list_ids": [7, 8],
        "paths": None,
    }
    with pytest.raises(ValueError, match="expected NAME=VALUE, got '=1'"):
        fault_settings(["=1"])


@pytest.mark.parametrize(
    ("key", "ok"), [(KEY, True), (" k", False), ("a b", False), ("k\u00e9", False), ("", True)]
)
def test_a_key_is_sendable_only_as_printable_ascii_without_spaces(key: str, ok: bool) -> None:
    assert sendable(key) is ok


def test_the_listening_line_names_the_project_and_the_profile() -> None:
    emulator, project = open_emulator(options(api_key=KEY, project_type="email"))
    with EmulatorServer(emulator) as server:
        plain = listening_line(server, project, options(api_key=KEY))
        field = listening_line(
            server, project, options(api_key=KEY, profile="field", time_scale=6.0)
        )
        url = server.base_url
    assert plain == f"Iterable emulator listening on {url} (project 'default', type email)"
    assert field.endswith("(project 'default', type email, profile field at time scale 6)")


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_second_signal_while_serve_stops_does_not_lose_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: signal.Signals
) -> None:
    """Ctrl-C, then another Ctrl-C (or SIGTERM) while the server waits for its connections
    to close: the handlers were given back before the last save, so the second signal
    ended `serve` there (KeyboardInterrupt, or killed) and what was not yet saved was lost.
    The signals are sent at the moments they stand for: no timing."""
    state = tmp_path / "state.json"
    emulator = Emulator(state_path=state)
    emulator.add_project("default", "email", KEY)  # in memory, not saved yet
    server = EmulatorServer(emulator).start()
    real_stop = server.stop

    def stop_with_a_second_signal(timeout: float = 5.0) -> None:
        os.kill(os.getpid(), second)
        real_stop(timeout)

    monkeypatch.setattr(server, "stop", stop_with_a_second_signal)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if second == signal.SIGTERM:  # its default would end this test's process
        signal.signal(signal.SIGTERM, lambda _s, _f: (_ for _ in ()).throw(SystemExit(143)))
    try:
        serve_until_stopped(server, emulator, lambda: os.kill(os.getpid(), signal.SIGINT))
    except (KeyboardInterrupt, SystemExit) as stopped:
        pytest.fail(f"the second signal ended serve before its save ({stopped!r})")
    finally:
        signal.signal(signal.SIGTERM, before[signal.SIGTERM])
    assert state.exists()
    assert Emulator.load(state).project("default").api_key_sha256 == (
        emulator.project("default").api_key_sha256
    )
    assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
