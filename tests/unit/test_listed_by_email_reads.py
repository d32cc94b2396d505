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


def test_a_read_lagging_the_removal_is_no_mismatch_in_a_user_id_project() -> None:
    # A userID-based project whose userIds are emails (each profile's email the same text):
    # a batch of 50 removals, one a user deleted since the plan, answered with counts only.
    # Iterable's reads lag its writes (up to a minute), so the profile read by email just
    # after still shows the list: it was taken for a member listed by email, and all 49
    # removals Iterable took, and every later one of the run, became failures saying the
    # project is not userID-based.
    emulator = Emulator(limits=Limits.unlimited())
    proj = emulator.add_project("p", "userId", "key")
    list_id = proj.add_list("vip")
    chunk = [f"m{i}@x.io" for i in range(50)]
    for user_id in chunk[1:]:
        # Still on the list as the lagging read shows it: the removal was taken.
        proj.add_user(user_id=user_id, email=user_id, list_ids=[list_id])
    dest = destination(emulator)
    outcome = BatchResult(sent=50, success_count=49, requests=1)
    outcome = dest._still_listed_by_email(None, list_id, chunk, outcome)  # type: ignore[arg-type]
    assert not dest.listed_by_email
    assert outcome.failed == {}


def test_another_users_email_equal_to_a_user_id_is_no_mismatch() -> None:
    # In a userID-based project userId 'ann@old.io' is Ann's (her email is now
    # 'ann@new.io'), and Bob, on the list as 'bob-1', has 'ann@old.io' as his email. Ann's
    # removal, in a batch answered with counts only one short, read 'ann@old.io' by email,
    # found Bob on the list and reported Ann's removal, taken, as a failure and the project
    # as hybrid or email-based.
    emulator = Emulator(limits=Limits.unlimited())
    proj = emulator.add_project("p", "userId", "key")
    list_id = proj.add_list("vip")
    proj.add_user(user_id="ann@old.io", email="ann@new.io")  # removed from the list
    proj.add_user(user_id="bob-1", email="ann@old.io", list_ids=[list_id])
    chunk = ["ann@old.io", "gone@x.io"]  # gone@x.io: deleted since the plan
    dest = destination(emulator)
    outcome = BatchResult(sent=2, success_count=1, requests=1)
    outcome = dest._still_listed_by_email(None, list_id, chunk, outcome)  # type: ignore[arg-type]
    assert not dest.listed_by_email
    assert outcome.failed == {}


def test_an_email_based_project_whose_profiles_have_user_ids_is_still_found() -> None:
    # Declared userId against an email-based project whose profiles carry a userId of
    # their own: getUsers names each by email, a removal sent as that userId finds no
    # user, and the profile read by email (still on the list) has a userId, but not that
    # one: the mismatch, as before.
    emulator = Emulator(limits=Limits.unlimited())
    proj = emulator.add_project("p", "email", "key")
    list_id = proj.add_list("vip")
    chunk = [f"m{i}@x.io" for i in range(20)]
    for i, email in enumerate(chunk):
        proj.add_user(email=email, user_id=f"U-{i}", list_ids=[list_id])
    dest = destination(emulator)
    outcome = BatchResult(sent=20, success_count=0, requests=1)
    outcome = dest._still_listed_by_email(None, list_id, chunk, outcome)  # type: ignore[arg-type]
    assert dest.listed_by_email
    assert outcome.kinds["m0@x.io"] == "listedByEmail"
    assert len(outcome.failed) == 20


def test_once_interrupted_the_removals_not_read_are_not_confirmed_never_already_gone() -> None:
    # Ctrl-C after a removal's answer named 20 members notFound: their reads by email ran on
    # after it (at a slow pace, minutes). They now stop, and the 20 are not confirmed (the
    # next plan shows what is left): unread, they may be on the list by email, and counted
    # as already gone they would be reported removed.
    emulator = Emulator(limits=Limits.unlimited())
    proj = emulator.add_project("p", "hybrid", "key")
    list_id = proj.add_list("vip")
    chunk = [f"m{i}@x.io" for i in range(20)]
    for email in chunk:
        proj.add_user(email=email, list_ids=[list_id])  # no userId: named by email
    dest = destination(emulator)
    dest.client.stop = dest.run.stop
    outcome = BatchResult(sent=20, success_count=0, requests=1)
    for text in chunk:
        outcome.failed[text], outcome.kinds[text] = "not found", "notFound"
    dest.run.stop.set()
    with dest.client.write_step():
        outcome = dest._still_listed_by_email(None, list_id, chunk, outcome)  # type: ignore[arg-type]
    assert profile_reads(emulator) == 0
    assert (outcome.failed, outcome.kinds) == ({}, {})
    assert not dest.listed_by_email
    assert dest.run.not_attempted == 1
