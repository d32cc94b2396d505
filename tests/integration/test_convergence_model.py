"""Model-based: whatever sequence of manifest edits, hand edits in Iterable and applies,
apply leaves Iterable holding exactly what the manifests declare (less what the README's
guards rightly hold back), sends no more writes than the differences need (in hybrid
projects an email-shaped text a list read names a member by may be an email or a userId,
and the one of them Iterable finds no user for is sent again as the other: sent_again),
and the plan right after has nothing to do.

Hypothesis drives random sequences against the emulator over loopback HTTP through the real
CLI (in process, CliRunner), under both member engines and both emulator profiles. A
sequence is a handful of steps over three audiences and a few people, so each run stays in
seconds; the model is a plain set per list and a dict of field values per person.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from reconciler.emulator import Emulator, EmulatorServer, Faults, Limits
from reconciler.emulator.knobs import FIELD_FRESH_LIST_SECONDS, FIELD_READ_LAG_SECONDS
from reconciler.emulator.project import Project, User
from reconciler.state.consent import API_SOURCES
from tests.conftest import EMULATOR_API_KEY, EMULATOR_PROJECT
from tests.integration.conftest import (
    API_KEY_VAR,
    FIELD_TIME_SCALE,
    Result,
    Workspace,
    _doc,
    profiles_for,
)

AUDIENCES = ("a", "b", "c")
PEOPLE = range(6)
FIELDS = ("tier", "score", "vip")
# Values of one kind per field: Iterable fixes a field's type by its first value, and a
# later value of another kind is a conflict the plan rightly refuses (README, Trait mappings).
FIELD_VALUES: dict[str, tuple[Any, ...]] = {
    "tier": ("gold", "silver", "Bronze", None),
    "score": (0, 1, 7, 42, None),
    "vip": (True, False, "yes", "no"),
}
MAPPING = {
    "tier": "tier",
    "score": {"from": "score", "type": "number"},
    "vip": {"from": "vip", "type": "boolean"},
}
EMAIL_CASES = ("p{i}@example.com", "P{i}@Example.COM", " p{i}@EXAMPLE.com ")
WRITE_PATHS = ("/api/lists/subscribe", "/api/lists/unsubscribe", "/api/users/bulkUpdate")
# The model allows every change: no removal limit, list deletion, any share of a mapped
# field cleared (README, Safety: field_clears). One guard holds whatever the policy says:
# prune's deletions in a project holding none of the declared lists (a key swapped for
# another project's), which the model meets when every active audience is new while an
# earlier one's list is still there; plan exits 3 on it, and apply needs
# --allow-list-deletion, as a user who renamed every audience at once gives it.
POLICY = {"maxRemovalPercent": 100, "maxFieldClearPercent": 100, "allowListDeletion": True}
UNFAMILIAR_DELETION = "from a project holding no list the manifests declare in it"
# A field-profile run at ten times the suite's scale: a read lag of 30 ms, not 300 ms, so
# the plan after each apply waits a little, the sequence's behaviour unchanged.
TIME_SCALE = FIELD_TIME_SCALE * 10

# (what, audience, person, choice): one edit of the manifests; `choice` picks a form, a
# value, or (as 0 mod 4, for a member already there) a removal.
MANIFEST_EDIT = st.tuples(
    st.sampled_from(
        [
            *("member", "member", "member", "audience", "rename", "traits", "prune"),
            *("value", "add_only", "existing_only", "source", "resubscribe"),
        ]
    ),
    st.sampled_from(AUDIENCES),
    st.sampled_from(PEOPLE),
    st.integers(0, 23),
)
# (what, index, person): one hand edit in Iterable; `index` picks a list, a membership or a field.
HAND_EDIT = st.tuples(
    st.sampled_from(["subscribe", "unsubscribe", "delete", "field"]),
    st.integers(0, 20),
    st.sampled_from(PEOPLE),
)


def email(person: int, case: int = 0) -> str:
    return EMAIL_CASES[case].format(i=person)


def user_id(person: int) -> str:
    return f"u{person}"


def kind(project_type: str, person: int) -> str:
    """In hybrid projects people 0-1 have only an email, 2-3 only a userId, 4-5 both; in
    userID-based projects everyone has a userId (and may give an email beside it); in
    email-based projects everyone is an email."""
    if project_type == "userId":
        return "both"
    if project_type == "email":
        return "email"
    return ("email", "email", "userId", "userId", "both", "both")[person]


# How an audience names one person: which identifiers, and the email's spelling.
Form = tuple[bool, bool, int]  # (gives email, gives userId, email case)


def forms(project_type: str, person: int) -> list[Form]:
    who = kind(project_type, person)
    cases = range(len(EMAIL_CASES))
    if who == "email":
        return [(True, False, c) for c in cases]
    if who == "userId":
        return [(False, True, 0)]
    if project_type == "userId":
        return [(False, True, 0)] + [(True, True, c) for c in cases]
    # A hybrid profile with both is named by both, or by its email alone (its userId then
    # comes back from getUsers and is resolved, README "How plan and apply work").
    return [(True, True, c) for c in cases] + [(True, False, c) for c in cases]


@dataclass
class AudienceModel:
    active: bool = False
    renamed: bool = False
    traits: bool = False
    add_only: bool = False  # removals: never
    existing_only: bool = False  # updateExistingUsersOnly: true
    csv: bool = True  # members from a CSV file, else inline
    resubscribe: bool = False  # resubscribe: allowed (re-adds people who left themselves)
    members: dict[int, Form] = field(default_factory=dict)

    def list_name(self, name: str) -> str:
        return f"{name} v2" if self.renamed else name


@dataclass
class Snapshot:
    """Iterable before an apply: list ids by name and their members' profile keys."""

    lists: dict[str, int]
    members: dict[int, frozenset[int]]
    fields: dict[int, dict[str, Any]]
    people: dict[int, int]
    """Person -> profile key, for the people who have a profile."""


