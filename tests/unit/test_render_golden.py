"""Golden files for the renderers people read (issue 17): representative plans and apply
reports, built here in Python, rendered as text and markdown and compared with the files
under tests/golden/. A change to a template or a renderer shows up as a diff of those files
in review.

    python3 -m pytest tests/unit/test_render_golden.py --update-golden   # rewrite them
    RECONCILER_UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_render_golden.py
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import (
    ApplyReport,
    DeletionResult,
    DestinationResult,
    FieldUpdateResult,
    ListResult,
)
from reconciler.apply.held_back import HeldBack
from reconciler.apply.runrecord import RunRecord
from reconciler.members.identity import Member
from reconciler.members.issue import MemberIssue
from reconciler.plan import (
    CampaignUse,
    DestinationPlan,
    FieldRead,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
)
from reconciler.render.masking import source_value
from reconciler.render.plans import (
    plan_json,
    plan_markdown,
    plan_text,
    report_json,
    report_markdown,
    report_text,
)
from reconciler.render.status import status_json, status_rows

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """golden(name, text): `text` must equal tests/golden/<name> (or rewrites it)."""
    update = request.config.getoption("--update-golden") or os.environ.get(
        "RECONCILER_UPDATE_GOLDEN"
    ) not in (None, "", "0")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.is_file(), f"no golden file {path}: run pytest with --update-golden"
        expected = path.read_text(encoding="utf-8")
        if text != expected:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"tests/golden/{name}",
                    "rendered",
                )
            )
            pytest.fail(f"{name} differs from its golden file (--update-golden):\n{diff}")

    return check


# -- plans built by hand ---------------------------------------------------------------------


def email(n: int, domain: str = "example.com") -> Member:
    address = f"person{n:02d}@{domain}"
    return Member(address, "email", email=address)


def user(n: int, with_email: bool = True) -> Member:
    address = f"user{n:02d}@example.org" if with_email else None
    return Member(f"u-{n:04d}", "userId", email=address, user_id=f"u-{n:04d}")


def list_plan(**changes: Any) -> ListPlan:
    """An existing list of 100 members with nothing to change, unless told otherwise."""
    values: dict[str, Any] = {
        "audience": "newsletter",
        "list_name": "newsletter",
        "list_id": 101,
        "create": False,
        "description": None,
        "add": (),
        "remove": (),
        "unchanged": 100,
        "live_count": 100,
        "desired_count": 100,
    }
    values.update(changes)
    return ListPlan(**values)


def destination(*lists: ListPlan, **changes: Any) -> DestinationPlan:
    values: dict[str, Any] = {
        "destination": "prod",
        "project_type": "hybrid",
        "lists": lists,
        "member_read": "members of 1 list read with 1 getUsers call",
    }
    values.update(changes)
    return DestinationPlan(**values)


def empty_plan() -> Plan:
    return Plan()


def unchanged_plan() -> Plan:
    return Plan((destination(list_plan()),))


def create_and_delete_plan() -> Plan:
    """A new list with its members, and two lists pruned: one permitted, one blocked."""
    new = list_plan(
        audience="beta",
        list_name="beta-testers",
        list_id=None,
        create=True,
        description="Beta testers",
        add=tuple(email(n) for n in range(3)),
        unchanged=0,
        live_count=0,
        desired_count=3,
    )
    return Plan(
        (
            destination(
                new,
                deletions=(ListDeletion(7, "old-promo"),),
                allow_list_deletion=True,
            ),
            destination(
                list_plan(audience="vip", list_name="vip", list_id=55),
                destination="eu",
                project_type="email",
                deletions=(ListDeletion(9, "retired"),),
            ),
        )
    )


def adds_and_removes_plan() -> Plan:
    """More adds than the sample shows, userIds with emails, removes with channelUnsubscribe."""
    lp = list_plan(
        audience="churn-risk",
        list_name="churn-risk",
        list_id=202,
        add=(*(user(n) for n in range(12)), user(99, with_email=False)),
        remove=("gone01@example.com", "u-0500", "gone02@example.com"),
        unchanged=97,
        live_count=100,
        desired_count=110,
        campaign_id=4242,
        channel_unsubscribe=True,
        max_removal_percent=5.0,
        update_existing_users_only=True,
    )
    return Plan((destination(lp, project_type="userId"),))


def field_updates_plan() -> Plan:
    """Mapped fields sent with adds, and updates of users already on the list."""
    added = email(1)
    lp = list_plan(
        audience="crm",
        list_name="crm",
        list_id=303,
        add=(added,),
        unchanged=2,
        live_count=2,
        desired_count=3,
        add_fields={added.key: {"plan_tier": "gold", "ltv": 120.5}},
        field_update_keys=("person02@example.com", "person03@example.com"),
    )
    updates = (
        FieldUpdate(
            key="person02@example.com",
            key_kind="email",
            email="person02@example.com",
            user_id=None,
            changes={"plan_tier": ("silver", "gold"), "ltv": (10, 99.5)},
        ),
        FieldUpdate(
            key="u-0003",
            key_kind="userId",
            email="person03@example.com",
            user_id="u-0003",
            changes={"profile": ({"city": "Oslo"}, {"city": "Bergen", "zip": "5003"})},
            merge_nested_objects=True,
        ),
    )
    return Plan(
        (
            destination(
                lp,
                field_updates=updates,
                field_read=FieldRead("user_reads", users=2, requests=2, fields=("ltv",)),
                new_fields=(("ltv", "double"), ("profile.tier", "string")),
            ),
            destination(
                list_plan(audience="quiet", list_name="quiet", list_id=304),
                destination="eu",
                field_read=FieldRead("export", users=40, requests=1, fields=("plan_tier",)),
            ),
        )
    )


def campaigns_plan() -> Plan:
    """Campaigns that send to a list gaining members or suppress a list losing them, and a
    destination whose campaigns could not be read, under activeCampaignAdds: block."""
    warned = list_plan(
        audience="welcome",
        list_name="welcome",
        list_id=401,
        add=(email(1),),
        remove=("person09@example.com",),
        unchanged=99,
    )
    suppression = list_plan(
        audience="do-not-mail",
        list_name="do-not-mail",
        list_id=402,
        remove=("person08@example.com",),
        unchanged=99,
    )
    blocked = list_plan(
        audience="launch",
        list_name="launch",
        list_id=403,
        add=(email(2), email(3)),
        desired_count=102,
        active_campaign_adds="block",
    )
    uses = (
        CampaignUse("welcome", 12, "Welcome", "Triggered", "Running", "send"),
        CampaignUse("welcome", 13, "Spring | sale", "Blast", "Finished", "send"),
        CampaignUse("do-not-mail", 14, "Weekly", "Blast", "Scheduled", "suppression"),
    )
    return Plan(
        (
            destination(warned, suppression, campaigns=uses),
            destination(
                blocked,
                destination="eu",
                campaigns_read_error="campaigns could not be read: HTTP 500 from Iterable",
            ),
        )
    )


def guards_plan() -> Plan:
    """Every guard broken once: removal share and count, empty source, bounds, additions."""
    lists = (
        list_plan(
            audience="shrinking",
            list_name="shrinking",
            list_id=501,
            remove=tuple(f"person{n:02d}@example.com" for n in range(30)),
            unchanged=70,
            desired_count=70,
            max_removals=20,
        ),
        list_plan(
            audience="emptied",
            list_name="emptied",
            list_id=502,
            remove=tuple(f"person{n:02d}@example.net" for n in range(4)),
            unchanged=0,
            live_count=4,
            desired_count=0,
            max_removal_percent=100.0,
        ),
        list_plan(
            audience="bounded",
            list_name="bounded",
            list_id=503,
            add=tuple(email(n, "example.edu") for n in range(5)),
            desired_count=105,
            max_members=102,
            max_addition_percent=2.0,
            max_additions=3,
        ),
    )
    return Plan((destination(*lists),))


def held_back_and_skipped_plan() -> Plan:
    """What a plan leaves out and why: held-back removals, kept members, forgotten users,
    members not created, skipped rows, duplicates, field values not sent, unread lists."""
    lp = list_plan(
        audience="members",
        list_name="members",
        list_id=601,
        add=(email(1),),
        unchanged=95,
        desired_count=98,
        held_back_removals=4,
        kept_for_skipped=1,
        kept_email_changed=2,
        forgotten=("forgotten@example.com",),
        not_created=("stranger@example.com", "u-0777"),
    )
    skipped = tuple(
        ("members", MemberIssue(f"members.csv:{n + 2}", "invalid email", f"not-an-email-{n}"))
        for n in range(21)
    )
    return Plan(
        (
            destination(
                lp,
                skipped_members=skipped,
                skipped_unlisted=3,
                duplicate_rows=2,
                duplicate_conflicts=(
                    (
                        "members",
                        MemberIssue(
                            "members.csv:9",
                            "same email as members.csv:4 (used) but a different userId: "
                            "this row is ignored",
                        ),
                    ),
                ),
                field_issues=(
                    (
                        "members",
                        MemberIssue(
                            "members.csv:5",
                            f"field 'ltv': {source_value('twelve')} is not a number",
                            "person05@example.com",
                        ),
                    ),
                ),
                # Values not made beyond those listed (an audience lists 1,000 per field).
                field_issues_unlisted=1_000,
                unread=(("archive", "getUsers answered an empty body for a list of 3 members"),),
                notes=(
                    "list 'members' has a new description in the manifest",
                    # The plan's own code spans stay code in markdown (they were printed
                    # escaped, \`prune: true\`); the list name's backtick stays escaped.
                    "list 'old`promo' (list 12) was created by reconciler for audience "
                    "'promo' and no manifest declares it any more: prune is off, so it stays "
                    "in Iterable as it is, no longer kept in line (`prune: true` on the "
                    "destination deletes it; declare it again to keep managing it).",
                ),
                read_note="the last apply was 20 s ago: reads may lag it, so they were retried",
                other_reads=("2 users checked for being forgotten",),
            ),
        )
    )


PLANS: dict[str, Callable[[], Plan]] = {
    "empty": empty_plan,
    "unchanged": unchanged_plan,
    "create_and_delete": create_and_delete_plan,
    "adds_and_removes": adds_and_removes_plan,
    "field_updates": field_updates_plan,
    "campaigns": campaigns_plan,
    "guards": guards_plan,
    "held_back_and_skipped": held_back_and_skipped_plan,
}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_text(name, golden):
    golden(f"plan/{name}.txt", plan_text(PLANS[name]()))


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_markdown(name, golden):
    golden(f"plan/{name}.md", plan_markdown(PLANS[name]()))


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_json(name, golden):
    """`--format json` (Plan.to_dict), masked as by default."""
    golden(f"plan/{name}.json", plan_json(PLANS[name]()))


def test_plan_json_with_members_shown_and_guards_overridden(golden):
    golden("plan/adds_and_removes.shown.json", plan_json(adds_and_removes_plan(), True))
    golden("plan/guards.allowed.json", plan_json(guards_plan(), allowed=("removals",)))


def test_a_lists_held_back_removals_are_counted_in_words():
    """One removal held back was "1 removals held back" in the markdown plan's notes."""
    plan = held_back_and_skipped_plan()
    lp = dataclasses.replace(plan.destinations[0].lists[0], held_back_removals=1)
    one = dataclasses.replace(plan.destinations[0], lists=(lp,))
    assert "1 removal held back (removals: never)" in plan_markdown(Plan((one,)))
    assert "4 removals held back (removals: never)" in plan_markdown(plan)


