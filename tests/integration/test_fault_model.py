"""Model-based, faults: the convergence machine (test_convergence_model.py) with an apply
that meets a fault Iterable or the network gives it, and lists renamed by hand.

Beside that machine's edits and applies, a list is renamed in Iterable's web app (README,
"Renaming and descriptions": its marker still names the audience, so it is an old list of
it, as after a changed listName), and an apply meets one fault on one kind of request:
answers of 5xx or 4xx, retried up to giving up or not; answers lost after the work was
done, or answered 200 with a body that is not Iterable's. After that apply, whatever its
exit (0, or 1 with a report of what failed):

- every list's members moved only towards what the manifests declare (nobody added who
  is not to be there, nobody removed who is), and a list no manifest declares is as it
  was unless prune may delete it; every list made is declared;
- only mapped fields of mapped members changed, each to the manifests' value; only
  people an audience names got a profile; no profile's channel consent changed;
- the run journal names every list written to and every field update: nothing changed in
  Iterable that it does not say was (or may have been) sent;
- the next apply, with the fault gone, converges with everything the convergence machine
  checks (its writes only what is left, the plan after it empty).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, rule

from reconciler.state.consent import API_SOURCES
from tests.integration.conftest import Result, profiles_for
from tests.integration.test_consent_model import make_consent_machine
from tests.integration.test_convergence_model import (
    FIELDS,
    MANIFEST_EDIT,
    PEOPLE,
    AudienceModel,
    Snapshot,
    make_machine,
    model_environment,
    run_model,
)

# The requests a fault hits: each write, every list request (reads, creates and deletes
# too), or every request.
FAULT_PATHS: tuple[list[str] | None, ...] = (
    ["/api/lists/subscribe"],
    ["/api/lists/unsubscribe"],
    ["/api/users/bulkUpdate"],
    ["/api/lists"],
    None,
)
# (what, paths index, how many): `script` answers 503 to the next n requests hit (seven
# give up the first one), `reject` 400 to the next n (not retried), `drop` loses every
# n-th answer after its work, `bad_body` answers every n-th with an HTML page.
FAULT = st.tuples(
    st.sampled_from(["script", "script", "reject", "drop", "bad_body"]),
    st.integers(0, len(FAULT_PATHS) - 1),
    st.sampled_from([1, 2, 7, 14]),
)


def tally(text: str) -> None:
    """Counted for --hypothesis-show-statistics; nothing when a test replays rules by hand."""
    with contextlib.suppress(InvalidArgument):
        event(text)


def journal_lines(state_dir: Path) -> list[dict[str, Any]]:
    """The newest run journal's lines, or none when the apply wrote none."""
    journals = sorted((state_dir / "runs").glob("apply-*.jsonl"), key=lambda p: p.stat().st_mtime)
    if not journals:
        return []
    return [json.loads(line) for line in journals[-1].read_text().splitlines() if line]


