"""Trait mappings end to end: manifests -> plan -> apply against the emulator over loopback
HTTP, through the real CLI, plus the bulkUpdate phase's pacing and splitting."""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from reconciler.apply.executor import apply_plan
from reconciler.emulator import Limits
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.iterable.batching import encode
from reconciler.plan import DestinationPlan, FieldUpdate, Plan
from reconciler.render.masking import Masker
from reconciler.render.plans import report_markdown, report_text
from reconciler.traits import template as template_module
from tests.conftest import EMULATOR_API_KEY
from tests.integration.conftest import yaml

HEADER = "email,user_id,plan,lifetime_value,renews_on,first_name"
ROWS = [
    "alice@example.com,u-1,pro,1250.50,2025-07-01,alice",
    "bob@example.com,u-2,free,0,,bob",
    "carol@example.com,,pro,980,2025-09-15,carol",
]
FIELDS = {
    "planTier": "plan",
    "lifetimeValue": {"from": "lifetime_value", "type": "number"},
    "renewsOn": {"from": "renews_on", "type": "date"},
    "greeting": {"template": "Hi {{ first_name | title }}"},
}


def mapping_doc(fields: dict, name: str = "crm", **spec) -> str:
    return json.dumps(
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": name},
            "spec": {"fields": fields, **spec},
        }
    )


def setup(workspace, rows=ROWS, fields=FIELDS) -> None:
    workspace.csv("data/churn.csv", HEADER, rows)
    workspace.write("traits.yaml", mapping_doc(fields))
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")


def project(server):
    return server.emulator.project("default")


def requests_to(server, path: str) -> list:
    """The requests to `path` Iterable took (under the field profile a new list first
    answers some with 400 invalidListId; those changed nothing)."""
    return [r for r in server.emulator.request_log if r.path == path and r.status < 400]


def fields_of(server, email: str) -> dict:
    return project(server).find_user(email=email).data_fields


def test_apply_sets_fields_on_new_members_with_the_subscribe(workspace, cli, emulator_server):
    setup(workspace)
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 0, plan.output
    assert "+ add 3 members with fields greeting, lifetimeValue, planTier, renewsOn" in plan.stdout
    # The reviewer sees the types Iterable will fix for good at the first value.
    assert (
        "+ new user fields, typed for good by the first value Iterable receives: greeting "
        "(string), lifetimeValue (double), planTier (string), renewsOn (date)"
    ) in plan.stdout

    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    (subscribe,) = requests_to(emulator_server, "/api/lists/subscribe")
    sent = {s["email"]: s["dataFields"] for s in subscribe.body["subscribers"]}
    assert sent["alice@example.com"] == {
        "planTier": "pro",
        "lifetimeValue": 1250.5,
        "renewsOn": "2025-07-01",
        "greeting": "Hi Alice",
    }
    # the new field mixes whole and fractional numbers: all go out as doubles; bob's
    # empty renewsOn is not sent: a subscribe sends no clear (the plan read his profile
    # for it instead, and found nothing to clear)
    assert sent["bob@example.com"] == {
        "planTier": "free",
        "lifetimeValue": 0.0,
        "greeting": "Hi Bob",
    }
    assert requests_to(emulator_server, "/api/users/bulkUpdate") == []
    assert project(emulator_server).field_types["lifetimeValue"] == "double"
    assert fields_of(emulator_server, "carol@example.com")["greeting"] == "Hi Carol"

    emulator_server.emulator.clear_log()
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (3 users checked, read with 3 per-user reads)" in (
        again.stdout
    )
    assert "new user field" not in again.stdout


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_a_whole_number_beyond_double_precision_converges_in_a_double_field(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    # A double field gets every number as a double, so 2**53 + 1 goes out (and comes back)
    # as 9007199254740992.0. Compared with the source's exact int, it planned the same
    # update on every run.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    rows = [
        "alice@example.com,u-1,pro,9007199254740993,2025-07-01,alice",
        "bob@example.com,u-2,free,0.5,,bob",
    ]
    setup(workspace, rows=rows)
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert project(emulator_server).field_types["lifetimeValue"] == "double"
    assert fields_of(emulator_server, "alice@example.com")["lifetimeValue"] == 2.0**53

    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (2 users checked" in again.stdout

    # A value the double does change is still an update.
    rows[0] = rows[0].replace("9007199254740993", "9007199254740996")
    setup(workspace, rows=rows)
    changed = cli("plan", workspace.manifests, "--format", "json")
    assert changed.exit_code == 0, changed.output
    (dest,) = changed.json()["destinations"]
    assert dest["field_updates"]["count"] == 1


def test_fields_a_project_drops_from_a_subscribe_fail_the_apply(workspace, cli, emulator_server):
    # A project set not to accept new fields adds the members and drops their mapped
    # fields, naming them in filteredOutFields: the apply says so and exits 1 instead of
    # reporting the adds done (the next plan would only show it as field updates).
    project(emulator_server).accepts_new_fields = False
    # Answers that name what they dropped (the field profile's counts-only answers cannot).
    emulator_server.emulator.faults.counts_only_answers = False
    setup(workspace)
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    (lst,) = result.json()["destinations"][0]["lists"]
    assert lst["added"] == 3
    assert lst["errors"] == [
        "Iterable dropped the fields greeting, lifetimeValue, planTier, renewsOn from the "
        "subscribes (the project does not accept new fields: create them in Iterable first); "
        "the members were added without them"
    ]
    assert fields_of(emulator_server, "alice@example.com") == {}
    # Once the fields exist, the next run writes them.
    project(emulator_server).accepts_new_fields = True
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert "user fields: updated 3/3 users" in again.stdout


def test_a_changed_value_is_one_bulk_update_for_exactly_the_changed_users(
    workspace, cli, emulator_server
):
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    changed = [ROWS[0], ROWS[1].replace(",free,0,,", ",pro,99.5,2025-08-01,"), ROWS[2]]
    workspace.csv("data/churn.csv", HEADER, changed)

    plan = cli("plan", workspace.manifests, "--show-members", "--format", "text")
    assert plan.exit_code == 0, plan.output
    assert "~ update fields of 1 user" in plan.stdout
    assert "~ u-2 <bob@example.com>: lifetimeValue 0.0 -> 99.5" in plan.stdout
    assert '~ u-2 <bob@example.com>: planTier "free" -> "pro"' in plan.stdout
    assert '~ u-2 <bob@example.com>: renewsOn null -> "2025-08-01"' in plan.stdout
    summary = cli("plan", workspace.manifests, "--format", "json").json()["summary"]
    assert summary["users_to_update"] == 1
    assert summary["members_to_add"] == summary["members_to_remove"] == 0

    emulator_server.emulator.clear_log()
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert "user fields: updated 1/1 users" in result.stdout
    (update,) = requests_to(emulator_server, "/api/users/bulkUpdate")
    assert update.body == {
        "users": [
            {
                "email": "bob@example.com",
                "userId": "u-2",
                "dataFields": {
                    "lifetimeValue": 99.5,
                    "planTier": "pro",
                    "renewsOn": "2025-08-01",
                },
            }
        ]
    }
    assert requests_to(emulator_server, "/api/lists/subscribe") == []
    assert fields_of(emulator_server, "bob@example.com")["greeting"] == "Hi Bob"

    emulator_server.emulator.clear_log()
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    writes = [r for r in emulator_server.emulator.request_log if r.method != "GET"]
    assert writes == []


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_members_added_to_a_new_list_are_counted_once_and_sent_each_field_once(
    workspace, cli, emulator_server, monkeypatch, tmp_path, engine
):
    # alice and bob are on churn, whose values for them change; a new list, billing, adds
    # them and dave. billing is +3 / ~0 / 0 unchanged (it said ~2 and -2 unchanged: its
    # adds were counted as its updates too). The subscribe to billing carries billing's
    # fields (planTier among them, churn's new value too); the bulkUpdate carries only
    # churn's other fields, so no field goes to a user twice.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    changed = [
        ROWS[0].replace(",pro,1250.50,", ",gold,99,"),
        ROWS[1].replace(",0,", ",5,"),
        ROWS[2],
    ]
    workspace.csv("data/churn.csv", HEADER, changed)
    billing = [
        "alice@example.com,u-1,gold,7",
        "bob@example.com,u-2,free,1",
        "dave@example.com,,pro,2",
    ]
    workspace.csv("data/billing.csv", "email,user_id,plan,credits", billing)
    fields = {"planTier": "plan", "credits": {"from": "credits", "type": "number"}}
    workspace.write("traits-billing.yaml", mapping_doc(fields, name="billing"))
    workspace.audience(
        "billing", {"csv": "data/billing.csv", "userId": "user_id"}, traits="billing"
    )

    text = cli("plan", workspace.manifests)
    assert text.exit_code == 0, text.output
    assert "billing (new list): +3 / -0 / ~0 / 0 unchanged" in text.stdout
    assert ": +0 / -0 / ~2 / 1 unchanged" in text.stdout  # churn
    body = cli("plan", workspace.manifests, "--format", "json").json()
    counts = {
        lp["audience"]: (lp["users_to_update"], lp["unchanged_members"])
        for lp in body["destinations"][0]["lists"]
    }
    assert counts == {"billing": (0, 0), "churn": (2, 1)}
    assert body["summary"]["users_to_update"] == 2

    emulator_server.emulator.clear_log()
    record_file = tmp_path / "run.json"
    result = cli("apply", workspace.manifests, "--yes", "--summary-json", record_file)
    assert result.exit_code == 0, result.output
    sent: dict[str, list[str]] = {}
    for path, key in (("/api/lists/subscribe", "subscribers"), ("/api/users/bulkUpdate", "users")):
        for request in requests_to(emulator_server, path):
            for user in request.body[key]:
                sent.setdefault(user["email"], []).extend(user.get("dataFields", {}))
    assert sorted(sent["alice@example.com"]) == ["credits", "lifetimeValue", "planTier"]
    assert sorted(sent["bob@example.com"]) == ["credits", "lifetimeValue", "planTier"]
    assert sorted(sent["dave@example.com"]) == ["credits", "planTier"]
    alice = fields_of(emulator_server, "alice@example.com")
    assert (alice["planTier"], alice["lifetimeValue"], alice["credits"]) == ("gold", 99.0, 7)
    record = json.loads(record_file.read_text())
    # (churn has no membership change, so the record has no row for it)
    assert [(r["list_name"], r["added"], r["updated"]) for r in record["lists"]] == [
        ("billing", 3, 0)
    ]
    assert [(f["planned"], f["updated"]) for f in record["user_fields"]] == [(2, 2)]
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_many_members_are_read_with_one_export(workspace, cli, emulator_server, monkeypatch):
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    # With reads this slow, 3 per-user reads cost more than one export.
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "0.1")
    emulator_server.emulator.clear_log()
    workspace.csv("data/churn.csv", HEADER, [ROWS[0].replace(",pro,", ",team,"), *ROWS[1:]])
    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    fields = result.json()["destinations"][0]["field_updates"]
    assert fields["read"] == {
        "method": "export",
        "users": 3,
        "requests": 1,
        "fields": ["greeting", "lifetimeValue", "planTier", "renewsOn"],
    }
    assert fields["count"] == 1
    (export,) = requests_to(emulator_server, "/api/export/data.json")
    assert "onlyFields=planTier" in export.query
    assert not [
        r
        for r in emulator_server.emulator.request_log
        if r.path.startswith("/api/users/") and r.path != "/api/users/getFields"
    ]


