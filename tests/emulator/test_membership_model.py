"""Property: any sequence of subscribes and unsubscribes leaves exactly the members a
plain set model predicts (in process, through EmulatorTransport, to stay fast)."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator import Emulator, EmulatorTransport, Limits

LOCAL_PARTS = st.sampled_from(["ann", "Ann", "bob", "BOB", "cy", "dee"])
MEMBER = st.one_of(
    LOCAL_PARTS.map(lambda local: {"email": f"{local}@Example.com"}),
    st.sampled_from(["u1", "U1", "u2"]).map(lambda user_id: {"userId": user_id}),
)
OPERATION = st.tuples(st.sampled_from(["subscribe", "unsubscribe"]), st.lists(MEMBER, max_size=4))


def identity(member: dict[str, str]) -> str:
    # Emails compare case-insensitively; userIds exactly.
    return member["email"].lower() if "email" in member else member["userId"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATION, max_size=8))
def test_membership_matches_a_set_model(operations: list[tuple[str, list[dict[str, str]]]]) -> None:
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("p", "hybrid", "k")
    list_id = project.add_list("l")
    model: set[str] = set()
    known: set[str] = set()
    with httpx.Client(
        transport=EmulatorTransport(emulator),
        base_url="https://sandbox.invalid",
        headers={"Api-Key": "k"},
    ) as client:
        for name, members in operations:
            response = client.post(
                f"/api/lists/{name}", json={"listId": list_id, "subscribers": members}
            )
            assert response.status_code == 200
            body = response.json()
            ids = [identity(m) for m in members]
            if name == "subscribe":
                model |= set(ids)
                known |= set(ids)
                assert body["successCount"] == len(members)
            else:
                model -= set(ids)
                assert body["failCount"] == sum(1 for i in ids if i not in known)
    assert set(project.members(list_id)) == model
    assert len(project.members(list_id)) == len(model)