def too_big_plan() -> Plan:
    """A plan of two destinations too big for a small limit: lists that only add and
    remove, one holding members back, finished campaigns, prune blocked on many lists and
    many notes, so that every fit plan_markdown has is needed."""
    plain = tuple(
        list_plan(
            audience=f"segment-{n:02d}",
            list_name=f"segment-{n:02d}",
            list_id=500 + n,
            add=(email(n),),
            remove=(f"gone{n:02d}@example.com",),
            max_removal_percent=100.0,
        )
        for n in range(12)
    )
    held = list_plan(
        audience="held",
        list_name="held",
        list_id=499,
        add=(email(90),),
        left_themselves=("left@example.com",),
        left_sources=(("EmailLink", 1),),
    )
    finished = tuple(
        CampaignUse(lp.list_name, 9_000 + n, f"Weekly {n}", "Blast", "Finished", "send")
        for lp in plain[:2]
        for n in range(5)
    )
    prod = destination(
        held,
        *plain,
        campaigns=(CampaignUse("held", 42, "Welcome", "Triggered", "Running", "send"), *finished),
        deletions=tuple(ListDeletion(700 + n, f"retired-{n:02d}") for n in range(24)),
        notes=tuple(f"note {n:02d} on a list left behind by a renamed audience" for n in range(24)),
    )
    eu = destination(list_plan(audience="eu", list_name="eu", list_id=800), destination="eu")
    return Plan((prod, eu))


