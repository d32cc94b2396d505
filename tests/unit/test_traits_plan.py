"""The pure half of trait mappings: merging, diffing, type checks, request packing, and the
choice between one export and per-user reads."""

from __future__ import annotations

import json

import pytest

from reconciler.iterable import ClientSettings
from reconciler.iterable.batching import encode, pack_users
from reconciler.members.identity import make_member
from reconciler.plan.fields import MappedList, merge_fields, plan_field_updates
from reconciler.render.masking import mask_emails, reveal, shower
from reconciler.state.live import choose_field_read
from reconciler.traits import SentValue, check_types
from reconciler.traits.types import as_doubles


def members(*keys: str) -> dict:
    return {
        k: make_member("hybrid", k if "@" in k else None, None if "@" in k else k) for k in keys
    }


def mapped(audience: str, values: dict, adding=(), merge: bool = False) -> MappedList:
    return MappedList(audience, members(*values), values, merge, set(adding))


def test_no_update_when_values_are_equal_after_normalisation() -> None:
    merged = merge_fields(
        [mapped("a", {"u-1": {"ltv": 42, "renews": "2025-07-01 00:00:00 +00:00", "p": "pro"}})]
    )
    live = {"u-1": {"ltv": 42.0, "renews": "2025-07-01T00:00:00Z", "p": "pro"}}
    assert plan_field_updates(merged, {"u-1": {"ltv", "renews", "p"}}, live) == []


def test_exactly_the_changed_users_and_fields_are_planned() -> None:
    values = {f"u-{i}": {"plan": "pro", "ltv": i} for i in range(5)}
    merged = merge_fields([mapped("a", values)])
    live = {f"u-{i}": {"plan": "pro", "ltv": i} for i in range(5)}
    live["u-1"] = {"plan": "free", "ltv": 1}  # plan changed
    live["u-3"] = {"plan": "pro", "ltv": 30, "other": "kept"}  # ltv changed
    live["u-4"] = None  # not found: every field is new
    wanted = merged.to_read([mapped("a", values)])
    updates = plan_field_updates(merged, wanted, live)
    assert [(u.key, u.changes) for u in updates] == [
        ("u-1", {"plan": ("free", "pro")}),
        ("u-3", {"ltv": (30, 3)}),
        ("u-4", {"ltv": (None, 4), "plan": (None, "pro")}),
    ]
    assert updates[0].data_fields == {"plan": "pro"}  # only what differs is sent


def test_members_being_added_get_fields_on_subscribe_and_are_not_read() -> None:
    lists = [mapped("a", {"u-1": {"plan": "pro"}, "u-2": {"plan": "free"}}, adding={"u-2"})]
    merged = merge_fields(lists)
    assert merged.add_fields(lists[0]) == {"u-2": {"plan": "free"}}
    assert merged.to_read(lists) == {"u-1": {"plan"}}


def test_a_field_set_by_a_subscribe_elsewhere_is_not_updated_twice() -> None:
    lists = [
        mapped("a", {"u-1": {"plan": "pro", "ltv": 3}}),  # already on list a
        mapped("b", {"u-1": {"plan": "pro"}}, adding={"u-1"}),  # being added to list b
    ]
    merged = merge_fields(lists)
    assert merged.to_read(lists) == {"u-1": {"ltv"}}


def test_two_audiences_that_disagree_leave_the_field_alone_and_say_so() -> None:
    lists = [
        mapped("a", {"u-1": {"plan": "pro", "ltv": 1}}),
        mapped("b", {"u-1": {"plan": "free", "ltv": 1.0}}),
    ]
    merged = merge_fields(lists)
    assert merged.to_read(lists) == {"u-1": {"ltv"}}
    ((audience, issue),) = merged.conflicts
    assert audience == "b"
    assert issue.where == "audiences 'a' and 'b'"
    assert issue.reason(str) == (
        'field \'plan\' gets "pro" from one and "free" from the other; it is not written for '
        "this member"
    )
    assert '"***" from one and "f***"' in issue.reason(shower(False))  # field values masked
    assert issue.value == "u-1"