def _cell(value: Any) -> str:
    """A field value as a CSV cell: an empty cell is null, as null is in YAML."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def make_machine(
    project_type: str, profile: str, cli: Callable[..., Result]
) -> type[RuleBasedStateMachine]:
    class Convergence(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.root = Path(tempfile.mkdtemp(prefix="convergence-"))
            faults = Faults.field(TIME_SCALE) if profile == "field" else None
            emulator = Emulator(limits=Limits.unlimited(), faults=faults)
            emulator.add_project(EMULATOR_PROJECT, project_type, EMULATOR_API_KEY)
            self.server = EmulatorServer(emulator).start()
            self.ws = Workspace(self.root, self.server.base_url, project_type)
            self.prune = False
            self.audiences = {name: AudienceModel() for name in AUDIENCES}
            self.values: dict[int, dict[str, Any]] = {
                p: {f: FIELD_VALUES[f][p % len(FIELD_VALUES[f])] for f in FIELDS} for p in PEOPLE
            }
            # (list id, person) -> (second, by their own hand, sequence): each person's latest
            # unsubscribe from each list, theirs (not re-added) or reconciler's (may return).
            self.latest: dict[tuple[int, int], tuple[int, bool, int]] = {}
            self.events = 0
            # Lists reconciler made (by id), with the audience that made them.
            self.made: dict[int, str] = {}
            # Profile keys each declared list holds after the last apply.
            self.expected_after: dict[int, set[int]] = {}
            self.write_manifests()

        def teardown(self) -> None:
            self.server.stop()
            shutil.rmtree(self.root, ignore_errors=True)

        @property
        def project(self) -> Project:
            return self.server.emulator.project(EMULATOR_PROJECT)

        # Manifests ---------------------------------------------------------------------

        def write_manifests(self) -> None:
            for path in self.ws.manifests.glob("*.yaml"):
                path.unlink()
            self.ws.destination(prune=self.prune, policy=POLICY)  # type: ignore[arg-type]
            self.ws.write("traits.yaml", _doc("TraitMapping", "crm", {"fields": MAPPING}))
            for name, audience in self.audiences.items():
                if not audience.active:
                    continue
                self.ws.audience(name, self.source(name, audience), **self.spec(name, audience))

        def spec(self, name: str, audience: AudienceModel) -> dict[str, Any]:
            spec: dict[str, Any] = {"allowEmpty": True}
            if audience.renamed:
                spec["listName"] = audience.list_name(name)
            if audience.add_only:
                spec["removals"] = "never"
            if audience.existing_only:
                spec["updateExistingUsersOnly"] = True
            if audience.resubscribe:
                spec["resubscribe"] = "allowed"
            if audience.traits:
                spec["traits"] = "crm"
            return spec

        def source(self, name: str, audience: AudienceModel) -> dict[str, Any]:
            """Inline members, or a CSV file: only a file's rows go to the DuckDB engine."""
            if not audience.csv:
                entries = [self.entry(p, f, audience.traits) for p, f in audience.members.items()]
                return {"inline": entries}
            rows = []
            for person, (gives_email, gives_user_id, case) in audience.members.items():
                cells = [
                    email(person, case) if gives_email else "",
                    user_id(person) if gives_user_id else "",
                    *(_cell(self.values[person][f]) for f in FIELDS),
                ]
                rows.append(",".join(cells))
            self.ws.csv(f"data/{name}.csv", ",".join(["email", "userId", *FIELDS]), rows)
            return {"csv": f"data/{name}.csv"}

        def entry(self, person: int, form: Form, traits: bool) -> Any:
            gives_email, gives_user_id, case = form
            entry: dict[str, Any] = {}
            if gives_email:
                entry["email"] = email(person, case)
            if gives_user_id:
                entry["userId"] = user_id(person)
            if traits:
                entry.update(self.values[person])
            elif len(entry) == 1 and "email" in entry:
                return entry["email"]  # a bare string: an email
            return entry

        @rule(edits=st.lists(MANIFEST_EDIT, min_size=1, max_size=4))
        def edit_manifests(self, edits: list[tuple[Any, ...]]) -> None:
            for what, name, person, choice in edits:
                audience = self.audiences[name]
                if what == "member":
                    audience.active = True
                    options = forms(project_type, person)
                    if person in audience.members and choice % 4 == 0:
                        del audience.members[person]
                    else:
                        audience.members[person] = options[choice % len(options)]
                elif what == "audience":
                    audience.active = not audience.active
                elif what == "rename":
                    audience.renamed = not audience.renamed
                elif what == "traits":
                    audience.traits = not audience.traits
                elif what == "resubscribe":
                    audience.resubscribe = not audience.resubscribe
                elif what == "source":
                    audience.csv = not audience.csv
                elif what == "add_only":
                    audience.add_only = not audience.add_only
                elif what == "existing_only":
                    audience.existing_only = not audience.existing_only
                elif what == "prune":
                    self.prune = not self.prune
                else:
                    values = FIELD_VALUES[FIELDS[choice % len(FIELDS)]]
                    self.values[person][FIELDS[choice % len(FIELDS)]] = values[
                        choice // len(FIELDS) % len(values)
                    ]
            self.write_manifests()

        def user(self, person: int) -> User | None:
            if project_type == "userId" or kind(project_type, person) == "userId":
                return self.project.user_by_user_id(user_id(person))
            found = self.project.user_by_email(email(person))
            if found is None and kind(project_type, person) == "both":
                found = self.project.user_by_user_id(user_id(person))
            return found

        def person_of(self, user: User) -> int | None:
            for person in PEOPLE:
                if self.user(person) is user:
                    return person
            return None

        @rule(edits=st.lists(HAND_EDIT, min_size=1, max_size=2))
        def edit_iterable_by_hand(self, edits: list[tuple[str, int, int]]) -> None:
            """Someone changes Iterable in its web app: a person put on a list or leaving it
            themselves, a list deleted, a profile field changed."""
            for what, index, person in edits:
                ids = sorted(self.project.lists)
                if what == "subscribe" and ids:
                    self.hand_subscribe(ids[index % len(ids)], person)
                elif what == "unsubscribe":
                    self.hand_unsubscribe(index)
                elif what == "delete" and ids:
                    self.project.delete_list(ids[index % len(ids)])
                elif what == "field" and (user := self.user(person)) is not None:
                    name = FIELDS[index % len(FIELDS)]
                    user.data_fields[name] = {"tier": "hand", "score": 99, "vip": False}[name]
                    self.project.touch(user)

        def hand_subscribe(self, list_id: int, person: int) -> None:
            existing = self.user(person)
            if existing is not None:
                self.project.subscribe(existing, list_id)
                return
            who = kind(project_type, person)
            self.project.subscribe_direct(
                list_id,
                email=email(person) if who in ("email", "both") else None,
                user_id=user_id(person) if who in ("userId", "both") else None,
            )

        def hand_unsubscribe(self, index: int) -> None:
            pairs = [
                (list_id, key)
                for list_id, record in sorted(self.project.lists.items())
                for key in record.members
            ]
            if not pairs:
                return
            list_id, key = pairs[index % len(pairs)]
            user = self.project.users[key]
            self.project.self_unsubscribe(user, list_id=list_id, source="WebApp")
            person = self.person_of(user)
            if person is not None:
                self.left(list_id, person)

        def left(self, list_id: int, person: int, *, by_hand: bool = True) -> None:
            """The person's latest unsubscribe from the list: by their own hand, or (not
            `by_hand`) reconciler's removal, after which they may be added again. Ordered
            as the consent guard orders them: by the second Iterable stamps on each, and
            in one second the person's own after reconciler's."""
            self.events += 1
            second = self.stamped(list_id, person, by_hand)
            self.latest[(list_id, person)] = (second, by_hand, self.events)

        def stamped(self, list_id: int, person: int, by_hand: bool) -> int:
            """The second of the person's latest unsubscribe event from the list, theirs or
            (not `by_hand`) an API client's."""
            user = self.user(person)
            assert user is not None
            for event in reversed(self.project.unsubscribe_events):
                if (
                    list_id in event["emailListIds"]
                    and (event["unsubSource"] not in API_SOURCES) == by_hand
                    and (event.get("email"), event.get("userId")) == (user.email, user.user_id)
                ):
                    return int(event["createdAt"]) // 1000
            raise AssertionError(f"no unsubscribe event of person {person} from list {list_id}")

        def snapshot(self) -> Snapshot:
            lists = {record.name: list_id for list_id, record in self.project.lists.items()}
            members = {
                list_id: frozenset(record.members) for list_id, record in self.project.lists.items()
            }
            fields = {key: dict(user.data_fields) for key, user in self.project.users.items()}
            people = {p: user.key for p in PEOPLE if (user := self.user(p)) is not None}
            return Snapshot(lists, members, fields, people)

        def declared(self) -> dict[str, str]:
            """List name -> audience, for the audiences the manifests declare."""
            return {a.list_name(name): name for name, a in self.audiences.items() if a.active}

        def expected_members(self, name: str, before: Snapshot) -> set[int]:
            """Profile keys the audience's list must hold once applied."""
            audience = self.audiences[name]
            list_id = before.lists.get(audience.list_name(name))
            lineage = self.lineage(name, before)
            keys = set()
            for person in audience.members:
                if audience.existing_only and not self.exists(person, before):
                    continue  # not created: Iterable skips people it does not know
                user = self.user(person)
                assert user is not None, f"person {person} of {name} has no profile"
                on_list = list_id is not None and user.key in before.members[list_id]
                if not on_list and not audience.resubscribe and self.opted_out(lineage, person):
                    continue  # left the list (or its former self) themselves: never re-added
                keys.add(user.key)
            if audience.add_only and list_id is not None:
                keys |= before.members[list_id]  # removals: never
            return keys

        def lineage(self, name: str, before: Snapshot) -> frozenset[int]:
            """The lists whose departures bear on the audience's adds (README, "Renaming
            and descriptions"): its own list, if there, and every list made for it under a
            name no audience declares (a changed listName) that Iterable still has. Empty
            for a new audience's new list: nobody can have left it."""
            declared = self.declared()
            own = before.lists.get(self.audiences[name].list_name(name))
            former = {
                list_id
                for list_name, list_id in before.lists.items()
                if self.made.get(list_id) == name and list_name not in declared
            }
            return frozenset(former | ({own} if own is not None else set()))

        def left_themselves(self, lineage: frozenset[int], person: int) -> bool:
            """Whether the person's latest unsubscribe from any list of the lineage (one
            list to consent) was their own."""
            found = [self.latest[(i, person)] for i in lineage if (i, person) in self.latest]
            return bool(found) and max(found)[1]

        def opted_out(self, lineage: frozenset[int], person: int) -> bool:
            """Whether the consent guard holds the person back from the lineage's adds."""
            return self.left_themselves(lineage, person)

        def held_by_a_former_list(self, name: str, before: Snapshot) -> frozenset[int]:
            """The lists made for the audience under another name that prune keeps: while
            the audience's list holds back anyone who left (one of) them themselves, they
            are the only record of it (README, prune)."""
            audience = self.audiences[name]
            lineage = self.lineage(name, before)
            list_id = before.lists.get(audience.list_name(name))
            former = lineage - {list_id}
            if not former or not audience.active or audience.resubscribe:
                return frozenset()
            for person in audience.members:
                user = self.user(person)
                if user is None:
                    continue  # never subscribed anywhere: no departure
                on_list = list_id is not None and user.key in before.members[list_id]
                if not on_list and self.left_themselves(lineage, person):
                    return frozenset(former)
            return frozenset()

        def exists(self, person: int, before: Snapshot) -> bool:
            """Whether an updateExistingUsersOnly audience's subscribe finds the person: a
            profile before the apply, or one another audience's subscribe creates in it.
            (However two audiences name one person here, Iterable finds the profile one
            made by the other's identifiers: a person's email and userId never change.)"""
            return person in before.people or any(
                other.active and not other.existing_only and person in other.members
                for other in self.audiences.values()
            )

        @rule()
        def plan_changes_nothing(self) -> None:
            emulator = self.server.emulator
            emulator.clear_log()
            before = self.snapshot()
            result = cli("plan", self.ws.manifests, "--format", "json")
            self.check_plan_exit(result)
            assert not [r for r in emulator.request_log if r.path in WRITE_PATHS], "plan wrote"
            assert self.snapshot() == before

        @rule()
        def apply(self) -> None:
            self.apply_and_check()

        def apply_and_check(self, *options: str) -> None:
            """An apply (with `options`, as `--plan FILE`), and what must hold after it."""
            emulator = self.server.emulator
            before = self.snapshot()
            emulator.clear_log()
            declared_none_found, new_project = self.declared_none_found(), self.new_project()
            # As the blocked plan says to, for a destination whose lists were all deleted.
            allow = ("--allow-new-project", "prod") if new_project else ()
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
            log = list(emulator.request_log)
            if not self.accepted(result, log):
                return
            # A saved plan's violations are those of the state it was made in (checked
            # then); a plain apply's, of the state before it.
            if "--plan" in options:
                self.check_violations(result.json()["overridden"], None, None)
            else:
                overridden = result.json()["overridden"]
                self.check_violations(overridden, declared_none_found, new_project)
            self.check_lists(before)
            self.check_writes(before, log)
            self.check_fields()
            self.check_consent(before, log, result)
            self.forget_api_removals(before)
            emulator.clear_log()
            again = cli("plan", self.ws.manifests, "--detailed-exitcode", "--format", "json")
            assert again.exit_code == 0, again.output
            assert not [r for r in emulator.request_log if r.path in WRITE_PATHS]
            self.check_plan_after(again)

        def declared_none_found(self) -> bool:
            """Whether the project holds none of the lists the manifests declare: none by
            a declared name, nor one reconciler made for an active audience (its marker)."""
            declared = self.declared()
            active = set(declared.values())
            return bool(declared) and not any(
                record.name in declared or self.made.get(list_id) in active
                for list_id, record in self.project.lists.items()
            )

        def new_project(self) -> bool:
            """Whether the plan takes the project for another one than the destination's
            (README, Safety: unfamiliar_project): it holds none of the declared lists, and
            none of the lists reconciler made in it (its run journals recorded them), as
            when a hand edit deleted every one."""
            return self.declared_none_found() and not self.made.keys() & self.project.lists.keys()

        def check_plan_exit(self, result: Result) -> None:
            """A plan (to stdout, or saved) exits 0, or 3 only for prune's deletions in a
            project holding none of the declared lists (POLICY) and for a project taken
            for another one."""
            assert result.exit_code in (0, 3), result.output
            violations = result.json()["violations"]
            assert bool(violations) == (result.exit_code == 3), result.output
            self.check_violations(violations, self.declared_none_found(), self.new_project())

        def check_violations(
            self,
            violations: list[Any],
            declared_none_found: bool | None,
            new_project: bool | None,
        ) -> None:
            """Every violation is a deletion prune makes in a project holding none of the
            declared lists, and the project is one (`declared_none_found`, when known); or
            the project taken for another one, which it is (`new_project`, when known)."""
            for violation in violations:
                if violation["rule"] == "unfamiliar_project":
                    assert new_project is not False, violation
                    continue
                assert violation["rule"] == "list_deletion", violation
                assert UNFAMILIAR_DELETION in violation["message"], violation
            if violations and declared_none_found is not None:
                assert declared_none_found, violations

        def accepted(self, result: Result, log: list[Any]) -> bool:
            """Whether the apply went ahead (a sibling machine expects some refused)."""
            assert result.exit_code == 0, result.output
            return True

        def check_consent(self, before: Snapshot, log: list[Any], result: Result) -> None:
            """What the apply did to consent (a sibling machine models more of it)."""

        def check_plan_after(self, plan: Result) -> None:
            """What the plan right after an apply says (a sibling machine checks more)."""

        def check_lists(self, before: Snapshot) -> None:
            lists = self.project.lists
            by_name = Counter(record.name for record in lists.values())
            self.expected_after = {}
            for list_name, name in self.declared().items():
                assert by_name[list_name] == 1, (list_name, by_name)
                (list_id,) = [i for i, r in lists.items() if r.name == list_name]
                if list_name not in before.lists:
                    self.made[list_id] = name
                self.expected_after[list_id] = self.expected_members(name, before)
                assert set(lists[list_id].members) == self.expected_after[list_id], (
                    f"list {list_name!r}: {sorted(lists[list_id].members)} != "
                    f"{sorted(self.expected_after[list_id])}"
                )
            declared = set(self.declared())
            kept = {i for name in self.audiences for i in self.held_by_a_former_list(name, before)}
            for list_id, record in list(lists.items()):
                if record.name in declared:
                    continue
                # A list no manifest declares: left alone, unless prune deletes it (but not
                # the old list of a changed listName while it holds anyone back).
                assert list_id in before.members, f"{record.name!r} made but not declared"
                pruned = self.prune and list_id in self.made and list_id not in kept
                assert not pruned, f"{record.name!r} not pruned"
                assert frozenset(record.members) == before.members[list_id], record.name
            for list_id in kept:
                assert list_id in lists, f"list {list_id} pruned while it holds people back"
            # self.made keeps the lists prune deleted: the consent machine reads this
            # apply's lineages after (held_back_now), and lineage() reads only lists there.

        def check_writes(self, before: Snapshot, log: list[Any]) -> None:
            """Each list's adds and removes once, in one request each; no list made twice."""
            took = [r for r in log if r.status < 400]
            sent: Counter[tuple[str, int]] = Counter()
            requests: Counter[tuple[str, int]] = Counter()
            for r in took:
                if r.path in ("/api/lists/subscribe", "/api/lists/unsubscribe"):
                    sent[(r.path, r.body["listId"])] += len(r.body["subscribers"])
                    requests[(r.path, r.body["listId"])] += 1
            for list_id, (missed, again) in self.sent_again(took).items():
                # Each text sent again named nobody the first time: one removal, not two.
                sent[("/api/lists/unsubscribe", list_id)] -= missed
                requests[("/api/lists/unsubscribe", list_id)] -= again
            for list_id, expected in self.expected_after.items():
                if list_id not in self.project.lists:
                    continue
                had = before.members.get(list_id, frozenset())
                adds, removes = len(expected - had), len(had - expected)
                assert sent[("/api/lists/subscribe", list_id)] == adds, (list_id, log)
                assert sent[("/api/lists/unsubscribe", list_id)] == removes, (list_id, log)
                assert requests[("/api/lists/subscribe", list_id)] <= 1
                assert requests[("/api/lists/unsubscribe", list_id)] <= 1
            creates = [r for r in took if r.method == "POST" and r.path == "/api/lists"]
            missing = [n for n in self.declared() if n not in before.lists]
            assert len(creates) == len(missing), (missing, creates)
            updates = [r for r in took if r.path == "/api/users/bulkUpdate"]
            assert len(updates) <= 1
            stale = self.stale_profiles(before)
            assert sum(len(r.body["users"]) for r in updates) <= len(stale), (stale, updates)

        def sent_again(self, took: list[Any]) -> dict[int, tuple[int, int]]:
            """Per list, the removals a hybrid apply rightly sent twice: (identifiers, requests).

            A list read names each member by one text, its email or its userId, and in a
            hybrid project a userId may be shaped like an email, so a lower-case
            email-shaped text may be either (README, "already gone"). Apply sends it first
            as the kind the read names a profile by when it has both (a userId when the
            list is read with preferUserId, for an audience keyed by userId) and, where
            Iterable finds no such user, once more as the other kind, in one more request;
            not with channelUnsubscribe (check_consent holds the flag there). That request
            holds only texts the list's first request sent as the other kind, each naming
            no profile as that kind (the emulator's profiles are the judge), once a list."""
            if project_type != "hybrid":
                return {}
            first: dict[int, set[tuple[str, str]]] = {}
            out: dict[int, tuple[int, int]] = {}
            other = {"email": "userId", "userId": "email"}
            for r in took:
                if r.path != "/api/lists/unsubscribe":
                    continue
                list_id = r.body["listId"]
                entries = [next(iter(s.items())) for s in r.body["subscribers"]]
                if list_id not in first:
                    first[list_id] = set(entries)
                    continue
                assert list_id not in out, ("a third unsubscribe", list_id, took)
                for kind, text in entries:
                    assert text == text.lower() and "@" in text, (kind, text)
                    assert (other[kind], text) in first[list_id], (kind, text, took)
                    assert self.named(other[kind], text) is None, (kind, text)
                out[list_id] = (len(entries), 1)
            return out

        def named(self, kind: str, text: str) -> User | None:
            """The profile that has `text` as its `kind` (email or userId), if any."""
            if kind == "email":
                return self.project.user_by_email(text)
            return self.project.user_by_user_id(text)

        def mapped_people(self) -> set[int]:
            """People whose fields a mapped audience keeps: on its list (not held back)."""
            people = set()
            for list_name, name in self.declared().items():
                audience = self.audiences[name]
                if not audience.traits:
                    continue
                (list_id,) = [i for i, r in self.project.lists.items() if r.name == list_name]
                for person in audience.members:
                    user = self.user(person)
                    if user is not None and user.key in self.project.lists[list_id].members:
                        people.add(person)
            return people

        def want(self, person: int) -> dict[str, Any]:
            value = dict(self.values[person])
            if isinstance(value["vip"], str):
                value["vip"] = value["vip"] == "yes"
            return value

        def stale_profiles(self, before: Snapshot) -> set[int]:
            stale = set()
            for person in self.mapped_people():
                user = self.user(person)
                assert user is not None
                have = before.fields.get(user.key, {})
                if any(have.get(f) != v for f, v in self.want(person).items()):
                    stale.add(person)
            return stale

        def check_fields(self) -> None:
            for person in self.mapped_people():
                user = self.user(person)
                assert user is not None
                have = {f: user.data_fields.get(f) for f in FIELDS}
                assert have == self.want(person), (person, have, self.values[person])

        def forget_api_removals(self, before: Snapshot) -> None:
            """reconciler's own removal is the latest unsubscribe: that person may return."""
            for list_id, keys in before.members.items():
                if list_id not in self.project.lists:
                    continue
                for key in keys - set(self.project.lists[list_id].members):
                    user = self.project.users.get(key)
                    person = None if user is None else self.person_of(user)
                    if person is not None:
                        self.left(list_id, person, by_hand=False)

        @invariant()
        def one_list_per_name(self) -> None:
            names = Counter(r.name for r in self.project.lists.values())
            assert all(n == 1 for n in names.values()), names

    return Convergence