def test_plan_markdown_made_to_fit(golden):
    """What a comment too small for the plan keeps: every destination, list prune
    deletes, hold and warning; the rest counted."""
    text = plan_markdown(too_big_plan(), limit=8_000)
    assert len(text) <= 8_000 and "plan truncated" not in text
    # A heading is not left without its lines when the lines' list rows were left out.
    assert "changes:\n\n\n" not in text
    assert "'Welcome' (id 42): **1 added member can be messaged by it**" in text
    golden("plan/made_to_fit.md", text)


def test_plan_with_members_shown(golden):
    """--show-members: the same plan with identifiers in full (local use only)."""
    plan = adds_and_removes_plan()
    golden("plan/adds_and_removes.shown.txt", plan_text(plan, show_members=True))
    golden("plan/adds_and_removes.shown.md", plan_markdown(plan, show_members=True))


def test_plan_with_overridden_guards(golden):
    """apply --allow-removals: the plan it prints says what it goes ahead despite."""
    plan = guards_plan()
    golden("plan/guards.allowed.txt", plan_text(plan, allowed=("removals",)))
    golden("plan/guards.allowed.md", plan_markdown(plan, allowed=("removals",)))


def test_an_add_whose_fields_were_all_dropped_names_no_fields():
    """Two audiences disagreeing on every field of an add leave its subscribe no fields: the
    line ends at its count, not with an empty "with fields "."""
    added = email(1)
    plan = dataclasses.replace(field_updates_plan())
    lp = dataclasses.replace(plan.destinations[0].lists[0], add_fields={added.key: {}})
    plan = Plan((dataclasses.replace(plan.destinations[0], lists=(lp,)),))
    lines = [line for line in plan_text(plan).splitlines() if "+ add" in line]
    assert [line.strip() for line in lines] == ["+ add 1 member"]


