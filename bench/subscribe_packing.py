"""What packing a list's adds into subscribe requests costs (apply/executor.py's
_subscribe_requests: greedy by member count and by encoded body size), per member.

    python bench/subscribe_packing.py [N ...] [--note BYTES]

For each N (default 10,000 and 100,000), N members each with a mapped field of --note
bytes (default 4,100) are packed as apply packs them, with no request sent (the client
points at a closed port); prints the requests made beside the least any split can make,
and the CPU seconds and microseconds per member, best of 3. Linear packing keeps the
microseconds per member flat as N grows. Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import math
import threading
import time

from reconciler.apply.executor import _Destination, _Run
from reconciler.apply.journal import Journal
from reconciler.iterable import IterableClient
from reconciler.iterable.batching import encode
from reconciler.members.identity import Member
from reconciler.plan import DestinationPlan, ListPlan

LIST_ID = 1_000_001


def plan(n: int, note: str) -> tuple[DestinationPlan, ListPlan]:
    adds = tuple(Member(f"m{i}@example.com", "email", email=f"m{i}@example.com") for i in range(n))
    lp = ListPlan(
        audience="vip",
        list_name="vip",
        list_id=LIST_ID,
        create=False,
        description=None,
        add=adds,
        remove=(),
        unchanged=0,
        live_count=0,
        desired_count=n,
        add_fields={m.key: {"note": note} for m in adds},
    )
    return DestinationPlan("prod", "hybrid", (lp,)), lp


def measure(n: int, note_bytes: int) -> None:
    dest_plan, lp = plan(n, "x" * note_bytes)
    with IterableClient("http://127.0.0.1:9", "made-up-key") as client:
        run = _Run(Journal.disabled(), threading.Event(), None)
        best, requests = math.inf, 0
        for _ in range(3):
            destination = _Destination(dest_plan, client, run)
            start = time.process_time()
            requests = sum(1 for _ in destination._subscribe_requests(lp, lp.add))
            best = min(best, time.process_time() - start)
        limit = client.settings.bulk_update_max_bytes
    envelope = len(encode({"listId": LIST_ID, "subscribers": []}))
    sizes = (
        len(encode({"email": m.email, "dataFields": {"note": "x" * note_bytes}})) for m in lp.add
    )
    least = max(math.ceil(n / 1000), math.ceil(sum(s + 1 for s in sizes) / (limit - envelope + 1)))
    print(
        f"{n:>9,} members x {note_bytes:,} B: {requests:,} requests (least {least:,}), "
        f"{best:.3f} s CPU, {best / n * 1e6:.2f} us/member"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--note", type=int, default=4100, help="bytes of each member's field")
    args = parser.parse_args()
    for n in args.n:
        measure(n, args.note)


if __name__ == "__main__":
    main()
