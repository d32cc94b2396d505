"""The member model's contract, run against both engines (Python sets and DuckDB): the same
source and the same live list give the same members, messages and fingerprint, through
`make_plan` as a user's plan runs, against the emulator in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorTransport, Limits
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.manifest import load_manifests
from reconciler.members.model import Engine, EngineSettings
from reconciler.plan import Plan
from reconciler.plan.fingerprint import first_difference
from reconciler.planning import make_plan

ENGINES = ("python", "duckdb")
KEY = "contract-key"

# Cells that exercise the rules: case and spaces in emails, an invalid email, a userId too
# long, one with a trailing space, a blank row, a duplicate.
ROWS = [
    ("A@X.com", "u1"),
    (" b@x.com ", ""),
    ("c@y.org", "u3"),
    ("not-an-email", ""),
    ("", "x" * 53),
    ("", "u5 "),
    ("", ""),
    ("a@x.com", "u1"),
    ("d@z.net", ""),
]
# What Iterable holds: members to keep, a leaver, a member known by userId.
LIVE = [("a@x.com", "u1"), ("gone@x.com", None), (None, "u3"), ("e@x.com", "u9")]


def _manifests(tmp: Path, project_type: str) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    lines = ["email,userId", *(f"{e},{u}" for e, u in ROWS)]
    (tmp / "data" / "m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "m.yaml").write_text(
        f"""apiVersion: reconciler/v1
kind: Destination
metadata: {{name: d}}
spec: {{region: us, projectType: {project_type}, apiKey: {{env: K}}}}
---
apiVersion: reconciler/v1
kind: Audience
metadata: {{name: churn}}
spec:
  destination: d
  members: {{csv: data/m.csv}}
""",
        encoding="utf-8",
    )
    return tmp


def _emulator(project_type: str) -> Emulator:
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", project_type, KEY)
    list_id = project.add_list("churn")
    for email, user_id in LIVE:
        if project_type == "userId" and user_id is None:
            continue
        if project_type == "email" and email is None:
            continue
        project.add_user(email=email, user_id=user_id, list_ids=[list_id])
    return emulator


@pytest.fixture
def engines() -> Iterator[dict[str, Engine]]:
    """One workspace per engine, open for the test: a plan's members may live in it."""
    made = {e: Engine(EngineSettings(engine=e, memory_limit="256MB", threads=1)) for e in ENGINES}
    yield made
    for engine in made.values():
        engine.close()


def _plan(root: Path, emulator: Emulator, engine: Engine) -> Plan:
    manifests = load_manifests(root)
    client = IterableClient(
        "https://sandbox.invalid",
        KEY,
        settings=ClientSettings(list_reads_per_minute=0),
        transport=EmulatorTransport(emulator),
    )
    return make_plan(manifests, {"d": client}, engine=engine)


def _summary(plan: Plan) -> list[tuple[object, ...]]:
    (dest,) = plan.destinations
    (lp,) = dest.lists
    return [
        (lp.desired_count, len(lp.add), len(lp.remove)),
        sorted((m.key, m.key_kind, m.email, m.user_id) for m in lp.add),
        sorted(lp.remove),
        sorted((issue.where, issue.message, issue.value) for _a, issue in dest.skipped_members),
    ]


@pytest.mark.parametrize("project_type", ["email", "userId", "hybrid"])
def test_both_engines_plan_the_same_members_and_messages(tmp_path, engines, project_type):
    root = _manifests(tmp_path, project_type)
    plans = {name: _plan(root, _emulator(project_type), e) for name, e in engines.items()}
    assert _summary(plans["python"]) == _summary(plans["duckdb"])
    assert _summary(plans["python"])[0] != (0, 0, 0)  # the case plans something


@pytest.mark.parametrize("project_type", ["email", "userId", "hybrid"])
def test_a_plan_saved_under_one_engine_is_not_stale_under_the_other(
    tmp_path, engines, project_type
):
    root = _manifests(tmp_path, project_type)
    emulator = _emulator(project_type)
    python = _plan(root, emulator, engines["python"])
    duckdb = _plan(root, emulator, engines["duckdb"])
    assert python.fingerprint == duckdb.fingerprint
    assert first_difference(python.fingerprint, duckdb.fingerprint) is None
    assert first_difference(duckdb.fingerprint, python.fingerprint) is None


def test_a_changed_list_still_reads_as_changed_across_engines(tmp_path, engines):
    root = _manifests(tmp_path, "email")
    emulator = _emulator("email")
    saved = _plan(root, emulator, engines["python"])
    project = emulator.project("d")
    (list_id,) = project.lists
    project.add_user(email="new@x.com", list_ids=[list_id])
    now = _plan(root, emulator, engines["duckdb"])
    assert first_difference(saved.fingerprint, now.fingerprint) == (
        "list 'churn' changed (3 -> 4 members)"
    )
