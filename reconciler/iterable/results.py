"""What Iterable answered for a batch write, member by member."""

from __future__ import annotations

from dataclasses import dataclass, field

_CONFLICT = (
    "Iterable has the email and the userId on two profiles, or the userId's profile under "
    "another email (changed there?): correct the row's email or userId; leave the email "
    "empty only if the userId's profile is this member's"
)

# failedUpdates categories (shared/iterable-api.md) and how we describe them to users.
FAILURE_REASONS: dict[str, str] = {
    "invalidEmails": "invalid email",
    "invalidUserIds": "invalid userId",
    "notFoundEmails": "user not found",
    "notFoundUserIds": "user not found",
    # Hybrid projects: the row's email and userId are two profiles, or the userId's
    # profile has another email (changed in Iterable while the source kept the old one).
    # An empty email sends the row by its userId alone: right in the second case, but in
    # the first it subscribes the userId's profile, maybe another person than the row's.
    "conflictEmails": _CONFLICT,
    "conflictUserIds": _CONFLICT,
    "forgottenEmails": "user was forgotten (GDPR)",
    "forgottenUserIds": "user was forgotten (GDPR)",
    "invalidDataEmails": "invalid data fields",
    "invalidDataUserIds": "invalid data fields",
    # Not in the OpenAPI's FailedUserUpdates, but in Iterable's own client's schema of the
    # same answer (Iterable/api-client, src/types/lists.ts): a member named there failed.
    "failedEmails": "failed (Iterable gave no reason)",
    "failedUserIds": "failed (Iterable gave no reason)",
}


# The kind of each failedUpdates category: what a failure means depends on it (a user
# already gone is no failure of an unsubscribe).
FAILURE_KINDS: dict[str, str] = {
    category: category.removesuffix("Emails").removesuffix("UserIds")
    for category in FAILURE_REASONS
}


@dataclass
class BatchResult:
    """Outcome of one or more batch writes: identifiers that failed, with why.

    `success_count` is what Iterable counted as done. Answers need not name every failure
    (older ones carry only counts and top-level invalidEmails/invalidUserIds), so the
    members named in `failed` plus `success_count` may fall short of `sent`: the rest are
    not confirmed, and callers must never count them as done.
    """

    sent: int = 0
    success_count: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # identifier -> reason
    kinds: dict[str, str] = field(default_factory=dict)  # identifier -> failure kind
    requests: int = 0
    # Fields Iterable dropped instead of creating (a project that refuses new fields).
    filtered_out_fields: list[str] = field(default_factory=list)
    # Identifiers whose removal was to be sent again as the other kind, not sent: the run
    # was interrupted first (apply/executor.py _as_the_other_kind).
    not_sent: set[str] = field(default_factory=set)

    def merge(self, other: BatchResult) -> None:
        self.sent += other.sent
        self.success_count += other.success_count
        self.failed.update(other.failed)
        self.kinds.update(other.kinds)
        self.requests += other.requests
        self.not_sent.update(other.not_sent)
        for name in other.filtered_out_fields:
            if name not in self.filtered_out_fields:
                self.filtered_out_fields.append(name)


def parse_bulk_response(body: dict[str, object], sent: int = 0) -> BatchResult:
    """successCount and failed identifiers (with their kinds) from a
    subscribe/unsubscribe/bulkUpdate answer to `sent` users.

    Older responses carry only top-level invalidEmails/invalidUserIds; both shapes are read.
    """
    failed: dict[str, str] = {}
    kinds: dict[str, str] = {}
    sections: list[object] = [body.get("failedUpdates"), body]
    for section in sections:
        if not isinstance(section, dict):
            continue
        for category, reason in FAILURE_REASONS.items():
            ids = section.get(category)
            if isinstance(ids, list):
                for identifier in ids:
                    if isinstance(identifier, str) and identifier not in failed:
                        failed[identifier] = reason
                        kinds[identifier] = FAILURE_KINDS[category]
    success = body.get("successCount")
    return BatchResult(
        sent=sent,
        success_count=success if isinstance(success, int) and success >= 0 else 0,
        failed=failed,
        kinds=kinds,
        requests=1,
        filtered_out_fields=filtered_out_fields(body),
    )


def filtered_out_fields(body: dict[str, object]) -> list[str]:
    """`filteredOutFields` of a bulk answer: fields the project refused to create."""
    names = body.get("filteredOutFields")
    if not isinstance(names, list):
        return []
    return [name for name in names if isinstance(name, str)]
