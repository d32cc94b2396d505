"""The asynchronous export (issue 18, point 1): jobs, files behind expiring links served by
the emulator, startAfter paging, per-organisation rate and concurrency, restarts, failures
and truncation. Over real HTTP, on a clock the test moves: every assertion is about states
and shapes, none about durations."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from reconciler.emulator import Faults, Limits, spec
from reconciler.emulator.exports import KEPT_FINISHED_JOBS
from reconciler.emulator.knobs import FIELD_EXPORT_JOB_MEMBERS_PER_SECOND
from tests.conftest import EMULATOR_PROJECT
from tests.emulator.support import FakeClock, client_for

START = {"dataTypeName": "user", "outputFormat": "application/x-json-stream"}
MEMBERSHIP_FIELDS = "email,userId,userListIds"


def no_export_rate_limits() -> Limits:
    limits = Limits.unlimited()
    limits.export_concurrent_jobs = 4
    return limits


@pytest.fixture
def exporting(make_emulator_server, clock: FakeClock):
    """(client, server, project) with 40 members on two lists, a clock the test moves, and
    jobs that queue 10 s and then produce 4 users/s in files of about 5 rows."""
    server = make_emulator_server(limits=no_export_rate_limits(), clock=clock)
    project = server.emulator.project(EMULATOR_PROJECT)
    first, second = project.add_list("first"), project.add_list("second")
    for i in range(40):
        email = f"member{i:03d}@example.com"
        project.subscribe_direct(first, email=email, user_id=f"id-{i:03d}")
        if i % 2:
            project.subscribe_direct(second, email=email)
    server.emulator.faults.update(
        {
            "export_job_queue_seconds": 10,
            "export_job_members_per_second": 4,
            "export_file_bytes": 5 * 90,
        }
    )
    with client_for(server) as client:
        yield client, server, project


def start(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/api/export/start", json={**START, **body})


def files(client: httpx.Client, job_id: int, start_after: str | None = None) -> dict[str, Any]:
    params = {"startAfter": start_after} if start_after is not None else None
    answer = client.get(f"/api/export/{job_id}/files", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def all_files(client: httpx.Client, job_id: int) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The last page's answer and every file listed, paging with startAfter."""
    listed: list[dict[str, str]] = []
    page = files(client, job_id)
    while page["files"]:
        listed += page["files"]
        page = files(client, job_id, page["files"][-1]["file"])
    return page, listed


def download(url: str) -> httpx.Response:
    # A link is its own credential: no Api-Key, as a pre-signed link needs none.
    with httpx.Client() as plain:
        return plain.get(url)


