"""The manifest models used directly, as other modules and tests do."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.manifest import (
    ApiKeyRef,
    AudienceSpec,
    DestinationSpec,
    InlineMember,
    MembersSpec,
    UnsubscribeSpec,
)
from reconciler.manifest.model import TraitMappingSpec


def test_a_literal_key_never_appears_in_a_validation_error() -> None:
    secret = "sk_live_0123456789abcdef"
    with pytest.raises(ValidationError) as raised:
        DestinationSpec.model_validate({"region": "us", "projectType": "hybrid", "apiKey": secret})
    assert secret not in str(raised.value)
    assert "literal key is refused" in str(raised.value)


def test_api_key_ref_needs_exactly_one_source() -> None:
    assert ApiKeyRef(file="key.txt").file == "key.txt"
    with pytest.raises(ValidationError):
        ApiKeyRef()
    with pytest.raises(ValidationError):
        ApiKeyRef(env="A", file="b")


def test_sandbox_needs_no_key_but_us_and_eu_do() -> None:
    assert DestinationSpec(region="sandbox", projectType="email").apiKey is None
    for region in ("us", "eu"):
        with pytest.raises(ValidationError):
            DestinationSpec(region=region, projectType="hybrid")


def test_models_are_strict_about_yaml_lookalikes() -> None:
    with pytest.raises(ValidationError):
        UnsubscribeSpec.model_validate({"channelUnsubscribe": "yes"})
    with pytest.raises(ValidationError):
        UnsubscribeSpec.model_validate({"campaignId": "1234"})
    with pytest.raises(ValidationError):
        UnsubscribeSpec.model_validate({"campaignId": True})
    with pytest.raises(ValidationError):
        InlineMember.model_validate({"userId": 42})


def test_inline_entries_keep_their_form_and_normalise_on_request() -> None:
    members = MembersSpec.model_validate(
        {"inline": ["a@example.com", "u-1", {"userId": "u-2", "plan": "gold", "ltv": 12.5}]}
    )
    assert members.inline is not None
    assert members.inline[:2] == ["a@example.com", "u-1"]
    assert members.inline_members() == [
        InlineMember(email="a@example.com"),
        InlineMember(userId="u-1"),
        InlineMember(userId="u-2", plan="gold", ltv=12.5),
    ]
    assert members.inline_members()[2].traits == {"plan": "gold", "ltv": 12.5}


def test_csv_column_names_are_refused_with_inline_members() -> None:
    with pytest.raises(ValidationError, match="column names apply only to csv"):
        MembersSpec.model_validate({"inline": [], "email": "mail"})


def test_audience_defaults() -> None:
    spec = AudienceSpec.model_validate({"destination": "prod", "members": {"csv": "a.csv"}})
    assert spec.listName is None
    assert spec.updateExistingUsersOnly is False
    assert spec.unsubscribe == UnsubscribeSpec(campaignId=None, channelUnsubscribe=False)
    assert (spec.members.email, spec.members.userId) == ("email", "userId")
    assert spec.members.inline_members() == []
    # The defaults that keep people's consent and a list's members safe (README).
    assert (spec.allowEmpty, spec.removals, spec.resubscribe) == (False, "allowed", "never")
    assert (spec.minMembers, spec.maxMembers) == (None, None)


def test_destination_defaults_delete_nothing() -> None:
    spec = DestinationSpec(region="sandbox", projectType="email")
    assert spec.prune is False
    assert spec.policy.allowListDeletion is False
    assert (spec.policy.maxRemovalPercent, spec.policy.maxRemovals) == (None, None)
    assert spec.policy.activeCampaignAdds is None


def test_list_name_length_is_bounded() -> None:
    with pytest.raises(ValidationError):
        AudienceSpec.model_validate(
            {"destination": "prod", "listName": "x" * 256, "members": {"csv": "a.csv"}}
        )


@pytest.mark.parametrize("name", ["vip\n::error::OK", "vip\tlist", "vip\u2028x", "\u202egnp.exe"])
def test_a_list_name_is_one_line_that_reads_in_order(name: str) -> None:
    with pytest.raises(ValidationError, match="a list name cannot contain control characters"):
        AudienceSpec.model_validate(
            {"destination": "prod", "listName": name, "members": {"csv": "a.csv"}}
        )


@pytest.mark.parametrize("name", [" ", "   ", "\u3000", "\u00a0 "])
def test_a_list_name_of_spaces_alone_is_refused(name: str) -> None:
    """Iterable refuses to create a list named by spaces alone (POST /api/lists: 400): the
    plan said it would create it and every apply failed there."""
    with pytest.raises(ValidationError, match="a list name cannot be blank"):
        AudienceSpec.model_validate(
            {"destination": "prod", "listName": name, "members": {"csv": "a.csv"}}
        )


@pytest.mark.parametrize("name", ["tier\n::error::OK", "tier\tx", "tier\u2028x", "\u202etier"])
def test_a_field_name_is_one_line_that_reads_in_order(name: str) -> None:
    """Plans, reports and CI logs print a mapped field's name as they print a list's."""
    with pytest.raises(ValidationError, match="a field name cannot contain control characters"):
        TraitMappingSpec.model_validate({"fields": {name: "plan"}})
    assert TraitMappingSpec.model_validate({"fields": {"Käufer-Stufe ✓": "plan"}}).fields


def test_a_list_name_may_hold_any_printable_text_and_emoji() -> None:
    name = "Käufer · VIP \U0001f468\u200d\U0001f469\u200d\U0001f467 <b>|`"
    spec = AudienceSpec.model_validate(
        {"destination": "prod", "listName": name, "members": {"csv": "a.csv"}}
    )
    assert spec.listName == name


def test_audience_bounds_must_be_in_order_and_removals_is_allowed_or_never() -> None:
    base = {"destination": "prod", "members": {"inline": ["a@example.com"]}}
    spec = AudienceSpec.model_validate({**base, "minMembers": 1, "maxMembers": 1})
    assert (spec.minMembers, spec.maxMembers, spec.removals) == (1, 1, "allowed")
    with pytest.raises(ValidationError, match="must not be greater than maxMembers"):
        AudienceSpec.model_validate({**base, "minMembers": 2, "maxMembers": 1})
    with pytest.raises(ValidationError):
        AudienceSpec.model_validate({**base, "removals": "sometimes"})
    with pytest.raises(ValidationError):
        AudienceSpec.model_validate({**base, "minMembers": -1})


def test_resubscribe_is_never_unless_allowed_explicitly() -> None:
    base = {"destination": "prod", "members": {"inline": ["a@example.com"]}}
    assert AudienceSpec.model_validate(base).resubscribe == "never"
    assert AudienceSpec.model_validate({**base, "resubscribe": "allowed"}).resubscribe == "allowed"
    for wrong in ("yes", True, "Allowed"):
        with pytest.raises(ValidationError, match="resubscribe"):
            AudienceSpec.model_validate({**base, "resubscribe": wrong})
