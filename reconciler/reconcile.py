"""Wire the pieces into a Plan: desired state from manifests and sources, live state from
Iterable, and the pure planner between them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.desired import build_desired
from reconciler.iterable import IterableClient
from reconciler.live import read_live
from reconciler.manifest import Manifests
from reconciler.plan import Plan, plan_destination, plan_list


def make_plan(
    manifests: Manifests,
    clients: Mapping[str, IterableClient],
    *,
    targets: set[str] | None = None,
    on_read: Callable[[str], None] | None = None,
) -> Plan:
    destinations = []
    for name, desired in build_desired(manifests, targets).items():
        live = read_live(clients[name], desired, on_read)
        lists = []
        for item in desired.lists:
            live_list = live.managed.get(item.list_name)
            spec = item.audience.spec
            lists.append(
                plan_list(
                    audience=item.audience.name,
                    list_name=item.list_name,
                    description=spec.description,
                    desired=item.members,
                    live_list_id=live_list.info.id if live_list else None,
                    live_members=live_list.members if live_list else (),
                    update_existing_users_only=spec.updateExistingUsersOnly,
                    campaign_id=spec.unsubscribe.campaignId,
                    channel_unsubscribe=spec.unsubscribe.channelUnsubscribe,
                )
            )
        skipped = [(item.audience.name, issue) for item in desired.lists for issue in item.issues]
        destinations.append(plan_destination(name, desired.project_type, lists, skipped))
    return Plan(tuple(destinations))
