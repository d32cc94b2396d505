"""The consent guard's pure part (issue 19, point 1): who left a list themselves, according
to Iterable's emailUnSubscribe events, and who of a plan's adds is held back."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.members.identity import make_member
from reconciler.members.model import Engine, EngineSettings, members_into_table
from reconciler.plan import Plan, plan_destination, plan_list
from reconciler.render.plans import plan_json, plan_markdown, plan_text
from reconciler.state.consent import (
    Optouts,
    channel_unsubscribed,
    email_channel_ids,
    hold_back,
    recheck_saved,
    self_departures,
)

LIST = 7


def event(at: str, source: str | None, *, email=None, user_id=None, lists=(LIST,), **extra):
    out = {"createdAt": f"2026-01-0{at} 10:00:00 +00:00", "emailListIds": list(lists), **extra}
    if source is not None:
        out["unsubSource"] = source
    if email is not None:
        out["email"] = email
    if user_id is not None:
        out["userId"] = user_id
    return out


def test_a_person_s_own_unsubscribe_counts_and_an_api_one_does_not():
    found = self_departures(
        [
            event("1", "EmailLink", email="Self@X.io"),
            event("1", "ListAPI", email="api@x.io"),
            event("1", "API", email="old-api@x.io"),
            event("1", "WebApp", user_id="U1"),
            event("1", None, email="nosource@x.io"),
            event("1", "EmailLink", email="other@x.io", lists=(99,)),
        ],
        [LIST],
    )
    assert {(d.email, d.user_id, d.source) for d in found[LIST]} == {
        ("self@x.io", None, "EmailLink"),
        (None, "U1", "WebApp"),
        ("nosource@x.io", None, "unknown"),  # unknown is the person's: the safe side
    }
    assert 99 not in found


def test_only_the_latest_unsubscribe_from_the_list_counts():
    found = self_departures(
        [
            # Left by a link, came back, then removed by an API client: may be re-added.
            event("1", "EmailLink", email="back@x.io"),
            event("2", "ListAPI", email="back@x.io"),
            # Removed by the API, then left by a link: held back.
            event("1", "ListAPI", email="gone@x.io"),
            event("2", "Complaint", email="gone@x.io"),
            # Same second: the person's own unsubscribe is the later.
            event("3", "ListAPI", email="tie@x.io"),
            event("3", "EmailLink", email="tie@x.io"),
            # The older singular field.
            {
                "createdAt": "2026-01-01 10:00:00 +00:00",
                "email": "single@x.io",
                "unsubSource": "EmailLink",
                "emailListId": LIST,
            },
        ],
        [LIST],
    )
    assert sorted(d.email for d in found[LIST]) == ["gone@x.io", "single@x.io", "tie@x.io"]


def test_the_latest_unsubscribe_is_the_latest_moment_whatever_form_or_offset_it_is_given_in():
    """Ordered by text, 09:30 at -05:00 (14:30 UTC) came before 10:00 UTC, so a person's own
    unsubscribe after an API removal read as the older one, and she was re-added."""

    def at(created, source, email):
        return {"createdAt": created, "emailListIds": [LIST], "unsubSource": source, "email": email}

    found = self_departures(
        [
            at("2026-01-01 10:00:00 +00:00", "ListAPI", "offset@x.io"),
            at("2026-01-01 09:30:00 -05:00", "EmailLink", "offset@x.io"),
            # Epoch milliseconds (14:30 UTC) beside Iterable's text form (10:00 UTC).
            at(1767277800000, "Complaint", "epoch@x.io"),
            at("2026-01-01 10:00:00 +00:00", "ListAPI", "epoch@x.io"),
            # A removal whose moment is unreadable does not outrank a dated own unsubscribe.
            at("2026-01-01 10:00:00 +00:00", "EmailLink", "undated@x.io"),
            at("yesterday", "ListAPI", "undated@x.io"),
        ],
        [LIST],
    )
    assert {d.email for d in found[LIST]} == {"offset@x.io", "epoch@x.io", "undated@x.io"}


@pytest.mark.parametrize("created", [10**400, float("nan"), float("inf")])
def test_an_epoch_that_is_no_moment_is_an_undated_event(created):
    """An epoch past a float (10**400 ms) ended the plan as 'internal error: OverflowError',
    and NaN, which sorts before and after nothing, or Infinity, which outranked every dated
    event, are JSON Python reads too: each is an event without a moment, first."""

    def at(when, source):
        return {"createdAt": when, "emailListIds": [LIST], "unsubSource": source, "email": "a@x.io"}

    found = self_departures(
        [at("2026-01-01 10:00:00 +00:00", "EmailLink"), at(created, "ListAPI")], [LIST]
    )
    assert [d.email for d in found[LIST]] == ["a@x.io"]


def test_an_own_unsubscribe_is_not_outranked_by_an_api_removal_it_cannot_be_shown_to_precede():
    """An own unsubscribe and an API removal in one second (Iterable gives seconds), the
    removal second in the export, or an own unsubscribe without a readable moment beside a
    dated removal: the removal was taken as her latest and she was re-added."""

    def at(created, source, email):
        event = {"emailListIds": [LIST], "unsubSource": source, "email": email}
        return event if created is None else {**event, "createdAt": created}

    found = self_departures(
        [
            at("2026-01-01 10:00:00 +00:00", "EmailLink", "tie@x.io"),
            at("2026-01-01 10:00:00 +00:00", "ListAPI", "tie@x.io"),
            # One second given as epoch milliseconds, the other as text.
            at(1767261600000, "Complaint", "forms@x.io"),
            at("2026-01-01 10:00:00 +00:00", "ListAPI", "forms@x.io"),
            at(None, "EmailLink", "undated@x.io"),
            at("2026-01-01 10:00:00 +00:00", "ListAPI", "undated@x.io"),
            at("yesterday", "EmailLink", "unreadable@x.io"),
            at("2026-01-01 10:00:00 +00:00", "ListAPI", "unreadable@x.io"),
            # A second later, the removal is her latest.
            at("2026-01-01 10:00:00 +00:00", "EmailLink", "later@x.io"),
            at("2026-01-01 10:00:01 +00:00", "ListAPI", "later@x.io"),
        ],
        [LIST],
    )
    assert sorted(d.email for d in found.get(LIST, ())) == [
        "forms@x.io",
        "tie@x.io",
        "undated@x.io",
        "unreadable@x.io",
    ]


def test_an_api_removal_naming_the_person_by_more_identifiers_is_their_latest():
    """Events name a person by the identifiers their profile had then: one who left by a
    link while known by a userId alone, and was removed by an API client after their
    profile gained an email, was held back for good under the email's key."""
    found = self_departures(
        [
            event("1", "EmailLink", user_id="ux"),
            event("2", "ListAPI", email="x@x.io", user_id="ux"),
            event("1", "EmailLink", email="y@x.io"),
            event("2", "ListAPI", email="y@x.io", user_id="uy"),
        ],
        [LIST],
    )
    assert found == {}


