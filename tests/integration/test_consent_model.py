"""Model-based, consent: the convergence machine (test_convergence_model.py) with people
opting out in Iterable by their own hand and audiences removing with `channelUnsubscribe`.

Beside its edits and applies, people leave a list, the email channel, every channel (a
global unsubscribe) or only SMS, or opt in to the email channel again; audiences switch
`unsubscribe: {channelUnsubscribe: true, campaignId: N}` and `resubscribe: allowed` on and
off; and people opt out while a saved plan waits for `apply --plan`, which re-checks
consent. Each sequence starts from three overlapping lists people are on. After each
apply, besides what that machine checks (with the consent guard's holds in its model of
each list, README "Never fight a person's own choice"):

- nobody who opted out (left the list themselves, or their profile is unsubscribed from
  an email channel) is added to a list that existed, or to the list a changed `listName`
  makes in place of one (README "Renaming and descriptions": who left the old list is
  held back from the new one), unless its audience says `resubscribe: allowed`;
- the only profiles whose channel consent changed are the members removed from a list
  whose audience sets `channelUnsubscribe`, and each of them lost the list's channel; every
  unsubscribe says `channelUnsubscribe` and names the audience's campaign, or none;
- the plan right after has nothing to do and states every member it holds back, counted
  by reason, per list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
)

from reconciler.emulator.project import DEFAULT_CHANNEL_ID, SMS_CHANNEL_ID
from tests.integration.conftest import Result, profiles_for
from tests.integration.test_convergence_model import (
    AUDIENCES,
    MANIFEST_EDIT,
    PEOPLE,
    AudienceModel,
    Snapshot,
    forms,
    make_machine,
    model_environment,
    run_model,
)

# (what, audience): one consent setting of an audience switched.
CONSENT_SETTING = st.tuples(
    st.sampled_from(["channel", "channel", "campaign", "resubscribe"]),
    st.sampled_from(AUDIENCES),
)
# (what, index, person): one person's own action in Iterable (`index` picks a list).
OPT_OUT = st.tuples(
    st.sampled_from(["list", "list_and_channel", "channel", "global", "sms", "opt_in"]),
    st.integers(0, 20),
    st.sampled_from(PEOPLE),
)
# An opt-out that leaves every list's members as they were: a saved plan stays fresh.
LATE_OPT_OUT = st.tuples(
    st.sampled_from(["channel", "global", "sms", "left_after_added"]),
    st.integers(0, 20),
    st.sampled_from(PEOPLE),
)
# (what, audience, person): a person leaves an audience's source, or joins it (again).
MOVE = st.tuples(
    st.sampled_from(["leave", "join"]), st.sampled_from(AUDIENCES), st.sampled_from(PEOPLE)
)
EMAIL_CHANNELS = frozenset({DEFAULT_CHANNEL_ID})
# Who each audience starts with (overlapping, so that a person is on several lists): a
# sequence starts from lists people are on, which is where opting out means something.
START = {"a": (0, 1, 2, 3), "b": (2, 3, 4, 5), "c": (0, 1, 4, 5)}


def make_consent_machine(
    project_type: str, profile: str, cli: Callable[..., Result]
) -> type[RuleBasedStateMachine]:
    convergence: Any = make_machine(project_type, profile, cli)

    class Consent(convergence):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            # Read by write_manifests, which the convergence machine's __init__ calls.
            self.channel_unsubscribe: set[str] = set()
            self.campaign: set[str] = set()
            self.channels_before: dict[int, frozenset[int]] = {}
            # Email channels each profile left while a saved plan waited (while one does).
            self.since_the_plan: dict[int, frozenset[int]] = {}
            super().__init__()
            self.campaign_id = self.project.add_campaign("Newsletter", state="Finished")

        def spec(self, name: str, audience: AudienceModel) -> dict[str, Any]:
            spec: dict[str, Any] = super().spec(name, audience)
            unsubscribe: dict[str, Any] = {}
            if name in self.channel_unsubscribe:
                unsubscribe["channelUnsubscribe"] = True
            if name in self.campaign:
                unsubscribe["campaignId"] = self.campaign_id
            if unsubscribe:
                spec["unsubscribe"] = unsubscribe
            return spec

        @initialize(
            channel=st.sets(st.sampled_from(AUDIENCES)),
            campaign=st.sets(st.sampled_from(AUDIENCES)),
            resubscribe=st.sets(st.sampled_from(AUDIENCES)),
        )
        def start(self, channel: set[str], campaign: set[str], resubscribe: set[str]) -> None:
            """Every audience declared with its people, applied once."""
            for name, people in START.items():
                audience = self.audiences[name]
                audience.active = True
                audience.resubscribe = name in resubscribe
                for person in people:
                    options = forms(project_type, person)
                    audience.members[person] = options[person % len(options)]
            self.channel_unsubscribe, self.campaign = channel, campaign
            self.write_manifests()
            self.apply()

        @rule(edits=st.lists(MANIFEST_EDIT, min_size=1, max_size=4))
        def edit_manifests(self, edits: list[tuple[Any, ...]]) -> None:
            if project_type == "email":
                # Refused at its manifest line in email-based projects (README).
                edits = [e for e in edits if e[0] != "existing_only"]
            convergence.edit_manifests(self, edits)

        @rule(
            settings=st.lists(CONSENT_SETTING, max_size=2),
            actions=st.lists(OPT_OUT, max_size=3),
            moves=st.lists(MOVE, max_size=3),
        )
        def opt_out_then_apply(
            self,
            settings: list[tuple[str, str]],
            actions: list[tuple[str, int, int]],
            moves: list[tuple[str, str, int]],
        ) -> None:
            """A round of a day: consent settings switched in review, people opting out by
            their own hand, people leaving and rejoining the sources; then an apply."""
            for what, name in settings:
                self.switch(what, name)
            for what, index, person in actions:
                self.opt_out(what, index, person)
            for what, name, person in moves:
                audience = self.audiences[name]
                if what == "leave":
                    audience.members.pop(person, None)
                else:
                    options = forms(project_type, person)
                    audience.members[person] = options[person % len(options)]
            self.write_manifests()
            self.apply()

        def switch(self, what: str, name: str) -> None:
            if what == "channel":
                self.channel_unsubscribe ^= {name}
            elif what == "campaign":
                self.campaign ^= {name}
            else:
                audience = self.audiences[name]
                audience.resubscribe = not audience.resubscribe

        def opt_out(self, what: str, index: int, person: int) -> None:
            """A person's own unsubscribe (a link, a preference centre, an SMS STOP)."""
            user = self.user(person)
            if user is None:
                return
            if what in ("list", "list_and_channel"):
                if not user.list_ids:
                    return
                ids = sorted(user.list_ids)
                list_id = ids[index % len(ids)]
                channel = what == "list_and_channel"
                self.project.self_unsubscribe(user, list_id=list_id, channel=channel)
                self.left(list_id, person)
            elif what == "channel":
                self.project.self_unsubscribe(user, channel=True)
            elif what in ("global", "sms"):
                channels = (SMS_CHANNEL_ID,) if what == "sms" else (DEFAULT_CHANNEL_ID,)
                channels += (SMS_CHANNEL_ID,) if what == "global" else ()
                user.unsubscribed_channel_ids = {*user.unsubscribed_channel_ids, *channels}
                self.project.touch(user)
                source = "SMS" if what == "sms" else "EmailLink"
                self.project.record_unsubscribe(user, source, channel_ids=channels)
            else:
                # Opted in again from a preference centre: the email channel only.
                user.unsubscribed_channel_ids = frozenset(
                    set(user.unsubscribed_channel_ids) - EMAIL_CHANNELS
                )
                self.project.touch(user)

        def channels(self) -> dict[int, frozenset[int]]:
            return {
                key: frozenset(user.unsubscribed_channel_ids)
                for key, user in self.project.users.items()
            }

        def channel_out(self, person: int) -> bool:
            user = self.user(person)
            return user is not None and bool(
                self.channels_before.get(user.key, frozenset()) & EMAIL_CHANNELS
            )

        def opted_out(self, lineage: frozenset[int], person: int) -> bool:
            """A list that exists, or a new one made in place of lists made for its
            audience under another name (the lineage), is read for consent: who left one
            of them, and whose profile is unsubscribed from an email channel (SMS does not
            count)."""
            if not lineage:
                return self.channel_out_since_the_plan(person)
            return super().opted_out(lineage, person) or self.channel_out(person)

        def channel_out_since_the_plan(self, person: int) -> bool:
            """Whether the person unsubscribed from an email channel while a saved plan
            waited: `apply --plan` holds them back from its adds, a new list's too, though
            nobody can have left that (the safe side: the plan reviewed had them, the
            re-check takes adds away, never gives any)."""
            user = self.user(person)
            return user is not None and bool(self.since_the_plan.get(user.key, frozenset()))

        @rule()
        def apply(self) -> None:
            self.channels_before = self.channels()
            self.apply_and_check()

        @rule(actions=st.lists(LATE_OPT_OUT, min_size=1, max_size=3))
        def opt_out_while_a_saved_plan_waits(self, actions: list[tuple[str, int, int]]) -> None:
            """People opt out between `plan --out` and `apply --plan` in ways that leave
            the lists as they were (so the plan is not stale): `apply --plan` re-checks
            consent and holds back its adds who opted out since (README)."""
            saved = self.root / "saved-plan.json"
            made = cli("plan", self.ws.manifests, "--out", saved, "--format", "json")
            self.check_plan_exit(made)
            at_plan = self.channels()
            for what, index, person in actions:
                user = self.user(person)
                if user is None:
                    continue
                if what != "left_after_added":
                    self.opt_out(what, index, person)
                    continue
                # Another client adds them to a list, and they leave it again at once.
                ids = sorted(i for i in self.project.lists if i not in user.list_ids)
                if ids:
                    list_id = ids[index % len(ids)]
                    self.project.subscribe(user, list_id)
                    self.project.self_unsubscribe(user, list_id=list_id)
                    self.left(list_id, person)
            # Held back: who had opted out when the plan was made, and who has since.
            now = self.channels()
            self.channels_before = {
                key: at_plan.get(key, frozenset()) | channels for key, channels in now.items()
            }
            self.since_the_plan = {
                key: (channels - at_plan.get(key, frozenset())) & EMAIL_CHANNELS
                for key, channels in now.items()
            }
            try:
                self.apply_and_check("--plan", str(saved))
            finally:
                self.since_the_plan = {}

        def check_consent(self, before: Snapshot, log: list[Any], result: Result) -> None:
            lists_by_audience = {
                name: list_id
                for name, audience in self.audiences.items()
                if audience.active
                for list_id, record in self.project.lists.items()
                if record.name == audience.list_name(name)
            }
            audience_of = {list_id: name for name, list_id in lists_by_audience.items()}
            expected = dict(self.channels_before)
            for list_id, keys in self.expected_after.items():
                name = audience_of[list_id]
                if name not in self.channel_unsubscribe:
                    continue
                for key in before.members.get(list_id, frozenset()) - keys:
                    channel = self.project.lists[list_id].channel_id
                    expected[key] = expected.get(key, frozenset()) | {channel}
            after = self.channels()
            changed = {k for k in after if after[k] != expected.get(k, frozenset())}
            assert not changed, (
                "channel consent of profiles not removed with channelUnsubscribe changed: "
                f"{ {k: (sorted(expected.get(k, ())), sorted(after[k])) for k in changed} }"
            )
            for r in log:
                if r.path != "/api/lists/unsubscribe" or r.status >= 400:
                    continue
                name = audience_of.get(r.body["listId"])
                assert name is not None, r.body
                assert r.body.get("channelUnsubscribe") is (name in self.channel_unsubscribe)
                assert r.body.get("campaignId") == (
                    self.campaign_id if name in self.campaign else None
                ), r.body
            report = result.json()
            held = sum(self.held_back_now(before).values())
            assert report["members_held_back"] == held, (report["held_back"], held)

        def held_back_now(self, before: Snapshot) -> dict[str, int]:
            """Per declared list (by name) that existed before the apply, or that the apply
            makes in place of lists made for its audience under another name (a changed
            listName), its members held back."""
            counts: dict[str, int] = {}
            for name, audience in self.audiences.items():
                lineage = self.lineage(name, before)
                if not audience.active or audience.resubscribe:
                    continue
                if not lineage and not any(self.since_the_plan.values()):
                    continue
                list_id = before.lists.get(audience.list_name(name))
                on_list = before.members[list_id] if list_id is not None else frozenset()
                counts[audience.list_name(name)] = sum(
                    1
                    for person in audience.members
                    if (user := self.user(person)) is not None
                    and user.key not in on_list
                    and self.opted_out(lineage, person)
                )
            return counts

        def check_plan_after(self, plan: Result) -> None:
            """Every member the plan holds back is stated, on its list, with its reason."""
            self.channels_before, self.since_the_plan = self.channels(), {}
            now = self.snapshot()
            expected = self.held_back_now(now)
            for destination in plan.json()["destinations"]:
                for lp in destination["lists"]:
                    not_sent = lp["not_sent"]
                    stated = (
                        not_sent["left_themselves"]["count"]
                        + not_sent["channel_unsubscribed"]["count"]
                    )
                    assert stated == expected.get(lp["list_name"], 0), (lp, expected)

    return Consent


