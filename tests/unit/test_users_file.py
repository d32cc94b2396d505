"""state/users_file.py: when a plan's later reads of profiles come from the export that
read its members, and how that file's rows are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import LiveStateError
from reconciler.iterable import CHANNELS_FIELD, ClientSettings
from reconciler.state.users_file import (
    ROWS_PER_SECOND,
    SharedUsers,
    UsersFile,
    UsersShare,
    export_rows,
)

SETTINGS = ClientSettings()  # 100 per-user reads a second, as Iterable allows


def test_the_file_serves_when_it_holds_the_fields_and_is_the_cheaper_read(tmp_path: Path) -> None:
    rows = 1_000_000  # 10 s to parse
    users = UsersFile(tmp_path / "u.jsonl", frozenset({"tier", "plan"}), rows)
    assert rows / ROWS_PER_SECOND == 10.0
    # Not every field asked for: never.
    assert not users.serves({"tier", "age"}, 10**6, SETTINGS, "export")
    # In place of another export, always; of per-user reads, when those take longer.
    assert users.serves({"tier"}, 1, SETTINGS, "export")
    assert users.serves({"tier"}, 1_001, SETTINGS, "users")  # 10.01 s of reads
    assert not users.serves({"tier"}, 1_000, SETTINGS, "users")  # 10 s: no gain
    assert users.serves(set(), 1_001, SETTINGS, "users")


def test_rows_are_read_with_channel_unsubscribes_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    lines = [
        {"email": "a@x.io", "tier": "gold"},
        {"email": "b@x.io", "userId": "u2", CHANNELS_FIELD: [7], "tier": None},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    channels: list[dict] = []
    assert list(export_rows(path, channels, "the export holds")) == lines
    assert channels == [{"email": "b@x.io", "userId": "u2", CHANNELS_FIELD: [7]}]
    # Only the lines holding the mark (or an escape that could spell it) are parsed.
    marked = list(export_rows(path, None, "the export holds", marked=b"u2"))
    assert [row["email"] for row in marked] == ["b@x.io"]


def test_a_line_that_is_no_json_object_fails_the_read_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text('{"email": "a@x.io"}\n["secret@x.io"]\n')
    with pytest.raises(LiveStateError) as caught:
        list(export_rows(path, None, "the user export holds"))
    assert str(caught.value) == "the user export holds a line that is not JSON"


def test_reads_of_the_members_file_say_whose_it_is_and_count_it_where_it_was_made(
    tmp_path: Path,
) -> None:
    """The members' date windows of 'prod' (6 requests, chosen for the project's size: no
    whole export asked), offered to the project's reads: 'prod''s own reads say they took
    the members' export and count nothing; 'stage''s say whose it was and what it cost
    there, counted there (they said "one export being cut off" and counted 7)."""
    shared = SharedUsers(tmp_path)
    assert shared.usable()
    fields = frozenset({"email", "userId", "tier"})
    prod = UsersShare(shared, None, "p:hybrid", "hybrid", "prod", fields)  # type: ignore[arg-type]
    stage = UsersShare(shared, None, "p:hybrid", "hybrid", "stage", fields)  # type: ignore[arg-type]
    path = tmp_path / "members.jsonl"
    path.write_text('{"email": "a@x.io", "tier": "gold"}\n')
    prod.offer(UsersFile(path, fields, 1), 6)
    assert prod.taken_text() == "the user export that read the members"
    assert prod.field_read(1, ["tier"]).requests == 0
    said = (
        "the user export that read the members of destination 'prod', which names the same "
        "Iterable project (in date windows: 6 requests, counted there)"
    )
    assert stage.taken_text() == said
    read = stage.field_read(2, ["tier"])
    assert read.requests == 0
    assert read.describe() == f"{said} for 2 users"
    shared.close()
