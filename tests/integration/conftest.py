"""Integration fixtures: a workspace of manifests pointing at the emulator over loopback HTTP,
and a runner that invokes the real CLI."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app

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


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator runs without read limits in these tests; pace and back off quickly."""
    monkeypatch.setenv("RECONCILER_LIST_READS_PER_MINUTE", "100000")
    monkeypatch.setenv("RECONCILER_BACKOFF_BASE", "0.001")
    monkeypatch.setenv("RECONCILER_BACKOFF_CAP", "0.01")
    monkeypatch.setenv("RECONCILER_TIMEOUT", "5")


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
