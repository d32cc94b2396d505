"""state/named_by_email.py: which lists' plans look like projectType userId declared for
an email-based project, judged from the plan's own adds and removes (no read)."""

from __future__ import annotations

from reconciler.members.identity import Member
from reconciler.plan import ListPlan
from reconciler.state.named_by_email import named_by_email, named_by_email_notes


def _plan(name: str, add: list[str], remove: list[str], live: int) -> ListPlan:
    members = tuple(Member(key, "userId", user_id=key) for key in add)
    return ListPlan(name, name, 7, False, None, members, tuple(remove), 0, live, len(add))


def test_every_emailed_member_swapped_for_user_ids_is_named() -> None:
    swapped = _plan("vip", ["u1", "u2"], ["a@x.io", "b@x.io"], 2)
    assert named_by_email("userId", [swapped]) == ("vip",)
    # Under any other declared type the same plan says nothing.
    assert named_by_email("hybrid", [swapped]) == ()
    assert named_by_email("email", [swapped]) == ()


def test_plans_with_another_explanation_are_not_named() -> None:
    lists = [
        # A live member kept: some rows matched, so the identifiers do.
        _plan("kept", ["u1"], ["a@x.io"], 2),
        # userIds that are emails, as a userID-based project may use.
        _plan("emails-as-ids", ["c@x.io"], ["a@x.io"], 1),
        # A removal named by something other than an email.
        _plan("mixed", ["u1"], ["a@x.io", "u9"], 2),
        # Nothing added, or nothing removed.
        _plan("only-removes", [], ["a@x.io"], 1),
        _plan("only-adds", ["u1"], [], 0),
    ]
    assert named_by_email("userId", lists) == ()


def test_the_note_names_the_line_that_writes_project_type() -> None:
    (note,) = named_by_email_notes("prod", ["vip"], "manifests/dest-prod.yaml:9:20")
    assert note.startswith("list 'vip': Iterable names every member of it by an email")
    assert "destination 'prod' declares projectType userId" in note
    assert "manifests/dest-prod.yaml:9:20" in note
