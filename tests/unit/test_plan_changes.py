"""The plan as a sequence of typed changes (plan/model.py: CreateList, AddMembers,
UpdateFields, RemoveMembers, DeleteList), with plain data and no server: what
DestinationPlan.changes() yields, in the order apply carries it out, and that each change
holds the plan's own member sequences (lazy DuckDB views in large plans), never a copy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from reconciler.members.identity import Member, make_member
from reconciler.plan import (
    AddMembers,
    CreateList,
    DeleteList,
    DestinationPlan,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
    RemoveMembers,
    UpdateFields,
)


def member(email: str) -> Member:
    return make_member("email", email, None)


def list_plan(
    name: str,
    *,
    list_id: int | None = None,
    add: Sequence[Member] = (),
    remove: Sequence[str] = (),
    live: int = 0,
) -> ListPlan:
    return ListPlan(
        audience=name,
        list_name=name,
        list_id=list_id,
        create=list_id is None,
        description=None,
        add=add,
        remove=remove,
        unchanged=0,
        live_count=live,
        desired_count=live + len(add) - len(remove),
    )


def update(email: str) -> FieldUpdate:
    return FieldUpdate(email, "email", email, None, {"tier": (None, "gold")})


def described(dest: DestinationPlan) -> list[tuple[str, str | None]]:
    return [(c.kind, getattr(c, "list_name", None)) for c in dest.changes()]


def test_changes_come_kind_by_kind_in_the_order_apply_makes_them():
    """Every list's creation before any subscribe (members go only to lists that exist),
    subscribes before the field updates (a subscribe may create the user), then the
    unsubscribes and prune's deletions; within a kind, in the plan's list order."""
    dest = DestinationPlan(
        "prod",
        "email",
        (
            list_plan("old", list_id=1, add=(member("a@example.com"),), remove=("x@example.com",)),
            list_plan("same", list_id=2, live=3),
            list_plan("new", add=(member("b@example.com"),)),
            list_plan("empty-new"),
            list_plan("shrinks", list_id=3, remove=("y@example.com",), live=4),
        ),
        field_updates=(update("c@example.com"),),
        deletions=(ListDeletion(8, "gone"), ListDeletion(9, "retired")),
    )
    assert described(dest) == [
        ("create_list", "new"),
        ("create_list", "empty-new"),
        ("add_members", "old"),
        ("add_members", "new"),
        ("update_fields", None),
        ("remove_members", "old"),
        ("remove_members", "shrinks"),
        ("delete_list", "gone"),
        ("delete_list", "retired"),
    ]
    assert dest.has_changes


def test_each_change_names_the_record_it_acts_on():
    old = list_plan("old", list_id=1, add=(member("a@example.com"),), remove=("x@example.com",))
    new = list_plan("new", add=(member("b@example.com"),))
    updates = (update("c@example.com"),)
    gone = ListDeletion(8, "gone")
    dest = DestinationPlan("prod", "email", (old, new), field_updates=updates, deletions=(gone,))
    assert list(dest.changes()) == [
        CreateList(new),
        AddMembers(old),
        AddMembers(new),
        UpdateFields(updates),
        RemoveMembers(old),
        DeleteList(gone),
    ]
    delete = DeleteList(gone)
    assert (delete.list_id, delete.list_name) == (8, "gone")


def test_a_destination_without_changes_has_an_empty_sequence():
    dest = DestinationPlan("prod", "email", (list_plan("same", list_id=2, live=3),))
    assert list(dest.changes()) == []
    assert not dest.has_changes
    assert not Plan((dest,)).has_changes


def test_field_updates_alone_are_a_change():
    """A plan that only updates fields still has something to apply."""
    dest = DestinationPlan(
        "prod",
        "email",
        (list_plan("same", list_id=2, live=3),),
        field_updates=(update("c@example.com"),),
    )
    assert described(dest) == [("update_fields", None)]
    assert dest.has_changes


class Unread(Sequence[Any]):
    """A sequence as large as a DuckDB view of millions of rows, that fails when read: the
    change sequence may ask its length, never its rows."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        raise AssertionError("the change sequence read the members")

    def __iter__(self) -> Iterator[Any]:
        raise AssertionError("the change sequence read the members")


def test_changes_hold_the_plans_sequences_without_reading_or_copying_them():
    adds, removes, updates = Unread(10_000_000), Unread(5_000_000), Unread(2_000_000)
    lp = ListPlan(
        audience="big",
        list_name="big",
        list_id=1,
        create=False,
        description=None,
        add=adds,
        remove=removes,
        unchanged=0,
        live_count=5_000_000,
        desired_count=10_000_000,
    )
    dest = DestinationPlan("prod", "email", (lp,), field_updates=updates)
    assert dest.has_changes
    add, update_fields, remove = dest.changes()
    assert isinstance(add, AddMembers) and add.members is adds
    assert isinstance(update_fields, UpdateFields) and update_fields.updates is updates
    assert isinstance(remove, RemoveMembers) and remove.identifiers is removes
