"""Wire the pieces into a Plan: desired state from manifests and sources, live state from
Iterable, and the pure planner between them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.desired import build_desired
from reconciler.fields import plan_fields
from reconciler.iterable import IterableClient
from reconciler.live import read_live
from reconciler.manifest import Manifests
from reconciler.manifest.model import DEFAULT_MAX_REMOVAL_PERCENT
from reconciler.plan import Plan, plan_deletions, plan_destination, plan_list
from reconciler.plan.fingerprint import FIELDS_KEY, list_fingerprint


def make_plan(
    manifests: Manifests,
    clients: Mapping[str, IterableClient],
    *,
    targets: set[str] | None = None,
    on_read: Callable[[str], None] | None = None,
) -> Plan:
    destinations = []
    fingerprint: dict[str, dict[str, dict[str, Any]]] = {}
    for name, desired in build_desired(manifests, targets).items():
        dest_spec = desired.destination.spec
        live = read_live(clients[name], desired, on_read)
        prints = fingerprint.setdefault(name, {})
        lists = []
        for item in desired.lists:
            live_list = live.managed.get(item.list_name)
            spec = item.audience.spec
            percent = spec.policy.maxRemovalPercent
            if percent is None:
                percent = dest_spec.policy.maxRemovalPercent
            max_removals = spec.policy.maxRemovals
            if max_removals is None:
                max_removals = dest_spec.policy.maxRemovals
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
                    max_removal_percent=DEFAULT_MAX_REMOVAL_PERCENT if percent is None else percent,
                    max_removals=max_removals,
                )
            )
            prints[item.list_name] = list_fingerprint(
                live_list.info.id if live_list else None,
                live_list.members if live_list else None,
            )
        deletions = []
        # With --target only some audiences are considered, so nothing else may be pruned.
        if dest_spec.prune and targets is None:
            declared = {a.list_name for a in manifests.audiences_of(name)}
            deletions = plan_deletions(live.all_lists, declared)
            for deletion in deletions:
                prints[f"{deletion.list_name}#{deletion.list_id}"] = list_fingerprint(
                    deletion.list_id, None
                )
        skipped = [(item.audience.name, issue) for item in desired.lists for issue in item.issues]
        # Trait mappings: fields ride on subscribes, the rest become bulkUpdates.
        fields = plan_fields(clients[name], desired, lists)
        skipped.extend(fields.issues)
        if fields.live_digest is not None:
            prints[FIELDS_KEY] = {"digest": fields.live_digest}
        dest_plan = plan_destination(
            name,
            desired.project_type,
            fields.lists,
            skipped,
            deletions,
            allow_list_deletion=dest_spec.policy.allowListDeletion,
        )
        destinations.append(
            dataclasses.replace(
                dest_plan,
                field_updates=tuple(fields.updates),
                field_read=fields.read,
                member_read=live.describe_reads(),
            )
        )
    return Plan(tuple(destinations), fingerprint)
