"""Session-wide test setup shared by every test folder.

Each folder (client/, emulator/, evidence/, report/, flows/, cli/) keeps its own
conftest.py for its own fixtures; only what everyone needs lives here.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

# Keep Prefect's state out of the user's home (even when PREFECT_HOME names it) and never
# talk to a real server. One home for the run: the first process makes it and removes it
# as it exits; the pytest-xdist workers and the tests' subprocesses inherit it.
_RUN_PREFECT_HOME = "BB2SV_TESTS_PREFECT_HOME"
_PREFECT_HOME = os.environ.get(_RUN_PREFECT_HOME)
if _PREFECT_HOME is None:
    _PREFECT_HOME = os.environ[_RUN_PREFECT_HOME] = tempfile.mkdtemp(prefix="bb2sv-prefect-home-")
    atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
for _name in list(os.environ):
    if _name.startswith(("BITBUCKET_", "ATLASSIAN_")):
        del os.environ[_name]


def _one_certificate_bundle() -> str:
    """The session's Prefect API is plain HTTP on loopback, so Prefect's clients never use
    their CA bundle; but each one (about 180 counted in a run, in the tests' processes and
    their subprocesses) parses the whole bundle it is given when it is made: certifi's,
    ~22 ms of CPU each. Given a bundle of one certificate it takes 0.4 ms. bb2sv's own clients (to
    Bitbucket and the emulator) do not read this setting."""
    import certifi

    bundle = Path(certifi.where()).read_text("ascii")
    end = "-----END CERTIFICATE-----\n"
    first = bundle[bundle.index("-----BEGIN CERTIFICATE-----") : bundle.index(end) + len(end)]
    path = Path(_PREFECT_HOME) / "prefect-api-ca.pem"
    path.write_text(first, "ascii")
    return str(path)


os.environ.setdefault("PREFECT_API_SSL_CERT_FILE", _one_certificate_bundle())


class BackgroundHarness:
    """Prefect's `prefect_test_harness`, entered once for the session on a thread of its own.

    Starting the harness's temporary server takes about 8 s. It starts as soon as the session
    knows it will need it, so the server boots while other tests run. The harness makes its
    settings the process-global settings context, so flows run from the main thread use its
    server. `announce`: a file to write the API URL (or the error) to once it is known, for
    the pytest-xdist workers when the controller hosts the harness.
    """

    def __init__(self, announce: Path | None = None) -> None:
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.api_url: str | None = None
        self.announce = announce
        self.thread = threading.Thread(target=self._run, name="prefect-harness", daemon=True)

    def _run(self) -> None:
        from prefect.settings import (
            PREFECT_API_BLOCKS_REGISTER_ON_START,
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED,
            PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED,
            temporary_settings,
        )
        from prefect.testing.utilities import prefect_test_harness

        # Flow-run heartbeats (every 180 s) only matter to a long-lived server watching for
        # crashed runs; their thread makes every test flow run wait up to 1 s on exit.
        # Registering every block type Python has imported costs the server ~2 s of CPU at
        # start; a block that is saved registers its own type (Block.save), which is all the
        # tests and bb2sv use (Secret, which several test processes save, is registered once
        # below). The server's task-run recorder and event persister turn the
        # events a run emits into task-run and event rows, which no test reads (flow runs,
        # states, logs, artifacts, blocks, limits and automations are written by the API
        # itself); their SQLite writes cost ~0.2 s of CPU per flow run and held up the API's.
        settings = {
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            PREFECT_API_BLOCKS_REGISTER_ON_START: False,
            PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED: False,
            PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: False,
        }
        try:
            with temporary_settings(settings), prefect_test_harness(server_startup_timeout=120):
                # Saving a block registers its type: two test processes saving their first
                # Secret at once met with 409 Conflict (block type already exists).
                from prefect.blocks.system import Secret

                Secret.register_type_and_schema()
                self.api_url = PREFECT_API_URL.value()
                self._announce({"url": self.api_url})
                self.ready.set()
                self.stop.wait()
        except BaseException as exc:  # surfaced to the tests that need the harness
            self.error = exc
            self._announce({"error": repr(exc)})
            self.ready.set()

    def _announce(self, message: dict[str, str]) -> None:
        if self.announce is not None:
            scratch = self.announce.with_name(f"{self.announce.name}.tmp")
            scratch.write_text(json.dumps(message), encoding="utf-8")
            scratch.replace(self.announce)

    def wait(self) -> None:
        if not self.ready.wait(timeout=180):
            raise RuntimeError("the Prefect test harness did not start within 180 s")
        if self.error is not None:
            raise RuntimeError(f"the Prefect test harness failed to start: {self.error!r}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


_HARNESS: BackgroundHarness | None = None


def _start_harness(announce: Path | None = None) -> BackgroundHarness:
    global _HARNESS
    if _HARNESS is None:
        _HARNESS = BackgroundHarness(announce)
        _HARNESS.thread.start()
    return _HARNESS


def _needs_prefect(item: pytest.Item) -> bool:
    return "prefect_harness" in getattr(item, "fixturenames", ())


def _alone(module) -> bool:
    """A test module that must have the Prefect server to itself under pytest-xdist sets
    `PREFECT_SERVER_ALONE = True`: its SQLite database answers writes that meet with 503,
    which tests of the shared budget would take for a busy server."""
    return bool(getattr(module, "PREFECT_SERVER_ALONE", False))


def _controller_hosts_harness(config) -> bool:
    """Under pytest-xdist with --dist loadscope, the controller runs the harness and every
    worker uses its server (see `SharedPrefectHarness`)."""
    return config.getvalue("dist") == "loadscope" and bool(config.getvalue("numprocesses"))


_SHARED_HARNESS = "bb2sv_shared_prefect_harness"  # in a worker's workerinput: the above


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput[_SHARED_HARNESS] = _controller_hosts_harness(node.config)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    """In each process: tests that need Prefect run last. In one process, their harness starts
    now, in the background. Under pytest-xdist, each worker lists them for the controller,
    which starts the one harness of the run (see `SharedPrefectHarness`)."""
    items.sort(key=_needs_prefect)
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        names = [item.nodeid for item in items if _needs_prefect(item)]
        alone = [item.nodeid for item in items if _needs_prefect(item) and _alone(item.module)]
        listed = _prefect_tests_file(worker["testrunuid"])
        scratch = listed.with_name(f"{listed.name}.{worker['workerid']}")
        scratch.write_text(json.dumps({"tests": names, "alone": alone}), encoding="utf-8")
        scratch.replace(listed)  # every worker lists the same tests; the file is whole
        return
    if any(_needs_prefect(item) for item in items):
        _start_harness()


@pytest.hookimpl(trylast=True)  # after pytest-xdist has stopped its workers
def pytest_sessionfinish(session, exitstatus):
    if _HARNESS is not None:
        _HARNESS.close()
    if not hasattr(session.config, "workerinput") and _XDIST_RUN_ID in session.config.stash:
        run_id = session.config.stash[_XDIST_RUN_ID]
        _prefect_tests_file(run_id).unlink(missing_ok=True)
        _harness_url_file(run_id).unlink(missing_ok=True)
        _prefect_lock_file(run_id).unlink(missing_ok=True)


def _wait_for_announced_url(run_id: str) -> str:
    announced = _harness_url_file(run_id)
    deadline = time.monotonic() + 180
    while not announced.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the Prefect test harness did not start within 180 s")
        time.sleep(0.05)
    message = json.loads(announced.read_text(encoding="utf-8"))
    if "error" in message:
        raise RuntimeError(f"the Prefect test harness failed to start: {message['error']}")
    return message["url"]


@pytest.fixture(scope="module")
def prefect_harness(request):
    """The session's one Prefect test harness (a temporary API and database); its API URL.

    In one process the harness is already booting in the background and its settings are
    the process's. Under pytest-xdist the controller runs it: this points the worker's
    Prefect settings (this thread's and the process-global ones, as the harness does) at its
    server for the module, so the module's tests and its module-scoped fixtures use it and
    later modules in the worker do not. Modules use it side by side, except one that needs
    it alone (`_alone`)."""
    worker = getattr(request.config, "workerinput", None)
    if worker is None or not worker.get(_SHARED_HARNESS):
        harness = _start_harness()  # already booting, unless a test was sent here unplanned
        harness.wait()
        yield harness.api_url
        return

    import fcntl

    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = _wait_for_announced_url(worker["testrunuid"])
    with open(_prefect_lock_file(worker["testrunuid"]), "a+b") as lock:
        # The scheduler avoids waiting here (see below).
        fcntl.flock(lock, fcntl.LOCK_EX if _alone(request.module) else fcntl.LOCK_SH)
        with (
            temporary_settings({PREFECT_API_URL: url}),
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            ),
        ):
            yield url


# pytest-xdist: one Prefect harness for the whole run. Starting one costs ~8 s of CPU (its
# server imports Prefect's and builds a SQLite database), so the controller, which runs no
# tests, starts it (see `SharedPrefectHarness`), and every worker uses its server.
_XDIST_RUN_ID = pytest.StashKey[str]()


def _prefect_tests_file(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bb2sv-tests-{run_id}.prefect.json"


def _harness_url_file(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bb2sv-tests-{run_id}.prefect-url.json"


def _prefect_lock_file(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bb2sv-tests-{run_id}.prefect.lock"


def pytest_configure(config):
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    # The workers and the scheduler find the list of Prefect tests by this run's id.
    config.option.testrunuid = config.option.testrunuid or uuid.uuid4().hex
    config.stash[_XDIST_RUN_ID] = config.option.testrunuid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedPrefectHarness(LoadScopeScheduling):
        """Units of work by module, as --dist loadscope, a module's tests that need Prefect
        apart. For the whole suite the controller starts the harness at once (it boots while
        the workers collect), else once the workers have collected and some test needs it.
        A unit that needs it goes to a worker once its server answers, and one that needs it
        alone only when no other worker has such a unit unfinished (nor one beside it);
        until then, the other units do."""

        def _split_scope(self, nodeid: str) -> str:
            if not hasattr(self, "_prefect_tests"):
                listed = _prefect_tests_file(config.stash[_XDIST_RUN_ID])
                found = json.loads(listed.read_text(encoding="utf-8"))
                self._prefect_tests, self._alone_tests = set(found["tests"]), set(found["alone"])
                self._prefect_scopes: set[str] = set()
                self._alone_scopes: set[str] = set()
                if not self._prefect_tests and _HARNESS is not None:
                    _HARNESS.stop.set()  # not needed after all
                elif self._prefect_tests:
                    _start_harness(announce=_harness_url_file(config.stash[_XDIST_RUN_ID]))
            module = super()._split_scope(nodeid)
            if nodeid not in self._prefect_tests:
                return module
            # A module's tests that need Prefect are a unit of their own: the others need
            # not wait for the server.
            scope = f"{module} (Prefect)"
            self._prefect_scopes.add(scope)
            if nodeid in self._alone_tests:
                self._alone_scopes.add(scope)
            return scope

        def _prefect_elsewhere(self, node) -> dict[str, object]:
            """The units that need Prefect which other workers have not finished: by whom."""
            return {
                scope: other
                for other, units in self.assigned_work.items()
                if other is not node
                for scope, tests in units.items()
                if scope in self._prefect_scopes and not all(tests.values())
            }

        def _can_run_now(self, scope: str, node) -> bool:
            if _HARNESS is None or not _HARNESS.ready.is_set():
                return False
            elsewhere = self._prefect_elsewhere(node)
            if scope in self._alone_scopes:
                return not elsewhere
            # Beside at most one other worker: the server and the SQLite file are shared.
            return not elsewhere.keys() & self._alone_scopes and len(set(elsewhere.values())) < 2

        def _assign_work_unit(self, node) -> None:
            queue = list(self.workqueue)
            prefect_now = [
                s for s in queue if s in self._prefect_scopes and self._can_run_now(s, node)
            ]
            others = [s for s in queue if s not in self._prefect_scopes]
            # Else only units that need Prefect are left: the worker waits for its turn.
            chosen = (prefect_now or others or queue)[0]
            self.workqueue.move_to_end(chosen, last=False)
            super()._assign_work_unit(node)

    if not _controller_hosts_harness(config):
        return None  # another distribution asked for by name: xdist's own
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:  # the whole suite
        _start_harness(announce=_harness_url_file(config.stash[_XDIST_RUN_ID]))
    return SharedPrefectHarness(config, log)


@pytest.fixture
def no_prefect_api():
    """No Prefect API configured (in this thread), whatever the session's harness set: what
    an ad-hoc `bb2sv collect` on a fresh machine sees, so it collects in-process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value() is None:  # already so: a settings context costs ~30 ms of CPU
        yield
        return
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


@pytest.fixture(autouse=True)
def no_stop_left_over():
    """A stop (a SIGTERM, a Prefect cancellation, a time limit) is process-wide state
    (`tasks.signals.STOP`): one that a test requested must not reach the next test (nor a
    module fixture's teardown) that the process runs. A collection clears it when it starts,
    and leaves it set when it was stopped, as it should (in production the process then
    exits); bare extractions and other waits do not clear it."""
    from tasks.signals import STOP

    STOP.clear()
    yield
    STOP.clear()
