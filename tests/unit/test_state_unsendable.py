"""state/unsendable.py against the emulator over HTTP: adds that cannot succeed (forgotten
users; unknown users of an updateExistingUsersOnly list) are left out of the plan and
named, not sent; a read Iterable refuses leaves them in, saying so."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import pytest

from reconciler.emulator.project import forgotten_hash as emulator_hash
from reconciler.iterable import IterableClient
from reconciler.members.engine.rows import member_rows, write_table
from reconciler.members.engine.settings import EngineSettings
from reconciler.members.engine.workspace import Engine
from reconciler.members.identity import Member, make_member
from reconciler.plan import ListPlan
from reconciler.state.unsendable import (
    LeftOut,
    forgotten_hash,
    leave_out_unsendable,
    not_created_after_consent,
)
from tests.apply.support import FAST, client, list_plan

HYBRID = "hybrid"


def _m(email: str | None, user_id: str | None = None) -> Member:
    return make_member(HYBRID, email, user_id)


def test_the_hash_is_iterables_trimmed_and_lowercased() -> None:
    assert forgotten_hash(" Ann@X.io ") == forgotten_hash("ann@x.io")
    assert forgotten_hash("ann@x.io") == emulator_hash("ann@x.io")
    assert forgotten_hash("U-1") == hashlib.sha256(b"u-1").hexdigest()


def test_forgotten_users_are_left_out_and_named(emulator_server) -> None:
    project = emulator_server.emulator.project("default")
    project.forget(email="gone@x.io")
    project.forget(user_id="U-Old")
    keep, gone, old = _m("a@x.io"), _m("gone@x.io"), _m(None, "u-old")
    lists = [list_plan("L", add=(keep, gone, old)), list_plan("Quiet")]
    out = leave_out_unsendable(client(emulator_server), HYBRID, lists)
    first = out.lists[0]
    assert first.add == (keep,)
    # A userId differing from a forgotten one only in case is taken as forgotten too.
    assert first.forgotten == (gone.key, old.key)
    assert out.lists[1] is lists[1]
    assert out.reads == ["forgotten users read with 2 calls"]


def test_nothing_is_read_when_no_list_adds(emulator_server) -> None:
    lists = [list_plan("L", list_id=1, remove=("a@x.io",), live=1)]
    out = leave_out_unsendable(client(emulator_server), HYBRID, lists)
    assert out.lists == lists and out.reads == []
    assert emulator_server.emulator.request_log == []


def test_unknown_users_of_an_update_existing_list_are_not_created(emulator_server) -> None:
    project = emulator_server.emulator.project("default")
    project.add_user(email="known@x.io")
    known, unknown, made = _m("known@x.io"), _m("new@x.io"), _m("made@x.io")
    existing_only = dataclasses.replace(
        list_plan("Existing", add=(known, unknown, made)), update_existing_users_only=True
    )
    # Another list of the plan subscribes made@x.io, which creates her first.
    creating = list_plan("Welcome", add=(made,))
    left = leave_out_unsendable(client(emulator_server), HYBRID, [existing_only, creating])
    checked = left.lists[0]
    assert checked.add == (known, made)
    assert checked.not_created == (unknown.key,)
    assert left.created_elsewhere == {"Existing": (made,)}
    assert any("3 users checked for existence" in read for read in left.reads)

    # If consent then holds her back from Welcome, nothing creates her: not created.
    held = [checked, dataclasses.replace(left.lists[1], add=())]
    after = not_created_after_consent(held, left, HYBRID)
    assert after[0].add == (known,)
    assert after[0].not_created == (unknown.key, made.key)
    assert not_created_after_consent(left.lists, left, HYBRID)[0].add == (known, made)


def test_a_refused_read_leaves_members_in_and_says_why_without_identifiers(
    make_emulator_server,
) -> None:
    server = make_emulator_server(project_type="hybrid")
    lp: ListPlan = list_plan("L", add=(_m("secret@x.io"),))
    bad = IterableClient(server.base_url, "not-the-key", settings=FAST)
    out: LeftOut = leave_out_unsendable(bad, HYBRID, [lp])
    assert out.lists == [lp]
    assert len(out.reads) == 1
    assert out.reads[0].startswith("forgotten users could not be read (")
    assert "HTTP 401" in out.reads[0] and "secret@x.io" not in out.reads[0]


@pytest.mark.parametrize("creator_in_duckdb", [False, True])
def test_unknown_users_of_adds_held_in_duckdb_are_not_created(
    emulator_server, monkeypatch, tmp_path, creator_in_duckdb
) -> None:
    # Adds over MAX_TABLE_CHECK stay in DuckDB; they were planned unchecked, so the same
    # unknown people were sent on every run. Matched there now, as members are: by userId,
    # or by email (hybrid), and one that another list creates stays.
    monkeypatch.setattr("reconciler.state.unsendable.MAX_TABLE_CHECK", 1)
    project = emulator_server.emulator.project("default")
    project.add_user(email="known@x.io")
    project.add_user(email="other@x.io", user_id="u-known")
    known, by_id, unknown, made = (
        _m("known@x.io", "u-new"),
        _m(None, "u-known"),
        _m("new@x.io"),
        _m("made@x.io"),
    )
    with Engine(EngineSettings(temp_dir=tmp_path)) as engine:
        members = sorted((known, by_id, unknown, made), key=lambda m: m.key)
        write_table(
            engine,
            "adds",
            [(m.key, m.key_kind, m.email, m.user_id) for m in members],
            ("key", "key_kind", "email", "user_id"),
        )
        adds = member_rows(engine, "adds", len(members))
        existing_only = dataclasses.replace(
            list_plan("Existing", add=adds), update_existing_users_only=True
        )
        welcome: Sequence[Member] = (made,)
        if creator_in_duckdb:
            write_table(
                engine,
                "welcome",
                [(made.key, made.key_kind, made.email, made.user_id)],
                ("key", "key_kind", "email", "user_id"),
            )
            welcome = member_rows(engine, "welcome", 1)
        creating = list_plan("Welcome", add=welcome)
        left = leave_out_unsendable(client(emulator_server), HYBRID, [existing_only, creating])
        checked = left.lists[0]
        assert list(checked.add) == sorted((known, by_id, made), key=lambda m: m.key)
        assert checked.not_created == (unknown.key,)
        assert "4 users checked for existence with 1 user export" in left.reads


def test_checks_that_each_made_an_export_say_one_each(emulator_server, monkeypatch, tmp_path):
    # Without the plan's shared file, the adds in DuckDB and those held as members each
    # export the project: a line each, one export each (said once where they share one).
    monkeypatch.setattr("reconciler.state.unsendable.MAX_TABLE_CHECK", 1)
    emulator_server.emulator.project("default").add_user(email="known@x.io")
    many, few = (_m("known@x.io"), _m("new@x.io")), (_m("known@x.io"),)
    with Engine(EngineSettings(temp_dir=tmp_path)) as engine:
        rows = [(m.key, m.key_kind, m.email, m.user_id) for m in many]
        write_table(engine, "adds", rows, ("key", "key_kind", "email", "user_id"))
        lists = [
            dataclasses.replace(list_plan(name, add=add), update_existing_users_only=True)
            for name, add in (("Many", member_rows(engine, "adds", 2)), ("Few", few))
        ]
        slow = client(emulator_server, user_reads_per_second=0.01)
        left = leave_out_unsendable(slow, HYBRID, lists)
    exports = [r for r in emulator_server.emulator.request_log if "dataTypeName=user" in r.query]
    assert len(exports) == 2
    assert [r for r in left.reads if "for existence" in r] == [
        "2 users checked for existence with 1 user export",
        "1 user checked for existence with 1 user export",
    ]
