"""How many profiles apply reads to tell a removal Iterable found no user for (declared
projectType userId) from a member still on the list under that text as its email
(apply/executor._Destination._still_listed_by_email), when the answer names no one."""

from __future__ import annotations

import threading

from reconciler.apply.executor import _Destination, _Run
from reconciler.apply.journal import Journal
from reconciler.emulator import Emulator, EmulatorTransport, Limits
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.iterable.results import BatchResult
from reconciler.plan.model import DestinationPlan


def destination(emulator: Emulator) -> _Destination:
    transport = EmulatorTransport(emulator)
    client = IterableClient(
        "http://127.0.0.1:9", "key", settings=ClientSettings(), transport=transport
    )
    run = _Run(Journal.disabled(), threading.Event(), None)
    return _Destination(DestinationPlan("prod", "userId", ()), client, run)


def profile_reads(emulator: Emulator) -> int:
    return sum(r.path.startswith("/api/users/") for r in emulator.request_log)


def test_an_answer_of_counts_in_a_user_id_project_reads_a_few_of_a_batch() -> None:
    # A userID-based project whose userIds are emails, as many are, declared so: a batch
    # of 1,000 removals, one of them a user deleted since the plan read the list, answered
    # with counts only (as Iterable's answers are: successCount 999, failCount 1). Every
    # removal of the batch was read by email to find the one: 1,000 reads for one batch,
    # and as many again for each batch holding such a user (12,000 for these 12).
    emulator = Emulator(limits=Limits.unlimited())
    proj = emulator.add_project("p", "userId", "key")
    list_id = proj.add_list("vip")
    chunk = [f"m{i}@x.io" for i in range(1000)]
    for user_id in chunk[1:]:
        proj.add_user(user_id=user_id, email=user_id)
    dest = destination(emulator)
    reads = []
    for _ in range(12):
        outcome = BatchResult(sent=1000, success_count=999, requests=1)
        outcome = dest._still_listed_by_email(None, list_id, chunk, outcome)  # type: ignore[arg-type]
        assert outcome.failed == {}
        reads.append(profile_reads(emulator))
    assert not dest.listed_by_email
    assert reads[0] <= 10  # of the batch's 1,000
    assert reads[-1] <= 100  # in all


def test_an_answer_of_counts_still_finds_members_listed_by_email() -> None:
    # Declared userId against a hybrid project: getUsers names the members without a userId
    # by their email, and their removals, sent as userIds, find no user. Counted, not named.
    emulator = Emulator(limits=Limits.unlimited())
    proj = emulator.add_project("p", "hybrid", "key")
    list_id = proj.add_list("vip")
    chunk = [f"m{i}@x.io" for i in range(100)]
    for i, text in enumerate(chunk):
        if i % 4:
            proj.add_user(user_id=text, email=f"other{i}@x.io", list_ids=[list_id])
        else:
            proj.add_user(email=text, list_ids=[list_id])  # no userId: named by email
    dest = destination(emulator)
    outcome = BatchResult(sent=100, success_count=75, requests=1)
    outcome = dest._still_listed_by_email(None, list_id, chunk, outcome)  # type: ignore[arg-type]
    assert dest.listed_by_email
    assert outcome.kinds["m0@x.io"] == "listedByEmail"
