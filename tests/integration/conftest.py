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


# Every end-to-end test runs against the emulator as it is by default (answers at once,
# consistent, complete). The tests where what the real Iterable does matters (writes and their
# answers, reads lagging writes, new lists refusing writes, retries, apply/plan round trips)
# run a second time under its `field` profile (see the README), at this time scale so the suite
# stays fast: a 60 s read lag becomes 0.3 s. They are the modules in FIELD_MODULES, the tests
# in FIELD_TESTS and any test marked @pytest.mark.field_profile. A test that only plans
# against a seeded project (the lag applies to writes made through the API, not to seeding)
# meets the same emulator under either profile, and runs once.
# RECONCILER_TEST_PROFILES=plain (or =field) runs every test under that one profile only, and
# =plain,field every test under both (the full matrix, about twice the time).
FIELD_TIME_SCALE = 200.0
FIELD_MODULES = frozenset(
    {
        # The blast radius guard (issue 19): its block, and the plan after an override.
        "test_blast_radius",
        "test_crash",
        "test_faults",
        "test_field",
        "test_interrupt",
        "test_iterable_answers",
        "test_member_reads",
        "test_pacing",
        "test_plan_apply",
        "test_project_types",
        "test_scale_engine",
        "test_secrets",
        "test_sync",
        "test_traits",
        "test_warehouse_sources",
    }
)
FIELD_TESTS = frozenset(
    {
        # Applies whose answers, lag and fresh lists the field profile changes.
        "test_safety::test_saved_plan_applies_exactly_and_needs_no_path",
        "test_safety::test_removal_over_threshold_is_blocked_with_zero_writes_and_allowed_with_flag",
        "test_safety::test_channel_unsubscribe_is_shown_prominently",
        "test_safety::test_prune_deletes_only_marked_lists_and_only_when_allowed",
        "test_safety::test_prune_keeps_the_lists_of_another_destination_naming_the_same_project",
        "test_safety::test_a_list_made_by_hand_with_a_managed_name_leaves_out_only_that_audience",
        "test_safety::test_two_applies_from_different_directories_create_a_list_once",
        "test_safety::test_a_saved_plan_applies_from_another_checkout",
        "test_safety::test_a_changed_list_name_is_a_new_list_and_a_changed_description_is_noted",
        "test_safety::test_a_renamed_audience_key_says_how_to_keep_its_list",
        "test_safety::test_rows_skipped_as_invalid_never_remove_the_members_they_stand_for",
        # The guards (issue 19) on lists an apply made: the plan right after meets the read
        # lag. Consent after reconciler's own removals (the field profile's unsubscribe
        # without channelUnsubscribe leaves the channel too) and after a saved plan waited.
        "test_safety::test_an_empty_source_is_blocked_unless_the_audience_allows_it",
        "test_safety::test_min_members_blocks_a_source_that_drains_the_list",
        "test_safety::test_max_members_and_addition_limits_block_a_source_that_swells",
        "test_safety::test_an_add_only_audience_never_removes_and_says_what_it_held_back",
        "test_consent::test_people_who_left_are_held_back_and_api_removals_are_not",
        "test_consent::test_a_saved_plan_holds_back_who_opted_out_after_it_was_made",
        "test_privacy::test_apply_output_masks_members_too",
        # The workflows' round trips: apply then plan, a plan gone stale, a scheduled sync.
        "test_workflows::test_apply_on_merge_applies_the_plan_then_has_nothing_to_do",
        "test_workflows::test_apply_refuses_a_plan_that_went_stale_before_approval",
        "test_workflows::test_scheduled_sync_brings_a_changed_csv_audience_up_to_date",
    }
)
PROFILES = ("plain", "field")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "field_profile: also run this test under the emulator's field profile"
    )


def profiles_for(module: str, test: str, marked: bool, chosen: str | None = None) -> list[str]:
    """The emulator profiles one test runs under (see above)."""
    chosen = os.environ.get("RECONCILER_TEST_PROFILES", "") if chosen is None else chosen
    if chosen.strip():
        return [p for p in PROFILES if p in chosen.replace(" ", "").split(",")]
    if marked or module in FIELD_MODULES or f"{module}::{test}" in FIELD_TESTS:
        return list(PROFILES)
    return ["plain"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "emulator_profile" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    marked = metafunc.definition.get_closest_marker("field_profile") is not None
    profiles = profiles_for(module, metafunc.function.__name__, marked)
    metafunc.parametrize("emulator_profile", profiles, indirect=True)


@pytest.fixture
def emulator_profile(request: pytest.FixtureRequest) -> str:
    """ "plain" or "field": parametrized per test by pytest_generate_tests."""
    return request.param


def profile_faults(profile: str) -> Faults | None:
    return Faults.field(FIELD_TIME_SCALE) if profile == "field" else None


def three_csv_lists(
    root: Path,
    make_server: MakeEmulatorServer,
    profile: str,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    **faults: Any,
) -> tuple[Workspace, EmulatorServer]:
    """A hybrid project with lists "big" (30 members), "mid" (20) and "small" (10), each
    one member off its CSV audience each way (`<name>-1..` kept, `<name>-new` joining),
    under the profile's faults with `faults` set over them, and `env` set: the early-read
    tests' project."""
    chosen = profile_faults(profile) or Faults()
    for name, value in faults.items():
        setattr(chosen, name, value)
    server = make_server(project_type="hybrid", faults=chosen)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(root)
    ws = Workspace(root, server.base_url, "hybrid")
    ws.destination()
    proj = server.emulator.project("default")
    for name, size in (("big", 30), ("mid", 20), ("small", 10)):
        list_id = proj.add_list(name)
        people = [f"{name}-{i}@example.com" for i in range(size)]
        for email in people:
            proj.subscribe_direct(list_id, email=email)
        ws.csv(f"{name}.csv", "email", [*people[1:], f"{name}-new@example.com"])
        ws.audience(
            name, {"csv": f"{name}.csv", "email": "email"}, policy={"maxRemovalPercent": 50}
        )
    return ws, server


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
    # A 429 without Retry-After waits for the window's slot to free (a minute for list
    # reads) at most this long each time.
    monkeypatch.setenv("RECONCILER_RETRY_AFTER_CAP", "0.01")
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
