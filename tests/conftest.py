"""Shared fixtures: a local Iterable emulator, in memory and over loopback HTTP.

    emulator               Emulator, no rate limits, project "default" (hybrid, key "test-key")
    emulator_server        an EmulatorServer on 127.0.0.1 around `emulator` (.base_url, .emulator)
    make_emulator_server   factory for other project types, limits, faults or clocks
    postgres               a fresh schema in a real PostgreSQL (tests/postgres.py); skipped
                           when no server is reachable
    windows                `python -m reconciler` run as if on native Windows (tests/windows.py)

Requests need the header `Api-Key: test-key` (EMULATOR_API_KEY).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from tests import postgres as postgres_support
from tests.windows import WindowsPython

EMULATOR_API_KEY = "test-key"
EMULATOR_PROJECT = "default"


@pytest.fixture(autouse=True)
def _no_alert_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook set in the shell running the tests must never hear of their blocked and
    failed runs; tests of alerts set their own local receiver."""
    for name in ("RECONCILER_ALERT_WEBHOOK_URL", "RECONCILER_ALERT_WEBHOOK_URL_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_annotations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run in GitHub Actions (ci.yml), where validate and plan would add `::error`
    lines to the messages tests read; tests of annotations ask for them."""
    for name in ("GITHUB_ACTIONS", "RECONCILER_ANNOTATIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Emulator:
    """An emulator without rate limits holding one hybrid project, "default"."""
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project(EMULATOR_PROJECT, "hybrid", EMULATOR_API_KEY)
    return emulator


@pytest.fixture
def emulator_server(emulator: Emulator) -> Iterator[EmulatorServer]:
    """`emulator` served on a free loopback port for the test's duration."""
    with EmulatorServer(emulator) as server:
        yield server


MakeEmulatorServer = Callable[..., EmulatorServer]


@pytest.fixture
def make_emulator_server() -> Iterator[MakeEmulatorServer]:
    """Start emulator servers with one project "default" (key "test-key"); all stop at teardown.

    make_emulator_server(project_type="email", limits=Limits.iterable(), faults=Faults(...),
                         clock=fake_clock, state_path=tmp_path / "state.json")
    `limits` defaults to none at all, as in `emulator`.
    """
    servers: list[EmulatorServer] = []

    def make(
        project_type: str = "hybrid",
        limits: Limits | None = None,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        state_path: Path | None = None,
        api_key: str = EMULATOR_API_KEY,
    ) -> EmulatorServer:
        emulator = Emulator(
            limits=limits if limits is not None else Limits.unlimited(),
            faults=faults,
            state_path=state_path,
            clock=clock,
        )
        if EMULATOR_PROJECT not in emulator.projects:
            emulator.add_project(EMULATOR_PROJECT, project_type, api_key)
        server = EmulatorServer(emulator).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL (with password) of the test PostgreSQL server; skips when there is none."""
    return postgres_support.server_url()


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[postgres_support.Postgres]:
    """A fresh schema in the test PostgreSQL server, dropped after the test."""
    yield from postgres_support.fresh_schema(postgres_url)


def pytest_configure(config: pytest.Config) -> None:
    """A suite started as a background job (`nohup ... &`, or `&` in a script: a shell
    without job control starts it with SIGINT ignored) inherits SIGINT ignored, which Python
    and xdist's workers keep; every test of Ctrl-C, which sends SIGINT to its own process,
    then saw nothing (11 failures). The tool's rule that a SIGINT ignored at start stays
    ignored is tested by the tests that ignore it themselves."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected outputs under tests/golden/ (also: RECONCILER_UPDATE_GOLDEN=1)",
    )


@pytest.fixture
def windows(tmp_path: Path) -> WindowsPython:
    """`python -m reconciler` in a subprocess as if on native Windows: POSIX-only modules and
    functions removed as Windows' Python lacks them, os.kill as Windows' (tests/windows.py)."""
    return WindowsPython(tmp_path / "windows-python")