def make_fault_machine(
    project_type: str,
    profile: str,
    cli: Callable[..., Result],
    base: Callable[..., type[RuleBasedStateMachine]] = make_machine,
) -> type[RuleBasedStateMachine]:
    """The fault rules on `base`'s machine: the convergence machine, or one built on it
    (the consent machine)."""
    convergence: Any = base(project_type, profile, cli)

    class Faulted(convergence):  # type: ignore[misc,valid-type]
        @rule(edits=st.lists(MANIFEST_EDIT, min_size=1, max_size=4))
        def edit_manifests(self, edits: list[tuple[Any, ...]]) -> None:
            if project_type == "email":
                # Refused at its manifest line in email-based projects (README).
                edits = [e for e in edits if e[0] != "existing_only"]
            convergence.edit_manifests(self, edits)

        @rule(index=st.integers(0, 20))
        def rename_list_by_hand(self, index: int) -> None:
            ids = sorted(self.project.lists)
            if ids:
                record = self.project.lists[ids[index % len(ids)]]
                record.name = f"{record.name} (by hand {record.id})"

        @rule(edits=st.lists(MANIFEST_EDIT, min_size=1, max_size=4), fault=FAULT)
        def apply_with_a_fault_then_again(
            self, edits: list[tuple[Any, ...]], fault: tuple[str, int, int]
        ) -> None:
            """Manifests edited (so that the apply has work to do), an apply that meets
            `fault`, and one after it without."""
            self.edit_manifests(edits)
            self.apply_with_a_fault(fault)
            self.apply()

        @rule(
            edits=st.lists(MANIFEST_EDIT, min_size=1, max_size=4),
            fault=FAULT,
            stale=st.tuples(st.booleans(), st.integers(0, 20), st.sampled_from(PEOPLE)),
        )
        def apply_a_saved_plan_with_a_fault_then_again(
            self,
            edits: list[tuple[Any, ...]],
            fault: tuple[str, int, int],
            stale: tuple[bool, int, int],
        ) -> None:
            """`plan --out` after the manifests are edited, and `apply --plan` that meets
            `fault`; if `stale`, someone puts a person on a declared list by hand in
            between: the stale check refuses the plan (exit 4, or 1 if the fault kept it
            from reading), with nothing written. Then an apply without the fault."""
            self.edit_manifests(edits)
            saved = self.root / "saved-plan.json"
            made = cli("plan", self.ws.manifests, "--out", saved, "--format", "json")
            self.check_plan_exit(made)
            goes_stale, index, person = stale
            declared = self.declared()
            targets = sorted(
                list_id
                for list_id, record in self.project.lists.items()
                if record.name in declared
                and (self.user(person) is None or self.user(person).key not in record.members)
            )
            if goes_stale and targets:
                before = self.snapshot()
                channels = self.channels_now()
                self.hand_subscribe(targets[index % len(targets)], person)
                changed = self.snapshot()
                result = self.apply_with_a_fault(fault, "--plan", str(saved), checked=False)
                assert result.exit_code in (1, 4), result.output
                tally(f"a stale saved plan under a fault ({fault[0]}) exits {result.exit_code}")
                assert self.snapshot() == changed, "a stale plan wrote"
                self.check_channels(channels, before)
            else:
                self.apply_with_a_fault(fault, "--plan", str(saved))
            self.apply()

        @rule(index=st.integers(0, 40), own_first=st.booleans(), after_apply=st.booleans())
        def unsubscribe_in_the_same_second_as_an_api_removal(
            self, index: int, own_first: bool, after_apply: bool
        ) -> None:
            """A person leaves a list by their own hand (an email's link) in the second an
            API client removes them from it: reconciler's last removal (`after_apply`), or
            another client's of a member now. The export lists the two in either order
            (`own_first`), as it gives no order within a second; the consent guard takes
            hers as the later (state/consent.py _order): she is never re-added."""
            project = self.project
            events = project.unsubscribe_events
            if after_apply:
                removals = [
                    (at, e)
                    for at, e in enumerate(events)
                    if e["unsubSource"] in API_SOURCES
                    and any(i in project.lists for i in e["emailListIds"])
                ]
                found = [
                    (at, e, list_id, user)
                    for at, e in removals[-8:]
                    for list_id in e["emailListIds"]
                    if list_id in project.lists
                    for user in project.users.values()
                    if (user.email, user.user_id) == (e.get("email"), e.get("userId"))
                    # Her latest event from the list, and she is still off it.
                    and user.key not in project.lists[list_id].members
                    and not any(
                        list_id in later["emailListIds"]
                        and (later.get("email"), later.get("userId")) == (user.email, user.user_id)
                        for later in events[at + 1 :]
                    )
                ]
            else:
                found = [
                    (len(events), None, list_id, project.users[key])
                    for list_id, record in sorted(project.lists.items())
                    for key in sorted(record.members)
                ]
            if not found:
                return
            at, removal, list_id, user = found[index % len(found)]
            person = self.person_of(user)
            if person is None:
                return
            moment = removal["createdAt"] if removal else self.server.emulator.wall_clock_ms()
            project.use_wall_clock(lambda: moment)
            try:
                if removal is None:
                    project.unsubscribe(user, list_id)
                    project.record_unsubscribe(user, "API", list_ids=(list_id,))
                    at = len(events) - 1
                project.self_unsubscribe(user, list_id=list_id)
            finally:
                project.use_wall_clock(self.server.emulator.wall_clock_ms)
            events.insert(at if own_first else len(events), events.pop())
            tally(f"an own unsubscribe in an API removal's second, listed first: {own_first}")
            self.left(list_id, person)

        def apply_with_a_fault(
            self, fault: tuple[str, int, int], *options: str, checked: bool = True
        ) -> Result:
            """An apply (with `options`) that meets `fault`; unless not `checked`, what
            must hold after it, whatever its exit."""
            what, paths, n = fault
            emulator = self.server.emulator
            calm = emulator.faults
            injected = dataclasses.replace(calm, paths=FAULT_PATHS[paths])
            if what == "script":
                injected.script = [503] * n
            elif what == "reject":
                injected.script = [400] * n
            elif what == "drop":
                injected.drop_every = n
            else:
                injected.bad_body_every = n
            before = self.snapshot()
            channels = self.channels_now()
            # As the blocked plan says to, for a destination whose lists were all deleted.
            allow = ("--allow-new-project", "prod") if self.new_project() else ()
            started = len(list((self.root / ".reconciler" / "runs").glob("*.jsonl")))
            emulator.faults = injected
            try:
                result = cli(
                    "apply",
                    self.ws.manifests,
                    "--yes",
                    "--format",
                    "json",
                    "--allow-list-deletion",
                    *allow,
                    *options,
                )
            finally:
                emulator.faults = calm
            if not checked:
                return result
            assert result.exit_code in (0, 1), result.output
            tally(f"an apply with a fault ({what}) exits {result.exit_code}")
            lines = journal_lines(self.root / ".reconciler")
            if len(list((self.root / ".reconciler" / "runs").glob("*.jsonl"))) == started:
                lines = []  # this apply wrote no journal: it sent nothing
            self.check_partial(before, lines)
            self.check_channels(channels, before)
            if result.exit_code == 0:
                self.check_lists(before)
                self.check_fields()
            self.forget_api_removals(before)
            return result

        def channels_now(self) -> dict[int, frozenset[int]]:
            return {
                key: frozenset(user.unsubscribed_channel_ids)
                for key, user in self.project.users.items()
            }

        def apply_and_check(self, *options: str) -> None:
            channels, before = self.channels_now(), self.snapshot()
            super().apply_and_check(*options)
            self.check_channels(channels, before)

        def check_channels(self, channels: dict[int, frozenset[int]], before: Snapshot) -> None:
            """Nobody's channel consent changed but by an apply's channel removal: a
            profile removed from the list of an audience that sets channelUnsubscribe may
            have lost that list's channel (and has, if the apply went through); no profile
            got a channel back, and a profile made has none unsubscribed."""
            channel_out = getattr(self, "channel_unsubscribe", set())
            declared = self.declared()
            may_lose: dict[int, set[int]] = {}
            for list_id, record in self.project.lists.items():
                if declared.get(record.name) not in channel_out:
                    continue
                for key in before.members.get(list_id, frozenset()) - set(record.members):
                    may_lose.setdefault(key, set()).add(record.channel_id)
            for key, now in self.channels_now().items():
                had = channels.get(key, frozenset())
                assert had <= now, ("channel consent given back", key, sorted(had - now))
                assert now - had <= may_lose.get(key, set()), ("channel consent", key)

        def check_partial(self, before: Snapshot, lines: list[dict[str, Any]]) -> None:
            """Whatever an apply that met a fault did moved Iterable towards the manifests,
            and its journal names it."""
            lists = self.project.lists
            declared = self.declared()
            sent = {(line["op"], line.get("list_id")) for line in lines if "op" in line}
            ops = {op for op, _ in sent}
            for list_id, record in lists.items():
                if list_id not in before.members:
                    assert record.name in declared, f"{record.name!r} made but not declared"
                    assert ("create_list", None) in sent, lines
                    self.made.setdefault(list_id, declared[record.name])
            kept = {i for name in self.audiences for i in self.held_by_a_former_list(name, before)}
            names = {list_id: name for name, list_id in before.lists.items()}
            for list_id in before.members.keys() - lists.keys():
                name = names[list_id]
                assert name not in declared, f"declared list {name!r} deleted"
                assert self.prune and list_id in self.made and list_id not in kept, name
                assert ("delete_list", list_id) in sent, lines
            for list_id, record in lists.items():
                had = before.members.get(list_id, frozenset())
                now = frozenset(record.members)
                if record.name not in declared:
                    assert now == had, f"undeclared list {record.name!r} written to"
                    continue
                wanted = self.wanted(declared[record.name], before)
                assert now - had <= wanted, (record.name, sorted(now - had), sorted(wanted))
                assert not (had - now) & wanted, (record.name, sorted(had - now))
                if now - had:
                    assert ("subscribe", list_id) in sent, (record.name, lines)
                if had - now:
                    assert ("unsubscribe", list_id) in sent, (record.name, lines)
            self.check_profiles(before, ops)

        def wanted(self, name: str, before: Snapshot) -> set[int]:
            """The profile keys the audience's list may hold once applied: as
            expected_members says, for the people that have a profile (an apply cut short
            may not have made every one)."""
            audience: AudienceModel = self.audiences[name]
            every = audience.members
            audience.members = {p: f for p, f in every.items() if self.user(p) is not None}
            try:
                keys: set[int] = self.expected_members(name, before)
            finally:
                audience.members = every
            return keys

        def check_profiles(self, before: Snapshot, ops: set[str]) -> None:
            """Profiles made only for people an audience names; fields changed only to a
            mapped audience's values, by a request the journal names."""
            named = {p for a in self.audiences.values() if a.active for p in a.members}
            mapped = {
                p for a in self.audiences.values() if a.active and a.traits for p in a.members
            }
            for key, user in self.project.users.items():
                person = self.person_of(user)
                if key not in before.fields:
                    assert person in named, f"a profile made for {person}"
                    continue
                have = before.fields[key]
                changed = {
                    f for f in {*have, *user.data_fields} if have.get(f) != user.data_fields.get(f)
                }
                if not changed:
                    continue
                assert changed <= set(FIELDS) and person in mapped, (person, changed)
                want = self.want(person)
                assert all(user.data_fields.get(f) == want[f] for f in changed), (person, want)
                assert ops & {"subscribe", "bulk_update"}, "fields changed by no request"

    return Faulted


