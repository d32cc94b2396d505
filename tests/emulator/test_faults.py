"""Injected faults: failures, scripts, latency, dropped responses, path filters."""

from __future__ import annotations

import time

import httpx
import pytest

from reconciler.emulator import Emulator, EmulatorServer, EmulatorTransport, Faults, Limits, Project
from tests.emulator.support import subscribe


def set_faults(client: httpx.Client, **settings: object) -> None:
    assert client.post("/_emulator/faults", json=settings).status_code == 200


def test_fail_every_kth_request(client: httpx.Client) -> None:
    set_faults(client, fail_every=3)
    statuses = [client.get("/api/lists").status_code for _ in range(7)]
    assert statuses == [200, 200, 503, 200, 200, 503, 200]


def test_fail_status_is_configurable(client: httpx.Client) -> None:
    set_faults(client, fail_every=1, fail_status=500)
    response = client.get("/api/lists")
    assert response.status_code == 500
    assert response.json()["code"] == "GenericError"


def test_a_failed_write_changes_nothing(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    set_faults(client, fail_every=1)
    assert subscribe(client, list_id, [{"email": "a@example.com"}]).status_code == 503
    assert project.users == {}
    log = client.get("/_emulator/requests").json()["requests"]
    assert log[-1]["fault"] == "fail_every"
    # The body is still logged, so a test can see what the client tried.
    assert log[-1]["body"]["subscribers"] == [{"email": "a@example.com"}]


def test_script_answers_in_order_then_recovers(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    set_faults(client, script=[429, 429, 503], retry_after=True)
    responses = [subscribe(client, list_id, [{"email": "a@example.com"}]) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 503, 200]
    assert responses[0].json()["code"] == "RateLimitExceeded"
    assert responses[0].headers["retry-after"] == "1"
    assert "retry-after" not in responses[2].headers
    assert project.members(list_id) == ["a@example.com"]
    assert client.get("/_emulator/faults").json()["script"] == []


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_html(client: httpx.Client, status: int) -> None:
    set_faults(client, script=[status])
    response = client.get("/api/lists")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")


def test_paths_limit_which_requests_count(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    set_faults(client, fail_every=1, paths=["/api/lists/subscribe"])
    assert client.get("/api/lists").status_code == 200
    assert client.get("/api/lists/getUsers", params={"listId": list_id}).status_code == 200
    assert subscribe(client, list_id, [{"email": "a@example.com"}]).status_code == 503


def test_control_endpoints_never_fault(client: httpx.Client) -> None:
    set_faults(client, fail_every=1)
    assert client.get("/_emulator/state").status_code == 200


def test_latency_beyond_the_client_timeout_is_a_read_timeout(
    emulator_server: EmulatorServer, client: httpx.Client
) -> None:
    set_faults(client, latency_seconds=0.5)
    with (
        httpx.Client(base_url=emulator_server.base_url, headers=client.headers) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.get("/api/lists", timeout=0.1)


def test_latency_within_the_timeout_only_slows(client: httpx.Client) -> None:
    set_faults(client, latency_seconds=0.15)
    started = time.monotonic()
    assert client.get("/api/lists").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_drop_applies_the_write_then_cuts_the_response(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    set_faults(client, drop_every=2)
    assert subscribe(client, list_id, [{"email": "first@example.com"}]).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        subscribe(client, list_id, [{"email": "second@example.com"}])
    # The nasty case: it worked, but the client cannot know.
    assert project.members(list_id) == ["first@example.com", "second@example.com"]
    # The pool recovers: the next request opens a fresh connection.
    assert client.get("/api/lists").status_code == 200
    assert client.get("/_emulator/requests").json()["requests"][1]["fault"] == "drop"


def test_drop_of_a_large_body_is_cut_mid_stream(client: httpx.Client, project: Project) -> None:
    list_id = project.add_list("l")
    for i in range(2000):
        project.subscribe_direct(list_id, email=f"member{i}@example.com")
    set_faults(client, drop_every=1)
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("GET", "/api/lists/getUsers", params={"listId": list_id}) as response,
    ):
        assert response.status_code == 200
        received.extend(response.iter_lines())
    assert 0 < len(received) < 2000


def test_drop_of_an_empty_body_closes_before_answering(client: httpx.Client) -> None:
    list_id = client.post("/api/lists", json={"name": "l"}).json()["listId"]
    set_faults(client, drop_every=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/lists/getUsers", params={"listId": list_id})


class TestTransport:
    @pytest.fixture
    def emulator(self) -> Emulator:
        emulator = Emulator(limits=Limits.unlimited())
        emulator.add_project("default", "hybrid", "k")
        return emulator

    def client(self, emulator: Emulator, sleeps: list[float] | None = None) -> httpx.Client:
        sleep = sleeps.append if sleeps is not None else time.sleep
        return httpx.Client(
            transport=EmulatorTransport(emulator, sleep=sleep),
            base_url="https://sandbox.invalid",
            headers={"Api-Key": "k"},
        )

    def test_in_process_requests_work(self, emulator: Emulator) -> None:
        with self.client(emulator) as client:
            list_id = client.post("/api/lists", json={"name": "l"}).json()["listId"]
            subscribe(client, list_id, [{"email": "A@example.com"}])
            assert client.get("/api/lists/getUsers", params={"listId": list_id}).text == (
                "a@example.com\n"
            )
            assert client.get("/api/nothing").status_code == 404

    def test_drop_raises_after_the_write(self, emulator: Emulator) -> None:
        list_id = emulator.project("default").add_list("l")
        emulator.faults = Faults(drop_every=1)
        with self.client(emulator) as client, pytest.raises(httpx.RemoteProtocolError):
            subscribe(client, list_id, [{"email": "a@example.com"}])
        assert emulator.project("default").members(list_id) == ["a@example.com"]

    def test_latency_sleeps_or_times_out(self, emulator: Emulator) -> None:
        sleeps: list[float] = []
        emulator.faults = Faults(latency_seconds=3.0)
        with self.client(emulator, sleeps) as client:
            assert client.get("/api/lists", timeout=5.0).status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                client.get("/api/lists", timeout=1.0)
        assert sleeps == [3.0, 1.0]

    def test_faults_count_through_the_transport(self, emulator: Emulator) -> None:
        emulator.faults = Faults(fail_every=2, fail_status=502)
        with self.client(emulator) as client:
            assert [client.get("/api/lists").status_code for _ in range(4)] == [200, 502, 200, 502]


def test_bad_body_applies_the_write_then_answers_a_page(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    set_faults(client, bad_body_every=1, bad_body="html")
    response = subscribe(client, list_id, [{"email": "a@example.com"}])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert project.members(list_id) == ["a@example.com"]


def test_bad_body_truncated_cuts_json_and_keeps_the_length_honest(client: httpx.Client) -> None:
    set_faults(client, bad_body_every=1, bad_body="truncated")
    response = client.get("/api/lists")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(ValueError):
        response.json()


def test_bad_body_empty_and_unknown_kinds(client: httpx.Client) -> None:
    set_faults(client, bad_body_every=2, bad_body="empty")
    assert [len(client.get("/api/lists").content) > 0 for _ in range(2)] == [True, False]
    assert client.post("/_emulator/faults", json={"bad_body": "junk"}).status_code == 400


def test_latency_every_slows_only_every_kth_request() -> None:
    emulator = Emulator(
        limits=Limits.unlimited(), faults=Faults(latency_seconds=5, latency_every=2)
    )
    emulator.add_project("p", "hybrid", "k")
    slept: list[float] = []
    transport = EmulatorTransport(emulator, sleep=slept.append)
    with httpx.Client(
        transport=transport, base_url="http://emulator.invalid", headers={"Api-Key": "k"}
    ) as http:
        statuses = [http.get("/api/lists", timeout=10).status_code for _ in range(4)]
    assert statuses == [200] * 4
    assert slept == [5, 5]  # the 2nd and the 4th


def test_echo_api_key_quotes_the_request_key_in_errors_and_bulk_answers(
    client: httpx.Client, project: Project
) -> None:
    key = client.headers["Api-Key"]
    list_id = project.add_list("l")
    set_faults(client, echo_api_key=True)
    error = client.get("/api/lists/getUsers", params={"listId": "999"})
    assert error.status_code >= 400 and key in error.json()["msg"]
    answer = subscribe(client, list_id, [{"email": "a@example.com"}]).json()
    assert key in answer["failedUpdates"]["invalidEmails"] and key in answer["filteredOutFields"]
    assert answer["successCount"] == 1  # the write itself is unchanged
    set_faults(client, echo_api_key=False)
    assert key not in client.get("/api/lists/getUsers", params={"listId": "999"}).text


def test_echo_request_quotes_the_body_in_an_injected_error(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    set_faults(client, echo_request=True, fail_every=1, fail_status=400)
    error = subscribe(client, list_id, [{"email": "a@example.com", "userId": "u-1"}])
    assert error.status_code == 400
    assert '{"email":"a@example.com","userId":"u-1"}' in error.json()["msg"]
    assert project.members(list_id) == []  # refused, as the fault says
    set_faults(client, echo_request=False, fail_every=0)
    assert "request:" not in subscribe(client, list_id, [{"email": "b@example.com"}]).text


def test_counts_only_answers_name_no_failures_but_invalid_ones(
    client: httpx.Client, project: Project
) -> None:
    list_id = project.add_list("l")
    set_faults(client, counts_only_answers=True)
    body = client.post(
        "/api/lists/unsubscribe",
        json={"listId": list_id, "subscribers": [{"userId": "ghost"}, {"email": "bad"}]},
    ).json()
    assert body == {
        "successCount": 0,
        "failCount": 2,
        "invalidEmails": ["bad"],
        "invalidUserIds": [],
    }


def test_forgotten_users_are_refused_and_listed_as_hashes(
    client: httpx.Client, project: Project
) -> None:
    import hashlib

    list_id = project.add_list("l")
    project.subscribe_direct(list_id, email="gone@example.com", user_id="gone-1")
    response = client.post("/_emulator/forget", json={"email": " Gone@Example.com"})
    assert response.json() == {"forgotten": True, "profileFound": True}
    assert project.members(list_id) == [] and not project.users
    body = client.post(
        "/api/lists/subscribe",
        json={
            "listId": list_id,
            "subscribers": [{"email": "gone@example.com"}, {"userId": "gone-1"}],
        },
    ).json()
    assert body["successCount"] == 0 and body["failCount"] == 2
    assert body["failedUpdates"]["forgottenEmails"] == ["gone@example.com"]
    assert body["failedUpdates"]["forgottenUserIds"] == ["gone-1"]
    hashed = client.get("/api/users/forgotten").json()
    assert hashed == {"hashedEmails": [hashlib.sha256(b"gone@example.com").hexdigest()]}
    ids = client.get("/api/users/forgottenUserIds").json()
    assert ids == {"hashedUserIds": [hashlib.sha256(b"gone-1").hexdigest()]}
