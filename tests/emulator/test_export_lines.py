"""The user export's lines with onlyFields are written without a dict per profile
(issue 17/18: the consent guard exports three fields of every profile of a project):
byte for byte what the general path writes, on a project of every shape of profile."""

from __future__ import annotations

import itertools
import json

import pytest

from reconciler.emulator import Project
from reconciler.emulator.api import _export_snapshot, _snapshot_lines


def _varied(project_type: str) -> Project:
    project = Project("varied", project_type, "0" * 64)  # type: ignore[arg-type]
    lists = [project.add_list(f"list-{n}") for n in range(3)]
    fields = [
        {},
        {"plan": "gold", "score": 1.5, "count": 7, "flag": True, "none": None},
        {"nested": {"b": [{"c": "ü"}, {"c": "e"}], "a": "x"}, "plan": 'sïlver "q" \\ \n'},
        {"tags": ["a", "ß", "日本"], "email": "shadow@example.com"},
        {"other": "x", "count": 0},
    ]
    for n in range(40):
        email = f"p{n}+tag@example.com" if n % 7 == 3 else f"p{n}@example.com"
        user_id = (f"uid-{n}" if n % 4 else f'uid-\\"{n}') if n % 3 else None
        if project_type == "userId":
            user_id = user_id or f"only-{n}"
            email = email if n % 2 else None
        elif project_type == "email":
            user_id = None
        user = project.add_user(email=email, user_id=user_id, data_fields=fields[n % len(fields)])
        for list_id in lists[: n % 4]:
            project.subscribe(user, list_id)
        if n % 5 == 1:
            project.record_unsubscribe(user, "EmailLink", channel_ids=(1,))
            user.unsubscribed_channel_ids = frozenset({n % 3 + 1, 9, 1})
    return project


ONLY = [
    ["email", "userId", "unsubscribedChannelIds"],
    ["unsubscribedChannelIds", "userId", "email"],
    ["email", "signupDate", "profileUpdatedAt"],
    ["emailListIds", "userListIds", "plan", "nested", "tags"],
    ["email", "email", "score", "count", "flag", "none", "missing"],
    ["unsubscribedChannelIds", "emailListIds", "userListIds", "email"],
    [],
]


@pytest.mark.parametrize("project_type", ["email", "hybrid", "userId"])
def test_the_fast_lines_are_the_general_lines(project_type: str) -> None:
    project = _varied(project_type)
    membership = project.membership_field
    for only, omit in itertools.product(ONLY, [set(), {"userId"}, {"plan", "email"}]):
        snapshot = _export_snapshot(project, None, None, only)
        fast = list(_snapshot_lines(membership, snapshot, only, omit))
        # The general path, from a snapshot of every field (what it took before).
        general = list(
            _snapshot_lines(
                membership, _export_snapshot(project, None, None, None), only, omit, fast=False
            )
        )
        assert fast == general, (only, omit)
        assert len(fast) == 40
        for line in fast:
            json.loads(line)
    # The project is varied as meant: some lines hold each kind of field.
    text = "".join(
        _snapshot_lines(membership, _export_snapshot(project, None, None, None), None, set())
    )
    for needle in ('unsubscribedChannelIds":[', "ü", '\\"q\\"', '"nested":{'):
        assert needle in text
