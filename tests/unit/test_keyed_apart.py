"""Which destinations reach one Iterable project with keys of their own (state/keyed_apart.py),
against the emulator over HTTP."""

from __future__ import annotations

from reconciler.iterable import ClientSettings, IterableClient
from reconciler.state.keyed_apart import KeyedApart

MARK = "[managed-by: reconciler; audience: trial]"


def _client(server, key: str) -> IterableClient:
    settings = ClientSettings(max_retries=0, timeout=5)
    return IterableClient(server.base_url, key, settings=settings)


def test_an_index_that_cannot_be_read_counts_as_the_same_projects(emulator_server):
    """A destination whose key Iterable refuses may reach this project: its audiences' lists
    are spared (the next plan can still delete them), never deleted on a guess."""
    proj = emulator_server.emulator.project("default")
    proj.add_list("trial", MARK)
    clients = {
        "prod": _client(emulator_server, "test-key"),
        "growth": _client(emulator_server, "revoked"),
    }
    apart = KeyedApart(clients, {"prod": {"churn"}, "growth": {"trial"}}.__getitem__)
    assert apart.declared("prod", clients["prod"].get_lists(), {"churn"}) == {"churn", "trial"}


def test_a_destination_of_another_project_declares_nothing_here(emulator_server):
    emulator = emulator_server.emulator
    emulator.add_project("eu", "hybrid", "eu-key")
    emulator.project("default").add_list("trial", MARK)
    emulator.project("eu").add_list("other")
    clients = {
        "prod": _client(emulator_server, "test-key"),
        "eu": _client(emulator_server, "eu-key"),
    }
    apart = KeyedApart(clients, {"prod": {"churn"}, "eu": {"trial"}}.__getitem__)
    assert apart.declared("prod", clients["prod"].get_lists(), {"churn"}) == {"churn"}
