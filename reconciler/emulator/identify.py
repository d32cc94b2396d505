"""Which profile a request's member means, by project type, without changing anything.

The rules, from Iterable's "identifying users" documentation and the OpenAPI field notes:

- email-based: the email identifies. A userId sent with it is set on that profile, though
  other profiles have it (userIds are not unique there). A member with only a userId is
  looked up by it (the oldest profile with it); an unknown one is created only with
  `preferUserId: true` (and gets a placeholder email). `updateExistingUsersOnly` is ignored.
- userID-based: the userId identifies and is required; email is a plain attribute.
- hybrid: either identifies. Both given: two different profiles is a conflict; one profile
  takes the other identifier unless it already has a different one (conflict).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.emulator.identifiers import is_valid_email, is_valid_user_id, normalize_email
from reconciler.emulator.project import Project, User, placeholder_email

# Keys of failedUpdates, by failure kind and identifier kind.
FAILED_UPDATE_KEYS: tuple[str, ...] = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
)


@dataclass
class Match:
    """The member resolves to `user` (None: create one) with these identifiers to set."""

    user: User | None
    email: str | None
    user_id: str | None


@dataclass
class Failure:
    """The member fails; `entries` are (failedUpdates key, identifier) pairs."""

    kind: str  # "invalid", "notFound", "conflict", "forgotten" or "invalidData"
    entries: list[tuple[str, str]] = field(default_factory=list)


def member_failure(kind: str, email: str | None, user_id: str | None) -> Failure:
    """Report a failed member under every identifier it carried, so a client can map the
    failure back whichever identifier it keys members by."""
    entries: list[tuple[str, str]] = []
    if email is not None:
        entries.append((f"{kind}Emails", email))
    if user_id is not None:
        entries.append((f"{kind}UserIds", user_id))
    return Failure(kind, entries)


def identify(
    project: Project,
    email: str | None,
    user_id: str | None,
    *,
    create: bool,
    prefer_user_id: bool = False,
    update_existing_only: bool = False,
) -> Match | Failure:
    """Resolve one member. `create` is false for unsubscribe, which never creates."""
    invalid: list[tuple[str, str]] = []
    if email is not None and not is_valid_email(email):
        invalid.append(("invalidEmails", email))
    if user_id is not None and not is_valid_user_id(user_id):
        invalid.append(("invalidUserIds", user_id))
    if invalid:
        return Failure("invalid", invalid)
    if email is None and user_id is None:
        # Nothing identifies the member: Iterable reports it as an invalid (empty) identifier.
        key = "invalidUserIds" if project.project_type == "userId" else "invalidEmails"
        return Failure("invalid", [(key, "")])
    if project.is_forgotten(email, user_id):
        # GDPR-forgotten identifiers are refused for every write, found or not.
        return member_failure("forgotten", email, user_id)
    if email is not None:
        email = normalize_email(email)

    if project.project_type == "email":
        return _email_project(project, email, user_id, create, prefer_user_id)
    if project.project_type == "userId":
        return _user_id_project(project, email, user_id, create and not update_existing_only)
    return _hybrid_project(project, email, user_id, create and not update_existing_only)


def _email_project(
    project: Project, email: str | None, user_id: str | None, create: bool, prefer_user_id: bool
) -> Match | Failure:
    if email is None:
        assert user_id is not None
        by_user_id = project.user_by_user_id(user_id)
        if by_user_id is not None:
            return Match(by_user_id, None, None)
        if create and prefer_user_id:
            return Match(None, placeholder_email(user_id), user_id)
        return member_failure("notFound", None, user_id)
    # The email identifies; a userId beside it is set on that profile, or the new one,
    # even where other profiles have it: email-based projects do not keep userIds unique
    # ("Creating and Identifying Users with Iterable APIs": email is prioritized, the
    # userId updated/overwritten).
    by_email = project.user_by_email(email)
    if by_email is not None:
        return Match(by_email, None, user_id)
    if not create:
        return member_failure("notFound", email, user_id)
    return Match(None, email, user_id)


def _user_id_project(
    project: Project, email: str | None, user_id: str | None, create: bool
) -> Match | Failure:
    if user_id is None:
        # Email does not identify anyone in a userID-based project.
        return member_failure("notFound", email, None)
    found = project.user_by_user_id(user_id)
    if found is not None:
        return Match(found, email, None)
    if not create:
        return member_failure("notFound", email, user_id)
    return Match(None, email, user_id)


def _hybrid_project(
    project: Project, email: str | None, user_id: str | None, create: bool
) -> Match | Failure:
    by_email = project.user_by_email(email) if email is not None else None
    by_user_id = project.user_by_user_id(user_id) if user_id is not None else None
    if by_email is not None and by_user_id is not None:
        if by_email is by_user_id:
            return Match(by_email, None, None)
        return member_failure("conflict", email, user_id)
    if by_email is not None:
        if user_id is not None and by_email.user_id is not None:
            # The email's profile has another userId: setting this one would re-key it.
            return member_failure("conflict", email, user_id)
        return Match(by_email, None, user_id)
    if by_user_id is not None:
        if email is not None and by_user_id.email is not None:
            return member_failure("conflict", email, user_id)
        return Match(by_user_id, email, None)
    if not create:
        return member_failure("notFound", email, user_id)
    return Match(None, email, user_id)
