"""A local stand-in for the Bitbucket Cloud REST API (synthetic data, fault injection).

    from emulator import Scenario, WorkspaceSpec, run_emulator
    with run_emulator([WorkspaceSpec("acme", members=250, seed=1)]) as emu:
        emu.base_url, emu.admin_token, emu.expected_members("acme")

Every response carries `X-Bb2sv-Emulator: 1`, for people reading its traffic; bb2sv itself
tells emulator data by the loopback URL it was configured with, never by a header. Usage:
`run_emulator` in emulator/server.py.
"""

from emulator.auth import Credentials
from emulator.directory import OrgSpec
from emulator.scenario import Scenario
from emulator.server import Emulator, PortUnavailable, run_emulator, serve
from emulator.world import WorkspaceSpec, population

__all__ = [
    "Credentials",
    "Emulator",
    "OrgSpec",
    "PortUnavailable",
    "Scenario",
    "WorkspaceSpec",
    "population",
    "run_emulator",
    "serve",
]