def rows_of(listed: list[dict[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for entry in listed:
        answer = download(entry["url"])
        assert answer.status_code == 200, answer.text
        rows += [json.loads(line) for line in answer.text.splitlines()]
    return rows


def sync_export_rows(client: httpx.Client) -> list[dict[str, Any]]:
    params = {"dataTypeName": "user", "range": "All", "onlyFields": MEMBERSHIP_FIELDS}
    answer = client.get("/api/export/data.json", params=params)
    return [json.loads(line) for line in answer.text.splitlines()]


def test_a_job_goes_enqueued_running_completed_and_its_files_rebuild_memberships(
    exporting, clock: FakeClock
) -> None:
    client, server, _ = exporting
    answer = start(client, onlyFields=MEMBERSHIP_FIELDS)
    assert answer.status_code == 200
    job_id = answer.json()["jobId"]
    page = files(client, job_id)
    assert (page["jobState"], page["files"], page["exportTruncated"]) == ("Enqueued", [], False)
    clock.advance(10 + 3)  # 12 users produced: two files of about 5 rows
    page = files(client, job_id)
    assert page["jobState"] == "Running"
    assert 1 <= len(page["files"]) < 8
    clock.advance(10)  # 52 users due, 40 there: done
    last, listed = all_files(client, job_id)
    assert last["jobState"] == "Completed" and last["exportTruncated"] is False
    names = [entry["file"] for entry in listed]
    assert names == sorted(names) and len(set(names)) == len(names) >= 8
    # Paged by export_files_per_page (10): startAfter walked past the first page.
    assert len(files(client, job_id)["files"]) == min(10, len(names))
    rows = rows_of(listed)
    # The same rows as the synchronous export: email, userId and the list ids of each.
    assert rows == sync_export_rows(client)
    first, second = (record.id for record in server.emulator.project("default").lists.values())
    assert sum(first in row["userListIds"] for row in rows) == 40
    assert sum(second in row.get("userListIds", []) for row in rows) == 20
    for entry in listed:
        assert len(download(entry["url"]).content) <= 5 * 90


def test_files_are_paged_by_start_after(exporting, clock: FakeClock) -> None:
    client, server, _ = exporting
    server.emulator.faults.update({"export_files_per_page": 3, "export_job_queue_seconds": 0})
    server.emulator.faults.export_job_members_per_second = None
    job_id = start(client).json()["jobId"]
    page = files(client, job_id)
    assert page["jobState"] == "Completed" and len(page["files"]) == 3
    after = files(client, job_id, page["files"][-1]["file"])
    assert after["files"][0]["file"] > page["files"][-1]["file"]
    assert len(after["files"]) <= 3


def test_file_links_expire_and_a_new_files_call_gives_fresh_ones(
    exporting, clock: FakeClock
) -> None:
    client, server, _ = exporting
    server.emulator.faults.update({"export_link_seconds": 60, "export_job_queue_seconds": 0})
    server.emulator.faults.export_job_members_per_second = None
    job_id = start(client).json()["jobId"]
    link = files(client, job_id)["files"][0]["url"]
    assert download(link).status_code == 200
    clock.advance(60)
    expired = download(link)
    assert expired.status_code == 403
    assert "Request has expired" in expired.text
    fresh = files(client, job_id)["files"][0]["url"]
    assert fresh != link and download(fresh).status_code == 200
    assert download(link.rsplit("/", 2)[0] + "/forged/x.json").status_code == 403
    log = client.get("/_emulator/requests").json()["requests"]
    assert [r["status"] for r in log if r["path"].startswith("/export-files/")] == [
        200,
        403,
        200,
        403,
    ]


def test_a_restarted_job_goes_back_to_enqueued_and_keeps_its_files(
    exporting, clock: FakeClock
) -> None:
    client, server, _ = exporting
    server.emulator.faults.export_jobs_to_restart = 1
    job_id = start(client).json()["jobId"]
    clock.advance(10 + 5)  # half way (20 users) at 15 s: back in the queue for 10 s
    page = files(client, job_id)
    assert page["jobState"] == "Enqueued"
    kept = [entry["file"] for entry in page["files"]]
    assert kept, "the files made before the restart stay listed"
    clock.advance(10 + 5)
    last, listed = all_files(client, job_id)
    assert last["jobState"] == "Completed"
    assert [entry["file"] for entry in listed][: len(kept)] == kept
    emails = [row["email"] for row in rows_of(listed)]
    assert len(emails) == len(set(emails)) == 40
    assert server.emulator.faults.export_jobs_to_restart == 0


def test_a_restart_that_resets_empties_the_files_list(exporting, clock: FakeClock) -> None:
    client, server, _ = exporting
    server.emulator.faults.update(
        {"export_jobs_to_restart": 1, "export_restart_resets_files": True}
    )
    job_id = start(client).json()["jobId"]
    clock.advance(10 + 4)
    before = [entry["file"] for entry in files(client, job_id)["files"]]
    assert before
    clock.advance(1)
    page = files(client, job_id)
    assert (page["jobState"], page["files"]) == ("Enqueued", [])
    clock.advance(10 + 10)
    last, listed = all_files(client, job_id)
    assert last["jobState"] == "Completed"
    names = [entry["file"] for entry in listed]
    assert not set(names) & set(before)
    assert len(rows_of(listed)) == 40


def test_a_job_beyond_the_maximum_size_is_truncated(exporting, clock: FakeClock) -> None:
    client, server, _ = exporting
    server.emulator.faults.update({"export_max_bytes": 1000})
    job_id = start(client).json()["jobId"]
    clock.advance(10 + 1)
    assert files(client, job_id)["exportTruncated"] is False  # not known until it ends
    clock.advance(20)
    last, listed = all_files(client, job_id)
    assert (last["jobState"], last["exportTruncated"]) == ("Completed", True)
    rows = rows_of(listed)
    assert 0 < len(rows) < 40
    assert sum(len(download(e["url"]).content) for e in listed) <= 1000


def test_a_failed_job_ends_failed_half_way(exporting, clock: FakeClock) -> None:
    client, server, _ = exporting
    server.emulator.faults.export_jobs_to_fail = 1
    job_id = start(client).json()["jobId"]
    clock.advance(60)
    assert files(client, job_id)["jobState"] == "Failed"
    assert files(client, start(client).json()["jobId"])["jobState"] == "Enqueued"


def test_the_fifth_unfinished_job_is_refused_429_until_one_ends(
    exporting, clock: FakeClock
) -> None:
    client, _, _ = exporting
    jobs = [start(client) for _ in range(4)]
    assert [answer.status_code for answer in jobs] == [200] * 4
    refused = start(client)
    assert refused.status_code == 429
    assert refused.json()["code"] == "RateLimitExceeded"
    log = client.get("/_emulator/requests").json()["requests"]
    assert log[-1]["fault"] == "export_concurrency"
    assert client.delete(f"/api/export/{jobs[0].json()['jobId']}").status_code == 200
    assert start(client).status_code == 200


def test_queued_excess_jobs_wait_enqueued_while_four_run(exporting, clock: FakeClock) -> None:
    client, server, _ = exporting
    server.emulator.faults.export_excess_jobs = "queue"
    ids = [start(client).json()["jobId"] for _ in range(5)]
    clock.advance(11)
    states = [files(client, job_id)["jobState"] for job_id in ids]
    assert states == ["Running"] * 4 + ["Enqueued"]
    # The first four run from 10 s and complete at 20 s (40 users at 4/s); the fifth runs
    # from then, not from when it was ready, so it completes at 30 s.
    clock.advance(10)
    assert files(client, ids[4])["jobState"] == "Running"
    clock.advance(8)
    assert files(client, ids[4])["jobState"] == "Running"
    clock.advance(1)
    assert files(client, ids[4])["jobState"] == "Completed"


def test_start_and_files_allow_one_request_a_second_per_organisation(
    make_emulator_server, clock: FakeClock
) -> None:
    server = make_emulator_server(limits=Limits.iterable(), clock=clock)
    server.emulator.add_project("other", "email", "other-key")
    with client_for(server) as client, client_for(server, "other-key") as other:
        job_id = start(client).json()["jobId"]
        # Another project of the same organisation shares the budget.
        assert start(other).status_code == 429
        assert client.get(f"/api/export/{job_id}/files").status_code == 200
        assert client.get(f"/api/export/{job_id}/files").status_code == 429
        clock.advance(1)
        assert start(other).status_code == 200
        assert client.get(f"/api/export/{job_id}/files").status_code == 200
        # A job is its project's: the other project cannot see it.
        clock.advance(1)
        assert other.get(f"/api/export/{job_id}/files").status_code == 404


def test_jobs_are_listed_per_project_filtered_and_cancelled(exporting, clock: FakeClock) -> None:
    client, server, _ = exporting
    server.emulator.faults.export_job_state_case = "lower"
    first = start(client).json()["jobId"]
    second = start(client).json()["jobId"]
    assert client.delete(f"/api/export/{second}").status_code == 200
    assert client.delete(f"/api/export/{second}").status_code == 400
    assert client.delete("/api/export/999").status_code == 404
    listed = client.get("/api/export/jobs").json()["jobs"]
    assert [(job["id"], job["jobState"]) for job in listed] == [
        (first, "enqueued"),
        (second, "cancelled"),
    ]
    assert all(job["dataTypeName"] == "user" for job in listed)
    enqueued = client.get("/api/export/jobs", params={"jobState": "Enqueued"}).json()["jobs"]
    assert [job["id"] for job in enqueued] == [first]
    assert files(client, first)["jobState"] == "enqueued"


def test_only_the_last_finished_jobs_are_kept(client: httpx.Client) -> None:
    # Instant jobs (the plain profile): each completes as it starts.
    ids = [start(client).json()["jobId"] for _ in range(KEPT_FINISHED_JOBS + 2)]
    listed = [job["id"] for job in client.get("/api/export/jobs").json()["jobs"]]
    assert listed == ids[-KEPT_FINISHED_JOBS:]
    assert client.get(f"/api/export/{ids[0]}/files").status_code == 404


def test_start_checks_its_body(exporting) -> None:
    client, _, _ = exporting
    assert client.post("/api/export/start", json={"dataTypeName": "user"}).status_code == 400
    assert start(client, dataTypeName="nonsense").status_code == 400
    assert start(client, outputFormat="text/csv").status_code == 400
    assert start(client, startDateTime="yesterday").status_code == 400
    assert client.get("/api/export/abc/files").status_code == 400


def test_answers_match_the_openapi(exporting, clock: FakeClock) -> None:
    client, _, _ = exporting
    answer = start(client, startDateTime="2000-01-01 00:00:00 +00:00")
    assert spec.definition_validator("StartExportResponse").is_valid(answer.json())
    clock.advance(100)
    page = files(client, answer.json()["jobId"])
    assert page["files"]
    assert spec.definition_validator("ExportJobStatusAndFiles").is_valid(page)


def test_an_event_export_completes_empty(exporting, clock: FakeClock) -> None:
    client, _, _ = exporting
    job_id = start(client, dataTypeName="emailSend").json()["jobId"]
    clock.advance(11)
    page = files(client, job_id)
    assert (page["jobState"], page["files"]) == ("Completed", [])


def test_the_field_profile_runs_export_jobs_at_field_speed() -> None:
    plain, field = Faults(), Faults.field()
    assert plain.export_job_members_per_second is None
    assert plain.export_job_queue_seconds == 0
    assert (plain.export_job_state_case, field.export_job_state_case) == ("spec", "lower")
    assert field.export_job_members_per_second == FIELD_EXPORT_JOB_MEMBERS_PER_SECOND
    scaled = Faults.field(time_scale=50)
    assert scaled.export_link_seconds == pytest.approx(field.export_link_seconds / 50)
    assert scaled.export_job_queue_seconds == pytest.approx(field.export_job_queue_seconds / 50)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("export_file_bytes", 0),
        ("export_max_bytes", -1),
        ("export_files_per_page", 1.5),
        ("export_link_seconds", 0),
        ("export_job_state_case", "upper"),
        ("export_excess_jobs", "drop"),
        ("export_jobs_to_restart", -1),
        ("export_restart_resets_files", "yes"),
    ],
)
def test_export_knobs_refuse_bad_values(client: httpx.Client, name: str, value: object) -> None:
    assert client.post("/_emulator/faults", json={name: value}).status_code == 400


def test_the_concurrency_limit_is_set_through_the_limits_route(client: httpx.Client) -> None:
    answer = client.post(
        "/_emulator/limits", json={"preset": "unlimited", "export_concurrent_jobs": 1}
    )
    assert answer.status_code == 200
    client.post("/_emulator/faults", json={"export_job_queue_seconds": 60})
    assert start(client).status_code == 200
    assert start(client).status_code == 429
    bad = client.post("/_emulator/limits", json={"export_concurrent_jobs": [1, 1]})
    assert bad.status_code == 400


def test_a_job_is_built_outside_the_lock_so_other_requests_go_on(
    exporting, clock: FakeClock
) -> None:
    """Issue 18: a large job's rows are written from a snapshot outside the emulator's lock.
    While the start request's job is being built (held there by the test), another request
    is answered; the start is answered after it. Ordering only: the waits are guards."""
    client, server, project = exporting
    emulator = server.emulator
    building, other_answered = threading.Event(), threading.Event()
    order: list[str] = []

    def hold_the_build(path: str) -> None:
        if path == "/api/export/start":
            building.set()
            other_answered.wait(10)

    emulator.on_deferred_work = hold_the_build

    def start_job() -> None:
        answer = start(client, onlyFields=MEMBERSHIP_FIELDS)
        assert answer.status_code == 200, answer.text
        order.append("start")

    starter = threading.Thread(target=start_job)
    starter.start()
    assert building.wait(10), "the job's build never began"
    with client_for(server) as other:
        lists = other.get("/api/lists")
    assert lists.status_code == 200
    order.append("lists")
    other_answered.set()
    starter.join(10)
    assert order == ["lists", "start"]
    # The job built outside the lock holds what the synchronous export holds.
    clock.advance(10 + len(project.users) / 4 + 1)
    page, listed = all_files(client, emulator.exports.next_id - 1)
    assert page["jobState"] == "Completed"
    assert sorted(map(json.dumps, rows_of(listed))) == sorted(
        map(json.dumps, sync_export_rows(client))
    )
