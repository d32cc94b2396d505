"""Shared fixtures: a local Iterable emulator, in memory and over loopback HTTP.

    emulator               Emulator, no rate limits, project "default" (hybrid, key "test-key")
    emulator_server        an EmulatorServer on 127.0.0.1 around `emulator` (.base_url, .emulator)
    make_emulator_server   factory for other project types, limits, faults or clocks
    refused_port           a port on 127.0.0.1 (and every address of localhost) that refuses
                           connections throughout the test
    postgres               a fresh schema in a real PostgreSQL (tests/postgres.py); skipped
                           when no server is reachable
    windows                `python -m reconciler` run as if on native Windows (tests/windows.py)

Requests need the header `Api-Key: test-key` (EMULATOR_API_KEY).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
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


@pytest.fixture(autouse=True)
def _no_link_left_in_the_base_temp_directory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Fails the test that leaves a symbolic link where later tests on its worker trip on
    it. A test whose manifests lie directly in its tmp_path has the worker's base
    temporary directory for its repository (the directory above the manifests, with no git
    repository above), which reconciler walks for links: a link there leading out, or to a
    directory not below its own, makes every DuckDB query refuse to run (28 failures after
    one test left `.github/actions/linked -> ../../outside` in its tmp_path). Checked: the
    base directory's top, listed only when its modification time changed during the test
    (a listing of 2,000 tests' directories per test would cost more than the rest), and
    the test's own tmp_path, walked (about 0.4 ms a test)."""
    base = tmp_path_factory.getbasetemp()
    own = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    changed = os.stat(base).st_mtime_ns
    known = _top_links.get(base)
    if known is None:
        known = _top_links[base] = _links_at_top(base)
    yield
    left = []
    if os.stat(base).st_mtime_ns != changed:
        now = _links_at_top(base)
        # pytest's own `<name>current` links to its numbered directories lead below it.
        left.extend(sorted(filter(None, (_harmful(link, base) for link in now - known))))
        _top_links[base] = now
    if own is not None:
        left.extend(_links_out(own, base))
    if left:
        pytest.fail(
            f"this test left symbolic links that trip later tests on this worker: "
            f"{', '.join(left)}; remove them before the test ends (try/finally)",
            pytrace=False,
        )


# The links at the top of each base temporary directory, as last listed.
_top_links: dict[Path, set[str]] = {}


def _links_at_top(base: Path) -> set[str]:
    with os.scandir(base) as entries:
        return {entry.path for entry in entries if entry.is_symlink()}


def _links_out(tree: Path, base: Path) -> list[str]:
    """The links in `tree` that reconciler's check of a repository at `base` refuses
    (manifest/repository._check_links), each as `link -> target`."""
    found = []
    for directory, subdirectories, files in os.walk(tree):
        for name in (*subdirectories, *files):
            path = os.path.join(directory, name)
            harm = _harmful(path, base) if os.path.islink(path) else ""
            if harm:
                found.append(harm)
    return found


def _harmful(link: str, base: Path) -> str:
    """`link -> target` when the link leads out of `base`, or to a directory not below the
    link's own directory, as manifest/repository._check_links refuses; "" otherwise."""
    real_base = os.path.realpath(base)
    target = os.path.realpath(link)
    own = os.path.realpath(os.path.dirname(link))
    out = os.path.commonpath([target, real_base]) != real_base
    climbs = os.path.isdir(target) and (target == own or os.path.commonpath([target, own]) != own)
    return f"{link} -> {target}" if out or climbs else ""


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


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole test: bound, never
    listening. A port found free and closed again could be taken by a server another
    worker (or another suite on the machine) starts before the test connects, and the
    test then reached that server instead of a refused connection."""
    with contextlib.ExitStack() as stack:
        yield _hold_refusing(stack)


def _hold_refusing(stack: contextlib.ExitStack) -> int:
    """A port bound, never listening, on 127.0.0.1 and on every other address `localhost`
    resolves to (::1 on most machines): a test connecting to localhost tries each, and a
    server on one it left free was reached instead of a refused connection."""
    addresses = {info[4][0]: info[0] for info in socket.getaddrinfo("localhost", None)}
    addresses.setdefault("127.0.0.1", socket.AF_INET)
    for _ in range(100):
        with contextlib.ExitStack() as attempt:
            first = attempt.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            taken = False
            for address, family in addresses.items():
                if address == "127.0.0.1":
                    continue
                try:
                    attempt.enter_context(socket.socket(family)).bind((address, port))
                except OSError as exc:
                    # In use there: another port. Not available (IPv6 off): nothing can
                    # connect there either.
                    taken = exc.errno == errno.EADDRINUSE
                    if taken:
                        break
            if taken:
                continue
            stack.enter_context(attempt.pop_all())
            return port
    raise RuntimeError("no port free on every address of localhost")


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
