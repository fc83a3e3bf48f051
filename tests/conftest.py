"""Session-wide test setup shared by every test folder.

Each folder (client/, emulator/, evidence/, report/, flows/, cli/) keeps its own
conftest.py for its own fixtures; only what everyone needs lives here.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import uuid
from pathlib import Path

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


def _start_harness() -> BackgroundHarness:
    global _HARNESS
    if _HARNESS is None:
        _HARNESS = BackgroundHarness()
        _HARNESS.thread.start()
    return _HARNESS


def _needs_prefect(item: pytest.Item) -> bool:
    return "prefect_harness" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """In one process: tests that need Prefect run last, and their harness starts now, in
    the background. Under pytest-xdist, every test that needs Prefect goes to the first
    worker (see `OnePrefectWorker`), which starts the one harness of the run."""
    items.sort(key=_needs_prefect)
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        names = [item.nodeid for item in items if _needs_prefect(item)]
        listed = _prefect_tests_file(worker["testrunuid"])
        scratch = listed.with_name(f"{listed.name}.{worker['workerid']}")
        scratch.write_text(json.dumps(names), encoding="utf-8")
        scratch.replace(listed)  # every worker lists the same tests; the file is whole
        if worker["workerid"] != "gw0":
            return
    if any(_needs_prefect(item) for item in items):
        _start_harness()


def pytest_sessionfinish(session, exitstatus):
    if _HARNESS is not None:
        _HARNESS.close()
    if not hasattr(session.config, "workerinput") and _XDIST_RUN_ID in session.config.stash:
        _prefect_tests_file(session.config.stash[_XDIST_RUN_ID]).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def prefect_harness():
    """The session's one Prefect test harness (a temporary API and database); its API URL."""
    harness = _start_harness()  # already booting, unless a test was sent here unplanned
    harness.wait()
    yield harness.api_url


# pytest-xdist: one Prefect harness for the whole run. Starting one costs ~8 s of CPU (its
# server imports Prefect's and builds a SQLite database), so the tests that need it all go
# to the first worker, as one unit of work handed out first; the others go out by module.
_PREFECT_UNIT = "prefect-harness"
_XDIST_RUN_ID = pytest.StashKey[str]()


def _prefect_tests_file(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bb2sv-tests-{run_id}.prefect.json"


def pytest_configure(config):
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    # The workers and the scheduler find the list of Prefect tests by this run's id.
    config.option.testrunuid = config.option.testrunuid or uuid.uuid4().hex
    config.stash[_XDIST_RUN_ID] = config.option.testrunuid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class OnePrefectWorker(LoadScopeScheduling):
        """Units of work: the tests that need Prefect (to gw0, first), else one per module."""

        def _split_scope(self, nodeid: str) -> str:
            if not hasattr(self, "_prefect_tests"):
                listed = _prefect_tests_file(config.stash[_XDIST_RUN_ID])
                self._prefect_tests = set(json.loads(listed.read_text(encoding="utf-8")))
            if nodeid in self._prefect_tests:
                return _PREFECT_UNIT
            return super()._split_scope(nodeid)

        def _assign_work_unit(self, node) -> None:
            if _PREFECT_UNIT in self.workqueue and len(self.workqueue) > 1:
                # gw0 takes it first; the others take it only if nothing else is left
                self.workqueue.move_to_end(_PREFECT_UNIT, last=node.gateway.id != "gw0")
            super()._assign_work_unit(node)

    if config.getvalue("dist") != "loadscope":
        return None  # another distribution asked for by name: xdist's own
    return OnePrefectWorker(config, log)


@pytest.fixture
def no_prefect_api():
    """No Prefect API configured (in this thread), whatever the session's harness set: what
    an ad-hoc `bb2sv collect` on a fresh machine sees, so it collects in-process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


@pytest.fixture(autouse=True)
def no_stop_left_over():
    """Each test starts with no stop requested. A collection that a test stops (a signal, a
    time limit) leaves the process-wide STOP set, as it should: in production the process
    then exits. The next test in this worker must not inherit it."""
    from tasks.signals import STOP

    STOP.clear()
    yield
