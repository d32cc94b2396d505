"""plan/planner.py directly: what a list plan keeps back from removal and adding, and which
lists prune may delete (diff_members itself is in test_planner.py)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.members.identity import Member, make_member
from reconciler.plan.ownership import mark
from reconciler.plan.planner import keep_respelled, plan_deletions, plan_list


def _members(*emails: str) -> dict[str, Member]:
    built = (make_member("email", email, None) for email in emails)
    return {m.key: m for m in built}


def _plan(desired: dict[str, Member], live: set[str], **options: object):
    return plan_list(
        audience="a",
        list_name="L",
        description=None,
        desired=desired,
        live_list_id=7,
        live_members=live,
        **options,
    )


def test_a_live_member_skipped_as_invalid_is_not_removed_and_is_counted() -> None:
    lp = _plan(_members("a@x.io"), {"a@x.io", "b@x.io", "c@x.io"}, skipped_ids={"b@x.io"})
    assert lp.remove == ("c@x.io",)
    assert lp.kept_for_skipped == 1
    assert lp.add == () and lp.unchanged == 1 and lp.live_count == 3


def test_another_spelling_of_a_desired_email_is_neither_removed_nor_added_beside() -> None:
    desired = _members("anna@bücher.de", "bob@x.io")
    anna = next(m for m in desired.values() if m.email != "bob@x.io")
    # Iterable holds Anna under the ASCII (punycode) form of her domain.
    lp = _plan(desired, {"anna@xn--bcher-kva.de", "gone@x.io"})
    assert [m.key for m in lp.add] == ["bob@x.io"]
    assert lp.remove == ("gone@x.io",)
    assert lp.kept_respelled == 1
    assert lp.respelled == (anna.key,)


def test_keep_respelled_leaves_plain_addresses_as_the_diff_made_them() -> None:
    desired = _members("a@x.io")
    add = list(desired.values())
    assert keep_respelled(desired, {"z@x.io"}, add, ["z@x.io"]) == (add, ["z@x.io"], 0, ())


def test_an_add_only_audience_holds_back_and_counts_its_removals() -> None:
    lp = _plan(_members("a@x.io"), {"a@x.io", "b@x.io", "c@x.io"}, removals="never")
    assert lp.remove == ()
    assert lp.held_back_removals == 2


def test_a_list_to_create_ignores_live_members_given_for_it() -> None:
    lp = plan_list(
        audience="a",
        list_name="L",
        description="d",
        desired=_members("a@x.io", "b@x.io"),
        live_list_id=None,
        live_members={"a@x.io", "old@x.io"},
    )
    assert lp.create and lp.list_id is None
    assert sorted(m.key for m in lp.add) == ["a@x.io", "b@x.io"]
    assert lp.remove == () and lp.live_count == 0 and lp.unchanged == 0


@dataclass(frozen=True)
class _Live:
    id: int
    name: str
    description: str | None
    list_type: str = "Standard"


def test_prune_deletes_only_undeclared_standard_lists_carrying_the_marker() -> None:
    live = [
        _Live(5, "z-old", mark("old", "z")),
        _Live(3, "a-old", mark(None)),
        _Live(4, "kept", mark(None, "kept")),  # still declared
        _Live(6, "hand-made", "made by hand"),  # no marker: never a candidate
        _Live(8, "dynamic", mark(None), list_type="Dynamic"),
    ]
    deletions = plan_deletions(live, {"kept"})
    assert [(d.list_name, d.list_id) for d in deletions] == [("a-old", 3), ("z-old", 5)]