# Each engine meets each project type's consent matching and the field profile once, in
# about the convergence machine's time per case. RECONCILER_TEST_CONVERGENCE as there.
CASES = [
    ("plain", "python", "email"),
    ("plain", "duckdb", "hybrid"),
    ("field", "python", "userId"),
]


@pytest.mark.parametrize(("profile", "engine", "project_type"), CASES)
def test_apply_never_fights_a_persons_own_choice_whatever_happened_before(
    profile: str,
    engine: str,
    project_type: str,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "test_apply_never_fights_a_persons_own_choice_whatever_happened_before"
    if profile not in profiles_for("test_consent_model", name, marked=True):
        pytest.skip(f"RECONCILER_TEST_PROFILES leaves out the {profile} profile")
    run_model(make_consent_machine(project_type, profile, cli), profile, engine, monkeypatch)


def test_a_hybrid_removal_sent_again_as_an_email_is_one_removal(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence the test above found (hybrid, DuckDB), replayed by hand: person 5, who
    has only an email, is put on list a by hand, and a's audience (keyed by userId too:
    people 2 and 3) reads the list with preferUserId, which names them by that email.
    The text could as well be someone's userId, so apply sends it as a userId first and,
    as Iterable finds no such user, as an email (README, "already gone"): two requests,
    one removal, nobody else's membership or channel consent touched (check_consent)."""
    model_environment("plain", "duckdb", monkeypatch)
    writes: list[Any] = []

    class Replay(make_consent_machine("hybrid", "plain", cli)):  # type: ignore[misc,valid-type]
        def check_consent(self, before: Snapshot, log: list[Any], result: Result) -> None:
            super().check_consent(before, log, result)
            writes[:] = [r for r in log if r.path == "/api/lists/unsubscribe"]

    machine = Replay()
    try:
        machine.start(channel={"c"}, campaign=set(), resubscribe={"a", "b"})
        machine.apply()
        (list_a,) = [i for i, r in machine.project.lists.items() if r.name == "a"]
        assert min(machine.project.lists) == list_a  # what the hand edit's index 0 picks
        machine.edit_iterable_by_hand([("subscribe", 0, 0), ("subscribe", 0, 5)])
        machine.apply()
        sent = [
            (r.body["listId"], r.body["subscribers"], r.body["channelUnsubscribe"]) for r in writes
        ]
        assert sent == [
            (list_a, [{"userId": "p5@example.com"}], False),
            (list_a, [{"email": "p5@example.com"}], False),
        ]
        five = machine.user(5)
        assert five is not None and five.user_id is None
        assert list_a not in five.list_ids and len(five.list_ids) == 2  # still on b and c
    finally:
        machine.teardown()


def test_a_renamed_audiences_new_list_holds_back_who_opted_out_of_the_old_one(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consent follows the audience across a changed listName (README, "Renaming and
    descriptions"), replayed by hand: person 0 leaves list a themselves and person 1
    unsubscribes from the email channel; then a's listName becomes 'a v2' under prune.
    Both are held back from the new list, and counted so; list a is kept while it holds
    person 0 back, and deleted once person 0 is out of the source, though person 1 is
    still held back (the channel is on the profile: list a is not its record); named 'a'
    again, a third list holds person 1 back, and 'a v2' is deleted."""
    model_environment("plain", "python", monkeypatch)
    reports: list[dict[str, Any]] = []

    class Replay(make_consent_machine("email", "plain", cli)):  # type: ignore[misc,valid-type]
        def check_consent(self, before: Snapshot, log: list[Any], result: Result) -> None:
            super().check_consent(before, log, result)
            reports.append(result.json())

    machine = Replay()
    try:
        machine.start(channel=set(), campaign=set(), resubscribe=set())
        (old,) = [i for i, r in machine.project.lists.items() if r.name == "a"]
        zero = machine.user(0)
        assert zero is not None and min(zero.list_ids) == old  # what index 0 picks
        machine.opt_out_then_apply([], [("list", 0, 0), ("channel", 0, 1)], [])
        machine.edit_manifests([("rename", "a", 0, 0), ("prune", "a", 0, 0)])
        machine.apply()
        (new,) = [i for i, r in machine.project.lists.items() if r.name == "a v2"]
        assert reports[-1]["members_held_back"] == 2
        holds = {
            machine.person_of(machine.project.users[k]) for k in machine.project.lists[new].members
        }
        assert holds == {2, 3} and old in machine.project.lists
        machine.opt_out_then_apply([], [], [("leave", "a", 0)])
        assert reports[-1]["members_held_back"] == 1  # person 1: the email channel
        assert old not in machine.project.lists
        # Named 'a' again: a third list, held to 'a v2', which prune deletes in that apply.
        machine.edit_manifests([("rename", "a", 0, 0)])
        machine.apply()
        assert reports[-1]["members_held_back"] == 1
        assert new not in machine.project.lists
    finally:
        machine.teardown()
