"""How the consent guard reads the profiles' channel unsubscribes (issues 17/18): only the
export lines that can hold one are parsed, and per-user reads are chosen when the adds are
few enough to read one by one faster than one export of every profile."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from reconciler.iterable import ClientSettings
from reconciler.iterable.client import _BadAnswer, _parse_json_lines, _parse_marked_lines
from reconciler.members.identity import make_member
from reconciler.plan import plan_list
from reconciler.state.consent import (
    MAX_LOOKUPS,
    choose_profile_read,
    lookup_requests,
    people_to_look_up,
)

MARK = b"unsubscribedChannelIds"


def _answer(body: bytes, chunk: int, kind: str = "application/x-json-stream") -> httpx.Response:
    def chunks() -> Iterator[bytes]:
        for at in range(0, len(body), chunk):
            yield body[at : at + chunk]

    return httpx.Response(200, headers={"Content-Type": kind}, content=chunks())


def _keep(row: dict) -> bool:
    return bool(row.get("unsubscribedChannelIds"))


BODY = b"".join(
    [
        b'{"email":"a@x.io"}\n',
        b'{"email":"b@x.io","unsubscribedChannelIds":[1]}\n',
        # A value that holds the field's name: parsed, and not kept (no such field).
        b'{"email":"unsubscribedChannelIds@x.io"}\n',
        # The field's name spelled with an escape: parsed (a backslash), and kept.
        b'{"email":"c@x.io","unsubscribed\\u0043hannelIds":[2]}\n',
        *[b'{"email":"n%d@x.io"}\n' % n for n in range(40)],
        b'{"userId":"u1","unsubscribedChannelIds":[3,4]}\r\n',
        b"\n",
        b'  {"email":"d@x.io","unsubscribedChannelIds":[5]}  \n',
        b'{"email":"e@x.io","unsubscribedChannelIds":[]}\n',
        b'{"email":"f@x.io","unsubscribedChannelIds":[6]}',
    ]
)


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_marked_lines_keep_what_every_line_parsed_keeps(chunk: int) -> None:
    every = _parse_json_lines(_answer(BODY, chunk), _keep)
    marked = _parse_marked_lines(_answer(BODY, chunk), _keep, (MARK,))
    assert marked == every
    assert [r.get("email") or r.get("userId") for r in marked] == [
        "b@x.io",
        "c@x.io",
        "u1",
        "d@x.io",
        "f@x.io",
    ]


GOOD = b"".join(b'{"email":"n%d@x.io"}\n' % n for n in range(100))


@pytest.mark.parametrize(
    "bad",
    [
        GOOD + b'{"email":"cut@x.io","unsub',  # a body cut off midway: its last line
        GOOD + b"not json at all\n" + GOOD,  # a line that is not an object, unmarked
        GOOD + b'["a","b"]\n' + GOOD,  # JSON, not an object
        b"<html><body>portal</body></html>\n" + GOOD,  # the first lines are parsed
        GOOD + b'{"email":"x@x.io","unsubscribedChannelIds":[1}\n',  # marked, broken
    ],
)
@pytest.mark.parametrize("chunk", [5, 4096])
def test_a_body_that_is_not_json_lines_fails_the_read(bad: bytes, chunk: int) -> None:
    with pytest.raises(_BadAnswer):
        _parse_marked_lines(_answer(bad, chunk), _keep, (MARK,))


def test_an_html_answer_fails_whatever_it_holds() -> None:
    with pytest.raises(_BadAnswer):
        _parse_marked_lines(_answer(GOOD, 50, "text/html; charset=utf-8"), _keep, (MARK,))


# Text a profile may hold: characters of 2, 3 and 4 bytes (split across chunks at some
# sizes), and U+2028 and NEL unescaped, which a JSON string may hold and are no line end.
TEXT = "Zoë \u2028 \u0085 日本 \U0001f600"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 100_000])
def test_every_line_parsed_decodes_whole_lines_at_any_chunk(chunk: int) -> None:
    body = (
        "\ufeff"  # a byte-order mark before the first line, as json.loads of bytes takes it
        + f'{{"email":"a@x.io","note":"{TEXT}"}}\n'
        + "\n \t\r\n"  # blank lines
        + f'{{"userId":"u1","note":"{TEXT}"}}\r\n'
        + f'{{"email":"b@x.io","note":"{TEXT}"}}'
    ).encode()
    rows = _parse_json_lines(_answer(body, chunk), None)
    assert [(r.get("email") or r.get("userId"), r["note"]) for r in rows] == [
        ("a@x.io", TEXT),
        ("u1", TEXT),
        ("b@x.io", TEXT),
    ]


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_every_line_parsed_refuses_a_line_that_is_not_utf8(chunk: int) -> None:
    with pytest.raises(_BadAnswer, match="not JSON"):
        _parse_json_lines(_answer(GOOD + b'{"email":"\xff@x.io"}\n' + GOOD, chunk), None)


def _adds(project_type, *people, list_id=7):
    desired = {}
    for email, user_id in people:
        m = make_member(project_type, email, user_id)
        desired[m.key] = m
    lp = plan_list(
        audience="vip",
        list_name="vip",
        description=None,
        desired=desired,
        live_list_id=list_id,
        live_members=set(),
    )
    return [lp]


def test_who_is_read_one_by_one() -> None:
    lists = _adds("hybrid", ("A@x.io", None), (None, "u2"), ("b@x.io", "u3"))
    people = people_to_look_up(lists, "hybrid")
    assert people is not None and sorted(people, key=str) == sorted(
        [("a@x.io", None), (None, "u2"), ("b@x.io", "u3")], key=str
    )
    assert lookup_requests(people) == 4
    # A new list's adds are nobody's consent question.
    assert people_to_look_up(_adds("hybrid", ("a@x.io", None), list_id=None), "hybrid") == []
    # userID-based projects: profiles may share an email, one lookup answers one of them.
    assert people_to_look_up(_adds("userId", ("a@x.io", "u1")), "userId") is None
    assert people_to_look_up(_adds("userId", (None, "u1")), "userId") == [(None, "u1")]


def test_per_user_reads_win_while_they_take_less_time_than_one_export() -> None:
    settings = ClientSettings()  # 100 user reads a second; the export at 2,000 rows a second
    # 3 adds to a list in a project of 5M profiles: 0.03 s against 40+ minutes.
    route, why = choose_profile_read(3, 5_000_000, settings, 5_000_000)
    assert route == "lookups"
    assert "3 per-user reads" in why and "5,000,000" in why
    # 10,000 adds to a list of 1M: 100 s against 500 s and more.
    assert choose_profile_read(10_000, 1_000_000, settings, 1_000_000)[0] == "lookups"
    # 10,000 adds to a list of 100,000 in a project of as many: 100 s against 52 s.
    assert choose_profile_read(10_000, 100_000, settings, 100_000)[0] == "export"
    # Per-user reads that cannot answer exactly, and too many of them, are never chosen.
    assert choose_profile_read(None, 10**9, settings, None)[0] == "export"
    assert choose_profile_read(MAX_LOOKUPS + 1, 10**9, settings, None)[0] == "export"
    # The time scale divides both sides alike.
    scaled = dataclasses.replace(settings, time_scale=100.0)
    assert choose_profile_read(10_000, 100_000, scaled, 100_000)[0] == "export"


def test_an_export_of_a_project_of_unknown_size_must_win_by_the_member_reads_margin() -> None:
    """The plan's consent read and the apply's reads of removals price the export alike:
    by the profiles this run's whole export counted, else by the largest list, a lower
    bound (300 adds to a list of 1,000: 3 s of reads against 2.5 s of export, which
    streams every profile of a project of perhaps millions), the export then to win by
    routes.FEW_LISTS_EXPORT_MARGIN."""
    settings = ClientSettings()
    route, why = choose_profile_read(300, 1_000, settings, None)
    assert route == "lookups"
    assert "at least 1,000" in why
    # Counted: the project is the list, and the export wins as modelled.
    route, why = choose_profile_read(300, 1_000, settings, 1_000)
    assert route == "export"
    assert "(1,000)" in why
    # Counted larger than the list: priced by the project.
    assert choose_profile_read(300, 1_000, settings, 5_000_000)[0] == "lookups"
    # Unknown, and the export more than five times faster: still the export.
    assert choose_profile_read(10_000, 100_000, settings, None)[0] == "lookups"
    assert choose_profile_read(60_000, 100_000, settings, None)[0] == "export"
    # Uncapped (the apply's removals), the same prices.
    assert choose_profile_read(300, 1_000, settings, None, capped=False)[0] == "lookups"


def test_an_export_of_a_project_of_no_size_known_is_not_said_to_hold_at_least_0() -> None:
    """With no list read yet and no count of the project, the plan said "one export of
    every profile (at least 0)", which reads as an empty project."""
    settings = ClientSettings()
    _, why = choose_profile_read(MAX_LOOKUPS + 1, 0, settings, None)
    assert "at least 0" not in why and "every profile (how many unknown)" in why
    # A lower bound, where a list was read, is still said as one.
    assert "(at least 20)" in choose_profile_read(MAX_LOOKUPS + 1, 20, settings, None)[1]
