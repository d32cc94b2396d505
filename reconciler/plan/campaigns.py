"""Blast radius: which campaigns use the lists a plan changes, and how."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from reconciler.plan.model import CampaignUse, ListDeletion, ListPlan, Plan


class CampaignInfo(Protocol):
    """What the planner needs to know of a campaign (the client's CampaignInfo has it)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def list_ids(self) -> Sequence[int]: ...
    @property
    def suppression_list_ids(self) -> Sequence[int]: ...


def campaign_uses(
    lists: Sequence[ListPlan],
    campaigns: Iterable[CampaignInfo],
    deletions: Sequence[ListDeletion] = (),
) -> list[CampaignUse]:
    """For each changed list that exists in Iterable, and each list prune deletes, the
    campaigns that send to it or suppress it, in campaign id order (a list this plan
    creates has no campaigns yet)."""
    by_id = {lp.list_id: lp.list_name for lp in lists if lp.has_changes and lp.list_id is not None}
    by_id.update({x.list_id: x.list_name for x in deletions})
    out: list[CampaignUse] = []
    for campaign in sorted(campaigns, key=lambda c: c.id):
        roles: tuple[tuple[Literal["send", "suppression"], Sequence[int]], ...] = (
            ("send", campaign.list_ids),
            ("suppression", campaign.suppression_list_ids),
        )
        for role, ids in roles:
            for list_id in dict.fromkeys(ids):
                if list_id in by_id:
                    out.append(
                        CampaignUse(
                            list_name=by_id[list_id],
                            campaign_id=campaign.id,
                            campaign_name=campaign.name,
                            type=campaign.type,
                            state=campaign.state,
                            role=role,
                        )
                    )
    return out


def needs_campaigns(lists: Sequence[ListPlan], deletions: Sequence[ListDeletion] = ()) -> bool:
    """Campaigns are read only when the plan changes a list that already exists, or
    deletes one: a campaign that sends to a deleted list has no audience left."""
    return bool(deletions) or any(lp.has_changes and lp.list_id is not None for lp in lists)


def campaigns_now(saved: Plan, current: Plan) -> Plan:
    """`apply --plan`: the saved plan with the campaigns `current` (a plan made now, whose
    stale check has passed) read. A campaign started, or stopped, while the plan waited
    for approval changes no list, so the plan is not stale; but activeCampaignAdds is
    about who would be messaged when the adds are sent, and the plan shows them."""
    now = {d.destination: d for d in current.destinations}
    return dataclasses.replace(
        saved,
        destinations=tuple(
            d
            if d.destination not in now
            else dataclasses.replace(
                d,
                campaigns=now[d.destination].campaigns,
                campaigns_read_error=now[d.destination].campaigns_read_error,
            )
            for d in saved.destinations
        ),
    )
