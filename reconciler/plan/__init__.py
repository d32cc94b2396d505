"""Plans: the model and the pure planner."""

from reconciler.plan.model import DestinationPlan, ListPlan, Plan, Summary
from reconciler.plan.planner import diff_members, plan_destination, plan_list

__all__ = [
    "DestinationPlan",
    "ListPlan",
    "Plan",
    "Summary",
    "diff_members",
    "plan_destination",
    "plan_list",
]
