"""A faithful local stand-in for Iterable's API.

Used three ways: over loopback HTTP by integration tests (`EmulatorServer`), in-process
through an httpx transport for `region: sandbox` (`EmulatorTransport`), and by
`reconciler emulator serve` (reconciler/cli/emulator.py).

    emulator = Emulator()
    emulator.add_project("default", "hybrid", api_key)
    with EmulatorServer(emulator) as server:
        httpx.get(f"{server.base_url}/api/lists", headers={"Api-Key": api_key})
"""

from reconciler.emulator.emulator import Emulator, LoggedRequest
from reconciler.emulator.knobs import Faults, Limits
from reconciler.emulator.project import ListRecord, Project, User
from reconciler.emulator.replies import EmulatorResponse
from reconciler.emulator.server import EmulatorServer
from reconciler.emulator.transport import EmulatorTransport

__all__ = [
    "Emulator",
    "EmulatorResponse",
    "EmulatorServer",
    "EmulatorTransport",
    "Faults",
    "Limits",
    "ListRecord",
    "LoggedRequest",
    "Project",
    "User",
]
