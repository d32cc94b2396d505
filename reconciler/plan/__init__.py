"""Plans: the model and the pure planner."""

from reconciler.plan.model import (
    CampaignUse,
    DestinationPlan,
    FieldRead,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
    Summary,
    Violation,
)
from reconciler.plan.planner import (
    diff_members,
    keep_skipped,
    list_plan,
    plan_deletions,
    plan_destination,
    plan_list,
)

__all__ = [
    "CampaignUse",
    "DestinationPlan",
    "FieldRead",
    "FieldUpdate",
    "ListDeletion",
    "ListPlan",
    "Plan",
    "Summary",
    "Violation",
    "diff_members",
    "keep_skipped",
    "list_plan",
    "plan_deletions",
    "plan_destination",
    "plan_list",
]