def test_a_value_holding_a_unicode_line_separator_is_read_by_one_export(
    workspace, cli, emulator_server, monkeypatch
):
    """JSON lets a string hold U+2028, U+2029 and NEL unescaped (only characters below
    U+0020 must be escaped), as text pasted into a profile by another tool does. The
    export's lines were split as Python's splitlines splits text, at those too: every
    export of such a project failed as "not JSON", was retried three times (a minute of
    the export budget) and read again in date windows."""
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "0.1")  # one export is cheaper
    for email, text in (
        ("alice@example.com", "pro\u2028second line"),
        ("bob@example.com", "free\u2029\x85"),
    ):
        fields_of(emulator_server, email)["planTier"] = text
    emulator_server.emulator.clear_log()

    result = cli("plan", workspace.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert "not JSON" not in result.stderr
    fields = result.json()["destinations"][0]["field_updates"]
    assert fields["read"]["method"] == "export" and fields["read"]["requests"] == 1
    changes = {u["member"]: u["changes"] for u in fields["sample"]}
    assert changes == {
        "u-1": {"planTier": {"old": "pro\u2028second line", "new": "pro"}},
        "u-2": {"planTier": {"old": "free\u2029\x85", "new": "free"}},
    }
    assert len(requests_to(emulator_server, "/api/export/data.json")) == 1


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_date_shaped_text_in_a_string_field_is_compared_as_text(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    """A field whose first value was text is a string field for good, and keeps the text
    it is given, date-shaped or not. Values were compared as instants whenever both
    looked like dates, so `2024-05-01T00:00:00Z` there passed for the source's
    `2024-05-01`, and the field kept the other text on every run while the plan said
    Iterable matched the manifests. In a date field the two are one value."""
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    proj = project(emulator_server)
    list_id = proj.add_list("vips")
    for email, note, due in (
        ("first@example.com", "n/a", "2024-05-01"),  # types `note` string, `due` date
        ("a@example.com", "2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z"),
        ("b@example.com", "2024-05-01 09:00:00 +02:00", "2024-05-01 09:00:00 +02:00"),
    ):
        proj.subscribe_direct(list_id, email=email, data_fields={"note": note, "due": due})
    workspace.csv(
        "vips.csv",
        "email,note,due",
        [
            "first@example.com,n/a,2024-05-01",
            "a@example.com,2024-05-01,2024-05-01",
            "b@example.com,2024-05-01 07:00:00 +00:00,2024-05-01 07:00:00 +00:00",
        ],
    )
    workspace.write(
        "traits.yaml", mapping_doc({"note": {"from": "note", "type": "string"}, "due": "due"})
    )
    workspace.audience("vips", {"csv": "vips.csv"}, traits="crm")

    plan = cli("plan", workspace.manifests, "--format", "json", "--show-members")

    assert plan.exit_code == 0, plan.output
    updates = plan.json()["destinations"][0]["field_updates"]
    assert {u["member"]: u["changes"] for u in updates["sample"]} == {
        "a@example.com": {"note": {"old": "2024-05-01T00:00:00Z", "new": "2024-05-01"}},
        "b@example.com": {
            "note": {"old": "2024-05-01 09:00:00 +02:00", "new": "2024-05-01 07:00:00 +00:00"}
        },
    }
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert fields_of(emulator_server, "a@example.com")["note"] == "2024-05-01"
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_a_timestamp_iterable_hands_back_with_a_second_fraction_converges(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    """A query's TIMESTAMP goes out without a type as its ISO text, to the microsecond;
    Iterable hands such a date back with `.000Z` after the fraction (Estuary's
    source-iterable-native meets `2025-12-19T22:43:34.134105.000Z`). Read as plain text,
    it was updated on every run."""
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    query = "SELECT 'a@example.com' AS email, TIMESTAMP '2025-12-19 22:43:34.134105' AS seen"
    workspace.write("traits.yaml", mapping_doc({"seenAt": "seen"}))
    workspace.audience("vips", {"sql": query, "database": ":memory:"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    profile = fields_of(emulator_server, "a@example.com")
    assert profile == {"seenAt": "2025-12-19T22:43:34.134105"}
    assert project(emulator_server).field_types["seenAt"] == "date"
    profile["seenAt"] = "2025-12-19T22:43:34.134105.000Z"  # as Iterable shows it

    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (1 user checked" in again.stdout
    # A different moment is still an update.
    profile["seenAt"] = "2025-12-19T22:43:35.134105.000Z"
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 2


def test_a_value_from_iterable_prints_on_one_line_and_visibly(workspace, cli, emulator_server):
    """A profile's current value is whatever another tool wrote. Shown as JSON, its
    control characters below U+0020 were escaped, but not a right-to-left override (which
    turned the rest of the line around, even masked: it is the one character a mask
    keeps), the C1 escape U+009B that terminals take for ESC [, nor a line separator."""
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    fields_of(emulator_server, "alice@example.com")["planTier"] = "\u202epro\x9b2J\u2028x"

    for args in ((), ("--show-members",)):
        for output in ("text", "markdown"):
            result = cli("plan", workspace.manifests, "--format", output, *args)
            assert result.exit_code == 0, result.output
            (line,) = [x for x in result.stdout.splitlines() if "planTier" in x and "->" in x]
            assert not {"\u202e", "\x9b", "\u2028"} & set(result.stdout), (output, args)
            if args:
                assert '"\\u202epro\\x9b2J\\u2028x" -> "pro"' in line
            else:
                assert '"\\u202e***" -> "p***"' in line


def test_a_field_the_mapping_no_longer_lists_is_left_alone(workspace, cli, emulator_server):
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    fewer = {k: v for k, v in FIELDS.items() if k != "planTier"}
    workspace.write("traits.yaml", mapping_doc(fewer))
    workspace.csv("data/churn.csv", HEADER, [r.replace(",pro,", ",gone,") for r in ROWS])
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert requests_to(emulator_server, "/api/users/bulkUpdate") == []
    assert fields_of(emulator_server, "alice@example.com")["planTier"] == "pro"


def test_a_key_an_inline_member_leaves_out_keeps_what_iterable_has(workspace, cli, emulator_server):
    # An inline member without a mapped key says nothing about that field: neither a
    # subscribe nor a bulkUpdate clears it, and it does not clash with another audience.
    proj = project(emulator_server)
    proj.add_user(email="kept@example.com", data_fields={"planTier": "gold"})
    proj.add_user(email="both@example.com", data_fields={"planTier": "gold"})
    workspace.write("traits.yaml", mapping_doc({"planTier": "plan"}))
    workspace.audience(
        "vip",
        {
            "inline": [
                "kept@example.com",
                {"email": "both@example.com"},
                {"email": "new@example.com", "plan": "basic"},
            ]
        },
        traits="crm",
    )
    workspace.audience(
        "paying", {"inline": [{"email": "both@example.com", "plan": "pro"}]}, traits="crm"
    )
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert "not written for this member" not in result.stdout
    assert fields_of(emulator_server, "kept@example.com")["planTier"] == "gold"
    assert fields_of(emulator_server, "both@example.com")["planTier"] == "pro"
    assert fields_of(emulator_server, "new@example.com")["planTier"] == "basic"
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_an_inline_number_mapped_as_text_is_sent_as_written(workspace, cli, emulator_server):
    # YAML reads `zip: 01234` as the number 1234: `type: string` sent "1234", a phone
    # number `+4912345` lost its plus and `1.10` became "1.1". The text as written is what
    # a mapping that asks for text wants; without a type the value stays the number.
    fields = {n: {"from": n, "type": "string"} for n in ("zip", "phone", "version", "big")}
    workspace.write("traits.yaml", mapping_doc({**fields, "count": "zip"}))
    workspace.write(
        "aud-vip.yaml",
        yaml(
            """
            apiVersion: reconciler/v1
            kind: Audience
            metadata: {name: vip}
            spec:
              destination: prod
              traits: crm
              members:
                inline:
                  - {email: a@example.com, zip: 01234, phone: +4912345, version: 1.10, big: 1e3}
                  - email: b@example.com
                    zip: 0x1F
                    phone: 4_912_345
                    version: -0.0
                    big: 12345678901234567890
            """
        ),
    )
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert fields_of(emulator_server, "a@example.com") == {
        "zip": "01234",
        "phone": "+4912345",
        "version": "1.10",
        "big": "1e3",
        "count": 1234,
    }
    assert fields_of(emulator_server, "b@example.com") == {
        "zip": "0x1F",
        "phone": "4_912_345",
        "version": "-0.0",
        "big": "12345678901234567890",
        "count": 31,
    }
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(("engine", "opt_out"), [("python", "list"), ("duckdb", "channel")])
def test_a_member_held_back_by_consent_still_gets_the_fields_of_a_list_it_is_on(
    workspace, cli, emulator_server, monkeypatch, engine, opt_out
):
    # x is on `customers` and opted out of `newsletter` (left it, or the channel): the
    # subscribe to `newsletter` that would have carried x's fields is held back, so the
    # fields `customers` maps are read and updated like any other member's.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    header = "email,user_id,plan"
    x, y = "x@example.com,u-x,pro", "y@example.com,u-y,free"
    workspace.write("traits.yaml", mapping_doc({"planTier": "plan"}))
    workspace.csv("data/customers.csv", header, [x, y])
    workspace.csv("data/newsletter.csv", header, [x, y] if opt_out == "list" else [y])
    for name in ("customers", "newsletter"):
        source = {"csv": f"data/{name}.csv", "userId": "user_id"}
        workspace.audience(name, source, traits="crm")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = project(emulator_server)
    user = proj.find_user(user_id="u-x")
    if opt_out == "list":
        (newsletter,) = [i for i, r in proj.lists.items() if r.name == "newsletter"]
        proj.self_unsubscribe(user, list_id=newsletter)
    else:
        proj.self_unsubscribe(user, channel=True)
    changed = x.replace(",pro", ",gold")
    workspace.csv("data/customers.csv", header, [changed, y])
    workspace.csv("data/newsletter.csv", header, [changed, y])

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 0
    assert body["summary"]["users_to_update"] == 1
    updates = {lp["audience"]: lp["users_to_update"] for lp in body["destinations"][0]["lists"]}
    assert updates == {"customers": 1, "newsletter": 0}  # x is not on `newsletter`
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert fields_of(emulator_server, "x@example.com")["planTier"] == "gold"
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_new_nested_number_of_whole_and_fractional_values_is_double_for_everyone(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # prefs.n is 1 for one member and 1.5 for the other: sent as 1 first, it would type
    # the nested field long and the second member would be refused.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    workspace.write("traits.yaml", mapping_doc({"prefs": {"from": "prefs", "type": "object"}}))
    rows = ['a@example.com,u-a,"{""n"": 1}"', 'b@example.com,u-b,"{""n"": 1.5}"']
    workspace.csv("data/churn.csv", "email,user_id,prefs", rows)
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert project(emulator_server).field_types["prefs.n"] == "double"
    assert fields_of(emulator_server, "a@example.com")["prefs"] == {"n": 1.0}
    assert fields_of(emulator_server, "b@example.com")["prefs"] == {"n": 1.5}
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_nested_whole_number_beyond_double_precision_converges_in_a_double_path(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # prefs.n is double (a member has 1.5), so 2**53 + 1 goes out, and comes back, as
    # 2.0**53: compared with the source's exact int inside the object, the plan updated
    # it on every run, showing the same value on both sides of the arrow.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    fields = {"prefs": {"from": "prefs", "type": "object"}, "tags": {"from": "t", "type": "list"}}
    workspace.write("traits.yaml", mapping_doc(fields))
    rows = [
        'a@example.com,u-a,"{""n"": 9007199254740993}","[9007199254740993, 1]"',
        'b@example.com,u-b,"{""n"": 1.5}","[0.5]"',
    ]
    workspace.csv("data/churn.csv", "email,user_id,prefs,t", rows)
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert project(emulator_server).field_types["prefs.n"] == "double"
    assert fields_of(emulator_server, "a@example.com") == {
        "prefs": {"n": 2.0**53},
        "tags": [2.0**53, 1.0],
    }
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (2 users checked" in again.stdout


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_json_text_with_a_number_beyond_any_double_is_reported_not_sent(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # json.loads reads 1e400 as infinity: the plan showed it as Infinity and apply ended
    # in a traceback (no JSON body carries it) after subscribing the members.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    workspace.write("traits.yaml", mapping_doc({"prefs": {"from": "prefs", "type": "object"}}))
    rows = ['a@example.com,u-a,"{""n"": 1e400}"', 'b@example.com,u-b,"{""n"": 2.5}"']
    workspace.csv("data/churn.csv", "email,user_id,prefs", rows)
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output  # a value not sent, like a bad number
    assert (
        "churn.csv:2: field 'prefs' (column 'prefs'): '{***' holds a number beyond what "
        "Iterable can store"
    ) in result.stdout
    assert "Infinity" not in result.output
    assert fields_of(emulator_server, "a@example.com") == {}
    assert fields_of(emulator_server, "b@example.com") == {"prefs": {"n": 2.5}}


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_list_mixing_types_is_left_out_and_its_member_still_subscribed(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # Iterable refuses a user whose array mixes numbers and text: sent, it would have cost
    # the member its subscribe and its other fields.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    fields = {"planTier": "plan", "tags": {"from": "tags", "type": "list"}}
    workspace.write("traits.yaml", mapping_doc(fields))
    rows = ['a@example.com,u-a,pro,"[1, ""x""]"', 'b@example.com,u-b,free,"[2]"']
    workspace.csv("data/churn.csv", "email,user_id,plan,tags", rows)
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output  # a value not sent, like a bad number
    assert "has items of two types (number and text)" in result.stdout
    assert "rejected" not in result.stdout
    assert fields_of(emulator_server, "a@example.com") == {"planTier": "pro"}
    assert fields_of(emulator_server, "b@example.com") == {"planTier": "free", "tags": [2]}
    (churn,) = project(emulator_server).lists.values()
    assert len(churn.members) == 2  # both subscribed


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_text_over_iterables_field_value_limit_is_reported_not_sent(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # "The character limit for field values is approximately 32k characters, regardless
    # of data type" (Iterable's Field Data Types article, 208183076). A 100,000-character
    # cell went out on the subscribe as it was, with no word before any write.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    fields = {"planTier": "plan", "bio": "bio", "tags": {"from": "tags", "type": "list"}}
    workspace.write("traits.yaml", mapping_doc(fields))
    long_tag = "t" * 32_001
    rows = [
        f"a@example.com,u-a,pro,{'x' * 100_000},[]",
        f'b@example.com,u-b,free,{"y" * 32_000},"[""{long_tag}"", ""ok""]"',
    ]
    workspace.csv("data/churn.csv", "email,user_id,plan,bio,tags", rows)
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 1, plan.output
    assert (
        "churn.csv:2: field 'bio' (column 'bio'): 'x***' holds text of 100,000 characters, "
        "over the about 32,000 Iterable keeps in a field value; the field is not written "
        "for this member"
    ) in plan.stdout
    assert (
        "churn.csv:3: field 'tags' (column 'tags'): '[***' holds text of 32,001 characters"
    ) in plan.stdout

    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output  # values not sent, like a bad number
    assert "rejected" not in result.stdout
    assert fields_of(emulator_server, "a@example.com") == {"planTier": "pro", "tags": []}
    assert fields_of(emulator_server, "b@example.com") == {"planTier": "free", "bio": "y" * 32_000}
    (churn,) = project(emulator_server).lists.values()
    assert len(churn.members) == 2  # both subscribed


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_plan_taking_the_project_past_iterables_field_limit_says_so(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # "each project has a soft limit of 1,000 unique user profile fields ... with a field's
    # uniqueness determined by its name and position on the user profile" (bulkUpdate in
    # Iterable's OpenAPI): an object column keyed per member makes a field of each key, and
    # the plan listed them among the new fields with no word about the limit.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    # 990 fields of another tool's, and the 6 of Iterable's own getFields lists in a
    # hybrid project: 996.
    project(emulator_server).field_types.update({f"legacy{i}": "string" for i in range(990)})
    workspace.write("traits.yaml", mapping_doc({"orders": {"from": "o", "type": "object"}}))
    rows = [f'u{i}@example.com,u-{i},"{{""order{i}"": {i}}}"' for i in range(4)]
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")

    workspace.csv("data/churn.csv", "email,user_id,o", rows[:3])
    at_limit = cli("plan", workspace.manifests)
    assert at_limit.exit_code == 0, at_limit.output
    assert "soft limit" not in at_limit.output  # 996 + 4 is 1,000: at the limit, not past it

    workspace.csv("data/churn.csv", "email,user_id,o", rows)
    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    (note,) = [n for n in result.json()["destinations"][0]["notes"] if "soft limit" in n]
    assert note == (
        "this plan creates 5 user fields in a project that has 996: 1,001 in all, past "
        "Iterable's soft limit of 1,000 per project (nested fields count: orders makes 5); "
        "what Iterable does past it is not published, so ask Iterable about the project's "
        "limit before applying"
    )
    text = cli("plan", workspace.manifests)
    assert f"note: {note}" in text.stdout


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_new_field_differing_from_a_project_field_only_in_case_is_noted(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # "All field names are case-sensitive and space-sensitive" (Iterable's Field Data Types
    # article): a mapping's FirstName beside the project's firstName makes a second field for
    # good, which campaigns reading firstName never see; the plan listed it among the new
    # fields like any other.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    project(emulator_server).field_types.update({"firstName": "string", "plan": "string"})
    fields = {"FirstName": "first_name", "planTier": "plan", "Tier": "plan", "tier": "plan"}
    setup(workspace, fields=fields)
    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    notes = [n for n in result.json()["destinations"][0]["notes"] if "letter case" in n]
    assert notes == [
        "user field 'FirstName', which this plan creates, differs only in letter case from "
        "the project's field 'firstName': Iterable's field names are case-sensitive, so it "
        "would be a field of its own, which what reads 'firstName' does not see; if "
        "'firstName' is meant, write that name in the trait mapping",
        "user fields 'Tier' and 'tier', which this plan creates, differ only in letter case: "
        "Iterable's field names are case-sensitive, so they would be fields of their own; "
        "if one field is meant, write one name in the trait mappings",
    ]
    text = cli("plan", workspace.manifests)
    assert f"note: {notes[0]}" in text.stdout


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_member_whose_values_fit_no_request_is_still_subscribed(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # 129 fields of 31,000 characters: each within Iterable's limits, together over the
    # 4 MB a request may carry. The plan said nothing and apply refused the member,
    # subscribe and all, after writing the other lists.
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    workspace.write("traits.yaml", mapping_doc({f"f{i:03}": "bio" for i in range(129)}))
    rows = [f"a@example.com,u-a,{'x' * 31_000}", "b@example.com,u-b,short"]
    workspace.csv("data/churn.csv", "email,user_id,bio", rows)
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 1, plan.output
    assert (
        "churn.csv:2: field 'f000' (column 'bio'): its value (31,002 bytes of JSON) "
        "and the member's other fields would be over the 4,000,000 bytes an Iterable "
        "request may carry"
    ) in plan.stdout
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output  # a value not sent
    assert "rejected" not in result.stdout
    (churn,) = project(emulator_server).lists.values()
    assert len(churn.members) == 2  # both subscribed
    assert len(fields_of(emulator_server, "a@example.com")) == 128
    assert len(fields_of(emulator_server, "b@example.com")) == 129


def test_a_bad_value_skips_that_field_only_and_exits_non_zero(workspace, cli, emulator_server):
    setup(workspace, rows=[ROWS[0], ROWS[1].replace(",0,", ",zero,")])
    result = cli("apply", workspace.manifests, "--yes", "--show-members")
    assert result.exit_code == 1, result.output
    assert (
        "churn.csv:3: field 'lifetimeValue' (column 'lifetime_value'): 'zero' is not a number; "
        "the field is not written for this member"
    ) in result.stdout
    # Reported as a value not sent, not as a member skipped: bob is still on the list.
    assert "1 field value not sent (the members are still sent" in result.stdout
    assert "skipped (not sent to Iterable)" not in result.stdout
    bob = fields_of(emulator_server, "bob@example.com")
    assert bob["planTier"] == "free" and "lifetimeValue" not in bob
    assert len(project(emulator_server).users) == 2  # both members were subscribed


def test_a_type_conflict_stops_the_plan_before_anything_is_written(workspace, cli, emulator_server):
    project(emulator_server).add_user(email="seed@example.com", data_fields={"planTier": 3})
    setup(workspace)
    for command in (("plan",), ("apply", "--yes")):
        emulator_server.emulator.clear_log()
        result = cli(*command, workspace.manifests)
        assert result.exit_code == 1, result.output
        assert (
            "field 'planTier' is long in Iterable, but trait mapping 'crm' (field at "
            "manifests/traits.yaml:1:"
        ) in result.stderr
        assert "would send a string; Iterable never changes a field's type" in result.stderr
        assert [r for r in emulator_server.emulator.request_log if r.method != "GET"] == []


def test_a_field_of_a_type_no_mapping_writes_is_refused_as_such(workspace, cli, emulator_server):
    # A geo_location field (a latitude/longitude pair in Iterable) takes none of a
    # mapping's types: the refusal said "change the mapping's type", which none would fix.
    project(emulator_server).field_types["home"] = "geo_location"
    workspace.csv(
        "data/churn.csv",
        "email,home",
        ['alice@example.com,"{""lat"": 37.77, ""lon"": -122.42}"'],
    )
    workspace.write("traits.yaml", mapping_doc({"home": {"from": "home", "type": "object"}}))
    workspace.audience("churn", {"csv": "data/churn.csv"}, traits="crm")
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert (
        "field 'home' is geo_location in Iterable, a type no trait mapping writes: trait "
        "mapping 'crm' (field at manifests/traits.yaml:1:"
    ) in result.stderr
    assert (
        "would send an object, and Iterable never changes a field's type; take the field "
        "out of the mapping, or map these values to a field of another name"
    ) in result.stderr
    assert "change the mapping's type" not in result.stderr
    assert [r for r in emulator_server.emulator.request_log if r.method != "GET"] == []


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_a_type_conflict_in_an_update_names_the_audience_that_sent_it(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    # The update's origin is looked up only when its conflict is named (bench/field_updates.py).
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    proj = project(emulator_server)
    churn = proj.add_list("churn")
    proj.subscribe_direct(churn, email="alice@example.com", data_fields={"planTier": 3})
    setup(workspace, rows=[ROWS[0]])
    workspace.write("traits2.yaml", mapping_doc({"ltv": "n"}, name="other"))
    workspace.write(
        "aud-other.yaml",
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: other}\nspec:\n"
        "  destination: prod\n  traits: other\n  members:\n    inline:\n"
        "      - {email: alice@example.com, n: 5}\n",
    )
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert (
        "field 'planTier' is long in Iterable, but trait mapping 'crm' (field at "
        "manifests/traits.yaml:1:"
    ) in result.stderr
    assert "for audience 'churn'" in result.stderr


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_a_list_of_objects_for_a_nested_field_is_no_type_conflict(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    # Iterable's `nested` type (Field Data Types: "an indexed array of objects", made for
    # a project by its customer success manager) holds lists of objects, but getFields'
    # `nested` matched no type a value has, and the plan stopped every list of the
    # destination: "field 'orders' is nested in Iterable, but ... would send an object".
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    proj = project(emulator_server)
    proj.add_user(email="a@example.com", data_fields={"orders": [{"sku": "a1"}]})
    proj.field_types["orders"] = "nested"
    workspace.csv("data/o.csv", "email,orders", ['a@example.com,"[{""sku"": ""b2""}]"'])
    workspace.write("traits.yaml", mapping_doc({"orders": {"from": "orders", "type": "list"}}))
    workspace.audience("o", {"csv": "data/o.csv"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert proj.find_user(email="a@example.com").data_fields["orders"] == [{"sku": "b2"}]
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
    # A value of another type is still stopped before anything is written.
    workspace.csv("data/o.csv", "email,orders", ["a@example.com,b3"])
    workspace.write("traits.yaml", mapping_doc({"orders": "orders"}))
    stopped = cli("plan", workspace.manifests)
    assert stopped.exit_code == 1, stopped.output
    assert "field 'orders' is nested in Iterable, but" in stopped.stderr
    assert "would send a string" in stopped.stderr


@pytest.mark.parametrize("when", ["2025-07-01 09:30", "2025-07-01 09:30:00.000"])
def test_a_time_iterable_takes_for_text_in_a_date_field_stops_the_plan(
    workspace, cli, emulator_server, when
):
    # "2025-07-01 09:30" is text to Iterable, which the date field refuses (and with it the
    # member's subscribe): caught before anything is written, not one member at a time. So
    # is a fraction of a second after a space, which Iterable answered as a string in a
    # recorded RequestFieldsTypesMismatched (block/iterable-go); it was written unchecked.
    project(emulator_server).add_user(
        email="seed@example.com", data_fields={"renewsOn": "2025-01-01"}
    )
    setup(workspace, rows=[ROWS[0], ROWS[1]], fields={"renewsOn": "renews_on"})
    workspace.csv("data/churn.csv", HEADER, [ROWS[0].replace("2025-07-01", when)])
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output
    assert "field 'renewsOn' is date in Iterable" in result.stderr
    assert "would send a string" in result.stderr
    assert [r for r in emulator_server.emulator.request_log if r.method != "GET"] == []


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_a_day_without_a_time_is_sent_as_that_day_not_as_midnight_utc(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    # A birthday typed `date` (and a YAML date, typed or not) went out as midnight UTC,
    # `1990-05-01 00:00:00 +00:00`: a moment that is 30 April in any time zone west of
    # UTC, a US project's. It now goes out as the day the source names. A profile an
    # older version wrote in the midnight form names the same instant: not rewritten.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    proj = project(emulator_server)
    list_id = proj.add_list("churn")
    proj.subscribe_direct(
        list_id, email="old@example.com", data_fields={"birthday": "1985-12-31 00:00:00 +00:00"}
    )
    workspace.csv(
        "data/people.csv",
        "email,born,seen",
        [
            "new@example.com,1990-05-01,2024-03-10T00:00:00Z",
            "old@example.com,1985-12-31,2024-03-10T00:00:00Z",
        ],
    )
    fields = {
        "birthday": {"from": "born", "type": "date"},
        "seenAt": {"from": "seen", "type": "date"},
    }
    workspace.write("traits.yaml", mapping_doc(fields))
    workspace.audience("churn", {"csv": "data/people.csv"}, traits="crm")
    workspace.write("traits2.yaml", mapping_doc({"anniversary": "day"}, name="inline"))
    workspace.write(
        "aud-inline.yaml",
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: inline}\nspec:\n"
        "  destination: prod\n  traits: inline\n  members:\n    inline:\n"
        "      - {email: new@example.com, day: 2001-09-09}\n",
    )

    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 0, result.output
    assert fields_of(emulator_server, "new@example.com") == {
        "birthday": "1990-05-01",
        "seenAt": "2024-03-10 00:00:00 +00:00",  # a moment at midnight stays a moment
        "anniversary": "2001-09-09",
    }
    assert fields_of(emulator_server, "old@example.com")["birthday"] == (
        "1985-12-31 00:00:00 +00:00"
    )
    assert proj.field_types["birthday"] == proj.field_types["anniversary"] == "date"
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (2 users checked" in again.stdout


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_dates_at_the_ends_of_the_calendar_are_sent_as_dates_or_named_with_their_row(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    # 0001-01-01 (a database's "no date") went out as `1-01-01 00:00:00 +00:00`, which
    # Iterable takes for text: the new field was typed string for good. 9999-12-31 at
    # -05:00 (year 10000 in UTC) stopped the command with an OverflowError traceback, and
    # the same text, unmapped and already in Iterable, stopped every plan after.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    rows = [
        "alice@example.com,u-1,0001-01-01,9999-12-31T23:00:00-05:00",
        "bob@example.com,u-2,2025-07-01,9999-12-31T23:00:00-05:00",
    ]
    workspace.csv("data/ends.csv", "email,user_id,since,until", rows)
    fields = {"since": {"from": "since", "type": "date"}, "until": "until"}
    workspace.write("traits.yaml", mapping_doc(fields))
    workspace.audience("churn", {"csv": "data/ends.csv", "userId": "user_id"}, traits="crm")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert project(emulator_server).field_types["since"] == "date"
    assert fields_of(emulator_server, "alice@example.com")["since"] == "0001-01-01"
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (2 users checked" in again.stdout

    # `until` kept: an empty cell would clear it for 1 of the 2 members (field_clears).
    rows[1] = "bob@example.com,u-2,9999-12-31T23:00:00-05:00,9999-12-31T23:00:00-05:00"
    workspace.csv("data/ends.csv", "email,user_id,since,until", rows)
    bad = cli("plan", workspace.manifests, "--show-members")
    assert bad.exit_code == 1, bad.output
    assert (
        "ends.csv:3: field 'since' (column 'since'): '9999-12-31T23:00:00-05:00' is not a "
        "date between the years 1 and 9999 in UTC; the field is not written for this member"
    ) in bad.stdout


@pytest.fixture
def machine_zone(monkeypatch) -> Iterator[Callable[[str], None]]:
    """Sets the process's local time zone (TZ), as a laptop or CI runner has it."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_a_duckdb_query_gives_the_same_dates_whatever_the_machines_time_zone(
    workspace, cli, emulator_server, monkeypatch, machine_zone, threshold
):
    # DuckDB's session time zone was the machine's: `renews_at::DATE` of 20:00 UTC was the
    # next day on a laptop in Asia/Kolkata, and a TIMESTAMPTZ went out at +05:30. Applied
    # there and planned on a CI runner in UTC, every run rewrote the other's dates.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    workspace.csv(
        "data/renewals.csv",
        "email,user_id,renews_at",
        ["alice@example.com,u-1,2024-04-30 20:00:00+00"],
    )
    query = (
        "SELECT email, user_id, renews_at::DATE AS renews_on, renews_at AS renewed, "
        "strftime(renews_at, '%Y-%m-%d %H:%M') AS shown FROM read_csv('data/renewals.csv')"
    )
    fields = {
        "renewsOn": {"from": "renews_on", "type": "date"},
        "renewedAt": "renewed",
        "renewedShown": "shown",
    }
    workspace.write("traits.yaml", mapping_doc(fields))
    members = {"sql": query, "database": ":memory:", "userId": "user_id"}
    workspace.audience("churn", members, traits="crm")

    machine_zone("Asia/Kolkata")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert fields_of(emulator_server, "alice@example.com") == {
        "renewsOn": "2024-04-30",
        "renewedAt": "2024-04-30T20:00:00+00:00",
        "renewedShown": "2024-04-30 20:00",
    }

    machine_zone("UTC")
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (1 user checked" in again.stdout


def test_a_template_gives_the_same_moments_whatever_the_machines_time_zone(
    workspace, cli, emulator_server, machine_zone
):
    # An inline member's YAML time without an offset is UTC to reconciler, but a template's
    # ts.timestamp() and ts.astimezone() took it as the machine's time, and ts.now() and
    # fromtimestamp() gave that time: applied on a CI runner in UTC and planned on a laptop
    # in Pacific/Kiritimati (+14:00), every such field was rewritten on every run.
    templates = {
        "epoch": "{{ ts.timestamp() | int }}",
        "moment": "{{ ts.astimezone() }}",
        "zone": "{{ ts.now().astimezone().tzinfo }}",
        "start": "{{ ts.fromtimestamp(0) }}",
        "day": "{{ day.fromtimestamp(0) }}",
        # glibc's strftime('%s') read the fields as the machine's time, an offset ignored.
        "epochs": "{{ ts.strftime('%s') }} {{ '{:%s}'.format(day) }} {{ at.strftime('%s') }}",
        # ... whatever its flags and width (glibc's own padding, as in UTC).
        "flagged": "{{ ts.strftime('%-s|%12s|%_12Es') }}|{{ '{:%012s|%%s}'.format(ts) }}",
        # ... and a time of day's (on 1900-01-01, the date its strftime writes).
        "clock": "{{ ts.time().strftime('%s') }} {{ '{:%s}|{!r}'.format(ts.time(), ts.time()) }}",
        "shown": "{{ '{!r}'.format(day) }}",
    }
    workspace.write("traits.yaml", mapping_doc({k: {"template": t} for k, t in templates.items()}))
    workspace.write(
        "aud-vip.yaml",
        yaml(
            """
            apiVersion: reconciler/v1
            kind: Audience
            metadata: {name: vip}
            spec:
              destination: prod
              traits: crm
              members:
                inline:
                  - email: a@example.com
                    ts: 2024-05-01 09:30:00
                    day: 2024-05-01
                    at: 2024-05-01 09:30:00 -05:00
            """
        ),
    )
    machine_zone("UTC")
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert fields_of(emulator_server, "a@example.com") == {
        "epoch": "1714555800",
        "moment": "2024-05-01 09:30:00+00:00",
        "zone": "UTC",
        "start": "1970-01-01 00:00:00",
        "day": "1970-01-01",
        "epochs": "1714555800 1714521600 1714573800",
        "flagged": "1714555800|  1714555800|  1714555800|001714555800|%s",
        "clock": "-2208954600 -2208954600|datetime.time(9, 30)",
        "shown": "datetime.date(2024, 5, 1)",
    }

    machine_zone("Pacific/Kiritimati")
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "= user fields: no changes (1 user checked" in again.stdout


@pytest.mark.parametrize(
    "spec", ["%s", "%-s", "%_s", "%8s", "%-8s", "%08s", "%-08s", "%0-8s", "%^#_012Os", "%E8s"]
)
@pytest.mark.parametrize(
    "ts", [datetime.datetime(2024, 5, 1, 9, 30), datetime.datetime(1969, 12, 31, 23)]
)
def test_a_templates_epoch_is_padded_as_glibc_pads_it_in_utc(machine_zone, spec, ts):
    # A template's `%s` is written by reconciler, in UTC, flags and width included: what a
    # CI runner in UTC wrote before stays byte for byte the same.
    machine_zone("UTC")
    if datetime.datetime(1970, 1, 1).strftime("%-8s") != "       0":
        pytest.skip("this platform's strftime has no glibc flags for %s")
    assert template_module._utc_strftime(ts, spec) == ts.strftime(spec)


class FakeClock:
    """One clock for the client and the emulator: sleeping moves time on, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


def test_bulk_update_stays_within_5_requests_per_second(make_emulator_server):
    clock = FakeClock()
    server = make_emulator_server(limits=Limits.iterable(), clock=clock)
    proj = server.emulator.project("default")
    for i in range(120):
        proj.add_user(email=f"u{i}@example.com", user_id=f"u-{i}")
    updates = tuple(
        FieldUpdate(f"u-{i}", "userId", f"u{i}@example.com", f"u-{i}", {"tier": (None, i)})
        for i in range(120)
    )
    plan = Plan((DestinationPlan("prod", "hybrid", (), field_updates=updates),))
    settings = ClientSettings(batch_size=10, concurrency=1)
    with IterableClient(
        server.base_url, EMULATOR_API_KEY, settings=settings, clock=clock, sleep=clock.sleep
    ) as client:
        report = apply_plan(plan, {"prod": client})

    assert report.ok
    assert report.destinations[0].fields is not None
    assert report.destinations[0].fields.updated == 120
    sent = [r for r in server.emulator.request_log if r.path == "/api/users/bulkUpdate"]
    assert len(sent) == 12
    assert {r.status for r in sent} == {200}  # the emulator's 5/s limit never answered 429
    stamps = [r.at for r in sent]
    busiest = max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps)
    assert busiest == 5
    assert proj.find_user(user_id="u-119").data_fields == {"tier": 119}


def test_bulk_update_splits_requests_over_4_mb(emulator_server):
    proj = project(emulator_server)
    for i in range(1000):
        proj.add_user(user_id=f"u-{i}")
    users = [{"userId": f"u-{i}", "dataFields": {"bio": f"{i}:" + "x" * 5000}} for i in range(1000)]
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY) as client:
        result = client.bulk_update(users)
    assert (result.success_count, result.failed, result.requests) == (1000, {}, 2)
    sent = requests_to(emulator_server, "/api/users/bulkUpdate")
    assert [r.status for r in sent] == [200, 200]
    assert all(len(encode(r.body)) <= 4_000_000 for r in sent)
    assert sum(len(r.body["users"]) for r in sent) == 1000
    assert proj.find_user(user_id="u-999").data_fields["bio"].startswith("999:")


def test_per_user_failures_of_a_bulk_update_are_reported(emulator_server):
    # Names each failed member: answers that itemise failures (the field profile's may not,
    # and refuses a type mismatch for the whole request: see the test after this one).
    emulator_server.emulator.faults.counts_only_answers = False
    emulator_server.emulator.faults.type_mismatch_rejects_request = False
    proj = project(emulator_server)
    proj.add_user(email="a@example.com", user_id="u-1", data_fields={"tier": "gold"})
    proj.add_user(email="b@example.com", user_id="u-2")
    updates = (
        FieldUpdate("u-1", "userId", "a@example.com", "u-1", {"tier": ("gold", 5)}),
        FieldUpdate("u-2", "userId", "b@example.com", "u-2", {"tier": (None, "silver")}),
    )
    plan = Plan((DestinationPlan("prod", "hybrid", (), field_updates=updates),))
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY) as client:
        report = apply_plan(plan, {"prod": client})
    fields = report.destinations[0].fields
    assert fields is not None
    assert not report.ok
    assert fields.rejected == {"u-1": "invalid data fields"}
    assert fields.updated == 1
    assert report.to_dict(str)["destinations"][0]["field_updates"]["rejected"] == [
        {"member": "u-1", "reason": "invalid data fields"}
    ]


def test_one_mismatched_value_fails_only_its_user_when_iterable_refuses_the_whole_request(
    emulator_server,
):
    """Iterable refuses a whole bulkUpdate for one user's value of another type (400
    RequestFieldsTypesMismatched, as block/iterable-go meets it): the other users of the
    request are still updated, and only that one is reported, naming the field."""
    emulator_server.emulator.faults.type_mismatch_rejects_request = True
    proj = project(emulator_server)
    proj.add_user(email="seed@example.com", data_fields={"ltv": 10})
    users = [f"u-{i}" for i in range(8)]
    for user_id in users:
        proj.add_user(user_id=user_id)
    updates = tuple(
        FieldUpdate(u, "userId", None, u, {"ltv": (None, "lots" if u == "u-5" else 7)})
        for u in users
    )
    plan = Plan((DestinationPlan("prod", "userId", (), field_updates=updates),))
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY) as client:
        report = apply_plan(plan, {"prod": client})
    fields = report.destinations[0].fields
    assert fields is not None
    assert (fields.updated, list(fields.rejected)) == (7, ["u-5"])
    assert "ltv is long" in fields.rejected["u-5"]
    assert "lots" not in json.dumps(report.to_dict(str))  # the refused value is not shown
    assert proj.find_user(user_id="u-4").data_fields == {"ltv": 7}
    assert [r.status for r in emulator_server.emulator.request_log] == [400, 200]


def test_a_refused_field_in_the_apply_report_is_escaped_and_its_member_keys_masked(
    emulator_server,
):
    """The reason a member's fields were refused names the fields Iterable's answer names:
    a field name is the manifest's (a pull request's) text, and a path below a mapped
    field can be a member's email. The report's markdown (the job summary) had it raw: a
    mention pinged the team, an image loaded from another host; every format showed the
    email, though identifiers are masked."""
    emulator_server.emulator.faults.type_mismatch_rejects_request = True
    proj = project(emulator_server)
    name = "@acme/security ![x](http://1249763449/a) <img src=x>"
    proj.add_user(email="seed@example.com", data_fields={name: 10, "refs": {"ann@example.com": 1}})
    for user_id in ("u-0", "u-1", "u-2"):
        proj.add_user(user_id=user_id)
    updates = (
        FieldUpdate("u-0", "userId", None, "u-0", {name: (None, "lots")}),
        FieldUpdate("u-1", "userId", None, "u-1", {"refs": (None, {"ann@example.com": "x"})}),
        FieldUpdate("u-2", "userId", None, "u-2", {name: (None, 3)}),
    )
    plan = Plan((DestinationPlan("prod", "userId", (), field_updates=updates),))
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY) as client:
        report = apply_plan(plan, {"prod": client})
    assert report.destinations[0].fields is not None
    assert sorted(report.destinations[0].fields.rejected) == ["u-0", "u-1"]
    markdown = report_markdown(report)
    assert "user fields: `***#1`: a field value of another type" in markdown
    assert "@&#8203;acme/security" in markdown and "\\<img src=x\\>" in markdown
    assert "![x](" not in markdown
    assert "\\[x\\](http&#8203;://1249763449/a)" in markdown
    masked = (markdown, report_text(report), json.dumps(report.to_dict(Masker())))
    for output in masked:
        assert "ann@example.com" not in output and "is long" in output
    assert "ann@example.com" in report_text(report, show_members=True)


def test_a_refusal_that_does_not_tell_the_users_apart_is_halved_down_to_its_user(
    emulator_server,
):
    # An array mixing types: the field named (tags, long) is what the array's first item
    # gives, so the answer alone cannot tell which user sent it.
    emulator_server.emulator.faults.type_mismatch_rejects_request = True
    proj = project(emulator_server)
    list_id = proj.add_list("l")
    subscribers = [
        {"email": f"m{i}@example.com", "dataFields": {"tags": [1, "x"] if i == 2 else [i]}}
        for i in range(4)
    ]
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY) as client:
        result = client.subscribe(list_id, subscribers)
    assert (result.success_count, list(result.failed)) == (3, ["m2@example.com"])
    assert "tags is long" in result.failed["m2@example.com"]
    assert sorted(proj.members(list_id)) == ["m0@example.com", "m1@example.com", "m3@example.com"]


@pytest.mark.parametrize("answer", ["empty", "blank", "error"])
def test_a_profile_known_by_email_alone_is_read_by_email_however_byuserid_says_not_found(
    workspace, cli, emulator_server, answer
):
    """The member has a userId its profile does not have yet: GET users/byUserId finds
    nobody (200 {}, a user of empty identifiers, or 500 error.users.noUserWithIdExists,
    all "not found" to block/iterable-go), so its values are read by email, and a value
    Iterable already has is not planned again."""
    emulator_server.emulator.faults.unknown_user_id_answer = answer
    proj = project(emulator_server)
    list_id = proj.add_list("churn")
    proj.subscribe_direct(list_id, email="alice@example.com", data_fields={"planTier": "pro"})
    workspace.csv("data/churn.csv", "email,user_id,plan", ["alice@example.com,u-1,pro"])
    workspace.write("traits.yaml", mapping_doc({"planTier": "plan"}))
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"}, traits="crm")
    result = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert result.json()["summary"]["users_to_update"] == 0


@pytest.mark.parametrize("merge", [False, True])
def test_merge_nested_objects_comes_from_the_mapping(workspace, cli, emulator_server, merge):
    proj = project(emulator_server)
    proj.add_user(email="a@example.com", data_fields={"prefs": {"sms": True}})
    workspace.csv("data/p.csv", "email,prefs", ['a@example.com,"{""email"": true}"'])
    workspace.write(
        "traits.yaml",
        mapping_doc({"prefs": {"from": "prefs", "type": "object"}}, mergeNestedObjects=merge),
    )
    workspace.audience("p", {"csv": "data/p.csv"}, traits="crm")
    if not merge:
        # Replacing the profile's object loses its sms: a clear the guard holds, read
        # first though the member joins the list (tests/integration/test_object_fields.py).
        blocked = cli("apply", workspace.manifests, "--yes")
        assert blocked.exit_code == 3, blocked.output
        assert "guard field_clears: clears field 'prefs'" in blocked.stdout + blocked.stderr
    allow = () if merge else ("--allow-field-clears",)
    assert cli("apply", workspace.manifests, "--yes", *allow).exit_code == 0
    expected = {"sms": True, "email": True} if merge else {"email": True}
    assert proj.find_user(email="a@example.com").data_fields["prefs"] == expected
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_equal_objects_one_audience_merges_and_one_replaces_are_a_conflict(
    workspace, cli, emulator_server, monkeypatch, engine
):
    """keep merges nested objects, wipe replaces them, and both want prefs {a: 1} for a
    member Iterable has with prefs {z: 9}. The subscribes of a member new to both lists
    carried each list's mode, so wipe's replaced prefs and z was lost (the next plan then
    found {a: 1} done for both); now the field is a conflict, written by neither, and
    the plan says so, masked, exits 1 as for audiences giving different values, and the
    next plan is the same."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    proj = project(emulator_server)
    proj.add_user(email="pat@example.com", data_fields={"prefs": {"z": 9}})
    row = 'pat@example.com,"{""a"": 1}",gold'
    for name in ("keep", "wipe"):
        workspace.csv(f"data/{name}.csv", "email,prefs,tier", [row])
        workspace.audience(name, {"csv": f"data/{name}.csv"}, traits=name)
    fields = {"prefs": {"from": "prefs", "type": "object"}, "tier": "tier"}
    workspace.write(
        "traits.yaml",
        mapping_doc(fields, name="keep", mergeNestedObjects=True)
        + "\n---\n"
        + mapping_doc(fields, name="wipe"),
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 1, plan.output
    (issue,) = plan.json()["destinations"][0]["field_issues"]
    assert issue["where"] == "audiences 'keep' and 'wipe'"
    assert issue["reason"].startswith("field 'prefs' gets ")
    assert (
        "from both, merged into the profile's object by one (mergeNestedObjects)"
        in (issue["reason"])
    )
    text = cli("plan", workspace.manifests)
    assert "pat@example.com" not in text.output and '"a": 1' not in text.output
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output
    fields = proj.find_user(email="pat@example.com").data_fields
    assert fields["prefs"] == {"z": 9}  # nothing written to prefs: z survives
    assert fields["tier"] == "gold"  # the member's other fields went ahead
    again = cli("plan", workspace.manifests, "--format", "json")
    assert again.exit_code == 1, again.output
    assert again.json()["destinations"][0]["field_issues"] == [issue]
    assert again.json()["summary"]["users_to_update"] == 0
    assert again.json()["summary"]["members_to_add"] == 0


def test_a_saved_plan_carries_field_writes(workspace, cli, emulator_server, tmp_path):
    setup(workspace)
    first = tmp_path / "first.plan"
    assert cli("plan", workspace.manifests, "--out", first).exit_code == 0
    applied = cli("apply", "--plan", first, "--yes")
    assert applied.exit_code == 0, applied.output
    assert "new user fields, typed for good" in applied.stdout  # the saved plan keeps them
    assert fields_of(emulator_server, "alice@example.com")["planTier"] == "pro"

    workspace.csv("data/churn.csv", HEADER, [ROWS[0].replace(",pro,", ",gold,"), *ROWS[1:]])
    second = tmp_path / "second.plan"
    assert cli("plan", workspace.manifests, "--out", second).exit_code == 0
    emulator_server.emulator.clear_log()
    result = cli("apply", "--plan", second, "--yes")
    assert result.exit_code == 0, result.output
    (update,) = requests_to(emulator_server, "/api/users/bulkUpdate")
    assert update.body["users"][0]["dataFields"] == {"planTier": "gold"}
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_a_saved_plan_is_stale_when_mapped_fields_changed_in_iterable(
    workspace, cli, emulator_server, tmp_path
):
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    planfile = tmp_path / "p.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    fields_of(emulator_server, "bob@example.com")["planTier"] = "changed-by-hand"
    emulator_server.emulator.clear_log()
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 4, result.output
    assert "mapped user fields changed" in result.stderr
    assert [r for r in emulator_server.emulator.request_log if r.method != "GET"] == []


def test_field_updates_show_per_list_in_plan_status_and_run_record(
    workspace, cli, emulator_server, tmp_path
):
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.csv("data/churn.csv", HEADER, [ROWS[0].replace(",pro,", ",gold,"), *ROWS[1:]])

    assert "~ churn (list " in (text := cli("plan", workspace.manifests).stdout)
    assert ": +0 / -0 / ~1 / 2 unchanged" in text
    markdown = cli("plan", workspace.manifests, "--format", "markdown").stdout
    assert "| churn | " in markdown and "| 0 | 0 | 1 | 2 |" in markdown
    (row,) = cli("status", workspace.manifests, "--format", "json").json()["audiences"]
    assert row["pending_updates"] == 1

    record_file = tmp_path / "run.json"
    assert cli("apply", workspace.manifests, "--yes", "--summary-json", record_file).exit_code == 0
    record = json.loads(record_file.read_text())
    assert record["user_fields"] == [
        {
            "destination": "prod",
            "planned": 1,
            "updated": 1,
            "rejected": 0,
            "not_attempted": 0,
            "errors": 0,
        }
    ]


def test_text_field_values_are_masked_unless_show_members(workspace, cli, emulator_server):
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.csv("data/churn.csv", HEADER, [ROWS[0].replace(",alice", ",alicia"), *ROWS[1:]])
    for fmt in ("text", "markdown", "json"):
        out = cli("plan", workspace.manifests, "--format", fmt).stdout
        assert "Alicia" not in out and "Hi Alice" not in out, fmt
    masked = cli("plan", workspace.manifests).stdout
    assert 'greeting "H***" -> "H***"' in masked
    full = cli("plan", workspace.manifests, "--show-members").stdout
    assert 'greeting "Hi Alice" -> "Hi Alicia"' in full


def test_validate_reports_every_unreadable_source_and_every_bad_value(workspace, cli):
    setup(workspace, rows=[ROWS[0], ROWS[1].replace(",0,", ",lots,")])
    workspace.audience("gone-one", {"csv": "data/missing-1.csv"})
    workspace.audience("gone-two", {"csv": "data/missing-2.csv"})
    result = cli("validate", workspace.manifests, "--show-members")
    assert result.exit_code == 1, result.output
    assert "CSV file not found" in result.stderr
    assert "missing-1.csv" in result.stderr and "missing-2.csv" in result.stderr
    assert (
        "churn.csv:3: field 'lifetimeValue' (column 'lifetime_value'): 'lots' is not a number"
        in (result.stderr)
    )
    assert "2 sources that cannot be read, 1 value that cannot be sent found." in result.stderr


def test_a_mapped_audience_planned_in_duckdb_plans_applies_and_converges(
    workspace, cli, emulator_server, monkeypatch, tmp_path
):
    # From one member on, audiences are planned in DuckDB: values, merges, reads and
    # comparisons over workspace tables, plans carrying them as views (issue 17).
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    setup(workspace)
    saved = tmp_path / "first.plan"
    assert cli("plan", workspace.manifests, "--out", saved).exit_code == 0

    result = cli("apply", "--plan", saved, "--yes")
    assert result.exit_code == 0, result.output
    (subscribe,) = requests_to(emulator_server, "/api/lists/subscribe")
    sent = {s["email"]: s["dataFields"] for s in subscribe.body["subscribers"]}
    assert sent["alice@example.com"] == {
        "planTier": "pro",
        "lifetimeValue": 1250.5,
        "renewsOn": "2025-07-01",
        "greeting": "Hi Alice",
    }
    assert sent["bob@example.com"]["lifetimeValue"] == 0.0  # a double field: a float
    assert requests_to(emulator_server, "/api/users/bulkUpdate") == []

    # One value changes: one bulkUpdate with exactly that user's changed fields.
    changed = [ROWS[0], ROWS[1].replace(",free,0,,", ",pro,99.5,2025-08-01,"), ROWS[2]]
    workspace.csv("data/churn.csv", HEADER, changed)
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    assert "diffed in DuckDB" in dest["member_read"]
    assert dest["field_updates"]["count"] == 1
    emulator_server.emulator.clear_log()
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert "user fields: updated 1/1 users" in result.stdout
    (update,) = requests_to(emulator_server, "/api/users/bulkUpdate")
    assert update.body["users"] == [
        {
            "email": "bob@example.com",
            "userId": "u-2",
            "dataFields": {
                "lifetimeValue": 99.5,
                "planTier": "pro",
                "renewsOn": "2025-08-01",
            },
        }
    ]

    # Applied again: nothing to do, nothing written.
    emulator_server.emulator.clear_log()
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert [r for r in emulator_server.emulator.request_log if r.method != "GET"] == []


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_member_iterable_has_in_another_spelling_keeps_her_fields(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # Anna is on the list as anna@xn--bcher-kva.de; the source now spells her domain in
    # Unicode. She counts as on the list: her fields are not read or written under the
    # source's spelling, which the emulator refuses as Iterable may (the plan failed).
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    workspace.csv("data/m.csv", "email,plan", ["b@example.com,pro", "anna@xn--bcher-kva.de,pro"])
    workspace.write("traits.yaml", mapping_doc({"planTier": "plan"}))
    workspace.audience("news", {"csv": "data/m.csv"}, traits="crm")
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.csv("data/m.csv", "email,plan", ["b@example.com,pro", "anna@bücher.de,free"])

    result = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "kept 1 member whose address Iterable has in another spelling" in result.stdout
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert fields_of(emulator_server, "anna@xn--bcher-kva.de")["planTier"] == "pro"


def _calls(server) -> dict[str, int]:
    """Requests per endpoint since the log was last cleared."""
    counts: dict[str, int] = {}
    for r in server.emulator.request_log:
        key = f"{r.method} {r.path}"
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_mapped_fields_ride_on_the_export_that_reads_the_members(
    workspace, cli, emulator_server, monkeypatch, engine
):
    """When one user export reads the lists' members (here forced; by default for many
    lists or large ones), the mapped fields' current values come with it: the plan made
    a second read of the same profiles (1,000 per-user reads for 50 lists of 20 members,
    or a second export of the whole project) to learn values the first could carry."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    setup(workspace)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    changed = [ROWS[0], ROWS[1].replace(",free,0,,", ",pro,99.5,2025-08-01,"), ROWS[2]]
    workspace.csv("data/churn.csv", HEADER, changed)

    emulator_server.emulator.clear_log()
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    fields = plan.json()["destinations"][0]["field_updates"]
    assert fields["count"] == 1
    assert fields["read"] == {
        "method": "export",
        "users": 3,
        "requests": 0,
        "fields": ["greeting", "lifetimeValue", "planTier", "renewsOn"],
    }
    assert _calls(emulator_server) == {
        "GET /api/lists": 1,
        "GET /api/export/data.json": 1,
        "GET /api/users/getFields": 1,
    }
    (export,) = requests_to(emulator_server, "/api/export/data.json")
    assert "onlyFields=planTier" in export.query and "onlyFields=userListIds" in export.query
    text = cli("plan", workspace.manifests)
    assert "read with the user export that read the members, for 3 users" in text.stdout

    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    (update,) = requests_to(emulator_server, "/api/users/bulkUpdate")
    assert [u["email"] for u in update.body["users"]] == ["bob@example.com"]
    emulator_server.emulator.clear_log()
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert _calls(emulator_server) == {
        "GET /api/lists": 1,
        "GET /api/export/data.json": 1,
        "GET /api/users/getFields": 1,
    }


# What a data file means as a number: ASCII digits, a sign, a decimal point, an exponent.
NUMBERS_WRITTEN = {"+7": 7, "-0.5": -0.5, ".5": 0.5, "5.": 5, "1e3": 1000, " 8 ": 8}
# Read as numbers by Python's int() and float() only: a spreadsheet, and Iterable, see text.
NOT_NUMBERS = ["1_000", "0x1F", "0b101", "0o7", "1,000", "\uff11\uff12\uff13", "\u0661\u0662\u0663"]
NOT_NUMBERS += ["\u0663.\u0665", "1e", "e3"]  # fullwidth 123, Arabic-Indic 123 and 3.5


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_number_text_is_read_as_a_data_file_means_it_in_both_engines(
    workspace, cli, monkeypatch, engine
):
    """Fullwidth and other scripts' digits (U+FF11.., U+0661..) were sent as the number 123, as
    Python's int() reads them; the rest of Python's extras were refused already. Each row
    refused is named with its file, line and column, and its member is still added."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    cells = [*NUMBERS_WRITTEN, *NOT_NUMBERS]
    workspace.csv(
        "data/n.csv", "email,score", [f'n{i}@example.com,"{v}"' for i, v in enumerate(cells)]
    )
    workspace.write("traits.yaml", mapping_doc({"score": {"from": "score", "type": "number"}}))
    workspace.audience("n", {"csv": "data/n.csv"}, traits="crm")

    result = cli("plan", workspace.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 1, result.output  # values not made, as for skipped rows
    (destination,) = result.json()["destinations"]
    assert destination["lists"][0]["desired_members"] == len(cells)
    refused = {issue["where"]: issue["reason"] for issue in destination["field_issues"]}
    first = 2 + len(NUMBERS_WRITTEN)
    assert refused == {
        f"manifests/data/n.csv:{line}": f"field 'score' (column 'score'): '{cell}' is not a "
        "number; the field is not written for this member"
        for line, cell in enumerate(NOT_NUMBERS, start=first)
    }
