"""Integration fixtures: a workspace of manifests pointing at the emulator over loopback HTTP,
and a runner that invokes the real CLI."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from reconciler.emulator.knobs import FIELD_FRESH_LIST_SECONDS, FIELD_READ_LAG_SECONDS
from tests.conftest import EMULATOR_API_KEY, EMULATOR_PROJECT, MakeEmulatorServer

API_KEY_VAR = "RECONCILER_TEST_ITERABLE_KEY"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict:
        return json.loads(self.stdout)


@dataclass
class Workspace:
    root: Path
    base_url: str
    project_type: str

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def destination(self, name: str = "prod", **extra: str) -> None:
        body = {
            "region": "us",
            "projectType": self.project_type,
            "baseUrl": self.base_url,
            "apiKey": {"env": API_KEY_VAR},
            **extra,
        }
        self.write(f"dest-{name}.yaml", _doc("Destination", name, body))

    def audience(self, name: str, members: object, destination: str = "prod", **spec) -> None:
        body = {"destination": destination, "members": members, **spec}
        self.write(f"aud-{name}.yaml", _doc("Audience", name, body))

    def write(self, relative: str, text: str) -> Path:
        path = self.manifests / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def csv(self, relative: str, header: str, rows: list[str]) -> Path:
        return self.write(relative, "\n".join([header, *rows]) + "\n")


def _doc(kind: str, name: str, spec: dict) -> str:
    return json.dumps(
        {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec},
        indent=2,
    )  # JSON is YAML


# Every end-to-end test runs twice: against the emulator as it is by default (answers at once,
# consistent, complete) and under its `field` profile (what the real Iterable does: see the
# README), at this time scale so the suite stays fast: a 60 s read lag becomes 0.3 s.
# RECONCILER_TEST_PROFILES=plain (or =field) runs one of them only.
FIELD_TIME_SCALE = 200.0
PROFILES = [
    p
    for p in os.environ.get("RECONCILER_TEST_PROFILES", "plain,field").split(",")
    if p in ("plain", "field")
]


@pytest.fixture(params=PROFILES)
def emulator_profile(request: pytest.FixtureRequest) -> str:
    return request.param


def profile_faults(profile: str) -> Faults | None:
    return Faults.field(FIELD_TIME_SCALE) if profile == "field" else None


@pytest.fixture
def emulator(emulator_profile: str) -> Emulator:
    """The root conftest's emulator (no rate limits, project "default"), under the profile."""
    emulator = Emulator(limits=Limits.unlimited(), faults=profile_faults(emulator_profile))
    emulator.add_project(EMULATOR_PROJECT, "hybrid", EMULATOR_API_KEY)
    return emulator


@pytest.fixture
def make_emulator_server(
    make_emulator_server: MakeEmulatorServer, emulator_profile: str
) -> MakeEmulatorServer:
    """The root conftest's factory; an emulator made without faults gets the profile's."""

    def make(*args: Any, faults: Faults | None = None, **kwargs: Any) -> EmulatorServer:
        chosen = faults if faults is not None else profile_faults(emulator_profile)
        return make_emulator_server(*args, faults=chosen, **kwargs)

    return make


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch, emulator_profile: str) -> None:
    """The emulator runs without read limits in these tests; pace and back off quickly.
    The waits for Iterable's read lag and for a new list to take writes are bounded by the
    profile's scaled durations, with room to spare on a busy machine."""
    monkeypatch.setenv("RECONCILER_LIST_READS_PER_MINUTE", "100000")
    monkeypatch.setenv("RECONCILER_BACKOFF_BASE", "0.001")
    monkeypatch.setenv("RECONCILER_BACKOFF_CAP", "0.01")
    monkeypatch.setenv("RECONCILER_TIMEOUT", "5")
    if emulator_profile == "field":
        monkeypatch.setenv(
            "RECONCILER_READ_LAG", str(1.5 * FIELD_READ_LAG_SECONDS / FIELD_TIME_SCALE)
        )
        monkeypatch.setenv(
            "RECONCILER_FRESH_LIST_WAIT", str(4 * FIELD_FRESH_LIST_SECONDS / FIELD_TIME_SCALE)
        )
    else:
        # Nothing lags: no test waits for it.
        monkeypatch.setenv("RECONCILER_READ_LAG", "0")
        monkeypatch.setenv("RECONCILER_FRESH_LIST_WAIT", "1")


@pytest.fixture
def workspace(tmp_path, emulator_server, monkeypatch, fast_client) -> Workspace:
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, emulator_server.base_url, "hybrid")
    ws.destination()
    return ws


@pytest.fixture
def cli() -> Callable[..., Result]:
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


def yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip()
