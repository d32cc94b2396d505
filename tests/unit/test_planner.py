from reconciler.members.identity import make_member
from reconciler.plan import Plan, diff_members, plan_destination, plan_list


def members(project_type, *pairs):
    out = {}
    for email, user_id in pairs:
        m = make_member(project_type, email, user_id)
        out[m.key] = m
    return out


def test_diff_adds_missing_and_removes_extra():
    desired = members("email", ("a@x.io", None), ("b@x.io", None))
    add, remove = diff_members(desired, {"b@x.io", "c@x.io"})
    assert [m.key for m in add] == ["a@x.io"]
    assert remove == ["c@x.io"]


def test_hybrid_member_present_under_either_identifier():
    desired = members("hybrid", ("a@x.io", "u1"), ("b@x.io", "u2"))
    # getUsers with preferUserId reports u1 by its userId and b by its email
    add, remove = diff_members(desired, {"u1", "b@x.io"})
    assert add == [] and remove == []


def test_user_ids_are_case_sensitive():
    desired = members("userId", (None, "ABC"))
    add, remove = diff_members(desired, {"abc"})
    assert [m.key for m in add] == ["ABC"]
    assert remove == ["abc"]


def test_new_list_is_created_and_gets_every_member():
    desired = members("email", ("a@x.io", None), ("b@x.io", None))
    lp = plan_list(
        audience="vip",
        list_name="vip",
        description=None,
        desired=desired,
        live_list_id=None,
        live_members=(),
    )
    assert lp.create and len(lp.add) == 2 and lp.remove == ()
    assert [c["type"] for c in lp.changes(str)] == ["create_list", "add_members"]


def test_matching_list_has_no_changes_and_summary_counts():
    desired = members("email", ("a@x.io", None))
    same = plan_list(
        audience="a",
        list_name="a",
        description=None,
        desired=desired,
        live_list_id=7,
        live_members={"a@x.io"},
    )
    other = plan_list(
        audience="b",
        list_name="b",
        description=None,
        desired=desired,
        live_list_id=8,
        live_members={"z@x.io", "y@x.io"},
    )
    plan = Plan((plan_destination("prod", "email", [other, same], []),))
    assert not same.has_changes and same.unchanged == 1
    assert [lp.list_name for lp in plan.destinations[0].lists] == ["a", "b"]
    summary = plan.to_dict(str)["summary"]
    assert summary == {
        "lists_to_create": 0,
        "lists_to_delete": 0,
        "members_to_add": 1,
        "members_to_remove": 2,
        "users_to_update": 0,
        "members_skipped": 0,
        "field_values_skipped": 0,
        "lists_unread": 0,
        "lists_unmatched": 0,
        "members_forgotten": 0,
        "members_not_created": 0,
        "members_left_themselves": 0,
        "members_channel_unsubscribed": 0,
        "members_resubscribed": 0,
        "members_to_unsubscribe_from_channel": 0,
    }


def test_channel_unsubscribe_is_carried_on_removals():
    lp = plan_list(
        audience="a",
        list_name="a",
        description=None,
        desired={},
        live_list_id=1,
        live_members={"x@x.io"},
        campaign_id=5,
        channel_unsubscribe=True,
    )
    change = lp.changes(str)[0]
    assert change["type"] == "remove_members" and change["channel_unsubscribe"] is True
    assert lp.campaign_id == 5
    # The JSON plan says what the removals do beyond the list: a reviewer (or a CI check)
    # reading only it sees the campaign they count against, and how many lose the channel.
    assert change["campaign_id"] == 5
    plan = Plan((plan_destination("d", "email", [lp], []),))
    assert plan.to_dict(str)["summary"]["members_to_unsubscribe_from_channel"] == 1


def test_the_json_plan_says_adds_create_no_users():
    lp = plan_list(
        audience="a",
        list_name="a",
        description=None,
        desired=members("hybrid", ("n@x.io", None)),
        live_list_id=1,
        live_members=set(),
        update_existing_users_only=True,
    )
    (change,) = lp.changes(str)
    assert change["type"] == "add_members" and change["update_existing_users_only"] is True


def test_a_lists_counts_add_up_unchanged_members_are_those_already_on_it():
    desired = members("email", ("a@x.io", None), ("b@x.io", None), ("c@x.io", None))
    lp = plan_list(
        audience="a",
        list_name="a",
        description=None,
        desired=desired,
        live_list_id=7,
        live_members={"a@x.io", "z@x.io"},
    )
    (listed,) = Plan((plan_destination("prod", "email", [lp], []),)).to_dict(str)["destinations"][
        0
    ]["lists"]
    assert (listed["live_members"], listed["desired_members"]) == (2, 3)
    # a@ stays; b@ and c@ are added; z@ is removed: 2 + 2 - 1 = 3.
    assert (listed["unchanged_members"], listed["resulting_members"]) == (1, 3)
