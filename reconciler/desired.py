"""Manifests + sources -> DesiredState: per destination, each list and who must be on it."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.identity import Member, ProjectType
from reconciler.manifest import Audience, Destination, Manifests
from reconciler.sources import MemberIssue, read_members
from reconciler.traits import CompiledMapping, DesiredFields, compile_mapping, desired_fields


@dataclass
class DesiredList:
    audience: Audience
    members: dict[str, Member]
    issues: list[MemberIssue]
    fields: DesiredFields | None = None  # the audience's trait mapping applied to its members

    @property
    def list_name(self) -> str:
        return self.audience.list_name

    @property
    def prefer_user_id(self) -> bool:
        """Ask getUsers for userIds when this audience identifies members by userId."""
        return any(m.key_kind == "userId" for m in self.members.values())


@dataclass
class DesiredDestination:
    destination: Destination
    lists: list[DesiredList] = field(default_factory=list)

    @property
    def project_type(self) -> ProjectType:
        return self.destination.spec.projectType


def build_desired(
    manifests: Manifests, targets: set[str] | None = None
) -> dict[str, DesiredDestination]:
    """Read every (targeted) audience's source. Destinations without audiences are kept so a
    plan still checks their connection."""
    desired = {name: DesiredDestination(dest) for name, dest in manifests.destinations.items()}
    compiled: dict[str, CompiledMapping] = {}
    for name, audience in manifests.audiences.items():
        if targets is not None and name not in targets:
            continue
        dest = desired[audience.spec.destination]
        result = read_members(audience, dest.project_type)
        item = DesiredList(audience, result.members, result.issues)
        if audience.spec.traits is not None:
            mapping_name = audience.spec.traits
            if mapping_name not in compiled:
                compiled[mapping_name] = compile_mapping(manifests.trait_mappings[mapping_name])
            item.fields = desired_fields(
                audience, compiled[mapping_name], result.members, result.where
            )
            item.issues.extend(item.fields.issues)
        dest.lists.append(item)
    if targets is not None:
        desired = {k: v for k, v in desired.items() if v.lists}
    return desired