def test_an_api_removal_of_another_profile_sharing_the_email_is_not_theirs():
    """In userID-based projects profiles may share an email: the removal of one by an API
    client is no later unsubscribe of the other, who left the list themselves (it was
    taken as theirs, keyed by the email alone, and they were re-added)."""
    found = self_departures(
        [
            event("1", "EmailLink", email="shared@x.io", user_id="u1"),
            event("2", "ListAPI", email="shared@x.io", user_id="u2"),
            # An API event that names fewer identifiers is not taken as theirs either.
            event("1", "EmailLink", email="z@x.io", user_id="uz"),
            event("2", "ListAPI", email="z@x.io"),
        ],
        [LIST],
    )
    assert {(d.email, d.user_id) for d in found[LIST]} == {
        ("shared@x.io", "u1"),
        ("z@x.io", "uz"),
    }


def test_channel_unsubscribes_of_email_channels_only():
    channels = [
        {"id": 1, "messageMedium": "Email", "channelType": "Marketing"},
        {"id": 2, "messageMedium": "SMS", "channelType": "Marketing"},
    ]
    assert email_channel_ids(channels) == {1}
    profiles = [
        {"email": "Mail@X.io", "unsubscribedChannelIds": [1]},
        {"email": "sms@x.io", "unsubscribedChannelIds": [2]},
        {"userId": "u9", "unsubscribedChannelIds": [1, 2]},
        {"email": "none@x.io"},
    ]
    assert channel_unsubscribed(profiles, frozenset({1})) == ({"mail@x.io"}, {"u9"})
    # Channels unknown: any channel unsubscribe holds back.
    assert channel_unsubscribed(profiles, None) == ({"mail@x.io", "sms@x.io"}, {"u9"})


def _adding(*emails, resubscribe=False, list_id=LIST):
    desired = {m.key: m for m in (make_member("email", e, None) for e in emails)}
    lp = plan_list(
        audience="vip",
        list_name="vip",
        description=None,
        desired=desired,
        live_list_id=list_id,
        live_members=set(),
    )
    return dataclasses.replace(lp, resubscribe_allowed=resubscribe)


def _optouts():
    departures = self_departures(
        [event("1", "EmailLink", email="left@x.io"), event("1", "WebApp", email="ui@x.io")],
        [LIST],
    )
    return Optouts(departures, frozenset({"chan@x.io"}), frozenset())


def test_held_back_members_are_not_added_and_are_named_by_reason():
    lp = hold_back(_adding("keep@x.io", "left@x.io", "ui@x.io", "chan@x.io"), _optouts())
    assert [m.key for m in lp.add] == ["keep@x.io"]
    assert sorted(lp.left_themselves) == ["left@x.io", "ui@x.io"]
    assert dict(lp.left_sources) == {"EmailLink": 1, "WebApp": 1}
    assert lp.channel_unsubscribed == ("chan@x.io",)
    assert lp.resubscribed == ()