def test_equal_objects_merged_by_one_audience_and_replaced_by_the_other_conflict() -> None:
    """Merging {a: 1} into {a: 1, z: 9} keeps z, replacing wipes it: sent by both lists'
    subscribes the outcome hung on their order (and compared as done either way), so the
    field is left alone and reported, as for different values. Where the modes agree, or
    the value is no object (both modes write it alike), nothing conflicts."""
    lists = [
        mapped("a1", {"u-1": {"prefs": {"a": 1}, "tags": ["x"], "plan": "pro"}}, merge=True),
        mapped("a2", {"u-1": {"prefs": {"a": 1}, "tags": ["x"], "plan": "pro"}}, adding={"u-1"}),
    ]
    merged = merge_fields(lists)
    assert merged.add_fields(lists[1]) == {"u-1": {"tags": ["x"], "plan": "pro"}}
    ((audience, issue),) = merged.conflicts
    assert (audience, issue.where, issue.value) == ("a2", "audiences 'a1' and 'a2'", "u-1")
    assert issue.reason(str) == (
        'field \'prefs\' gets "{"a": 1}" from both, merged into the profile\'s object by one '
        "(mergeNestedObjects) and replacing it by the other; it is not written for this member"
    )
    assert '"a": 1' not in issue.reason(shower(False))  # the value masked
    assert plan_field_updates(merged, {"u-1": {"prefs"}}, {"u-1": {"prefs": {}}}) == []
    same_mode = [mapped("a1", {"u-1": {"prefs": {"a": 1}}}, merge=m) for m in (True, True)]
    assert merge_fields(same_mode).conflicts == []


def test_merge_nested_objects_compares_only_the_keys_sent() -> None:
    lists = [mapped("a", {"u-1": {"prefs": {"email": True}}}, merge=True)]
    merged = merge_fields(lists)
    live = {"u-1": {"prefs": {"email": True, "sms": False}}}
    assert plan_field_updates(merged, {"u-1": {"prefs"}}, live) == []
    (update,) = plan_field_updates(merged, {"u-1": {"prefs"}}, {"u-1": {"prefs": {}}})
    assert update.merge_nested_objects is True


def test_a_type_conflict_with_an_existing_field_is_found() -> None:
    result = check_types(
        {"ltv": "long", "plan": "string"},
        [SentValue("plan", "pro", "row 2"), SentValue("ltv", "12.5", "row 3")],
    )
    (conflict,) = result.conflicts
    assert conflict.describe() == (
        "field 'ltv' is long in Iterable, but row 3 would send a string; Iterable never "
        "changes a field's type (change the mapping's type, or the data)"
    )


def test_a_type_conflict_below_an_object_keyed_by_user_ids_masks_the_key() -> None:
    """An object keyed by userIds makes a field of each key, and a type conflict named it
    whole ("field 'refs.usr_00012391' is object in Iterable"), in CI logs: the key is
    marked as source data (masked, in full with --show-members), names stay readable."""
    result = check_types(
        {"refs.usr_00012391": "object", "prefs.tier": "long"},
        [SentValue("refs.usr_00012391", "x", "row 2"), SentValue("prefs.tier", "x", "row 3")],
    )
    keyed, named = (conflict.describe() for conflict in result.conflicts)
    assert mask_emails(keyed).startswith("field 'refs.u***' is object in Iterable, but row 2")
    assert "usr_0" not in mask_emails(keyed)
    assert reveal(keyed, True).startswith("field 'refs.usr_00012391' is object in Iterable")
    assert named.startswith("field 'prefs.tier' is long in Iterable, but row 3")


def test_compatible_types_pass_and_mixed_numbers_make_a_new_field_double() -> None:
    result = check_types(
        {"score": "double", "note": "string", "prefs": "object", "prefs.email": "boolean"},
        [
            SentValue("score", 3, "r1"),
            SentValue("note", "2025-07-01", "r1"),  # date-shaped text into a string field
            SentValue("prefs", {"email": False}, "r1"),
            SentValue("ltv", 10, "r1"),
            SentValue("ltv", 10.5, "r2"),
            SentValue("empty", None, "r3"),
        ],
    )
    assert result.conflicts == []
    assert result.double_fields == {"score", "ltv"}
    # What the plan creates, with the type Iterable will fix (existing fields, and a field
    # sent only null, are not new).
    assert result.new_fields == {"ltv": "double"}