# Each engine, project type and profile met; two sequences of ten steps per case within the
# suite's time, as the convergence model runs; RECONCILER_TEST_CONVERGENCE=examples,steps
# (e.g. 15,12: about 2 min a case) for a hunt.
CASES = [
    ("plain", "python", "hybrid"),
    ("field", "duckdb", "userId"),
    ("plain", "duckdb", "email"),
]


@pytest.mark.parametrize(("profile", "engine", "project_type"), CASES)
def test_an_apply_cut_short_by_a_fault_leaves_only_what_its_journal_says_and_the_next_finishes(
    profile: str,
    engine: str,
    project_type: str,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = (
        "test_an_apply_cut_short_by_a_fault_leaves_only_what_its_journal_says_and_the_next_finishes"
    )
    if profile not in profiles_for("test_fault_model", name, marked=True):
        pytest.skip(f"RECONCILER_TEST_PROFILES leaves out the {profile} profile")
    run_model(make_fault_machine(project_type, profile, cli), profile, engine, monkeypatch)


# The fault rules on the consent machine (test_consent_model.py): audiences switching
# channelUnsubscribe and people opting out by their own hand, so that a removal with
# channelUnsubscribe meets each fault, and a person's own unsubscribe lands while a saved
# plan waits. One case per engine within the suite's time; RECONCILER_TEST_CONVERGENCE as
# above.
CONSENT_CASES = [
    ("field", "python", "hybrid"),
    ("plain", "duckdb", "userId"),
]


@pytest.mark.parametrize(("profile", "engine", "project_type"), CONSENT_CASES)
def test_a_fault_never_changes_a_channel_but_by_a_channel_removal_nor_gives_one_back(
    profile: str,
    engine: str,
    project_type: str,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "test_a_fault_never_changes_a_channel_but_by_a_channel_removal_nor_gives_one_back"
    if profile not in profiles_for("test_fault_model", name, marked=True):
        pytest.skip(f"RECONCILER_TEST_PROFILES leaves out the {profile} profile")
    machine = make_fault_machine(project_type, profile, cli, make_consent_machine)
    run_model(machine, profile, engine, monkeypatch)


@pytest.mark.parametrize("own_first", [True, False])
def test_who_left_in_the_second_reconciler_removed_them_is_not_re_added(
    own_first: bool, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same-second rule replayed by hand: apply removes person 0 from list a (she
    left its source), she clicks an email's unsubscribe link in that second, and she
    rejoins the source: whichever of the two events the export lists first, she is held
    back, and counted so."""
    model_environment("plain", "python", monkeypatch)
    machine_class = make_fault_machine("hybrid", "plain", cli, make_consent_machine)
    reports: list[dict[str, Any]] = []

    class Replay(machine_class):  # type: ignore[misc,valid-type]
        def check_consent(self, before: Snapshot, log: list[Any], result: Result) -> None:
            super().check_consent(before, log, result)
            reports.append(result.json())

    machine = Replay()
    try:
        machine.start(channel=set(), campaign=set(), resubscribe=set())
        (list_a,) = [i for i, r in machine.project.lists.items() if r.name == "a"]
        machine.opt_out_then_apply([], [], [("leave", "a", 0)])
        zero = machine.user(0)
        assert zero is not None and list_a not in zero.list_ids
        removal = machine.project.unsubscribe_events[-1]
        assert removal["unsubSource"] in API_SOURCES and removal["emailListIds"] == [list_a]
        machine.unsubscribe_in_the_same_second_as_an_api_removal(0, own_first, True)
        own = [e for e in machine.project.unsubscribe_events if e["unsubSource"] == "EmailLink"]
        assert [e["createdAt"] for e in own] == [removal["createdAt"]]
        machine.opt_out_then_apply([], [], [("join", "a", 0)])
        assert list_a not in zero.list_ids
        assert reports[-1]["members_held_back"] == 1
    finally:
        machine.teardown()


def test_a_saved_plan_gone_stale_is_refused_under_a_fault_with_nothing_written(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved-plan rule replayed by hand: `plan --out` with an add to list a, person 5
    put on list a by hand, then `apply --plan` whose reads of lists answer 503 once: the
    stale check refuses it (exit 4), nothing written; the apply after converges."""
    model_environment("plain", "python", monkeypatch)
    results: list[Result] = []

    class Replay(make_fault_machine("hybrid", "plain", cli, make_consent_machine)):  # type: ignore[misc]
        def apply_with_a_fault(self, *args: Any, **kwargs: Any) -> Result:
            results.append(super().apply_with_a_fault(*args, **kwargs))
            return results[-1]

    machine = Replay()
    try:
        machine.start(channel={"a"}, campaign=set(), resubscribe=set())
        (list_a,) = [i for i, r in machine.project.lists.items() if r.name == "a"]
        machine.apply_a_saved_plan_with_a_fault_then_again(
            [("member", "a", 4, 1)], ("script", 3, 1), (True, 0, 5)
        )
        (refused,) = results
        assert refused.exit_code == 4, refused.output
        assert "stale plan" in refused.json()["error"], refused.output
        four, five = machine.user(4), machine.user(5)
        assert four is not None and five is not None
        # The apply after: 4 added, 5 (put there by hand) removed with the channel.
        assert set(machine.project.lists[list_a].members) & {four.key, five.key} == {four.key}
    finally:
        machine.teardown()


def test_a_saved_plans_add_to_a_new_list_holds_back_who_left_the_channel_since(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence the channel test above found (field, Python, hybrid), replayed: list
    'b v2' deleted by hand, a plan saved that makes it again with person 5, who then
    unsubscribes from the email channel; `apply --plan` holds her back from the new list
    (README, "A saved plan is checked again"), as the consent model now expects."""
    model_environment("field", "python", monkeypatch)
    state = make_fault_machine("hybrid", "field", cli, make_consent_machine)()
    try:
        state.start(channel={"a", "b"}, resubscribe={"a"}, campaign={"a", "b"})
        state.edit_iterable_by_hand([("subscribe", 0, 0), ("delete", 10, 1)])
        state.unsubscribe_in_the_same_second_as_an_api_removal(21, False, True)
        state.apply_a_saved_plan_with_a_fault_then_again(
            [("rename", "b", 4, 15), ("member", "a", 5, 18), ("traits", "b", 3, 2)],
            ("drop", 1, 1),
            (False, 9, 0),
        )
        state.apply_a_saved_plan_with_a_fault_then_again(
            [("member", "c", 2, 2), ("audience", "a", 1, 18), ("source", "c", 1, 21)],
            ("bad_body", 1, 14),
            (False, 0, 2),
        )
        state.apply_with_a_fault_then_again(
            [
                ("member", "a", 1, 7),
                ("audience", "a", 3, 13),
                ("source", "a", 0, 0),
                ("member", "c", 5, 12),
            ],
            ("script", 0, 7),
        )
        state.apply_with_a_fault_then_again([("source", "c", 0, 21)], ("script", 4, 1))
        state.unsubscribe_in_the_same_second_as_an_api_removal(11, False, False)
        state.unsubscribe_in_the_same_second_as_an_api_removal(15, False, True)
        state.rename_list_by_hand(10)
        state.edit_iterable_by_hand([("delete", 11, 4)])
        assert "b v2" not in {r.name for r in state.project.lists.values()}
        state.opt_out_while_a_saved_plan_waits([("channel", 16, 5), ("channel", 16, 1)])
        five = state.user(5)
        assert five is not None
        (new,) = [r for r in state.project.lists.values() if r.name == "b v2"]
        assert five.key not in new.members and new.members
    finally:
        state.teardown()
