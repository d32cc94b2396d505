"""state/ on its own (issue 17: tests that mirror the core packages, not only CLI runs):
the desired state read from manifests and sources, the manifests' digest a saved plan
records, and the live-state decisions that need no server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.errors import LiveStateError
from reconciler.iterable import ClientSettings, ListInfo
from reconciler.manifest import load_manifests
from reconciler.state.desired import build_desired, manifests_digest
from reconciler.state.live import find_list
from reconciler.state.routes import choose_member_read

MANIFEST = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec: {region: sandbox, projectType: hybrid}
---
apiVersion: reconciler/v1
kind: Audience
metadata: {name: churn}
spec:
  destination: prod
  members: {csv: data/churn.csv, email: email, userId: user_id}
---
apiVersion: reconciler/v1
kind: Audience
metadata: {name: vip}
spec:
  destination: prod
  members:
    inline: [VIP@Example.com, vip@example.com, "two@@example.com"]
"""
CSV = "email,user_id\nA@example.com,\n,u-1\nb@example.com,u-2\n"


def checkout(directory: Path) -> Path:
    (directory / "data").mkdir(parents=True)
    (directory / "audiences.yaml").write_text(MANIFEST)
    (directory / "data" / "churn.csv").write_text(CSV)
    return directory


def test_desired_state_per_destination_and_list(tmp_path):
    desired = build_desired(load_manifests(checkout(tmp_path / "repo")))

    lists = {item.list_name: item for item in desired["prod"].lists}
    assert sorted(lists) == ["churn", "vip"]
    assert sorted(lists["churn"].members) == ["a@example.com", "u-1", "u-2"]
    # The same email twice is one member (the first row wins); the bad one is an issue.
    assert sorted(lists["vip"].members) == ["vip@example.com"]
    assert lists["vip"].duplicates == 1
    assert [issue.message for issue in lists["vip"].issues] == ["invalid email"]


def test_the_manifests_digest_follows_content_not_the_checkouts_place(tmp_path):
    one = checkout(tmp_path / "one")
    two = tmp_path / "two"
    shutil.copytree(one, two)
    digest = manifests_digest(load_manifests(one))

    assert manifests_digest(load_manifests(two)) == digest
    (two / "data" / "churn.csv").write_text(CSV + "c@example.com,\n")
    assert manifests_digest(load_manifests(two)) != digest
    (two / "data" / "churn.csv").unlink()
    assert manifests_digest(load_manifests(two)) != digest


def test_lists_of_unknown_size_are_read_by_export_only_beyond_the_getusers_budget():
    auto = ClientSettings(list_reads_per_minute=5)
    assert choose_member_read([None] * 5, auto).name == "getUsers"
    assert choose_member_read([None] * 6, auto).name == "export"
    forced = ClientSettings(member_reads="getUsers")
    assert choose_member_read([None] * 50, forced).name == "getUsers"
    assert choose_member_read([None], ClientSettings(member_reads="export")).name == "export"


def test_a_list_is_found_by_exact_name_and_never_guessed():
    lists = [
        ListInfo(1, "vip", None, "Standard", None),
        ListInfo(2, "Vip", None, "Standard", None),
        ListInfo(3, "twice", None, "Standard", None),
        ListInfo(4, "twice", None, "Standard", None),
        ListInfo(5, "smart", None, "Dynamic", None),
    ]
    found = find_list(lists, "vip")
    assert found is not None and found.id == 1
    assert find_list(lists, "absent") is None
    with pytest.raises(LiveStateError, match=r"2 lists named 'twice' \(ids 3, 4\)"):
        find_list(lists, "twice")
    with pytest.raises(LiveStateError, match="only manages Standard"):
        find_list(lists, "smart")
