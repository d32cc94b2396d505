"""The emulator's user export with onlyFields, as the consent guard asks it (email, userId,
unsubscribedChannelIds of every profile): the lines written without a dict per profile
(the fast path) against the general path, on the same project of N profiles, one in a
thousand channel-unsubscribed.

    python bench/export_lines.py [N]     (default 1,000,000)

In process, no network. Not a test: nothing is asserted about time; exits 1 when the two
paths' bytes differ.
"""

from __future__ import annotations

import sys
import time

from reconciler.emulator import Project
from reconciler.emulator.api import _export_snapshot, _snapshot_lines

ONLY = ["email", "userId", "unsubscribedChannelIds"]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    project = Project("bench", "email", "0" * 64)
    list_id = project.add_list("bench")
    started = time.perf_counter()
    for i in range(n):
        user = project.create_user(f"user{i}@example.com", None)
        project.subscribe(user, list_id)
        if i % 1000 == 7:
            user.unsubscribed_channel_ids = frozenset({1})
    print(f"{n:,} profiles seeded in {time.perf_counter() - started:.1f} s")
    membership = project.membership_field
    timings = {}
    bodies = {}
    for name, fast in (("fast (onlyFields)", True), ("general", False)):
        started = time.perf_counter()
        snapshot = _export_snapshot(project, None, None, ONLY if fast else None)
        snap_s = time.perf_counter() - started
        bodies[name] = "".join(_snapshot_lines(membership, snapshot, ONLY, set(), fast=fast))
        timings[name] = time.perf_counter() - started
        print(
            f"{name:18} {timings[name]:6.2f} s (snapshot {snap_s:.2f} s), "
            f"{len(bodies[name]) / 1e6:,.0f} MB"
        )
    print(f"{timings['general'] / timings['fast (onlyFields)']:.1f}x faster")
    if len(set(bodies.values())) != 1:
        print("the two paths differ")
        sys.exit(1)


if __name__ == "__main__":
    main()