@pytest.mark.parametrize("render", [plan_text, plan_markdown])
def test_a_sample_names_members_by_what_apply_sends_for_them(render):
    """A userID-based project's subscribes and updates carry the userId alone: the email
    a source row also gave was shown beside it (`u-0001 <user01@example.org>`), read as
    sent. A hybrid project sends both, and shows both."""
    added = user(1)
    update = FieldUpdate(
        key="u-0002",
        key_kind="userId",
        email="user02@example.org",
        user_id="u-0002",
        changes={"plan_tier": ("silver", "gold")},
    )
    lp = list_plan(add=(added,), desired_count=101, field_update_keys=("u-0002",))
    for project_type, shown in (("userId", False), ("hybrid", True)):
        plan = Plan((destination(lp, project_type=project_type, field_updates=(update,)),))
        text = render(plan, show_members=True)
        assert "u-0001" in text and "u-0002" in text
        assert ("user01@example.org" in text, "user02@example.org" in text) == (shown, shown)


def test_masked_output_holds_no_identifier():
    """The default (masked) renderings name no member of the plans above in full."""
    identifiers = {
        "person01@example.com",
        "u-0003",
        "gone01@example.com",
        "user00@example.org",
        "forgotten@example.com",
        "not-an-email-0",
    }
    for make in PLANS.values():
        for text in (plan_text(make()), plan_markdown(make())):
            assert not [i for i in identifiers if i in text]


