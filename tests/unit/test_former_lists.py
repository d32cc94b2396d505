"""An audience's former lists (plan/former.py): one rule, which plan applies by holding
back who left them themselves, and import by refusing to adopt them."""

from __future__ import annotations

from reconciler.adopt import held_lists
from reconciler.iterable import ListInfo
from reconciler.plan import ListPlan
from reconciler.plan.former import FormerLists
from reconciler.plan.ownership import mark
from reconciler.planning import with_former_lists

LONG_KEY = "b" * 200


def _info(list_id: int, name: str, description: str | None = None) -> ListInfo:
    return ListInfo(list_id, name, description, "Standard", None)


LISTS = [
    _info(1, "VIP Customers", mark(None, "vip", "1a2b3c4d")),  # vip's list before
    _info(2, "VIP 2026", mark(None, "vip", "1a2b3c4d")),  # vip's list now
    _info(3, "news"),  # Segment's list for audience news, which now has a listName
    _info(4, "Newsletter", mark(None, "news", "1a2b3c4d")),
    _info(5, "churn", mark(None, "churn", "1a2b3c4d")),  # a renamed key's old list
    _info(6, "churned", mark(None, "churned", "1a2b3c4d", [5, 77])),  # 77: deleted since
    _info(7, "old long", mark(None, LONG_KEY, "1a2b3c4d")),
    _info(8, "unrelated"),
    _info(9, "churn-2", mark(None, "churn", "1a2b3c4d")),  # not carried in the marker
]
AUDIENCES = [
    ("vip", "VIP 2026"),
    ("news", "Newsletter"),
    ("churned", "churned"),
    (LONG_KEY, "long now"),
    ("unrelated-audience", "unrelated-audience"),
]


def test_the_former_lists_an_audience_s_plans_hold_back_from_are_found_for_import() -> None:
    """What import leaves alone (declared, such a list would hold no one back from the
    audience's list): a list made for the audience under another listName, the unmarked
    list named by its key while it has a listName (adopted from Segment), and the lists
    its list's marker says it was created after (a renamed key); a marker naming a long
    audience cut to fit counts too."""
    assert held_lists(AUDIENCES, LISTS) == {
        1: ("vip", "VIP 2026"),
        3: ("news", "Newsletter"),
        5: ("churned", "churned"),
        7: (LONG_KEY, "long now"),
        77: ("churned", "churned"),
    }
    # An audience without a listName manages the list named by its key: not its former
    # (list 4, made for it as 'Newsletter', is).
    assert held_lists([("news", "news")], LISTS) == {4: ("news", "news")}


def _plan(key: str, list_name: str, list_id: int | None) -> ListPlan:
    return ListPlan(key, list_name, list_id, list_id is None, None, (), (), 0, 0, 0)


def test_plan_and_import_take_the_same_lists_for_an_audience_s_former_ones() -> None:
    """Plan holds back the departures of exactly the lists import refuses to adopt: the
    rule is defined once (FormerLists), so the two cannot drift apart."""
    ids = {x.name: x.id for x in LISTS}
    plans = [_plan(key, name, ids.get(name)) for key, name in AUDIENCES]
    planned = with_former_lists(plans, LISTS, set())
    held = held_lists(AUDIENCES, LISTS)
    for lp in planned:
        refused = {i for i, (key, _) in held.items() if key == lp.audience}
        assert set(lp.former_list_ids) == refused, lp.audience
    assert [lp.former_list_ids for lp in planned] == [(1,), (3,), (5, 77), (7,), ()]


def test_a_list_another_manifest_declares_is_never_an_audience_s_former_list() -> None:
    """A declared list is its own audience's: neither plan nor import takes it for a
    former list of the audience whose marker or key it carries."""
    formers = FormerLists(LISTS)
    assert formers.of("vip", [2], planned={"VIP 2026"}) == {1}
    assert formers.of("vip", [2], planned={"VIP 2026", "VIP Customers"}) == set()
    assert formers.of("churned", [6], planned={"churned", "churn"}) == {77}
    # Before its plan creates it, an audience's list is no one's own.
    assert formers.of("vip", [], planned={"VIP 3"}) == {1, 2}
    # Nothing to hold: no marker names an audience and no list is Standard.
    assert not FormerLists([ListInfo(1, "x", None, "Dynamic", None)])
