"""reconciler/state/skipped_user_ids.py, its pure parts: which skipped identifiers may be
userIds worth a read, and a list plan without the removals of the members they stand for.
The reads themselves run over the emulator in tests/integration/test_project_types.py."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest import Destination, DestinationSpec, Location
from reconciler.plan.model import ListPlan
from reconciler.state.desired import DesiredDestination
from reconciler.state.skipped_user_ids import _may_be_user_id, _without, keep_user_id_rows


def _plan(remove: tuple[str, ...], kept: int = 0) -> ListPlan:
    return ListPlan(
        audience="vip",
        list_name="vip",
        list_id=7,
        create=False,
        description=None,
        add=(),
        remove=remove,
        unchanged=3,
        live_count=3 + len(remove),
        desired_count=3,
        kept_for_skipped=kept,
    )


def test_the_removals_of_kept_members_are_dropped_and_counted_as_kept() -> None:
    plan = _plan(("a@example.com", "placeholder-1@placeholder.email", "c@example.com"), kept=1)
    kept = _without(plan, {"placeholder-1@placeholder.email", "nobody@example.com"})
    assert tuple(kept.remove) == ("a@example.com", "c@example.com")
    assert kept.kept_for_skipped == 2


def test_a_plan_none_of_whose_removals_are_kept_is_the_same_plan() -> None:
    plan = _plan(("a@example.com",))
    assert _without(plan, {"b@example.com"}) is plan


def test_only_identifiers_iterable_could_hold_as_a_user_id_are_read() -> None:
    assert _may_be_user_id("u-1001")
    assert not _may_be_user_id("")  # an empty cell names nobody
    assert not _may_be_user_id("u" * 10_000)  # longer than Iterable takes


def test_nothing_is_read_outside_email_based_projects() -> None:
    # No client: outside email-based projects the function must not reach for one.
    lists = [_plan(("a@example.com",))]
    for project_type in ("hybrid", "userId"):
        spec = DestinationSpec.model_validate(
            {"region": "us", "projectType": project_type, "apiKey": {"env": "ITERABLE_API_KEY"}}
        )
        destination = Destination(
            name="d", spec=spec, location=Location("m.yaml", 1, 1), base_dir=Path(".")
        )
        desired = DesiredDestination(destination)
        out, reads = keep_user_id_rows(None, desired, lists)  # type: ignore[arg-type]
        assert out == lists and reads == []
