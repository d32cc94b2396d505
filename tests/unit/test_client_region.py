"""A key Iterable refuses at one region's host says the region may be wrong: a key works
only in its project's data center (US or EU), and region: us for an EU project is an easy
slip that the bare "check the apiKey" advice would send hunting for a new key."""

from __future__ import annotations

import pytest

from reconciler.emulator import Emulator, EmulatorTransport, Limits
from reconciler.errors import AuthError
from reconciler.iterable import REGION_URLS, ClientSettings, IterableClient


@pytest.mark.parametrize(("region", "other"), [("us", "eu"), ("eu", "us")])
def test_a_refused_key_at_a_region_host_names_the_other_region(region: str, other: str) -> None:
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project("p", "hybrid", "the-right-key")
    client = IterableClient(
        REGION_URLS[region],
        "a-key-of-another-data-center",
        settings=ClientSettings(),
        transport=EmulatorTransport(emulator),
    )
    with pytest.raises(AuthError) as refused:
        client.get_lists()
    message = str(refused.value)
    assert "check the destination's apiKey variable or file, and its region" in message
    assert f"this was Iterable's {region} data center" in message
    assert f"(region: {other} for a project there)" in message


def test_a_refused_key_elsewhere_says_nothing_of_regions() -> None:
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project("p", "hybrid", "the-right-key")
    client = IterableClient("http://127.0.0.1:9", "wrong", transport=EmulatorTransport(emulator))
    with pytest.raises(AuthError) as refused:
        client.get_lists()
    assert "region" not in str(refused.value)
