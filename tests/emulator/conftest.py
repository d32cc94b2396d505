"""Fixtures for the emulator's own tests: HTTP clients and a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from reconciler.emulator import EmulatorServer, Project
from tests.conftest import EMULATOR_PROJECT
from tests.emulator.support import FakeClock, client_for


@pytest.fixture
def clock() -> FakeClock:
    """A clock for rate limits that moves only with clock.advance(seconds)."""
    return FakeClock()


@pytest.fixture
def client(emulator_server: EmulatorServer) -> Iterator[httpx.Client]:
    """An httpx client for `emulator_server`, sending the right API key."""
    with client_for(emulator_server) as client:
        yield client


@pytest.fixture
def project(emulator_server: EmulatorServer) -> Project:
    """The served "default" project, for seeding and inspecting state directly."""
    return emulator_server.emulator.project(EMULATOR_PROJECT)


ClientFactory = Callable[..., tuple[httpx.Client, Project]]


@pytest.fixture
def typed_client(make_emulator_server: Callable[..., EmulatorServer]) -> Iterator[ClientFactory]:
    """typed_client("email") -> (client, project) for a fresh project of that type."""
    clients: list[httpx.Client] = []

    def make(project_type: str, **kwargs: Any) -> tuple[httpx.Client, Project]:
        server = make_emulator_server(project_type, **kwargs)
        client = client_for(server)
        clients.append(client)
        return client, server.emulator.project(EMULATOR_PROJECT)

    yield make
    for c in clients:
        c.close()