def test_whole_numbers_bound_for_a_nested_double_path_go_out_as_floats() -> None:
    # A new object field whose `n` is 1 for one member and 1.5 for another: Iterable would
    # type prefs.n long from the first and refuse the second member.
    sent = [SentValue("prefs", {"n": 1, "k": 2}, "r1"), SentValue("prefs", {"n": 1.5}, "r2")]
    sent += [SentValue("rows", [{"n": 3}], "r1"), SentValue("rows", [{"n": 0.5}], "r2")]
    result = check_types({}, sent)
    assert result.conflicts == []
    assert result.double_fields == {"prefs.n", "rows.n"}
    doubled = as_doubles({"n": 1, "k": 2, "flag": True}, "prefs", result.double_fields)
    assert doubled == {"n": 1.0, "k": 2, "flag": True}
    assert isinstance(doubled["n"], float) and isinstance(doubled["k"], int)
    assert as_doubles([{"n": 3}], "rows", result.double_fields) == [{"n": 3.0}]
    assert isinstance(as_doubles([{"n": 3}], "rows", result.double_fields)[0]["n"], float)


def test_a_new_field_whose_values_disagree_is_a_conflict() -> None:
    result = check_types(
        {}, [SentValue("since", "2025-07-01", "r1"), SentValue("since", "x", "r2")]
    )
    (conflict,) = result.conflicts
    assert conflict.existing is None
    assert "new field 'since' would get values of two types: date from r1 and string from r2" in (
        conflict.describe()
    )
    # A declared `type: string` cannot help: the message says what can.
    assert "text shaped like a date, 2024-05-01 or 2024-05-01 09:30:00, makes a new field a " in (
        conflict.describe()
    )
    mixed = check_types({}, [SentValue("n", 1, "r1"), SentValue("n", "x", "r2")])
    assert "(declare a type that fits every value)" in mixed.conflicts[0].describe()


def test_a_time_without_seconds_is_text_to_iterable_not_a_date() -> None:
    # Iterable's date formats give the time to the second: "2024-05-01 09:30" is a string,
    # which a date field refuses (the member's whole subscribe with it).
    result = check_types({"when": "date"}, [SentValue("when", "2024-05-01 09:30", "r1")])
    assert [(c.path, c.existing, c.sent) for c in result.conflicts] == [("when", "date", "string")]
    ok = [
        "2024-05-01",
        "2024-05-01 09:30:00",
        "2024-05-01T09:30:00.5Z",
        "2024-05-01 09:30:00 +02:00",
    ]
    result = check_types({"when": "date"}, [SentValue("when", v, "r") for v in ok])
    assert result.conflicts == []


def test_a_time_with_a_fraction_after_a_space_is_text_to_iterable_not_a_date() -> None:
    # Iterable answered a bulkUpdate of "2020-04-13 14:04:09.000" to a date field with
    # RequestFieldsTypesMismatched, incomingTypes ["string", "keyword"] (Block's production
    # client, block/iterable-go parsers/mismatched_fields_parser_test.go): a fraction of a
    # second is ISO 8601's, after a `T`; "yyyy-MM-dd HH:mm:ss ZZ" has none.
    sent = ["2020-04-13 14:04:09.000", "2020-04-13 14:04:09.5 +00:00"]
    result = check_types({"when": "date"}, [SentValue("when", v, "r") for v in sent])
    assert [(c.path, c.existing, c.sent) for c in result.conflicts] == [("when", "date", "string")]
    assert check_types({}, [SentValue("when", sent[0], "r")]).new_fields == {"when": "string"}
    result = check_types({"when": "date"}, [SentValue("when", "2020-04-13T14:04:09.000", "r")])
    assert result.conflicts == []


def test_nested_paths_are_checked() -> None:
    result = check_types({"prefs.email": "boolean"}, [SentValue("prefs", {"email": "yes"}, "r")])
    assert [c.path for c in result.conflicts] == ["prefs.email"]


def test_requests_are_split_by_user_count_and_by_measured_size() -> None:
    users = [{"userId": f"u-{i}", "dataFields": {"bio": "x" * 5000}} for i in range(1000)]
    packed = pack_users(users, max_users=1000, max_bytes=4_000_000)
    sizes = [len(encode({"users": chunk})) for chunk in packed.requests]
    # 1000 users of about 5 KB do not fit in 4 MB: two requests, each under the limit
    assert len(packed.requests) == 2
    assert all(size <= 4_000_000 for size in sizes)
    assert [u for chunk in packed.requests for u in chunk] == users  # all, once, in order
    # the first request is as full as the limit allows
    next_user = len(encode(packed.requests[1][0])) + 1
    assert sizes[0] + next_user > 4_000_000

    small = [{"userId": f"u-{i}", "dataFields": {"a": 1}} for i in range(2500)]
    packed = pack_users(small, max_users=1000, max_bytes=4_000_000)
    assert [len(c) for c in packed.requests] == [1000, 1000, 500]