# -- an apply report -------------------------------------------------------------------------


def apply_report() -> ApplyReport:
    done = ListResult(
        "beta", "beta-testers", 31, planned_add=3, planned_remove=0, created=True, added=3
    )
    partial = ListResult(
        "churn-risk",
        "churn-risk",
        202,
        planned_add=13,
        planned_remove=3,
        added=11,
        removed=2,
        rejected={"u-0007": "invalid userId", "person04@example.com": "invalidEmails"},
        errors=["1 removal not confirmed by Iterable's answer"],
        already_gone=1,
        forgotten=1,
        channel_unsubscribe=True,
    )
    fields = FieldUpdateResult(
        planned=2, updated=1, rejected={"person02@example.com": "field type mismatch"}
    )
    return ApplyReport(
        destinations=[
            DestinationResult(
                "prod",
                [done, partial],
                [DeletionResult(7, "old-promo", deleted=True)],
                fields,
            ),
            DestinationResult(
                "eu",
                [ListResult("vip", "vip", 55, planned_add=0, planned_remove=0)],
                [DeletionResult(9, "retired", error="HTTP 409: list is used by a campaign")],
            ),
        ],
        requests=12,
        retries=2,
        rate_limited=1,
        rate_limit_wait_seconds=1.5,
        rejected_file=".reconciler/rejected/2026-01-01T00-00-00.csv",
        held_back=[
            HeldBack(
                "prod",
                "churn-risk",
                "churn-risk",
                202,
                ("left01@example.com", "left02@example.com"),
                (("EmailLink", 1), ("WebApp", 1)),
                ("chan01@example.com",),
                since_the_plan=("chan01@example.com",),
            )
        ],
    )


def run_record() -> RunRecord:
    """A run record (`apply --summary-json`) with every part: the report above, with a
    policy verdict overridden and user fields updated on a list."""
    report = apply_report()
    report.overridden = guards_plan().violations()[:1]
    report.destinations[0].lists[1].field_update_keys = ["person02@example.com"]
    record = RunRecord(report=report)
    record.finish("failed", "some changes failed or source data could not be used")
    return record


def test_report_text(golden):
    golden("report/apply.txt", report_text(apply_report()))


def test_report_markdown(golden):
    golden("report/apply.md", report_markdown(apply_report()))


def test_report_counts_one_request_and_one_retry_in_the_singular():
    done = ListResult("beta", "beta-testers", 31, planned_add=3, planned_remove=0, added=3)
    report = dataclasses.replace(
        apply_report(),
        destinations=[DestinationResult("prod", [done], [])],
        held_back=[],
        rejected_file=None,
        requests=1,
        retries=1,
    )
    for text in (report_text(report), report_markdown(report)):
        assert "1 request, 1 retry" in text
        assert "1 retries" not in text and "1 requests" not in text


def test_an_interrupted_report_says_so_and_how_to_finish():
    # Its text ended "Apply finished with failures ... Run plan again to see what is left"
    # and its markdown was headed "finished with failures", where stderr said to apply
    # again to finish; after a saved plan, the manifests (the plan is stale by then).
    cut = ListResult(
        "beta", "beta-testers", 31, planned_add=3, planned_remove=0, added=1,
        not_attempted_add=2, errors=["interrupted: 2 of 3 additions were not sent"],
    )  # fmt: skip
    report = dataclasses.replace(
        apply_report(),
        destinations=[DestinationResult("prod", [cut], [])],
        held_back=[],
        rejected_file=None,
        not_attempted=1,
    )
    again = "Run `reconciler apply` on the manifests again (not --plan)"
    finish = f"{again} to finish: it reads Iterable afresh and sends only what is left."
    text = report_text(report, again=again)
    assert text.endswith(
        f"Apply interrupted: 1 added, 0 removed, 0 updated, 0 rejected, 1 error. {finish}\n"
    ), text
    markdown = report_markdown(report, again=again)
    assert markdown.startswith("### reconciler apply: ⏹️ interrupted\n"), markdown
    assert f"\n{finish}\n" in markdown


