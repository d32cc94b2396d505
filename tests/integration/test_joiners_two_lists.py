"""A member joining two lists of one destination whose audiences map one field (a scalar
or an object) differently: both engines plan the same, no request carries two values for
one field of one person, and the plan after the apply has nothing left to write."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_traits import mapping_doc, project, requests_to

OBJECT = {"from": "v", "type": "object"}
MERGED = {"mergeNestedObjects": True}
# name: (a's mapping, b's, a's value, b's value, a's mapping options, b's)
CASES = {
    "scalars": ({"tier": "v"}, {"tier": "v"}, "gold", "silver", {}, {}),
    "number-and-text": (
        {"tier": {"from": "v", "type": "number"}},
        {"tier": "v"},
        "5",
        "5",
        {},
        {},
    ),
    "object-and-scalar": ({"tier": OBJECT}, {"tier": "v"}, '"{""a"": 1}"', "gold", {}, {}),
    "objects-merged": (
        {"tier": OBJECT},
        {"tier": OBJECT},
        '"{""a"": 1}"',
        '"{""b"": 2}"',
        MERGED,
        MERGED,
    ),
    "object-and-clear": ({"tier": OBJECT}, {"tier": OBJECT}, '"{""a"": 1}"', "", {}, {}),
    "scalar-and-clear": ({"tier": "v"}, {"tier": "v"}, "gold", "", {}, {}),
}


def _sent(server) -> dict[str, set[str]]:
    """Per person (their email) and field, the values the subscribes and updates carried."""
    out: dict[str, set[str]] = {}
    for path, key in (("/api/lists/subscribe", "subscribers"), ("/api/users/bulkUpdate", "users")):
        for request in requests_to(server, path):
            for user in request.body[key]:
                for name, value in (user.get("dataFields") or {}).items():
                    who = f"{user.get('email')}:{name}"
                    out.setdefault(who, set()).add(json.dumps(value, sort_keys=True))
    return out


def _plan_in_both_engines(cli, workspace, monkeypatch) -> dict:
    plans = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        plans[engine] = cli("plan", workspace.manifests, "--format", "json")
    python, duckdb = (plans[e].json() for e in ("python", "duckdb"))
    assert python["summary"] == duckdb["summary"]
    assert python["destinations"][0]["field_issues"] == duckdb["destinations"][0]["field_issues"]
    assert plans["python"].exit_code == plans["duckdb"].exit_code
    return python


def _audiences(workspace, a_fields, b_fields, a_row, b_row, a_spec, b_spec, b_user_id) -> None:
    workspace.csv("data/a.csv", "email,v", [f"pat@example.com,{a_row}"])
    if b_user_id:
        workspace.csv("data/b.csv", "email,uid,v", [f"pat@example.com,u-1,{b_row}"])
        workspace.audience("b", {"csv": "data/b.csv", "userId": "uid"}, traits="mb")
    else:
        workspace.csv("data/b.csv", "email,v", [f"pat@example.com,{b_row}"])
        workspace.audience("b", {"csv": "data/b.csv"}, traits="mb")
    workspace.audience("a", {"csv": "data/a.csv"}, traits="ma")
    workspace.write(
        "traits.yaml",
        mapping_doc(a_fields, name="ma", **a_spec)
        + "\n---\n"
        + mapping_doc(b_fields, name="mb", **b_spec),
    )


@pytest.mark.parametrize("b_user_id", [False, True], ids=["same-key", "email-and-userid"])
# Each case new to Iterable, and the first also a profile Iterable has (with a value).
@pytest.mark.parametrize(
    ("case", "known"),
    [(case, False) for case in sorted(CASES)] + [("scalars", True)],
    ids=[*sorted(CASES), "scalars-known"],
)
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_joiner_of_two_lists_mapping_one_field_apart_gets_neither_value(
    workspace, cli, emulator_server, monkeypatch, engine, case, known, b_user_id
):
    """One person joins lists 'a' and 'b', whose audiences give one field two values: the
    field is a conflict, written by neither, in both engines. With 'a' keying the person
    by email (its source has no userId) and 'b' by a userId given with that email (a
    hybrid project), the two keys were two members: each subscribe carried its own value
    and the field flipped between them on every apply (the next plan updated it to the
    other one, and the plan after that back)."""
    proj = project(emulator_server)
    if known:
        proj.add_user(email="pat@example.com", user_id="u-1", data_fields={"tier": "bronze"})
    _audiences(workspace, *CASES[case], b_user_id)
    plan = _plan_in_both_engines(cli, workspace, monkeypatch)
    (issue,) = plan["destinations"][0]["field_issues"]
    assert issue["where"] == "audiences 'a' and 'b'", issue
    assert issue["reason"].startswith("field 'tier' gets "), issue

    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output  # the conflict, reported
    assert "pat@example.com:tier" not in _sent(emulator_server)
    fields = proj.find_user(email="pat@example.com").data_fields
    assert fields.get("tier") == ("bronze" if known else None)
    emulator_server.emulator.clear_log()
    for _ in range(2):
        again = cli("plan", workspace.manifests, "--format", "json").json()
        assert (again["summary"]["users_to_update"], again["summary"]["members_to_add"]) == (0, 0)
        # (Its masked member numbered as this plan meets it: it adds nobody before it.)
        (same,) = again["destinations"][0]["field_issues"]
        assert {**same, "value": None} == {**issue, "value": None}
        assert cli("apply", workspace.manifests, "--yes").exit_code == 1
    assert _sent(emulator_server) == {}


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_one_person_under_two_keys_given_one_value_gets_it_once_and_no_changes_after(
    workspace, cli, emulator_server, monkeypatch, engine
):
    _audiences(workspace, {"tier": "v"}, {"tier": "v"}, "gold", "gold", {}, {}, True)
    plan = _plan_in_both_engines(cli, workspace, monkeypatch)
    assert plan["destinations"][0]["field_issues"] == []
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert _sent(emulator_server) == {"pat@example.com:tier": {'"gold"'}}
    assert project(emulator_server).find_user(email="pat@example.com").data_fields == {
        "tier": "gold"
    }
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("target", ["a", "b"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_targeted_plan_settles_one_person_under_two_keys_as_the_full_plan_does(
    workspace, cli, emulator_server, monkeypatch, engine, target
):
    """plan --target reads the audience beside its target (state/alongside.py) for the
    targeted members' fields, but took its values only under the same key: with 'a'
    keying Pat by email and 'b' by a userId given with that email, the targeted plan saw
    no conflict and its apply wrote its own value of 'tier' (the full plan writes
    neither, and the next full plan reported the conflict too late). Now the targeted
    plan holds the conflict back as the full plan does, in both engines."""
    _audiences(workspace, {"tier": "v"}, {"tier": "v"}, "gold", "silver", {}, {}, True)
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    (full,) = cli("plan", workspace.manifests, "--format", "json").json()["destinations"][0][
        "field_issues"
    ]
    plan = cli("plan", workspace.manifests, "--target", target, "--format", "json")
    (issue,) = plan.json()["destinations"][0]["field_issues"]
    assert (issue["where"], issue["reason"]) == (full["where"], full["reason"])
    applied = cli("apply", workspace.manifests, "--yes", "--target", target)
    assert applied.exit_code == 1, applied.output  # the conflict, reported
    assert "pat@example.com:tier" not in _sent(emulator_server)
    assert (
        project(emulator_server).find_user(email="pat@example.com").data_fields.get("tier") is None
    )


@pytest.mark.parametrize("others", [0, 2], ids=["joined", "long-tables"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_conflict_under_a_persons_email_holds_back_her_userid_keys_value_too(
    workspace, cli, emulator_server, monkeypatch, engine, others
):
    """'a' and 'c' key Pat by email and disagree on 'tier' (a conflict under that key),
    and 'b' keys her by a userId given with that email, with a's value: the plan said
    the field "is not written for this member", but b's subscribe carried 'gold' (that
    pair's values being equal, it was no conflict), so apply wrote a's value over c's.
    Now a field held back under one of her keys is held back under the other, in both
    engines, up to JOINED_MAX audiences and beyond it (the long tables), and by apply
    --target b, which reads a and c beside it."""
    workspace.csv("data/a.csv", "email,v", ["pat@example.com,gold"])
    workspace.csv("data/c.csv", "email,v", ["pat@example.com,silver"])
    workspace.csv("data/b.csv", "email,uid,v", ["pat@example.com,u-1,gold"])
    workspace.audience("a", {"csv": "data/a.csv"}, traits="m")
    workspace.audience("b", {"csv": "data/b.csv", "userId": "uid"}, traits="m")
    workspace.audience("c", {"csv": "data/c.csv"}, traits="m")
    for n in range(others):  # other people, so that the destination has more audiences
        workspace.csv(f"data/o{n}.csv", "email,v", [f"other{n}@example.com,gold"])
        workspace.audience(f"o{n}", {"csv": f"data/o{n}.csv"}, traits="m")
    workspace.write("traits.yaml", mapping_doc({"tier": "v"}, name="m"))
    plan = _plan_in_both_engines(cli, workspace, monkeypatch)
    (issue,) = plan["destinations"][0]["field_issues"]
    assert issue["where"] == "audiences 'a' and 'c'", issue

    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    for target in (("--target", "b"), ()):  # b alone (a and c read beside it), then all
        applied = cli("apply", workspace.manifests, "--yes", *target)
        assert applied.exit_code == 1, applied.output  # the conflict, reported
        assert "pat@example.com:tier" not in _sent(emulator_server)
    assert "tier" not in project(emulator_server).find_user(email="pat@example.com").data_fields
    again = cli("plan", workspace.manifests, "--format", "json").json()
    assert (again["summary"]["users_to_update"], again["summary"]["members_to_add"]) == (0, 0)


# a's mapping, b's, and a's value: a keys a@example.com by email; b keys by a userId of
# that same text a person whose email is b@example.com (another profile).
TWO_KINDS = {
    "one-field-apart": ({"tier": "v"}, {"tier": "v"}, "gold"),
    "one-field-equal": ({"tier": "v"}, {"tier": "v"}, "silver"),
    "other-fields": ({"other": "v"}, {"tier": "v"}, "platinum"),
}


@pytest.mark.parametrize("others", [0, 3], ids=["joined", "long-tables"])
@pytest.mark.parametrize("case", sorted(TWO_KINDS))
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_one_text_as_an_email_here_and_a_userid_there_writes_neither_profiles_fields(
    workspace, cli, emulator_server, monkeypatch, engine, case, others
):
    """'a' keys a@example.com by email; 'b' keys by userId a@example.com a person whose
    email is b@example.com: two profiles. The field planner grouped members by the text
    alone: the plan said "field 'tier' gets "silver" from one and "gold" from the other"
    of two people, read one profile only (a's drifted value was never seen: "No
    changes"), and apply wrote a's 'other' to b's profile. Now every mapped field of
    that text is held back for both, said so, in both engines."""
    a_fields, b_fields, a_value = TWO_KINDS[case]
    proj = project(emulator_server)
    proj.add_user(email="a@example.com", data_fields={"tier": "bronze"})
    proj.add_user(email="b@example.com", user_id="a@example.com", data_fields={"tier": "silver"})
    workspace.csv("data/a.csv", "email,v", [f"a@example.com,{a_value}"])
    workspace.csv("data/b.csv", "email,uid,v", ["b@example.com,a@example.com,silver"])
    workspace.audience("a", {"csv": "data/a.csv"}, traits="ma")
    workspace.audience("b", {"csv": "data/b.csv", "userId": "uid"}, traits="mb")
    for n in range(others):  # other people, so that the destination has more audiences
        workspace.csv(f"data/o{n}.csv", "email,v", [f"other{n}@example.com,gold"])
        workspace.audience(f"o{n}", {"csv": f"data/o{n}.csv"}, traits="ma")
    workspace.write(
        "traits.yaml",
        mapping_doc(a_fields, name="ma") + "\n---\n" + mapping_doc(b_fields, name="mb"),
    )
    plan = _plan_in_both_engines(cli, workspace, monkeypatch)
    issues = plan["destinations"][0]["field_issues"]
    fields = sorted({*a_fields, *b_fields})
    assert [i["reason"].split(" gets ")[0] for i in issues] == [f"field {n!r}" for n in fields]
    for issue in issues:
        assert issue["where"] == "audiences 'a' and 'b'", issue
        assert "as an email in one and as a userId" in issue["reason"], issue
    assert plan["summary"]["users_to_update"] == 0

    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output  # held back, reported
    assert [w for w in _sent(emulator_server) if not w.startswith("other")] == []
    assert proj.find_user(email="a@example.com").data_fields == {"tier": "bronze"}
    assert proj.find_user(email="b@example.com").data_fields == {"tier": "silver"}


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_field_update_goes_to_the_profile_of_the_audience_giving_the_value(
    workspace, cli, emulator_server, monkeypatch, engine
):
    """'a' keys by userId c@example.com a person whose email is d@example.com, who left
    list 'a' by a link (held back: 'a' gives her no values); 'b' keys c@example.com by
    email and gives it 'gold'. The Python engine named the update's member as the first
    list holding the text has it, so b's value was written to the userId's profile."""
    proj = project(emulator_server)
    a_list, b_list = proj.add_list("a"), proj.add_list("b")
    proj.subscribe_direct(b_list, email="c@example.com", data_fields={"tier": "bronze"})
    other = proj.subscribe_direct(
        a_list, email="d@example.com", user_id="c@example.com", data_fields={"tier": "silver"}
    )
    proj.self_unsubscribe(other, list_id=a_list)
    workspace.csv("data/a.csv", "email,uid,v", ["d@example.com,c@example.com,silver"])
    workspace.csv("data/b.csv", "email,v", ["c@example.com,gold"])
    workspace.audience("a", {"csv": "data/a.csv", "userId": "uid"}, traits="m")
    workspace.audience("b", {"csv": "data/b.csv"}, traits="m")
    workspace.write("traits.yaml", mapping_doc({"tier": "v"}, name="m"))
    plan = _plan_in_both_engines(cli, workspace, monkeypatch)
    assert plan["summary"]["users_to_update"] == 1
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert proj.find_user(email="c@example.com").data_fields == {"tier": "gold"}
    assert proj.find_user(email="d@example.com").data_fields == {"tier": "silver"}


@pytest.mark.parametrize("others", [0, 3], ids=["joined", "long-tables"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_userid_that_is_its_own_email_here_and_given_alone_there_is_one_profile(
    workspace, cli, emulator_server, monkeypatch, engine, others
):
    """'a' keys by userId c@example.com a person given with that same email; 'b' keys the
    same userId, its source having no email column. One userId: one profile in Iterable.
    The two-kinds rule took a's member for an email's and b's for another person's: every
    field either maps was held back for her on every apply (exit 1)."""
    proj = project(emulator_server)
    proj.add_user(email="c@example.com", user_id="c@example.com", data_fields={"tier": "bronze"})
    workspace.csv("data/a.csv", "email,uid,v", ["c@example.com,c@example.com,gold"])
    workspace.csv("data/b.csv", "uid,v", ["c@example.com,platinum"])
    workspace.audience("a", {"csv": "data/a.csv", "userId": "uid"}, traits="ma")
    workspace.audience("b", {"csv": "data/b.csv", "userId": "uid"}, traits="mb")
    for n in range(others):  # other people, so that the destination has more audiences
        workspace.csv(f"data/o{n}.csv", "email,v", [f"other{n}@example.com,gold"])
        workspace.audience(f"o{n}", {"csv": f"data/o{n}.csv"}, traits="ma")
    workspace.write(
        "traits.yaml",
        mapping_doc({"tier": "v"}, name="ma") + "\n---\n" + mapping_doc({"other": "v"}, name="mb"),
    )
    plan = _plan_in_both_engines(cli, workspace, monkeypatch)
    assert plan["destinations"][0]["field_issues"] == []
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert proj.find_user(email="c@example.com").data_fields == {
        "tier": "gold",
        "other": "platinum",
    }
