"""Session-wide test setup shared by every test folder.

Each folder (client/, emulator/, evidence/, report/, flows/, cli/) keeps its own
conftest.py for its own fixtures; only what everyone needs lives here.
"""

from __future__ import annotations

import os
import tempfile

import pytest

# Keep Prefect's state out of the user's home and never talk to a real server.
_PREFECT_HOME = tempfile.mkdtemp(prefix="bb2sv-prefect-home-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
for _name in list(os.environ):
    if _name.startswith(("BITBUCKET_", "ATLASSIAN_")):
        del os.environ[_name]


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary API and database) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