def test_counts_of_members_not_sent_have_thousands_separators():
    lp = list_plan(
        audience="members",
        list_name="members",
        list_id=601,
        add=(email(1),),
        unchanged=95,
        desired_count=3000,
        forgotten=tuple(f"gone{n}@example.com" for n in range(1200)),
        not_created=tuple(f"u-{n}" for n in range(1500)),
    )
    plan = Plan((destination(lp),))
    text = plan_text(plan)
    assert "= 1,200 forgotten in Iterable, not sent" in text
    assert "= 1,500 not created (updateExistingUsersOnly" in text
    assert "... and 1,190 more" in text and "... and 1,490 more" in text
    markdown = plan_markdown(plan)
    assert "1,200 forgotten in Iterable, not sent, 1,500 not created" in markdown
    # And in the list of members not sent, below the table.
    assert "- members: 1,200 forgotten in Iterable, not sent: " in markdown
    assert "- members: 1,500 not created (updateExistingUsersOnly): " in markdown


def test_counts_of_users_whose_fields_were_read_have_thousands_separators():
    """`read with 1 user export for 23193 users` in a plan of tens of thousands of members."""
    for read, said in (
        (FieldRead("export", users=23_193, requests=1), "1 user export for 23,193 users"),
        (FieldRead("user_reads", users=1_250, requests=1_250), "1,250 per-user reads"),
    ):
        plan = Plan((destination(list_plan(), field_read=read),))
        assert said in plan_text(plan)
        assert "23193" not in plan_text(plan) and "1250" not in plan_text(plan)
        assert "1,250 users checked" in plan_text(
            Plan((destination(list_plan(), field_read=FieldRead("export", 1_250, 1)),))
        )
        updates = (FieldUpdate("a@example.com", "email", "a@example.com", None, {"x": (1, 2)}),)
        markdown = plan_markdown(
            Plan((destination(list_plan(), field_read=read, field_updates=updates),))
        )
        assert f"read with {said}" in markdown


def test_new_fields_keyed_by_members_are_masked_and_counted_not_listed():
    """An object column keyed per member (README: "an object keyed per member makes one
    per member") made a new field path of every member's email, listed in full in every
    format (the pull-request comment too), and 5,000 of them filled the comment."""
    keyed = tuple((f"refs.friend{n:04d}@example.org", "long") for n in range(5_000))
    fields = (("plan_tier", "string"), ("prefs.tier", "string"), *keyed)
    plan = Plan(
        (destination(list_plan(), new_fields=fields, notes=("the note after the fields",)),)
    )
    text, markdown = plan_text(plan), plan_markdown(plan)
    body = json.loads(plan_json(plan))["destinations"][0]["new_fields"]
    for output in (text, markdown, json.dumps(body)):
        assert "friend0000" not in output and "example.org" not in output
    # Each distinct path keeps its own masked name, so none is lost in the JSON.
    assert len(body) == 5_002
    assert body["plan_tier"] == "string" and body["prefs.tier"] == "string"
    assert "refs.f***@***#1" in body
    # People read the first few under each top-level field and how many more there are.
    assert "plan_tier (string), prefs.tier (string), refs.f***@***#1 (long)" in text
    assert "and 4,990 more under refs" in text
    assert "and 4,990 more under refs" in markdown
    assert len(markdown) < 5_000 and "the note after the fields" in markdown
    shown = plan_text(plan, show_members=True)
    assert "refs.friend0000@example.org (long)" in shown