def test_resubscribe_allowed_adds_them_and_names_them():
    lp = hold_back(_adding("keep@x.io", "left@x.io", "chan@x.io", resubscribe=True), _optouts())
    assert sorted(m.key for m in lp.add) == ["chan@x.io", "keep@x.io", "left@x.io"]
    assert sorted(lp.resubscribed) == ["chan@x.io", "left@x.io"]
    assert lp.left_themselves == () and lp.channel_unsubscribed == ()


def test_a_new_list_holds_nobody_back_for_another_list_s_departures():
    lp = hold_back(_adding("left@x.io", list_id=None), _optouts())
    assert [m.key for m in lp.add] == ["left@x.io"]


def test_every_format_shows_the_held_back_masked_and_resubscribe_in_bold():
    held = hold_back(_adding("keep@x.io", "left@x.io", "chan@x.io"), _optouts())
    plan = Plan((plan_destination("prod", "email", [held], []),))
    text = plan_text(plan)
    assert "held back: left the list themselves: 1 (EmailLink 1" in text
    assert "held back: unsubscribed from the channel: 1" in text
    assert "Held back for consent: 1 left the list themselves, 1 unsubscribed" in text
    markdown = plan_markdown(plan)
    assert "held back: left the list themselves: 1" in markdown
    assert "held back: unsubscribed from the channel: 1" in markdown
    body = plan_json(plan)
    assert '"members_left_themselves": 1' in body
    for shown in (text, markdown, body):
        assert "left@x.io" not in shown and "chan@x.io" not in shown

    again = hold_back(_adding("keep@x.io", "left@x.io", resubscribe=True), _optouts())
    plan = Plan((plan_destination("prod", "email", [again], []),))
    assert "!!! resubscribe: allowed for vip" in plan_text(plan)
    markdown = plan_markdown(plan)
    assert "**resubscribe: allowed**" in markdown
    assert "**1 re-subscribed (resubscribe: allowed)**" in markdown


def _plan(lp):
    return Plan((plan_destination("prod", "email", [lp], []),))


def test_a_saved_plan_holds_back_who_the_plan_made_at_apply_holds_back():
    # Saved: ui@ had left when the plan was made. Now left@ has too (by a link) and chan@
    # unsubscribed from the channel.
    saved = hold_back(
        _adding("keep@x.io", "left@x.io", "ui@x.io", "chan@x.io"),
        Optouts(self_departures([event("1", "WebApp", email="ui@x.io")], [LIST])),
    )
    now = hold_back(_adding("keep@x.io", "left@x.io", "ui@x.io", "chan@x.io"), _optouts())
    (lp,) = recheck_saved(_plan(saved), _plan(now)).destinations[0].lists
    assert [m.key for m in lp.add] == ["keep@x.io"]
    assert sorted(lp.left_themselves) == ["left@x.io", "ui@x.io"]
    assert dict(lp.left_sources) == {"EmailLink": 1, "WebApp": 1}
    assert lp.channel_unsubscribed == ("chan@x.io",)
    assert sorted(lp.held_since_plan) == ["chan@x.io", "left@x.io"]
    assert "2 of those held back opted out after the plan was made" in plan_text(
        recheck_saved(_plan(saved), _plan(now))
    )


def test_a_saved_plan_nobody_opted_out_of_is_applied_as_saved():
    saved = _adding("keep@x.io", "also@x.io")
    assert recheck_saved(_plan(saved), _plan(saved)) == _plan(saved)


def test_a_saved_plan_with_resubscribe_allowed_names_the_re_added():
    saved = _adding("keep@x.io", "left@x.io", resubscribe=True)
    now = hold_back(_adding("keep@x.io", "left@x.io", resubscribe=True), _optouts())
    (lp,) = recheck_saved(_plan(saved), _plan(now)).destinations[0].lists
    assert sorted(m.key for m in lp.add) == ["keep@x.io", "left@x.io"]
    assert lp.resubscribed == ("left@x.io",)


def test_both_engines_hold_back_alike_and_leaving_the_list_outranks_the_channel(tmp_path):
    # both@ left the list by a link and is unsubscribed from the channel too: one reason,
    # the list (it says more), whether the adds are members or rows in DuckDB.
    optouts = Optouts(
        self_departures(
            [event("1", "EmailLink", email="both@x.io"), event("1", "WebApp", email="ui@x.io")],
            [LIST],
        ),
        frozenset({"both@x.io", "chan@x.io"}),
        frozenset(),
    )
    emails = ("keep@x.io", "both@x.io", "ui@x.io", "chan@x.io")
    in_python = hold_back(_adding(*emails), optouts)
    with Engine(EngineSettings(engine="duckdb", temp_dir=tmp_path)) as engine:
        lp = _adding(*emails)
        rows = members_into_table(engine, lp.add, len(lp.add))
        in_duckdb = hold_back(dataclasses.replace(lp, add=rows), optouts)
        assert [m.key for m in in_duckdb.add] == ["keep@x.io"]
    for held in (in_python, in_duckdb):
        assert sorted(held.left_themselves) == ["both@x.io", "ui@x.io"]
        assert dict(held.left_sources) == {"EmailLink": 1, "WebApp": 1}
        assert held.channel_unsubscribed == ("chan@x.io",)
