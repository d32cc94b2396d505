"""A destination whose API key now reaches another project than the one it managed.

A key secret replaced by another project's (staging's key pasted into prod's variable on a
rotation) reads as a project holding none of the destination's lists: the plan creates
every one there and adds every member to it, with prune off nothing else in the way
(prune's deletions are held by DestinationPlan._unfamiliar_deletions). A new destination,
or a first apply, reads the same, so the empty project alone proves nothing; it is judged
a stranger only on evidence that costs no read: an audience of the destination holds a
list by its listId (Iterable's list ids are unique across projects: that list is in
another project), or the run journals of this state directory recorded lists of the
destination none of which the project holds. Then its changes are blocked until
`apply --allow-new-project NAME` says the project is meant (the destination moved to a new
project, or every list of it was deleted in Iterable)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from reconciler.errors import quoted, variable_name
from reconciler.manifest.api_key import key_file_path
from reconciler.manifest.manifests import Audience, Destination
from reconciler.plan.ownership import audience_marks, marked_audience
from reconciler.words import quantity

# The ids a message names, at most: the rest are counted.
_IDS_SHOWN = 5


def unfamiliar_project(
    destination: Destination,
    declared: Collection[str],
    audiences: Sequence[Audience],
    all_lists: Sequence[Any],
    recorded: Collection[int],
) -> str:
    """Why the project `all_lists` index (the destination's key reaches it) seems not the
    destination's, or "" when nothing says so. `declared`: the list names the manifests
    declare in the project; `audiences`: the destination's; `recorded`: the list ids this
    state directory's journals recorded for the destination (journal.recorded_list_ids)."""
    ref = destination.spec.apiKey
    if ref is None or not declared:
        return ""  # the sandbox, or nothing declared (every audience removed)
    ids = {x.id for x in all_lists}
    marks = audience_marks(a.name for a in audiences)
    for info in all_lists:
        if info.name in declared or marked_audience(info.description) in marks:
            return ""
    held = [(a, a.spec.listId) for a in audiences if a.spec.listId and a.spec.listId not in ids]
    if held:
        audience, list_id = held[0]
        more = f" (and {quantity(len(held) - 1, 'other audience')} by theirs)" if held[1:] else ""
        evidence = (
            f"audience {quoted(audience.name)} holds list {list_id} by its listId "
            f"({audience.field_location('listId')}){more}, and the project has no list of "
            "that id"
        )
    elif recorded and not ids & set(recorded):
        shown = ", ".join(str(i) for i in sorted(recorded)[:_IDS_SHOWN])
        if len(recorded) > _IDS_SHOWN:
            shown += f" and {len(recorded) - _IDS_SHOWN:,} more"
        evidence = (
            f"the last apply to it from this state directory wrote to list {shown}, which "
            "the project does not have"
            if len(recorded) == 1
            else f"the last apply to it from this state directory wrote to lists of ids "
            f"{shown}, none of which the project has"
        )
    else:
        return ""
    if ref.env is not None:
        at = destination.field_location("apiKey", "env")
        source = f"environment variable {variable_name(ref.env)}"
    else:
        at = destination.field_location("apiKey", "file")
        source = f"API key file {key_file_path(destination)}"
    name = destination.name
    # "holds none of the 1 list" read as a slip.
    lists = (
        "does not hold the list"
        if len(declared) == 1
        else f"holds none of the {quantity(len(declared), 'list')}"
    )
    return (
        f"destination {quoted(name)} takes its API key from {source} ({at}), and the "
        f"project that key reaches {lists} the manifests declare in it, though {evidence}: "
        f"is {source} another project's key (a secret pasted from another project)? "
        "Nothing is written there until `reconciler apply --allow-new-project "
        f"{name}` says this is the destination's project (it moved to a new project, or "
        "its lists were deleted in Iterable)"
    )
