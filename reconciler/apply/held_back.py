"""Members an apply did not send because they opted out (state/consent.py), for the apply
report: the plan says who it holds back, and so does the report of the run that applied it,
which is what a scheduled sync's log and the job summary keep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.plan import Plan
from reconciler.plan.model import counted


@dataclass(frozen=True)
class HeldBack:
    """One list's members held back by the consent guard (member keys)."""

    destination: str
    audience: str
    list_name: str
    list_id: int | None
    left_themselves: tuple[str, ...]
    left_sources: tuple[tuple[str, int], ...]  # unsubSource -> count, of left_themselves
    channel_unsubscribed: tuple[str, ...]
    # `apply --plan`: those who opted out after the plan was made (in the two above too).
    since_the_plan: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.left_themselves) + len(self.channel_unsubscribed)

    def to_dict(self, show: Callable[[str], str]) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "audience": self.audience,
            "list_name": self.list_name,
            "list_id": self.list_id,
            "left_themselves": {
                **counted(self.left_themselves, show),
                "by_source": dict(self.left_sources),
            },
            "channel_unsubscribed": counted(self.channel_unsubscribed, show),
            "since_the_plan": counted(self.since_the_plan, show),
        }


def held_back(plan: Plan) -> list[HeldBack]:
    """Every list of `plan` that holds members back, whether or not it changes."""
    return [
        HeldBack(
            d.destination,
            lp.audience,
            lp.list_name,
            lp.list_id,
            lp.left_themselves,
            lp.left_sources,
            lp.channel_unsubscribed,
            lp.held_since_plan,
        )
        for d in plan.destinations
        for lp in d.lists
        if lp.left_themselves or lp.channel_unsubscribed
    ]