# Each engine, project type and emulator profile meets the others once (pairwise), within
# the suite's time: a run of a few sequences of a few applies each. More examples, or
# longer sequences, for a hunt: RECONCILER_TEST_CONVERGENCE=examples,steps (e.g. 200,20).
CASES = [
    ("plain", "python", "hybrid"),
    ("plain", "duckdb", "userId"),
    ("field", "duckdb", "hybrid"),
    ("field", "python", "userId"),
]


def run_model(
    machine: type[RuleBasedStateMachine],
    profile: str,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run `machine` (this module's, or one built on it) for the budget _budget() gives,
    in model_environment's settings."""
    model_environment(profile, engine, monkeypatch)
    examples, steps = _budget()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def model_environment(profile: str, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client paced as the fast_client fixture paces it, at this module's time scale,
    and `engine` planning from the first member on: for run_model, and for a sequence
    replayed by hand (a machine's rules called in turn)."""
    monkeypatch.setenv(API_KEY_VAR, EMULATOR_API_KEY)
    monkeypatch.setenv("RECONCILER_LIST_READS_PER_MINUTE", "100000")
    monkeypatch.setenv("RECONCILER_BACKOFF_BASE", "0.001")
    monkeypatch.setenv("RECONCILER_BACKOFF_CAP", "0.01")
    monkeypatch.setenv("RECONCILER_RETRY_AFTER_CAP", "0.01")
    monkeypatch.setenv("RECONCILER_TIMEOUT", "5")
    lag = 1.5 * FIELD_READ_LAG_SECONDS / TIME_SCALE if profile == "field" else 0
    monkeypatch.setenv("RECONCILER_READ_LAG", str(lag))
    monkeypatch.setenv("RECONCILER_FRESH_LIST_WAIT", str(4 * FIELD_FRESH_LIST_SECONDS / TIME_SCALE))
    # The DuckDB engine from the first member on, as it plans ten million.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1" if engine == "duckdb" else "100000")


def _budget() -> tuple[int, int]:
    chosen = os.environ.get("RECONCILER_TEST_CONVERGENCE", "").strip()
    if not chosen:
        return 2, 10
    examples, steps = chosen.split(",")
    return int(examples), int(steps)


@pytest.mark.parametrize(("profile", "engine", "project_type"), CASES)
def test_apply_converges_to_the_manifests_whatever_happened_before(
    profile: str,
    engine: str,
    project_type: str,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "test_apply_converges_to_the_manifests_whatever_happened_before"
    if profile not in profiles_for("test_convergence_model", name, marked=True):
        pytest.skip(f"RECONCILER_TEST_PROFILES leaves out the {profile} profile")
    run_model(make_machine(project_type, profile, cli), profile, engine, monkeypatch)


def test_who_left_a_renamed_audiences_old_list_is_held_back_from_its_new_one(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence the test above found (field profile, DuckDB, hybrid), replayed by hand:
    person 0 leaves list a by hand, then audience a's listName becomes 'a v2'. Consent
    follows the audience, not the name (README, "Renaming and descriptions"): person 0
    is held back from the new list as from the old one, and prune keeps list a while it
    holds them back, deleting it once they are out of the source."""
    model_environment("field", "duckdb", monkeypatch)
    machine = make_machine("hybrid", "field", cli)()
    try:
        machine.edit_manifests(
            [
                ("source", "a", 0, 0),
                ("resubscribe", "a", 0, 14),
                ("add_only", "a", 0, 0),
                ("member", "b", 0, 13),
            ]
        )
        machine.apply()
        machine.edit_manifests(
            [
                ("resubscribe", "a", 0, 11),
                ("existing_only", "c", 0, 0),
                ("member", "a", 0, 0),
                ("member", "a", 0, 21),
            ]
        )
        for _ in range(3):
            machine.apply()
        machine.edit_manifests(
            [
                ("member", "a", 0, 3),
                ("member", "a", 0, 18),
                ("resubscribe", "b", 0, 11),
                ("rename", "a", 0, 0),
            ]
        )
        (old,) = [i for i, r in machine.project.lists.items() if r.name == "a"]
        zero = machine.user(0)
        assert zero is not None and old in zero.list_ids
        machine.edit_iterable_by_hand([("unsubscribe", 11, 0)])  # person 0 leaves list a
        assert old not in zero.list_ids
        machine.apply()
        (new,) = [i for i, r in machine.project.lists.items() if r.name == "a v2"]
        assert new not in zero.list_ids and old in machine.project.lists
        machine.edit_manifests([("prune", "a", 0, 0)])
        machine.apply()
        assert old in machine.project.lists  # kept: it holds person 0 back from 'a v2'
        machine.edit_manifests([("member", "a", 0, 0)])  # person 0 leaves a's source
        machine.apply()
        assert old not in machine.project.lists and new in machine.project.lists
    finally:
        machine.teardown()


def test_a_model_allowing_every_change_replaces_every_audience_at_once(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence the test above found (plain profile, DuckDB, userId), replayed by hand:
    under prune, audience a's list is made, then a is dropped while b is declared for the
    first time. The project then holds none of the declared lists, so prune's deletion of
    a's list is blocked whatever allowListDeletion says (plan exits 3 on that violation
    alone) until apply is given --allow-list-deletion, which deletes it."""
    model_environment("plain", "duckdb", monkeypatch)
    machine = make_machine("userId", "plain", cli)()
    try:
        machine.edit_manifests([("member", "a", 0, 0), ("prune", "a", 0, 0)])
        machine.apply()
        (old,) = [i for i, r in machine.project.lists.items() if r.name == "a"]
        machine.edit_manifests([("audience", "a", 0, 0), ("member", "b", 1, 0)])
        assert machine.declared_none_found()
        plan = cli("plan", machine.ws.manifests, "--format", "json")
        assert plan.exit_code == 3 and len(plan.json()["violations"]) == 1, plan.output
        machine.plan_changes_nothing()
        machine.apply()
        assert old not in machine.project.lists
    finally:
        machine.teardown()


def test_a_model_allowing_every_change_clears_a_mapped_field(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's policy allows any share of a mapped field cleared: a member's tier
    set, then null in the source, is cleared in Iterable (README, Safety: field_clears,
    which by default blocks clearing it for more than 10% of the members)."""
    model_environment("plain", "python", monkeypatch)
    machine = make_machine("email", "plain", cli)()
    try:
        machine.edit_manifests([("member", "a", 0, 0), ("traits", "a", 0, 0)])
        machine.apply()
        zero = machine.user(0)
        assert zero is not None and zero.data_fields["tier"] == "gold"
        machine.edit_manifests([("value", "a", 0, 9)])  # tier: None
        assert machine.values[0]["tier"] is None
        machine.plan_changes_nothing()
        machine.apply()
        assert zero.data_fields.get("tier") is None
    finally:
        machine.teardown()


def test_a_model_whose_lists_were_all_deleted_by_hand_applies_them_to_the_same_project(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence a longer run found (field profile, DuckDB, userId), replayed by hand:
    audience b's list is made, then deleted in Iterable's web app. The project then holds
    none of the lists this state directory's journals recorded, as a key swapped for
    another project's would show it: plan exits 3 (unfamiliar_project) until apply is
    given --allow-new-project prod, as the message says, which makes the list again."""
    model_environment("plain", "python", monkeypatch)
    machine = make_machine("userId", "plain", cli)()
    try:
        machine.edit_manifests([("member", "b", 1, 11)])
        machine.apply()
        (old,) = machine.project.lists
        machine.edit_iterable_by_hand([("delete", 0, 0)])
        assert not machine.project.lists and machine.new_project()
        plan = cli("plan", machine.ws.manifests, "--format", "json")
        assert plan.exit_code == 3, plan.output
        assert [v["rule"] for v in plan.json()["violations"]] == ["unfamiliar_project"]
        machine.plan_changes_nothing()
        machine.apply()
        (new,) = machine.project.lists
        assert new != old and machine.project.lists[new].name == "b"
    finally:
        machine.teardown()
