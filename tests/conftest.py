"""Session-wide test setup shared by every test folder.

Each folder (client/, emulator/, evidence/, report/, flows/, cli/) keeps its own
conftest.py for its own fixtures; only what everyone needs lives here.
"""

from __future__ import annotations

import os
import tempfile
import threading

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


class BackgroundHarness:
    """Prefect's `prefect_test_harness`, entered once for the session on a thread of its own.

    Starting the harness's temporary server takes about 10 s. It starts as soon as the
    session knows it will need it, and the tests that use it run last, so the server boots
    while the other tests run. The harness makes its settings the process-global settings
    context, so flows run from the main thread use its server.
    """

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.api_url: str | None = None
        self.thread = threading.Thread(target=self._run, name="prefect-harness", daemon=True)

    def _run(self) -> None:
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )
        from prefect.testing.utilities import prefect_test_harness

        # Flow-run heartbeats (every 180 s) only matter to a long-lived server watching for
        # crashed runs; their thread makes every test flow run wait up to 1 s on exit.
        no_heartbeats = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        try:
            with (
                temporary_settings(no_heartbeats),
                prefect_test_harness(server_startup_timeout=120),
            ):
                self.api_url = PREFECT_API_URL.value()
                self.ready.set()
                self.stop.wait()
        except BaseException as exc:  # surfaced to the tests that need the harness
            self.error = exc
            self.ready.set()

    def wait(self) -> None:
        if not self.ready.wait(timeout=180):
            raise RuntimeError("the Prefect test harness did not start within 180 s")
        if self.error is not None:
            raise RuntimeError(f"the Prefect test harness failed to start: {self.error!r}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


_HARNESS: BackgroundHarness | None = None


def pytest_collection_modifyitems(session, config, items):
    """Tests that need Prefect run last; their harness starts now, in the background."""
    global _HARNESS
    items.sort(key=lambda item: "prefect_harness" in getattr(item, "fixturenames", ()))
    if _HARNESS is None and any("prefect_harness" in item.fixturenames for item in items):
        _HARNESS = BackgroundHarness()
        _HARNESS.thread.start()


def pytest_sessionfinish(session, exitstatus):
    if _HARNESS is not None:
        _HARNESS.close()


@pytest.fixture(scope="session")
def prefect_harness():
    """The session's one Prefect test harness (a temporary API and database); its API URL."""
    assert _HARNESS is not None, "started at collection for every test that uses it"
    _HARNESS.wait()
    yield _HARNESS.api_url


@pytest.fixture
def no_prefect_api():
    """No Prefect API configured (in this thread), whatever the session's harness set: what
    an ad-hoc `bb2sv collect` on a fresh machine sees, so it collects in-process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield
