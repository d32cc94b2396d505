import pytest

from reconciler.members.identity import (
    InvalidIdentity,
    make_member,
    normalise_email,
    validate_user_id,
)


def test_email_is_trimmed_and_lowercased():
    assert normalise_email("  Alice@Example.COM ") == "alice@example.com"


@pytest.mark.parametrize(
    "bad", ["", "alice", "alice@", "@example.com", "a b@example.com", "a@@example.com", "a@example"]
)
def test_invalid_emails_are_refused(bad):
    with pytest.raises(InvalidIdentity):
        normalise_email(bad)


def test_user_id_keeps_its_case():
    assert validate_user_id("User-ABC") == "User-ABC"


def test_user_id_length_limit_is_52():
    assert validate_user_id("x" * 52) == "x" * 52
    with pytest.raises(InvalidIdentity, match="at most 52"):
        validate_user_id("x" * 53)


@pytest.mark.parametrize("bad", ["tab\there", "naïve", "trailing ", "new\nline", "del\x7f"])
def test_user_id_must_be_printable_ascii_without_trailing_space(bad):
    with pytest.raises(InvalidIdentity):
        validate_user_id(bad)


def test_email_project_keys_by_email_and_needs_one():
    m = make_member("email", "Bob@Example.com", "u1")
    assert (m.key_kind, m.key) == ("email", "bob@example.com")
    with pytest.raises(InvalidIdentity, match="email-based"):
        make_member("email", None, "u1")


def test_user_id_project_keys_by_user_id_and_needs_one():
    m = make_member("userId", "bob@example.com", "U1")
    assert (m.key_kind, m.key) == ("userId", "U1")
    with pytest.raises(InvalidIdentity, match="userID-based"):
        make_member("userId", "bob@example.com", None)


@pytest.mark.parametrize("email", ["n/a", "unknown", "bob@localhost", "-"])
def test_an_email_that_is_no_address_does_not_skip_a_user_id_projects_member(email):
    """The email identifies nobody in a userID-based project and is never sent there, so a
    placeholder in the column (`n/a`) leaves the member to its userId, email unset; where
    it would be sent (hybrid, email-based) it still skips the row."""
    m = make_member("userId", email, "U1")
    assert (m.key_kind, m.key, m.email, m.user_id) == ("userId", "U1", None, "U1")
    assert make_member("userId", " Bob@Example.com ", "U1").email == "bob@example.com"
    for project_type in ("hybrid", "email"):
        with pytest.raises(InvalidIdentity, match="invalid email"):
            make_member(project_type, email, "U1")


def test_hybrid_prefers_user_id_then_email():
    assert make_member("hybrid", "a@example.com", "u1").key == "u1"
    assert make_member("hybrid", "A@example.com", "").key == "a@example.com"
    assert make_member("hybrid", " ", "u2").key == "u2"
    with pytest.raises(InvalidIdentity, match="neither"):
        make_member("hybrid", "", "   ")


def test_member_identifiers_list_both_when_known():
    assert make_member("hybrid", "a@example.com", "u1").identifiers == ("a@example.com", "u1")
