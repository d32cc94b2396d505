"""Manifests: YAML documents in git that say which Iterable lists must exist and hold whom.

    manifests = load_manifests(Path("manifests"))   # raises ManifestError with every problem
    for audience in manifests.audiences.values():
        audience.list_name, audience.spec.members, audience.field_location("members", "csv")

Everything public is re-exported here; the submodules are an implementation detail.
"""

from reconciler.manifest.api_key import resolve_api_key
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.location import Location
from reconciler.manifest.manifests import Audience, Destination, Manifests, TraitMapping
from reconciler.manifest.model import (
    API_VERSION,
    ApiKeyRef,
    AudienceSpec,
    DestinationSpec,
    InlineMember,
    MembersSpec,
    Metadata,
    PolicySpec,
    RemovalPolicySpec,
    TraitFieldSpec,
    TraitMappingSpec,
    UnsubscribeSpec,
)
from reconciler.manifest.schema import manifest_json_schema

__all__ = [
    "API_VERSION",
    "ApiKeyRef",
    "Audience",
    "AudienceSpec",
    "Destination",
    "DestinationSpec",
    "InlineMember",
    "Location",
    "Manifests",
    "MembersSpec",
    "Metadata",
    "PolicySpec",
    "RemovalPolicySpec",
    "TraitFieldSpec",
    "TraitMapping",
    "TraitMappingSpec",
    "UnsubscribeSpec",
    "load_manifests",
    "manifest_json_schema",
    "resolve_api_key",
]