def test_the_encoded_size_is_exactly_the_body() -> None:
    users = [{"email": "é@example.com", "dataFields": {"n": "ü" * 10}}] * 3
    body = encode({"users": users})
    assert body == json.dumps({"users": users}, separators=(",", ":"), ensure_ascii=False).encode()
    packed = pack_users(users, max_users=10, max_bytes=len(body))
    assert len(packed.requests) == 1
    packed = pack_users(users, max_users=10, max_bytes=len(body) - 1)
    assert len(packed.requests) == 2


def test_a_user_too_large_for_any_request_is_set_aside() -> None:
    users = [{"userId": "big", "dataFields": {"x": "y" * 5000}}, {"userId": "ok"}]
    packed = pack_users(users, max_users=10, max_bytes=2048)
    assert packed.too_large == [users[0]]
    assert packed.requests == [[users[1]]]


@pytest.mark.parametrize(
    ("users", "method"), [(1, "user_reads"), (1500, "user_reads"), (1501, "export")]
)
def test_reads_are_chosen_by_their_cost_in_rate_limited_time(users: int, method: str) -> None:
    # An export costs 15 s of its 4/minute budget; user reads 1/100 s each.
    assert choose_field_read(users, ClientSettings()) == method


# Memory (issue 17): a trait-mapped audience keeps nothing per member twice. These check
# the sharing itself; bench/plan_traits.py measures what it saves.


def test_merged_values_share_the_lists_dicts_until_a_second_list_changes_one() -> None:
    a = {"u-1": {"plan": "pro"}, "u-2": {"plan": "free"}}
    b = {"u-2": {"ltv": 3}}
    lists = [mapped("a", a), mapped("b", b)]
    merged = merge_fields(lists)
    assert merged.values["u-1"] is a["u-1"]  # one list: shared, not copied
    assert merged.values["u-2"] == {"plan": "free", "ltv": 3}
    assert a["u-2"] == {"plan": "free"} and b["u-2"] == {"ltv": 3}  # inputs left as given
    assert merged.merge == {}  # only members that merge nested objects are noted
    assert merged.members["u-2"] is lists[0].members["u-2"]  # looked up, not copied
    assert list(merged.members) == ["u-1", "u-2"]


def test_a_conflict_names_the_audience_the_shared_values_came_from() -> None:
    lists = [
        mapped("a", {"u-1": {"plan": "pro"}}),
        mapped("b", {"u-1": {"ltv": 3}}),
        mapped("c", {"u-1": {"plan": "free", "ltv": 4}}),
    ]
    merged = merge_fields(lists)
    issues = {issue.where: issue.message for _, issue in merged.conflicts}
    assert set(issues) == {"audiences 'a' and 'c'", "audiences 'b' and 'c'"}
    assert merged.values["u-1"] == {}
    assert lists[0].values["u-1"] == {"plan": "pro"}


def test_members_wanting_the_same_fields_share_one_set() -> None:
    values = {f"u-{i}": {"plan": "pro", "ltv": i} for i in range(3)}
    lists = [mapped("a", values)]
    wanted = merge_fields(lists).to_read(lists)
    assert wanted == {key: {"plan", "ltv"} for key in values}
    assert len({id(names) for names in wanted.values()}) == 1


def test_members_not_subscribed_drop_their_source_rows_once_mapped() -> None:
    from reconciler.state.fields import _forget_traits

    rows = {
        k: make_member("email", k, None, {"plan": "pro", "first_name": "Ada"})
        for k in ("a@x.io", "b@x.io")
    }
    before = dict(rows)
    _forget_traits(rows, {"b@x.io"})
    assert rows["a@x.io"].traits == {} and rows["a@x.io"] == before["a@x.io"]
    assert rows["b@x.io"] is before["b@x.io"]  # subscribed: the saved plan carries its row