def test_new_fields_keyed_by_member_user_ids_are_masked():
    """An object column keyed by userIds (`{"usr_00012391": {"since": ...}}`) made a new
    field path of each, and every format listed them in full: only keys with an `@` were
    masked. Keys that do not look like names are masked too; names below a field stay."""
    keyed = tuple((f"refs.usr_{n:08d}.since", "date") for n in range(3))
    fields = (("prefs.tier", "string"), ("prefs.home city", "string"), *keyed)
    plan = Plan((destination(list_plan(), new_fields=fields),))
    text, markdown = plan_text(plan), plan_markdown(plan)
    body = json.loads(plan_json(plan))["destinations"][0]["new_fields"]
    for output in (text, markdown, json.dumps(body)):
        assert "usr_0" not in output, output
    assert "refs.u***#1 (date), refs.u***#2 (date)" in text
    assert list(body) == [
        "prefs.tier",
        "prefs.home city",
        "refs.u***#1",
        "refs.u***#2",
        "refs.u***#3",
    ]
    assert "refs.usr_00000000.since (date)" in plan_text(plan, show_members=True)


# -- the JSON outputs, as the README documents them ------------------------------------------

# Objects keyed by data, not by the format: field names, field paths, unsubscribe sources.
_KEYED_BY_DATA = {"new_fields", "by_source", "changes"}


def _json_keys(value: Any, keys: set[str], texts: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            keys.add(key)
            if key in _KEYED_BY_DATA and isinstance(item, dict):
                for inner in item.values():  # a field's {"old", "new"}
                    _json_keys(inner, keys, texts)
            else:
                _json_keys(item, keys, texts)
    elif isinstance(value, list):
        for item in value:
            _json_keys(item, keys, texts)
    elif isinstance(value, str):
        texts.add(value)


def _readme_block(opening: str) -> str:
    readme = (GOLDEN.parents[1] / "README.md").read_text(encoding="utf-8")
    return readme[readme.index(opening) :].split("\n\n")[0]


@pytest.mark.parametrize(
    ("opening", "outputs"),
    [
        (
            "The plan's JSON has",
            lambda: (
                [plan_json(make()) for make in PLANS.values()]
                + [plan_json(guards_plan(), allowed=("removals",))]
                + [plan_json(Plan((destination(list_plan(resubscribe_allowed=True)),)))]
                + [plan_json(Plan(()), error=("1 member could not be used", 1))]
            ),
        ),
        (
            "The apply report's JSON",
            lambda: [
                report_json(apply_report()),
                report_json(apply_report(), error=("could not add to --summary-file", 1)),
            ],
        ),
        ("The run record's JSON", lambda: [json.dumps(run_record().to_dict())]),
        (
            "`status --format json` prints",
            lambda: (
                [status_json(status_rows(make())) for make in PLANS.values()]
                + [status_json([], error=("1 member could not be used", 1))]
            ),
        ),
    ],
    ids=["plan", "report", "run record", "status"],
)
def test_the_readme_names_every_key_of_each_json_output_and_no_other(opening, outputs):
    """Scripts read these objects by the README: a key it does not name is one nobody
    relies on knowingly, and a key it names that the output lacks breaks them."""
    keys: set[str] = set()
    texts: set[str] = set()
    for text in outputs():
        _json_keys(json.loads(text), keys, texts)
    block = _readme_block(opening)
    named = set(re.findall(r"`([a-z_]+)`", block))
    assert sorted(k for k in keys if k not in named) == []
    # What it names is a key or a value of the output (`create_list`, `never`), or a
    # manifest key or command it explains.
    words = {"description", "plan"}
    assert sorted(named - keys - texts - words) == []


def test_an_apply_whose_audience_was_left_out_says_where_to_find_it():
    # It said "`reconciler validate` lists them", but validate reads no Iterable: it
    # cannot tell of an audience whose list could not be read.
    report = ApplyReport(source_problems="1 audience was left out (list not read with confidence)")
    last = report_text(report).strip().splitlines()[-1]
    assert last.startswith("Applied everything planned")
    assert "validate" not in last
    assert last.endswith(
        "Not complete: 1 audience was left out (list not read with confidence) (see the plan "
        "above; `reconciler plan --format json` says which: skipped_members, field_issues, "
        "unread)."
    )
