"""plan/ on its own (issue 17: tests that mirror the core packages, not only CLI runs): the
planner's pieces, the policy judged on the plan, blast radius, and the plan file, each
called directly with plain data."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.iterable.client import CampaignInfo, ListInfo
from reconciler.members.engine import Engine, EngineSettings
from reconciler.members.engine.saved import SavedPlanTables
from reconciler.members.identity import Member, make_member
from reconciler.members.issue import MemberIssue
from reconciler.plan import (
    CampaignUse,
    DestinationPlan,
    FieldRead,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
    keep_skipped,
    list_plan,
    plan_deletions,
)
from reconciler.plan.campaigns import campaign_uses, needs_campaigns
from reconciler.plan.file import REVISION, VERSION, load_plan, save_plan
from reconciler.plan.ownership import mark
from reconciler.plan.policy import DEFAULT_MAX_REMOVAL_PERCENT
from reconciler.planning import case_only_notes


def members(count: int, prefix: str = "m") -> tuple[Member, ...]:
    return tuple(make_member("email", f"{prefix}{n}@example.com", None) for n in range(count))


def removal_plan(live: int, removed: int, **options: object) -> ListPlan:
    return list_plan(
        audience="a",
        list_name="a",
        description=None,
        live_list_id=1,
        add=(),
        remove=tuple(f"x{n}@example.com" for n in range(removed)),
        desired_count=live - removed,
        live_count=live,
        **options,
    )


# -- planner -----------------------------------------------------------------------------------


def test_removals_never_holds_back_what_the_source_lacks():
    lp = removal_plan(10, 3, removals="never")
    assert (lp.remove, lp.held_back_removals) == ((), 3)
    assert not lp.has_changes


def test_rows_skipped_as_invalid_keep_the_members_they_stand_for():
    remove, kept = keep_skipped(["a@x.io", "b@x.io", "u-1"], {"b@x.io", "u-1"})
    assert (remove, kept) == (["a@x.io"], 2)
    assert keep_skipped(["a@x.io"], ()) == (["a@x.io"], 0)


def test_only_marked_standard_lists_no_manifest_declares_are_deleted():
    """The client's ListInfo is what the planner's protocol describes."""
    lists = [
        ListInfo(1, "kept", mark(None, "kept"), "Standard", None),
        ListInfo(2, "orphan", mark("old", "orphan"), "Standard", None),
        ListInfo(3, "by-hand", "made by a person", "Standard", None),
        ListInfo(4, "dynamic", mark(None), "Dynamic", None),
        ListInfo(0, "another-orphan", mark(None), "Standard", None),
    ]
    deletions = plan_deletions(lists, declared_names={"kept"})
    assert deletions == [ListDeletion(0, "another-orphan"), ListDeletion(2, "orphan")]


# -- policy, judged on the plan ----------------------------------------------------------------


def test_removing_exactly_the_default_share_passes_and_more_is_blocked():
    at_limit = removal_plan(100, int(DEFAULT_MAX_REMOVAL_PERCENT))
    above = removal_plan(100, int(DEFAULT_MAX_REMOVAL_PERCENT) + 1)
    assert DestinationPlan("d", "email", (at_limit,)).violations() == []
    (violation,) = DestinationPlan("d", "email", (above,)).violations()
    assert violation.rule == "removals"
    assert f"more than maxRemovalPercent {DEFAULT_MAX_REMOVAL_PERCENT:g}%" in violation.message


def test_list_deletion_needs_the_destinations_permission():
    deletion = ListDeletion(7, "old")
    blocked = DestinationPlan("d", "email", (), deletions=(deletion,))
    allowed = DestinationPlan("d", "email", (), deletions=(deletion,), allow_list_deletion=True)
    assert [v.rule for v in blocked.violations()] == ["list_deletion"]
    assert allowed.violations() == []
    assert Plan((blocked,)).to_dict(str)["blocked"] is True
    assert Plan((allowed,)).to_dict(str)["blocked"] is False


def test_deletions_from_a_project_holding_no_declared_list_are_blocked_whatever_the_policy():
    # A key of another project reaches one like that: its lists are another repository's.
    deletion = ListDeletion(7, "old")
    plan = DestinationPlan(
        "d", "email", (), deletions=(deletion,), allow_list_deletion=True, declared_none_found=3
    )
    (violation,) = plan.violations()
    assert violation.rule == "list_deletion"
    assert "holding no list the manifests declare in it (they declare 3 lists there)" in (
        violation.message
    )


def test_summary_counts_every_kind_of_change():
    lp = list_plan(
        audience="a",
        list_name="a",
        description=None,
        live_list_id=None,
        add=members(3),
        remove=(),
        desired_count=3,
        live_count=0,
    )
    update = FieldUpdate("m0@example.com", "email", "m0@example.com", None, {"f": (1, 2)})
    plan = Plan(
        (
            DestinationPlan(
                "d",
                "email",
                (lp,),
                deletions=(ListDeletion(1, "x"),),
                field_updates=(update,),
                skipped_members=(("a", MemberIssue("f.csv:2", "invalid email", "y")),),
            ),
        )
    )
    s = plan.summary
    assert (s.lists_to_create, s.lists_to_delete, s.members_to_add, s.users_to_update) == (
        1,
        1,
        3,
        1,
    )
    assert (s.members_skipped, s.problems, s.changes) == (1, 1, 6)


# -- blast radius ------------------------------------------------------------------------------


def test_campaigns_are_matched_to_the_changed_lists_they_use():
    changed = removal_plan(10, 1)
    unchanged = list_plan(
        audience="b",
        list_name="b",
        description=None,
        live_list_id=2,
        add=(),
        remove=(),
        desired_count=5,
        live_count=5,
    )
    campaigns = [
        CampaignInfo(20, "Later", "Blast", "Scheduled", (2,), (1,)),
        CampaignInfo(10, "Welcome", "Triggered", "Running", (1, 1, 2), ()),
    ]
    uses = campaign_uses([changed, unchanged], campaigns)
    assert uses == [
        CampaignUse("a", 10, "Welcome", "Triggered", "Running", "send"),
        CampaignUse("a", 20, "Later", "Blast", "Scheduled", "suppression"),
    ]
    assert needs_campaigns([changed]) and not needs_campaigns([unchanged])


def adding_plan(list_id: int | None, name: str = "a") -> ListPlan:
    return list_plan(
        audience=name,
        list_name=name,
        description=None,
        live_list_id=list_id,
        add=members(2),
        remove=(),
        desired_count=2,
        live_count=0,
        active_campaign_adds="block",
    )


@pytest.mark.parametrize("state", ["Running", "Scheduled", "Starting", "Recurring"])
def test_adds_to_a_list_an_active_campaign_sends_to_are_blocked_when_asked(state):
    # A recurring campaign sends again and again: whom it adds, it messages at its next run.
    use = CampaignUse("a", 10, "Weekly", "Blast", state, "send")
    (violation,) = DestinationPlan("d", "email", (adding_plan(1),), campaigns=(use,)).violations()
    assert violation.rule == "active_campaign_adds"
    assert f"send list of {state.lower()} blast campaign 'Weekly' (id 10)" in violation.message
    finished = dataclasses.replace(use, state="Finished")
    assert (
        DestinationPlan("d", "email", (adding_plan(1),), campaigns=(finished,)).violations() == []
    )


def test_campaigns_that_could_not_be_read_block_adds_to_existing_lists_only():
    # No campaign can send to a list this plan creates: its adds are not blocked.
    plan = DestinationPlan(
        "d", "email", (adding_plan(1), adding_plan(None, "new")), campaigns_read_error="HTTP 500"
    )
    assert [(v.list_name, v.rule) for v in plan.violations()] == [("a", "active_campaign_adds")]


# -- the plan file -----------------------------------------------------------------------------


def full_plan(add: tuple[Member, ...], remove: tuple[str, ...]) -> Plan:
    lp = ListPlan(
        audience="a",
        list_name="list a",
        list_id=5,
        create=False,
        description="d",
        add=add,
        remove=remove,
        unchanged=1,
        live_count=len(remove) + 1,
        desired_count=len(add) + 1,
        channel_unsubscribe=True,
        read_prefer_user_id=True,
        campaign_id=3,
        max_removals=50,
        held_back_removals=2,
        add_fields={add[0].key: {"tier": "gold"}} if add else {},
        field_update_keys=("k",),
        forgotten=("f@example.com",),
        active_campaign_adds="block",
    )
    d = DestinationPlan(
        destination="prod",
        project_type="hybrid",
        lists=(lp,),
        skipped_members=(("a", MemberIssue("a.csv:3", "invalid email", "bad")),),
        deletions=(ListDeletion(9, "gone"),),
        allow_list_deletion=True,
        field_updates=(
            FieldUpdate("k", "email", "k@example.com", None, {"tier": ("a", "b")}, True),
        ),
        field_read=FieldRead("export", 1, 1, ("tier",)),
        member_read="1 getUsers call",
        notes=("a note",),
        unread=(("b", "why"),),
        campaigns=(CampaignUse("list a", 1, "C", "Blast", "Running", "send"),),
    )
    return Plan((d,), {"prod": {"list a": {"list_id": 5, "size": 3, "digest": "duckdb-1:ab"}}})


def test_a_saved_plan_reads_back_as_the_same_plan(tmp_path):
    plan = full_plan(members(3), ("r1@example.com", "r2@example.com"))
    path = tmp_path / "plans" / "plan.gz"

    save_plan(path, plan, "digest-1", tmp_path, ["a"])
    loaded = load_plan(path)

    assert loaded.plan == plan
    assert (loaded.manifest_digest, loaded.targets, loaded.manifest_root) == (
        "digest-1",
        ["a"],
        tmp_path,
    )
    # It holds member identifiers: readable by its owner only.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_setting_apply_obeys_reads_back_either_way(tmp_path):
    # full_plan sets each flag one way; a field the reader dropped or defaulted would read
    # back right for that way only (a saved plan applied with updateExistingUsersOnly
    # lost creates users the audience said not to create).
    plan = full_plan(members(2), ("r1@example.com",))
    (d,) = plan.destinations
    (lp,) = d.lists
    flipped_list = dataclasses.replace(
        lp,
        update_existing_users_only=True,
        channel_unsubscribe=False,
        read_prefer_user_id=False,
        campaign_id=None,
        allow_empty=True,
        resubscribe_allowed=True,
        merge_nested_objects=True,
        max_removal_percent=25.0,
        max_removals=None,
        min_members=1,
        max_members=9,
        max_addition_percent=5.0,
        max_additions=4,
        active_campaign_adds="warn",
        # Who the consent guard held back: the apply report names them.
        left_themselves=("l@example.com",),
        left_sources=(("EmailLink", 1),),
        channel_unsubscribed=("c@example.com",),
        resubscribed=("r@example.com",),
    )
    flipped = dataclasses.replace(
        plan,
        destinations=(
            dataclasses.replace(
                d,
                lists=(flipped_list,),
                allow_list_deletion=False,
                # Its deletions from a project holding none of the declared lists: blocked.
                declared_none_found=2,
            ),
        ),
    )
    path = tmp_path / "plan.gz"
    save_plan(path, flipped, "digest", tmp_path, None)
    assert load_plan(path).plan == flipped


def test_a_plan_saved_before_its_lists_read_was_recorded_reads_it_as_not_known(tmp_path):
    # Plans of this format saved by an earlier build lack read_prefer_user_id: None, and
    # apply then sends an email-shaped removal only as a profile named by it either way.
    path = tmp_path / "plan.gz"
    save_plan(path, full_plan(members(1), ("r1@example.com",)), "digest", tmp_path, None)
    lines = _lines(path)
    header = json.loads(lines[0])
    for d in header["destinations"]:
        for lp in d["lists"]:
            del lp["read_prefer_user_id"]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    (lp,) = load_plan(path).plan.destinations[0].lists
    assert lp.read_prefer_user_id is None and lp.remove == ("r1@example.com",)


def test_a_field_read_taken_from_another_destination_is_saved_and_one_saved_before_loads(
    tmp_path,
):
    # Whose export a read took, its windows and whether a whole export was asked are saved.
    taken = FieldRead("export", 2, 0, ("tier",), 6, False, "prod", True)
    plan = full_plan(members(1), ())
    plan = dataclasses.replace(
        plan, destinations=(dataclasses.replace(plan.destinations[0], field_read=taken),)
    )
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)
    assert load_plan(path).plan.destinations[0].field_read == taken
    # Plans saved by an earlier build lack them: read, and said, as that build said them.
    earlier = dataclasses.replace(taken, requests=21, windows=None, whole=True, taken_from="")
    plan = dataclasses.replace(
        plan, destinations=(dataclasses.replace(plan.destinations[0], field_read=earlier),)
    )
    save_plan(path, plan, "digest", tmp_path, None)
    lines = _lines(path)
    header = json.loads(lines[0])
    for d in header["destinations"]:
        for key in ("windows", "whole", "taken_from", "taken_members"):
            del d["field_read"][key]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    read = load_plan(path).plan.destinations[0].field_read
    assert read == FieldRead("export", 2, 21, ("tier",))
    assert read.describe() == (
        "the user export in date windows (20 requests, one whole export being cut off) for 2 users"
    )


def test_large_member_sets_of_a_saved_plan_go_into_the_workspace(tmp_path):
    plan = full_plan(members(5), tuple(f"r{n}@example.com" for n in range(4)))
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)

    with Engine(EngineSettings(threshold=4, temp_dir=tmp_path)) as engine:
        (lp,) = load_plan(path, SavedPlanTables(engine)).plan.destinations[0].lists
        assert not isinstance(lp.add, tuple) and not isinstance(lp.remove, tuple)
        assert [m.key for m in lp.add] == [m.key for m in plan.destinations[0].lists[0].add]
        assert list(lp.remove) == list(plan.destinations[0].lists[0].remove)
        # Saved again from the workspace, it is the same file's content.
        again = tmp_path / "again.gz"
        save_plan(again, load_plan(path, SavedPlanTables(engine)).plan, "digest", tmp_path, None)
    # (The header's created_at differs, and so the last line's checksum of it.)
    assert _lines(again)[1:-1] == _lines(path)[1:-1]


def test_a_damaged_or_foreign_plan_file_is_refused(tmp_path):
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(b"\x1f\x8b not gzip")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}) + "\n")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": "reconciler-plan", "version": 4}) + "\n")
    # Found by fuzzing: a first line nested too deep for Python's JSON parser
    # (RecursionError), and a count that JSON's Infinity makes (int() of it: OverflowError),
    # ended apply --plan in an internal error.
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    infinite = tmp_path / "infinite.json"
    header = {"format": "reconciler-plan", "version": VERSION, "fingerprint": {}}
    destination = {"lists": [], "field_update_rows": "Infinity"}
    infinite.write_text(
        json.dumps({**header, "destinations": [destination]}).replace('"Infinity"', "Infinity")
        + "\n"
    )
    for path in (damaged, other, deep, infinite):
        with pytest.raises(ReconcilerError, match="not a reconciler plan file"):
            load_plan(path)
    with pytest.raises(ReconcilerError, match="run plan again"):
        load_plan(old)


def test_a_plan_file_of_another_format_version_says_which_way_and_what_to_do(tmp_path):
    """A plan made by a newer reconciler (the plan job installed the newest, the apply job
    has an older one) is refused naming it newer and the ways out; an older one is to be
    made again. Neither is read, and neither is called damaged."""
    header = {"format": "reconciler-plan", "reconciler_version": "9.9.9", "destinations": []}
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**header, "version": VERSION + 1}) + "\n")
    with pytest.raises(ReconcilerError) as raised:
        load_plan(newer)
    message = str(raised.value)
    assert f"by reconciler 9.9.9 in plan file format {VERSION + 1}, newer than" in message
    assert "Apply it with the reconciler that made it, or upgrade this one" in message
    older = tmp_path / "older.json"
    older.write_text(json.dumps({**header, "version": 4}) + "\n")
    with pytest.raises(ReconcilerError, match=r"format 4, older than .*run plan again"):
        load_plan(older)


def _as_a_newer_build_saves_it(path: Path, header: dict, extra: list[bytes]) -> None:
    """The saved plan at `path` with `header`'s keys set and `extra` lines before its
    checksum (a newer build's keys and lines), its checksum made again as that build's."""
    lines = _lines(path)
    first = json.dumps({**json.loads(lines[0]), **header}, separators=(",", ":")).encode()
    body = [first, *lines[1:-1], *extra]
    digest = hashlib.sha256(b"".join(line + b"\n" for line in body)).hexdigest()
    trailer = json.dumps({"sha256": digest}, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(b"\n".join([*body, trailer]) + b"\n"))


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ({"reconciler_version": "9.9.9"}, "by reconciler 9.9.9, newer than this reconciler"),
        (
            {"revision": REVISION + 1},
            f"by a newer build of reconciler (plan file revision {REVISION + 1}; this one "
            f"reads revision {REVISION} and before)",
        ),
    ],
)
def test_a_newer_builds_plan_this_one_cannot_read_is_said_newer_not_damaged(tmp_path, header, says):
    """A plan of this format by a later build that added keys and lines this one does not
    know (a line more before the checksum, a key whose value this one refuses) was
    refused as 'not a reconciler plan file (or it is damaged)', sending the user to look
    for damage; its header says which build made it, so this one says newer, and the ways
    out, before what it found wrong. A key this one does not know and need not read is
    read past, as before."""
    path = tmp_path / "plan.gz"
    save_plan(path, full_plan(members(2), ("r1@example.com",)), "digest", tmp_path, None)
    assert json.loads(_lines(path)[0])["revision"] == REVISION
    _as_a_newer_build_saves_it(path, {**header, "unknown_key": {"a": 1}}, [])
    assert len(load_plan(path).plan.destinations[0].lists[0].add) == 2
    _as_a_newer_build_saves_it(path, header, [b'["a line of a newer kind"]'])
    refusal = _refusal(path)
    assert says in refusal and "damaged" not in refusal
    assert "Apply it with the reconciler that made it, or upgrade this one" in refusal
    save_plan(path, full_plan(members(2), ("r1@example.com",)), "digest", tmp_path, None)
    lines = _lines(path)
    broken = lines[0].replace(b'"project_type":"hybrid"', b'"project_type":"hybrid-v2"', 1)
    assert broken != lines[0]
    path.write_bytes(gzip.compress(b"\n".join([broken, *lines[1:]]) + b"\n"))
    _as_a_newer_build_saves_it(path, header, [])
    refusal = _refusal(path)
    assert says in refusal and "damaged" not in refusal
    # The same build's plan, or one of an older release, that cannot be read is damaged.
    for same in ({}, {"reconciler_version": "0.0.9", "revision": REVISION}):
        save_plan(path, full_plan(members(2), ("r1@example.com",)), "digest", tmp_path, None)
        _as_a_newer_build_saves_it(path, same, [b'["a line of a newer kind"]'])
        assert "is not a reconciler plan file (or it is damaged)" in _refusal(path)


def test_a_plan_file_of_revision_0_is_read_as_one_saved_before_revisions(tmp_path):
    """`revision: 0` is the revision of a plan saved before builds wrote one (read so when
    the key is absent), which this build reads; said, it was refused as 'not a reconciler
    plan file (or it is damaged): revision should be a positive integer'. A revision that
    no build writes (below 0) is still refused, naming the field."""
    path = tmp_path / "plan.gz"
    save_plan(path, full_plan(members(2), ("r1@example.com",)), "digest", tmp_path, None)
    _as_a_newer_build_saves_it(path, {"revision": 0}, [])
    assert len(load_plan(path).plan.destinations[0].lists[0].add) == 2
    _as_a_newer_build_saves_it(path, {"revision": -1}, [])
    refusal = _refusal(path)
    assert "(or it is damaged): revision should be a non-negative integer" in refusal


@pytest.mark.parametrize("compressed", [True, False])
def test_a_plan_file_edited_or_cut_short_is_refused(tmp_path, compressed):
    """Nothing but the plan that was saved is applied: a member swapped by hand, or the
    file cut at a line's end (a plain copy someone decompressed to look at, a partial
    upload), is refused, naming why."""
    path = tmp_path / "plan.gz"
    save_plan(path, full_plan(members(3), ("r1@example.com",)), "digest", tmp_path, None)
    lines = _lines(path)
    write = (lambda data: path.write_bytes(gzip.compress(data))) if compressed else path.write_bytes
    write(b"\n".join(lines) + b"\n")
    assert [m.key for m in load_plan(path).plan.destinations[0].lists[0].add] == [
        "m0@example.com",
        "m1@example.com",
        "m2@example.com",
    ]

    write(b"\n".join(lines).replace(b"m1@example.com", b"mallory@example.com") + b"\n")
    with pytest.raises(ReconcilerError, match=r"not the plan that was saved.*edited or damaged"):
        load_plan(path)
    write(b"\n".join(lines[:-1]) + b"\n")
    with pytest.raises(ReconcilerError, match="not a reconciler plan file"):
        load_plan(path)
    write(b"\n".join([*lines, lines[-2]]) + b"\n")
    with pytest.raises(ReconcilerError, match="not the plan that was saved"):
        load_plan(path)


def _refusal(path: Path) -> str:
    with pytest.raises(ReconcilerError) as raised:
        load_plan(path)
    return str(raised.value)


def test_every_refusal_of_a_plan_file_names_it_on_one_line(tmp_path):
    """A name holding a line end ('\\n::error::' starts a workflow command of its own on a
    runner) is named escaped in each refusal: unreadable, of another format version, and
    edited since it was saved."""
    name = "nightly\n::error::forged.plan"
    shown = "nightly\\n::error::forged.plan"
    unreadable = tmp_path / "unreadable" / name
    unreadable.mkdir(parents=True)  # a directory: open() fails
    header = {"format": "reconciler-plan", "destinations": []}
    newer, older, edited = (tmp_path / kind / name for kind in ("newer", "older", "edited"))
    for path, version in ((newer, VERSION + 1), (older, 4)):
        path.parent.mkdir()
        path.write_text(json.dumps({**header, "version": version}) + "\n")
    edited.parent.mkdir()
    save_plan(edited, full_plan(members(2), ()), "digest", tmp_path, None)
    lines = _lines(edited)
    edited.write_bytes(b"\n".join(lines).replace(b"m1@example.com", b"mx@example.com") + b"\n")

    said = {
        "cannot read plan file": _refusal(unreadable),
        "newer than the format": _refusal(newer),
        "older than the format": _refusal(older),
        "is not the plan that was saved": _refusal(edited),
    }
    for words, message in said.items():
        assert words in message and shown in message and "\n" not in message, message


# Fields a plan file may hold null in (as well as an issue row's value, and a member's or a
# field update's email and userId); every other value is wrong as null.
NULLABLE = {
    "absolute_root",
    "campaign_id",
    "campaigns_read_error",
    "description",
    "field_read",
    "files",
    "list_id",
    "max_additions",
    "max_addition_percent",
    "max_members",
    "max_removals",
    "member_read",
    "min_members",
    "read_note",
    "read_prefer_user_id",
    "targets",
    "windows",
}
ENUMS = {"project_type", "method", "active_campaign_adds"}
ISSUE_ROWS = {"skipped_members", "field_issues", "duplicate_conflicts"}


def wrong_shapes(lines: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """A saved plan's lines (plain) with one value at a time replaced by one of another type
    or shape (a string for a count, null, a list for an object, a bool for an int, an
    enum's unknown value, a row of the wrong length), the checksum made again as the writer
    makes it: the checksum has no key, so whoever edits a plan file can. Each is what
    `apply --plan` must refuse as a damaged file."""
    values = [json.loads(line) for line in lines[:-1]]
    for n, value in enumerate(values):
        body = n > 0
        for path, wrong in _mutations(value, (), body):
            changed = [*values[:n], _replaced(value, path, wrong), *values[n + 1 :]]
            yield f"line {n + 1} at {list(path)}: {wrong!r}", with_checksum(changed)


def with_checksum(values: list[object]) -> bytes:
    body = b"".join(json.dumps(v, separators=(",", ":")).encode() + b"\n" for v in values)
    return body + json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"


def _mutations(node: object, path: tuple, body: bool) -> Iterator[tuple[tuple, object]]:
    # A field update's old and new values, and a member's field values, are any JSON.
    free = body and len(path) == 3 and path[0] == 4 and path[2] in (1, 2)
    if not free:
        for wrong in _wrong_values(node, _nullable(path, body), _enum(node, path, body)):
            yield path, wrong
    if isinstance(node, dict) and not body:
        for key, item in node.items():
            yield from _mutations(item, (*path, key), body)
    elif isinstance(node, list) and not free:
        for index, item in enumerate(node):
            yield from _mutations(item, (*path, index), body)


def _nullable(path: tuple, body: bool) -> bool:
    if body:
        return len(path) == 1 and path[0] in (2, 3)
    if path and path[-1] in NULLABLE:
        return True
    return len(path) >= 3 and path[-1] == 3 and path[-3] in ISSUE_ROWS


def _enum(node: object, path: tuple, body: bool) -> bool:
    if not isinstance(node, str):
        return False
    if body:
        return path == (1,)
    return bool(path) and (path[-1] in ENUMS or (path[-1] == 5 and path[-3] == "campaigns"))


def _wrong_values(value: object, nullable: bool, enum: bool) -> list[object]:
    if value is None:
        return [[[]]]
    wrong: list[object] = [] if nullable else [None]
    if enum:
        wrong.append("not-one-of-them")
    if isinstance(value, bool):
        return [*wrong, 1, "true", [[]]]
    if isinstance(value, int):
        return [*wrong, "7", True, 1.5, -1, [[]]]
    if isinstance(value, float):
        return [*wrong, "7", True, -1.0, [[]]]
    if isinstance(value, str):
        return [*wrong, 7, True, [[]], {"": []}]
    if isinstance(value, list):
        return [*wrong, "x", 3, {"": []}, [[]]]
    return [*wrong, "x", 3, [[]]]


def _replaced(value: object, path: tuple, wrong: object) -> object:
    if not path:
        return wrong
    changed = copy.deepcopy(value)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]  # type: ignore[index]
    parent[path[-1]] = wrong  # type: ignore[index]
    return changed


def rich_plan() -> Plan:
    """full_plan with every list of its rows holding one, so that each row's shape is met."""
    plan = full_plan(members(2), ("r1@example.com",))
    (d,) = plan.destinations
    (lp,) = d.lists
    lp = dataclasses.replace(
        lp,
        min_members=1,
        max_members=9,
        max_addition_percent=5.0,
        max_additions=4,
        respelled=("s@example.com",),
        not_created=("n@example.com",),
        left_themselves=("l@example.com",),
        left_sources=(("EmailLink", 1),),
        channel_unsubscribed=("c@example.com",),
        resubscribed=("r@example.com",),
    )
    issue = ("a", MemberIssue("a.csv:4", "a reason", None))
    d = dataclasses.replace(
        d,
        lists=(lp,),
        field_issues=(issue,),
        duplicate_conflicts=(issue,),
        other_reads=("a read",),
        new_fields=(("tier", "string"),),
        campaigns_read_error="why",
        read_note="a note",
    )
    return dataclasses.replace(plan, destinations=(d,))


def test_a_plan_file_with_a_value_of_the_wrong_shape_is_refused_naming_it(tmp_path):
    """Found by fuzzing: a plan file edited with its checksum made again (it has no key) and
    a value of the wrong type (a string count, a null list, a row of another length) ended
    apply --plan in an internal error (TypeError in the stale check or the renderer). Each
    is refused as damaged, naming the field, and never quoting the value; the members'
    lines too, whether read into memory or into the workspace."""
    path = tmp_path / "plan.gz"
    save_plan(path, rich_plan(), "digest", tmp_path, ["a"], {"a.yaml": "0" * 64})
    lines = _lines(path)
    assert load_plan(path).plan == rich_plan()
    cases = list(wrong_shapes(lines))
    assert len(cases) > 500
    with Engine(EngineSettings(threshold=1, temp_dir=tmp_path)) as engine:
        for n, (case, content) in enumerate(cases):
            path.write_bytes(content)
            # Every tenth into the workspace, as apply reads a large plan.
            tables = SavedPlanTables(engine) if n % 10 == 0 else None
            with pytest.raises(ReconcilerError) as raised:
                load_plan(path, tables)
            message = str(raised.value)
            assert "is not a reconciler plan file (or it is damaged)" in message, case
            assert "example.com" not in message, case

    header = json.loads(lines[0])
    header["destinations"][0]["lists"][0]["add_rows"] = "2"
    path.write_bytes(with_checksum([header, *map(json.loads, lines[1:-1])]))
    with pytest.raises(ReconcilerError, match=r"lists\[0\]\.add_rows should be a non-negative"):
        load_plan(path)
    member = json.loads(lines[1])
    member[1] = "mail"
    path.write_bytes(with_checksum([json.loads(lines[0]), member, *map(json.loads, lines[2:-1])]))
    with pytest.raises(ReconcilerError, match=r"line 2 \(a member to add\)\.key_kind should be"):
        load_plan(path)
    # Each of its own type, but not of one member: apply sends a member by its key.
    member = json.loads(lines[1])
    member[0] = "someone-else@example.com"
    path.write_bytes(with_checksum([json.loads(lines[0]), member, *map(json.loads, lines[2:-1])]))
    with pytest.raises(ReconcilerError, match=r"line 2 \(a member to add\)\.key should be the"):
        load_plan(path)


def _lines(path) -> list[bytes]:
    with gzip.open(path) as handle:
        return handle.read().splitlines()


def test_the_readme_names_every_key_of_the_json_plans_top_and_summary():
    """A script reads the JSON plan by the README's list: a count it does not name (those
    held back by consent were missing) is one nobody checks."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("The plan's JSON has") :].split("\n\n")[0]
    out = Plan((), {}).to_dict(lambda identifier: identifier)
    keys = [*out, *out["summary"]]
    assert [k for k in keys if f"`{k}`" not in paragraph] == []


def test_the_letter_case_note_counts_one_removed_member_in_words():
    """One removed member made the note say "from one of the 1 members it removes"."""

    def swapped(removed: int) -> str:
        lp = ListPlan(
            audience="vip",
            list_name="vip",
            list_id=1,
            create=False,
            description=None,
            add=(make_member("userId", None, "ABC-1"),),
            remove=("abc-1", *(f"other-{n}" for n in range(removed - 1))),
            unchanged=0,
            live_count=removed,
            desired_count=1,
        )
        (note,) = case_only_notes([lp])
        return note

    assert "differs only in letter case from the one member it removes." in swapped(1)
    assert "differs only in letter case from one of the 1,500 members it removes." in (
        swapped(1_500)
    )


def test_where_project_type_is_written_is_saved_and_older_plans_load(tmp_path):
    # A saved plan keeps the line that writes projectType, for apply's hints that find
    # the project of another type; one saved by an earlier build names no line.
    plan = full_plan(members(1), ("r1@example.com",))
    dest = dataclasses.replace(
        plan.destinations[0], project_type="userId", project_type_at="manifests/dest.yaml:9:20"
    )
    plan = dataclasses.replace(plan, destinations=(dest,))
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)
    assert load_plan(path).plan.destinations[0].project_type_at == dest.project_type_at
    lines = _lines(path)
    header = json.loads(lines[0])
    for d in header["destinations"]:
        del d["project_type_at"]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    assert load_plan(path).plan.destinations[0].project_type_at is None


def test_lists_that_look_named_by_email_are_saved_and_said_by_the_removal_guard(tmp_path):
    # The removal guard names the likely mismatch for such a list, and a saved plan
    # keeps which lists they are; one saved by an earlier build has none.
    plan = full_plan(members(1), ("r1@example.com",))
    dest = dataclasses.replace(
        plan.destinations[0],
        project_type="userId",
        project_type_at="manifests/dest.yaml:9:20",
        named_by_email=(plan.destinations[0].lists[0].list_name,),
    )
    plan = dataclasses.replace(plan, destinations=(dest,))
    message = dest.violations()[0].message
    assert "; likely cause: Iterable names every member by an email" in message
    assert message.endswith("(check projectType in manifests/dest.yaml:9:20)")
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)
    loaded = load_plan(path).plan.destinations[0]
    assert loaded.named_by_email == dest.named_by_email
    assert [v.message for v in loaded.violations()] == [v.message for v in dest.violations()]
    lines = _lines(path)
    header = json.loads(lines[0])
    for d in header["destinations"]:
        del d["named_by_email"]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    assert load_plan(path).plan.destinations[0].named_by_email == ()
