"""What the command-line tests share: the module's emulator."""

from __future__ import annotations

from datetime import date

import pytest

from emulator import run_emulator

EMULATOR_DAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def emu(request):
    """An emulator for the test module: its `EMULATED` workspaces, admin token `TOKEN`."""
    module = request.module
    with run_emulator(module.EMULATED, day=EMULATOR_DAY, admin_token=module.TOKEN) as emulator:
        yield emulator
