"""Model-based, agreement: the convergence machine (test_convergence_model.py) with the
checks a plan's reader relies on beside convergence itself.

Beside its edits and applies, audiences name a member in more than one row (another
spelling of the email, spaces around it; in hybrid projects the email alone beside a row
with both), people's profiles get fields no mapping declares, lists are made by hand
under an audience's name (adopted) or a renamed one's, Iterable changes between
`plan --out` and `apply --plan`, and the project holds people no manifest names, on a list
no manifest declares. After each step that plans or applies:

- both member engines (RECONCILER_ENGINE=python and duckdb) give the same plan, in JSON
  with members shown, and the same fingerprint in a saved plan (README: "Both engines give
  the same plan, validate output and fingerprint");
- a plan saved twice of one state has one fingerprint, and `apply --plan` of a plan saved
  under one engine, applied under the other, converges as a plain apply does;
- `apply --plan` refuses a plan whose declared lists or mapped fields changed in Iterable
  since, writing nothing, and applies one where only unmapped fields changed;
- an apply leaves the people no manifest names as they were (lists and fields), writes
  only mapped fields, never deletes a list reconciler did not make, and a repeated row
  is one member: one add, one removal, nothing in the plan after (the machine's checks).

RECONCILER_TEST_CONVERGENCE=examples,steps runs it longer, as the convergence model.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from tests.integration.conftest import Result, profiles_for
from tests.integration.test_convergence_model import (
    AUDIENCES,
    FIELDS,
    HAND_EDIT,
    MANIFEST_EDIT,
    PEOPLE,
    WRITE_PATHS,
    AudienceModel,
    _cell,
    email,
    forms,
    make_machine,
    run_model,
    user_id,
)

# People no manifest names: on a list no manifest declares, with a mapped field's name set.
BYSTANDERS = range(3)
UNMAPPED = "nickname"
# Parts of the JSON plan that say how long reads took or would take: not the plan.
TIMINGS = ("member_read", "other_reads", "read_note")
# (audience, person, form): one more row naming the person, in any of its forms (another
# spelling of the email; in hybrid projects its email alone beside both, or both).
DUPLICATE = st.tuples(st.sampled_from(AUDIENCES), st.sampled_from(PEOPLE), st.integers(0, 7))
# Names a list made by hand in Iterable may have: an audience's own, before or after it
# declares the list (reconciler then adopts it; prune never deletes it).
HAND_LISTS = ("a", "b", "c", "a v2", "b v2", "c v2")


def make_agreement_machine(
    project_type: str, profile: str, cli: Callable[..., Result]
) -> type[RuleBasedStateMachine]:
    convergence: Any = make_machine(project_type, profile, cli)

    class Agreement(convergence):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            # Audience -> person -> which of the person's forms (forms()) an extra row takes.
            self.duplicates: dict[str, dict[int, int]] = {name: {} for name in AUDIENCES}
            self.bystander_keys: list[int] = []
            self.saved = 0
            super().__init__()

        @initialize()
        def seed_bystanders(self) -> None:
            outside = self.project.add_list("outside")
            for i in BYSTANDERS:
                user = self.project.add_user(
                    email=f"by{i}@example.com",
                    user_id=None if project_type == "email" else f"by{i}",
                    data_fields={"tier": "outsider", UNMAPPED: f"by{i}"},
                    list_ids=[outside],
                )
                self.bystander_keys.append(user.key)

        # Manifests: extra rows -------------------------------------------------------

        def source(self, name: str, audience: AudienceModel) -> dict[str, Any]:
            chosen = super().source(name, audience)
            extra = [
                (person, forms(project_type, person)[index % len(forms(project_type, person))])
                for person, index in sorted(self.duplicates[name].items())
                if person in audience.members
            ]
            if not extra:
                return chosen
            if "inline" in chosen:
                for person, form in extra:
                    chosen["inline"].append(self.entry(person, form, audience.traits))
                return chosen
            path = self.ws.manifests / chosen["csv"]
            lines = path.read_text().splitlines()
            for person, (gives_email, gives_user_id, case) in extra:
                cells = [
                    email(person, case) if gives_email else "",
                    user_id(person) if gives_user_id else "",
                    *(_cell(self.values[person][f]) for f in FIELDS),
                ]
                lines.append(",".join(cells))
            path.write_text("\n".join(lines) + "\n")
            return chosen

        @rule(edits=st.lists(MANIFEST_EDIT, min_size=1, max_size=4))
        def edit_manifests(self, edits: list[tuple[Any, ...]]) -> None:
            # Email-based projects refuse updateExistingUsersOnly (Iterable ignores it).
            if project_type == "email":
                edits = [edit for edit in edits if edit[0] != "existing_only"]
            super().edit_manifests(edits)

        @rule(duplicates=st.lists(DUPLICATE, min_size=1, max_size=3))
        def repeat_rows(self, duplicates: list[tuple[str, int, int]]) -> None:
            """Rows naming a member again (or, given again, no more)."""
            for name, person, index in duplicates:
                if self.duplicates[name].get(person) == index:
                    del self.duplicates[name][person]
                else:
                    self.duplicates[name][person] = index
            self.write_manifests()

        @rule(name=st.sampled_from(HAND_LISTS))
        def make_list_by_hand(self, name: str) -> None:
            """A list made in Iterable's web app, under a name an audience has or may have."""
            if name not in {record.name for record in self.project.lists.values()}:
                self.project.add_list(name)

        @rule(person=st.sampled_from(PEOPLE))
        def set_unmapped_field(self, person: int) -> None:
            """A field no mapping declares, set in Iterable: no apply may touch it."""
            user = self.user(person)
            if user is not None:
                user.data_fields[UNMAPPED] = f"nick{person}"
                self.project.touch(user)

        # Engines and saved plans -------------------------------------------------------

        @contextmanager
        def engine(self, name: str) -> Iterator[None]:
            was = os.environ.get("RECONCILER_ENGINE")
            os.environ["RECONCILER_ENGINE"] = name
            try:
                yield
            finally:
                if was is None:
                    del os.environ["RECONCILER_ENGINE"]
                else:
                    os.environ["RECONCILER_ENGINE"] = was

        def saved_plan(self, engine: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
            """A plan made under `engine`: its JSON, its saved file's header and path."""
            self.saved += 1
            path = self.root / f"plan-{self.saved}.json"
            with self.engine(engine):
                result = cli(
                    "plan", self.ws.manifests, "--format", "json", "--show-members", "--out", path
                )
            self.check_plan_exit(result)
            shown = result.json()
            for destination in shown["destinations"]:
                for key in TIMINGS:
                    destination.pop(key, None)
            with gzip.open(path, "rt") as saved:
                header = json.loads(saved.readline())
            return shown, header, path

        @rule()
        def engines_agree(self) -> None:
            python, python_header, _ = self.saved_plan("python")
            duckdb, duckdb_header, _ = self.saved_plan("duckdb")
            assert python == duckdb
            assert python_header["fingerprint"] == duckdb_header["fingerprint"]

        @rule(first=st.sampled_from(["python", "duckdb"]))
        def apply_a_saved_plan(self, first: str) -> None:
            """A plan saved twice has one fingerprint; applied under the other engine."""
            _, header, path = self.saved_plan(first)
            _, again, _ = self.saved_plan(first)
            assert header["fingerprint"] == again["fingerprint"]
            with self.engine("duckdb" if first == "python" else "python"):
                self.apply_and_check("--plan", str(path))

        @rule(edits=st.lists(HAND_EDIT, min_size=1, max_size=2))
        def apply_a_plan_iterable_changed_since(self, edits: list[tuple[str, int, int]]) -> None:
            """Iterable changes between `plan --out` and `apply --plan`: a change to a
            declared list's members, or to a mapped field of a profile the plan updates or
            keeps, makes the plan stale (refused, nothing written); a change to nothing the
            plan read (a field no mapping declares) leaves it fresh; anything else, either
            (refused, or applied and converged)."""
            _, _, path = self.saved_plan("python")
            at_plan = self.watched()
            self.edit_iterable_by_hand(edits)
            now = self.watched()
            if now[0] != at_plan[0] or now[1] != at_plan[1]:
                self.expect = "refused"
            elif now == at_plan:
                self.expect = "applied"
            else:
                self.expect = "either"
            try:
                self.apply_and_check("--plan", str(path))
            finally:
                self.expect = "applied"

        def watched(self) -> tuple[Any, ...]:
            """What a saved plan read, coarsely: the members of each declared list there
            (by name), every mapped field of the people a mapped audience names, every
            list's members, and every profile's mapped fields."""
            lists = self.project.lists
            declared = {
                record.name: frozenset(record.members)
                for record in lists.values()
                if record.name in self.declared()
            }
            mapped = {
                person: {f: user.data_fields.get(f) for f in FIELDS}
                for name, audience in self.audiences.items()
                if audience.active and audience.traits
                for person in audience.members
                if (user := self.user(person)) is not None
            }
            every = {i: frozenset(r.members) for i, r in lists.items()}
            fields = {
                key: {f: user.data_fields.get(f) for f in FIELDS}
                for key, user in self.project.users.items()
            }
            return declared, mapped, every, fields

        def accepted(self, result: Result, log: list[Any]) -> bool:
            expect = getattr(self, "expect", "applied")
            if result.exit_code == 0:
                assert expect != "refused", "a stale plan was applied"
                return True
            assert expect != "applied", result.output
            assert "stale plan" in result.output, result.output
            wrote = [
                (r.method, r.path)
                for r in log
                if r.path in WRITE_PATHS
                or r.method == "DELETE"
                or (r.method, r.path) == ("POST", "/api/lists")
            ]
            assert not wrote, wrote
            return False

        # What an apply must leave alone ------------------------------------------------

        def apply_and_check(self, *options: str) -> None:
            before = self.outsiders()
            hand_made = {i for i in self.project.lists if i not in self.made}
            super().apply_and_check(*options)
            gone = sorted(i for i in hand_made if i not in self.project.lists)
            assert not gone, f"lists reconciler did not make were deleted: {gone}"
            after = self.outsiders()
            assert {key: after.get(key) for key in before} == before

        def outsiders(self) -> dict[int, Any]:
            """Each bystander's lists and fields, and every profile's unmapped fields."""
            seen: dict[int, Any] = {}
            for key, user in self.project.users.items():
                if key in self.bystander_keys:
                    seen[key] = (frozenset(user.list_ids), dict(user.data_fields))
                else:
                    seen[key] = {f: v for f, v in user.data_fields.items() if f not in FIELDS}
            return seen

        def check_writes(self, before: Any, log: list[Any]) -> None:
            super().check_writes(before, log)
            for r in log:
                if r.path == "/api/users/bulkUpdate" and r.status < 400:
                    for user in r.body["users"]:
                        assert set(user.get("dataFields", {})) <= set(FIELDS), user

    return Agreement


CASES = [
    ("plain", "hybrid"),
    ("field", "userId"),
    ("plain", "email"),
]


@pytest.mark.parametrize(("profile", "project_type"), CASES)
def test_engines_agree_and_apply_leaves_the_undeclared_alone(
    profile: str,
    project_type: str,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "test_engines_agree_and_apply_leaves_the_undeclared_alone"
    if profile not in profiles_for("test_convergence_agreement_model", name, marked=True):
        pytest.skip(f"RECONCILER_TEST_PROFILES leaves out the {profile} profile")
    machine = make_agreement_machine(project_type, profile, cli)
    run_model(machine, profile, "python", monkeypatch)
