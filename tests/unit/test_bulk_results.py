"""Reading subscribe/unsubscribe/bulkUpdate answers member by member."""

from __future__ import annotations

from reconciler.iterable.results import parse_bulk_response


def test_members_named_under_failed_emails_or_user_ids_are_failed_by_name() -> None:
    """Iterable's own client's schema of the answer has failedEmails and failedUserIds
    beside the OpenAPI's categories: members named there are failures with a name, not
    failures the answer only counted (which apply reports as "not confirmed")."""
    answer = {
        "successCount": 1,
        "failCount": 2,
        "failedUpdates": {"failedEmails": ["a@example.com"], "failedUserIds": ["u-2"]},
    }
    result = parse_bulk_response(answer, sent=3)
    assert result.failed == {
        "a@example.com": "failed (Iterable gave no reason)",
        "u-2": "failed (Iterable gave no reason)",
    }
    assert result.kinds == {"a@example.com": "failed", "u-2": "failed"}
    assert (result.sent, result.success_count) == (3, 1)