def test_values_read_by_export_are_one_tuple_per_member_seen_as_dicts() -> None:
    from reconciler.plan.fingerprint import values_digest
    from reconciler.state.live import FieldRows

    rows = FieldRows(["plan", "ltv"], {"u-1": ("pro", 3), "u-2": None})
    as_dicts = {"u-1": {"plan": "pro", "ltv": 3}, "u-2": None}
    assert dict(rows) == as_dicts and rows.get("u-3") is None
    assert values_digest(rows) == values_digest(as_dicts)  # the stale check sees no change


class _CountingValues(dict):
    """A mapping's member -> values that counts the lookups made in it."""

    lookups = 0

    def get(self, key, default=None):
        _CountingValues.lookups += 1
        return super().get(key, default)


def test_updated_values_find_their_audience_only_when_a_conflict_is_named() -> None:
    """Each updated value's origin was found by walking every mapped audience of the
    destination: updates times audiences lookups (300 audiences of 20 members, 30 fields:
    54 million). The origin is now looked up when a conflict names it, and is the same."""
    from types import SimpleNamespace

    from reconciler.plan import FieldUpdate
    from reconciler.state.fields import _sent_values

    audiences = 50
    items = [
        SimpleNamespace(
            list_name=f"aud-{a}",
            fields=SimpleNamespace(
                values=_CountingValues({f"m{a}x{r}": {"tier": "new"} for r in range(4)})
            ),
        )
        for a in range(audiences)
    ]
    updates = [
        FieldUpdate(f"m{a}x{r}", "email", f"m{a}x{r}", None, {"tier": ("old", "new")})
        for a in range(audiences)
        for r in range(4)
    ]
    _CountingValues.lookups = 0
    sent = list(_sent_values([], updates, items))
    assert [(s.field, s.value) for s in sent] == [("tier", "new")] * len(updates)
    assert _CountingValues.lookups == 0
    # Named on a conflict: the audience that made the member's value.
    assert sent[-1].ref.item is items[-1]
    assert sent[5].ref.item is items[1]
    assert (sent[-1].ref.key, sent[-1].ref.field) == (f"m{audiences - 1}x3", "tier")


class _CountingMap(dict):
    """An audience's members or values that counts the look-ups made in it."""

    lookups = 0

    def __contains__(self, key: object) -> bool:
        _CountingMap.lookups += 1
        return super().__contains__(key)

    def __getitem__(self, key: str) -> object:
        _CountingMap.lookups += 1
        return super().__getitem__(key)

    def get(self, key: str, default: object = None) -> object:
        _CountingMap.lookups += 1
        return super().get(key, default)


@pytest.mark.parametrize("mixed", [False, True], ids=["one mode", "mixed modes"])
def test_merging_many_audiences_asks_each_about_its_own_members_only(mixed: bool) -> None:
    """Each field two audiences gave one member had the audience it came from found by a
    walk of every audience before (and each member to read or update by another): look-ups
    quadratic in the audiences, 29 s of merge_fields and 16 s more for 1,000 audiences of
    500 members (bench/field_merge.py). Now a conflict alone walks, and where the
    mappings' modes mix each member's first audience is kept as it is met."""
    audiences, size = 60, 4
    lists = []
    for a in range(audiences):
        # Each person is on two audiences next to each other, first met late in the order.
        keys = [f"p{g}x{r}@example.com" for g in (a - 1, a) if g >= 0 for r in range(size)]
        values = _CountingMap({k: {"plan": "pro", "ltv": 3, "city": "x"} for k in keys})
        members_of = _CountingMap(members(*keys))
        lists.append(MappedList(f"a{a}", members_of, values, mixed and a % 2 == 1))
    rows = sum(len(m.values) for m in lists)
    _CountingMap.lookups = 0
    merged = merge_fields(lists)
    wanted = merged.to_read(lists)
    found = merged.members.of(wanted)
    live = {key: {"plan": "free", "ltv": 3, "city": "x"} for key in wanted}
    updates = plan_field_updates(merged, wanted, live)
    assert _CountingMap.lookups <= 4 * rows
    assert [u.key for u in updates] == sorted(wanted) and len(updates) == audiences * size
    assert all(found[u.key] is merged.members[u.key] for u in updates)
    assert {u.key: u.changes for u in updates}[f"p{audiences - 1}x0@example.com"] == {
        "plan": ("free", "pro")
    }
    assert merged.conflicts == []  # equal scalars never conflict, in either mode


