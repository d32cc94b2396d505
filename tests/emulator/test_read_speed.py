"""Read speed and read failures (issue 18, point 1): slow member reads that arrive in
pieces, streams that die midway, lists that keep answering 500. Over real HTTP; the
assertions are about shapes (pieces, lines before a cut), never durations."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator import Emulator, EmulatorTransport, Faults, Limits, Project
from reconciler.emulator.knobs import (
    FIELD_EXPORT_MEMBERS_PER_SECOND,
    FIELD_GET_USERS_MEMBERS_PER_SECOND,
)
from tests.emulator.support import client_for, get_users


def set_faults(client: httpx.Client, **settings: object) -> None:
    answer = client.post("/_emulator/faults", json=settings)
    assert answer.status_code == 200, answer.text


def seed(project: Project, count: int) -> tuple[int, list[str]]:
    list_id = project.add_list("big")
    emails = [f"member{i:04d}@example.com" for i in range(count)]
    for email in emails:
        project.subscribe_direct(list_id, email=email)
    return list_id, emails


def read_raw(
    client: httpx.Client, path: str, params: dict[str, object]
) -> tuple[httpx.Response, list[bytes], Exception | None]:
    """The answer, the pieces its body arrived in, and the error that ended it early."""
    pieces: list[bytes] = []
    with client.stream("GET", path, params=params) as response:
        try:
            for piece in response.iter_raw():
                pieces.append(piece)
        except httpx.RemoteProtocolError as error:
            return response, pieces, error
    return response, pieces, None


def test_a_slow_get_users_arrives_in_pieces_chunked_and_whole(
    client: httpx.Client, project: Project
) -> None:
    list_id, emails = seed(project, 100)
    # 100 members at 1,000/s: about two pieces of 50 lines each (one per 50 ms tick).
    set_faults(client, get_users_members_per_second=1000)
    response, pieces, error = read_raw(client, "/api/lists/getUsers", {"listId": list_id})
    assert error is None
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert len(pieces) >= 2
    # Every piece ends on a line: members arrive whole, just slowly.
    assert all(piece.endswith(b"\n") for piece in pieces)
    assert b"".join(pieces).decode().splitlines() == emails


def test_without_read_knobs_get_users_goes_out_at_once(
    client: httpx.Client, project: Project
) -> None:
    list_id, emails = seed(project, 20)
    response = client.get("/api/lists/getUsers", params={"listId": list_id})
    assert response.headers["content-length"] == str(len(response.content))
    assert response.text.splitlines() == emails


def test_a_stream_closed_after_a_duration_stops_after_the_members_due_by_then(
    client: httpx.Client, project: Project
) -> None:
    list_id, emails = seed(project, 100)
    # 2,000 members/s, first byte after 10 ms, connection closed 40 ms after the request:
    # (0.040 - 0.010) * 2000 = 60 members, then half of the 61st.
    set_faults(
        client,
        get_users_members_per_second=2000,
        get_users_first_byte_seconds=0.01,
        get_users_stream_seconds=0.04,
    )
    response, pieces, error = read_raw(client, "/api/lists/getUsers", {"listId": list_id})
    assert response.status_code == 200
    assert isinstance(error, httpx.RemoteProtocolError)
    received = b"".join(pieces).decode()
    *whole, partial = received.split("\n")
    assert whole == emails[:60]
    assert partial and emails[60].startswith(partial) and partial != emails[60]
    log = client.get("/_emulator/requests").json()["requests"]
    assert log[-1]["fault"] == "stream_cut"
    # The cut is not a passing fault: the same read dies at the same member again.
    again = read_raw(client, "/api/lists/getUsers", {"listId": list_id})
    assert b"".join(again[1]) == b"".join(pieces)


def test_a_stream_that_finishes_before_its_duration_is_whole(
    client: httpx.Client, project: Project
) -> None:
    list_id, emails = seed(project, 10)
    set_faults(client, get_users_members_per_second=10_000, get_users_stream_seconds=5)
    _, pieces, error = read_raw(client, "/api/lists/getUsers", {"listId": list_id})
    assert error is None
    assert b"".join(pieces).decode().splitlines() == emails


def test_a_stream_closed_before_its_first_byte_gets_no_answer(
    client: httpx.Client, project: Project
) -> None:
    list_id, _ = seed(project, 3)
    set_faults(client, get_users_first_byte_seconds=0.02, get_users_stream_seconds=0.01)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/lists/getUsers", params={"listId": list_id})


def test_streams_to_cut_kills_the_next_reads_midway_then_recovers(
    client: httpx.Client, project: Project
) -> None:
    list_id, emails = seed(project, 10)
    set_faults(client, streams_to_cut=1)
    response, pieces, error = read_raw(client, "/api/lists/getUsers", {"listId": list_id})
    assert response.status_code == 200
    assert isinstance(error, httpx.RemoteProtocolError)
    assert b"".join(pieces).decode().split("\n")[:5] == emails[:5]
    assert client.get("/_emulator/faults").json()["streams_to_cut"] == 0
    assert get_users(client, list_id) == emails


def test_the_user_export_is_paced_and_cut_like_get_users(
    client: httpx.Client, project: Project
) -> None:
    _, emails = seed(project, 100)
    params = {"dataTypeName": "user", "range": "All", "onlyFields": "email"}
    set_faults(client, export_members_per_second=1000)
    _, pieces, error = read_raw(client, "/api/export/data.json", params)
    assert error is None and len(pieces) >= 2
    rows = [json.loads(line) for line in b"".join(pieces).decode().splitlines()]
    assert [row["email"] for row in rows] == emails
    set_faults(client, export_members_per_second=1000, export_stream_seconds=0.03)
    _, pieces, error = read_raw(client, "/api/export/data.json", params)
    assert isinstance(error, httpx.RemoteProtocolError)
    *whole, partial = b"".join(pieces).decode().split("\n")
    assert [json.loads(line)["email"] for line in whole] == emails[:30]
    # Half a JSON object: a client that parsed it as a row would fail, not miscount.
    with pytest.raises(ValueError):
        json.loads(partial)


def test_a_failing_list_answers_500_every_time_and_others_read(
    client: httpx.Client, project: Project
) -> None:
    failing, _ = seed(project, 3)
    healthy = project.add_list("healthy")
    project.subscribe_direct(healthy, email="fine@example.com")
    set_faults(client, failing_list_ids=[failing])
    for _ in range(3):
        answer = client.get("/api/lists/getUsers", params={"listId": failing})
        assert answer.status_code == 500
        assert answer.json()["code"] == "GenericError"
    assert client.get(f"/api/lists/{failing}/size").status_code == 500
    assert get_users(client, healthy) == ["fine@example.com"]
    log = client.get("/_emulator/requests").json()["requests"]
    assert log[0]["fault"] == "failing_list"
    set_faults(client, failing_list_ids=[failing], failing_list_status=503)
    assert client.get("/api/lists/getUsers", params={"listId": failing}).status_code == 503


def test_a_failing_list_still_counts_against_the_read_budget(make_emulator_server) -> None:
    server = make_emulator_server(limits=Limits.iterable())
    list_id = server.emulator.project("default").add_list("failing")
    server.emulator.faults.failing_list_ids = [list_id]
    with client_for(server) as client:
        params = {"listId": list_id}
        statuses = [client.get("/api/lists/getUsers", params=params).status_code for _ in range(6)]
    # Iterable counts a failed read against its 5 per minute: a client must not spin on it.
    assert statuses == [500] * 5 + [429]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("get_users_members_per_second", 0),
        ("export_members_per_second", -5),
        ("get_users_first_byte_seconds", -1),
        ("get_users_stream_seconds", "1"),
        ("streams_to_cut", 1.5),
        ("failing_list_ids", [1, "2"]),
        ("failing_list_status", 200),
    ],
)
def test_read_knobs_refuse_bad_values(client: httpx.Client, name: str, value: object) -> None:
    assert client.post("/_emulator/faults", json={name: value}).status_code == 400


def test_the_field_profile_reads_at_field_speed_scaled() -> None:
    plain = Faults()
    assert plain.get_users_members_per_second is None
    assert plain.get_users_first_byte_seconds == 0
    assert plain.export_stream_seconds is None
    field = Faults.field()
    # 1M members at the field rate take over 80 minutes, as Estuary reports.
    assert 1_000_000 / field.get_users_members_per_second > 80 * 60
    # and 200,000 take over 5 minutes.
    assert 200_000 / field.get_users_members_per_second > 5 * 60
    scaled = Faults.field(time_scale=100)
    assert scaled.get_users_members_per_second == FIELD_GET_USERS_MEMBERS_PER_SECOND * 100
    assert scaled.export_members_per_second == FIELD_EXPORT_MEMBERS_PER_SECOND * 100
    assert scaled.get_users_first_byte_seconds == pytest.approx(
        field.get_users_first_byte_seconds / 100
    )
    assert scaled.export_stream_seconds == pytest.approx(field.export_stream_seconds / 100)


def test_the_modelled_durations_follow_the_knobs() -> None:
    field = Faults.field()
    # The figures the field profile is built on: 1M members in 80+ minutes.
    assert field.get_users_seconds(1_000_000) > 80 * 60
    assert Faults.field(time_scale=1000).get_users_seconds(1_000_000) == pytest.approx(
        field.get_users_seconds(1_000_000) / 1000
    )
    assert field.export_seconds(2000) == pytest.approx(
        field.export_first_byte_seconds + 2000 / field.export_members_per_second
    )
    assert field.export_job_seconds(0) == field.export_job_queue_seconds
    assert Faults().get_users_seconds(10**7) == Faults().export_job_seconds(10**7) == 0


def test_the_in_process_transport_paces_and_cuts_too() -> None:
    slept: list[float] = []
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("p", "email", "key")
    list_id, emails = seed(project, 100)
    transport = EmulatorTransport(emulator, sleep=slept.append)
    with httpx.Client(
        transport=transport, base_url="https://sandbox.invalid", headers={"Api-Key": "key"}
    ) as client:
        emulator.faults.get_users_members_per_second = 1000
        response = client.get("/api/lists/getUsers", params={"listId": list_id})
        assert response.text.splitlines() == emails
        # Slept for the body piece by piece, about 0.1 s in all at 1,000 members/s.
        assert len(slept) >= 2 and sum(slept) == pytest.approx(0.1)
        emulator.faults.streams_to_cut = 1
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/lists/getUsers", params={"listId": list_id})


def test_a_time_scale_divides_the_rate_limit_windows() -> None:
    scaled = Limits.iterable().scaled(60)
    assert scaled.list_reads == (5, pytest.approx(1.0))
    assert scaled.export_start == (1, pytest.approx(1 / 60))
    assert scaled.writes is None
    assert scaled.export_concurrent_jobs == Limits.iterable().export_concurrent_jobs
    with pytest.raises(ValueError):
        Limits.iterable().scaled(0)


def test_the_limits_route_takes_a_time_scale(make_emulator_server, clock) -> None:
    server = make_emulator_server(clock=clock)
    with client_for(server) as client:
        answer = client.post("/_emulator/limits", json={"preset": "iterable", "timeScale": 60})
        assert answer.status_code == 200
        assert client.get("/_emulator/limits").json()["list_reads"] == [5, 1.0]
        list_id = server.emulator.project("default").add_list("l")
        params = {"listId": list_id}
        statuses = [client.get("/api/lists/getUsers", params=params).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        clock.advance(1.0)  # a minute at K = 60
        assert client.get("/api/lists/getUsers", params=params).status_code == 200
        bad = client.post("/_emulator/limits", json={"timeScale": "fast"})
        assert bad.status_code == 400


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/_emulator/limits", '{"list_reads": [5, -60]}'),
        ("/_emulator/limits", '{"list_reads": [5, 0]}'),
        # 1e400 is infinity to a JSON reader (the word Infinity is refused as not JSON).
        ("/_emulator/limits", '{"list_reads": [5, 1e400]}'),
        ("/_emulator/limits", '{"list_reads": [-5, 60]}'),
        ("/_emulator/limits", '{"list_reads": [true, 60]}'),
        ("/_emulator/limits", '{"export_concurrent_jobs": -1}'),
        ("/_emulator/limits", '{"timeScale": 1e400}'),
        ("/_emulator/profile", '{"name": "field", "timeScale": 1e400}'),
    ],
)
def test_a_negative_zero_or_endless_limit_is_refused(
    client: httpx.Client, route: str, body: str
) -> None:
    """A window of -60 s let every request through, one of infinity made a 429's
    Retry-After a traceback and a time scale of infinity lifted every limit: each was
    taken with a 200, the emulator then not modelling what it said."""
    before = client.get("/_emulator/limits").json()
    answer = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert client.get("/_emulator/limits").json() == before


def test_a_paced_answer_leaves_its_connection_reusable(
    client: httpx.Client, project: Project
) -> None:
    list_id, emails = seed(project, 30)
    set_faults(client, get_users_members_per_second=3000)
    for _ in range(2):
        assert get_users(client, list_id) == emails
    assert client.get("/api/lists").status_code == 200
    log = client.get("/_emulator/requests").json()["requests"]
    assert [entry["status"] for entry in log] == [200, 200, 200]


def test_a_client_that_leaves_a_slow_read_does_not_stop_the_server(
    client: httpx.Client, project: Project
) -> None:
    list_id, _ = seed(project, 200)
    set_faults(client, get_users_members_per_second=400)  # about half a second in all
    with client.stream("GET", "/api/lists/getUsers", params={"listId": list_id}) as response:
        first = next(response.iter_raw())
        assert first.endswith(b"\n")
    set_faults(client, get_users_members_per_second=None)
    assert len(get_users(client, list_id)) == 200


def test_export_windows_select_by_update_time_and_each_stream_is_cut_on_its_own(
    client: httpx.Client, project: Project
) -> None:
    """startDateTime (>=) and endDateTime (<) over profileUpdatedAt, both or neither; the
    stream cut counts each request's rows: windows under it arrive whole where the whole
    export dies."""
    _, emails = seed(project, 40)
    base = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
    for i, user in enumerate(project.users.values()):
        user.profile_updated_at = base + i * 1000  # one a second
    set_faults(client, export_members_per_second=1000, export_stream_seconds=0.025)

    def window(start: str, end: str) -> tuple[list[str], Exception | None]:
        params = {
            "dataTypeName": "user",
            "startDateTime": start,
            "endDateTime": end,
            "onlyFields": "email",
        }
        response, pieces, error = read_raw(client, "/api/export/data.json", params)
        assert response.status_code == 200
        lines = b"".join(pieces).decode().split("\n")
        return [json.loads(line)["email"] for line in lines if line and error is None], error

    _, error = window("2023-11-14 22:13:20", "2023-11-14 22:14:00")  # all 40: cut at 25
    assert isinstance(error, httpx.RemoteProtocolError)
    first, error = window("2023-11-14 22:13:20", "2023-11-14 22:13:40")
    assert error is None and first == emails[:20]  # the one updated at 22:13:40 is not in
    second, error = window("2023-11-14 22:13:40", "2023-11-14 22:14:00 +00:00")
    assert error is None and second == emails[20:]
    later, error = window("2023-11-14 23:13:40 +01:00", "2023-11-14 22:13:41")  # one second
    assert error is None and later == [emails[20]]
    for alone in ({"startDateTime": "2023-11-14 22:13:20"}, {"endDateTime": "2023-11-14 22:14:00"}):
        answer = client.get("/api/export/data.json", params={"dataTypeName": "user", **alone})
        assert answer.status_code == 400
