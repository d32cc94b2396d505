"""planning.make_plan and apply_plan called directly, without the CLI (issue 17: tests
that mirror the core packages): desired state from manifests and a CSV source, live state
from the emulator over HTTP, trait-mapped fields, and the plan as data at each step."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

from reconciler.apply.executor import apply_plan
from reconciler.connect import open_client
from reconciler.iterable import ClientSettings
from reconciler.manifest import load_manifests
from reconciler.members.engine import Engine, EngineSettings
from reconciler.plan import Plan
from reconciler.planning import make_plan

HEADER = "email,plan"


def setup(workspace, rows: list[str]) -> None:
    workspace.csv("data/crm.csv", HEADER, rows)
    workspace.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"plan_tier": "plan"}},
            }
        ),
    )
    workspace.audience(
        "crm",
        {"csv": "data/crm.csv", "email": "email"},
        traits="crm",
        policy={"maxRemovalPercent": 50},
    )


def plan_and_apply(workspace, tmp_path, apply: bool = True) -> Plan:
    manifests = load_manifests(workspace.manifests)
    settings = ClientSettings.from_env()
    with ExitStack() as stack:
        clients = {
            name: stack.enter_context(open_client(dest, settings, tmp_path / "state"))
            for name, dest in manifests.destinations.items()
        }
        engine = stack.enter_context(Engine(EngineSettings(temp_dir=tmp_path)))
        plan = make_plan(manifests, clients, engine=engine)
        if apply and plan.has_changes:
            report = apply_plan(plan, clients)
            assert report.ok, report.to_dict(str)
            # Iterable's reads lag its writes (the field profile): as the CLI does, wait
            # out the lag before the next plan reads.
            time.sleep(settings.read_lag)
    return plan


def test_a_plan_made_applied_and_made_again_converges(workspace, tmp_path, emulator_server):
    setup(workspace, ["a@example.com,gold", "b@example.com,silver", "c@example.com,gold"])

    first = plan_and_apply(workspace, tmp_path)
    (dest,) = first.destinations
    (lp,) = dest.lists
    assert (lp.create, len(lp.add), len(lp.remove)) == (True, 3, 0)
    assert lp.add_fields["a@example.com"] == {"plan_tier": "gold"}
    assert first.violations() == []

    # One member leaves the source, one member's mapped field changes.
    setup(workspace, ["a@example.com,platinum", "b@example.com,silver"])
    second = plan_and_apply(workspace, tmp_path)
    (dest,) = second.destinations
    (lp,) = dest.lists
    assert (lp.create, len(lp.add), list(lp.remove)) == (False, 0, ["c@example.com"])
    assert [(u.key, u.changes) for u in dest.field_updates] == [
        ("a@example.com", {"plan_tier": ("gold", "platinum")})
    ]
    assert second.fingerprint["prod"][lp.list_name]  # the live list it was made from
    user = emulator_server.emulator.project("default").find_user(email="a@example.com")
    assert user.data_fields["plan_tier"] == "platinum"

    third = plan_and_apply(workspace, tmp_path, apply=False)
    assert not third.has_changes
    assert third.summary.changes == 0