def test_one_text_as_an_email_and_as_another_persons_userid_is_written_for_neither() -> None:
    """'a' keys a@example.com by email, 'b' keys by userId a@example.com a person whose
    email is b@example.com (two profiles): the planner grouped them by text, reporting
    a conflict of two people, reading one profile and writing a's field to b's profile.
    A userId a@example.com given with that same email is one person: merged as before."""
    a = MappedList(
        "a",
        {"a@example.com": make_member("hybrid", "a@example.com", None)},
        {"a@example.com": {"other": "platinum", "tier": "gold"}},
        adding={"a@example.com"},
    )
    b = MappedList(
        "b",
        {"a@example.com": make_member("hybrid", "b@example.com", "a@example.com")},
        {"a@example.com": {"tier": "silver"}},
    )
    merged = merge_fields([a, b])
    assert [(aud, i.where, i.message.split(" gets ")[0]) for aud, i in merged.conflicts] == [
        ("b", "audiences 'a' and 'b'", "field 'other'"),
        ("b", "audiences 'a' and 'b'", "field 'tier'"),
    ]
    assert "as an email in one and as a userId" in merged.conflicts[0][1].message
    assert merged.add_fields(a) == {"a@example.com": {}}
    assert merged.to_read([a, b]) == {}
    same = MappedList(
        "b",
        {"a@example.com": make_member("hybrid", "a@example.com", "a@example.com")},
        {"a@example.com": {"tier": "gold"}},
    )
    merged = merge_fields([a, same])
    assert merged.conflicts == []
    assert merged.add_fields(a) == {"a@example.com": {"other": "platinum", "tier": "gold"}}


def test_a_members_profile_is_named_by_a_list_that_gives_it_values() -> None:
    """'b' holds userId c@example.com (email d@example.com) among its members but gives
    it no values (consent holds it back, or, beside a --target, its value of the field
    was not made); 'a' keys c@example.com by email and maps a field. No list gives both
    kinds values, so nothing conflicts, but the update named the member as the first
    list holding the key has it: a's value went to the userId's profile."""
    b = MappedList(
        "b",
        {"c@example.com": make_member("hybrid", "d@example.com", "c@example.com")},
        {},
    )
    a = mapped("a", {"c@example.com": {"tier": "gold"}})
    merged = merge_fields([b, a])
    wanted = merged.to_read([b, a])
    (update,) = plan_field_updates(merged, wanted, {"c@example.com": {"tier": "silver"}})
    assert (update.key_kind, update.email, update.user_id) == ("email", "c@example.com", None)
    assert merged.members.of(["c@example.com"])["c@example.com"].key_kind == "email"


@pytest.mark.parametrize("email", [None, "d@example.com"], ids=["alone", "another-email"])
def test_a_userid_given_with_that_same_email_is_of_neither_kind(email: str | None) -> None:
    """'a' keys by userId c@example.com a person given with that same email; 'b' keys the
    same userId, alone or with another email: one userId, one profile in Iterable, so
    both audiences' fields are written to it. Beside an audience keying the text by email,
    the userId given alone is still another profile's, and held back."""
    a = MappedList(
        "a",
        {"c@example.com": make_member("hybrid", "c@example.com", "c@example.com")},
        {"c@example.com": {"tier": "gold"}},
        adding={"c@example.com"},
    )
    b = MappedList(
        "b",
        {"c@example.com": make_member("hybrid", email, "c@example.com")},
        {"c@example.com": {"other": "platinum"}},
        adding={"c@example.com"},
    )
    merged = merge_fields([a, b])
    assert merged.conflicts == []
    assert merged.add_fields(a) == {"c@example.com": {"tier": "gold"}}
    assert merged.add_fields(b) == {"c@example.com": {"other": "platinum"}}
    by_email = MappedList(
        "e",
        {"c@example.com": make_member("hybrid", "c@example.com", None)},
        {"c@example.com": {"tier": "gold"}},
    )
    merged = merge_fields([by_email, a, b])
    assert [(aud, i.where) for aud, i in merged.conflicts] == [
        ("b", "audiences 'e' and 'b'"),
        ("b", "audiences 'e' and 'b'"),
    ]
