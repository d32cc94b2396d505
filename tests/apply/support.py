"""Plans made by hand for the apply/ tests: the executor takes any Plan, so a test states
exactly the changes it sends, and the emulator (over loopback HTTP) is Iterable."""

from __future__ import annotations

from reconciler.iterable import ClientSettings, IterableClient
from reconciler.members.identity import Member
from reconciler.plan import ListPlan

FAST = ClientSettings(backoff_base=0.001, backoff_cap=0.01, timeout=5, read_lag=0)


def member(email: str) -> Member:
    return Member(email, "email", email=email)


def list_plan(
    name: str,
    *,
    list_id: int | None = None,
    add: tuple[Member, ...] = (),
    remove: tuple[str, ...] = (),
    live: int = 0,
) -> ListPlan:
    return ListPlan(
        audience=name,
        list_name=name,
        list_id=list_id,
        create=list_id is None,
        description=None,
        add=add,
        remove=remove,
        unchanged=0,
        live_count=live,
        desired_count=live + len(add) - len(remove),
    )


def client(server, **settings: object) -> IterableClient:
    from dataclasses import replace

    from tests.conftest import EMULATOR_API_KEY

    return IterableClient(server.base_url, EMULATOR_API_KEY, settings=replace(FAST, **settings))


def writes(server) -> list[tuple[str, str]]:
    """(method, path) of every request that changes something, in the order received."""
    return [
        (r.method, r.path)
        for r in server.emulator.request_log
        if r.method in ("POST", "DELETE") and r.path != "/api/users/get"
    ]
