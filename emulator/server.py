"""Run the emulator: in a background thread for tests, or blocking for the CLI.

with run_emulator([WorkspaceSpec("acme", members=250, seed=1)], day=date(2026, 11, 27)) as emu:
    httpx.get(f"{emu.base_url}/workspaces/acme/members",
              headers={"Authorization": f"Bearer {emu.admin_token}"})
    # the organization directory: ATLASSIAN_ADMIN_API_URL=emu.admin_api_url,
    # ATLASSIAN_ORG_ID=emu.org_id, ATLASSIAN_ADMIN_API_KEY=emu.admin_api_key

serve(port=8765, members=250, seed=1, token="my-token", workspace="acme")   # blocks
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import uvicorn

from emulator.app import create_app
from emulator.auth import DEFAULT_CREDENTIALS, Credentials
from emulator.directory import DEFAULT_ORG, OrgSpec
from emulator.scenario import Scenario
from emulator.state import EmulatorState
from emulator.world import WorkspaceSpec

HOST = "127.0.0.1"


@dataclass
class Emulator:
    """A running emulator (see `run_emulator`). Credentials are fake but never in the repr."""

    base_url: str  # "http://127.0.0.1:<port>/2.0"
    token_url: str  # "http://127.0.0.1:<port>/site/oauth2/access_token"
    port: int
    state: EmulatorState = field(repr=False)

    @property
    def admin_token(self) -> str:
        """Bearer token of a workspace admin: sees `has_2fa_enabled` when asked."""
        return self.state.auth.creds.admin_token

    @property
    def member_token(self) -> str:
        """Bearer token of a plain member: `has_2fa_enabled` is absent."""
        return self.state.auth.creds.member_token

    @property
    def scopeless_token(self) -> str:
        """Bearer token without read:workspace:bitbucket: 403 with granted/required."""
        return self.state.auth.creds.scopeless_token

    @property
    def email(self) -> str:
        """Basic-auth user (with `api_token`): an admin."""
        return self.state.auth.creds.email

    @property
    def api_token(self) -> str:
        return self.state.auth.creds.api_token

    @property
    def oauth_client_id(self) -> str:
        """OAuth consumer for client credentials at `token_url`: tokens act as an admin."""
        return self.state.auth.creds.oauth_client_id

    @property
    def oauth_client_secret(self) -> str:
        return self.state.auth.creds.oauth_client_secret

    @property
    def admin_api_url(self) -> str:
        """What ATLASSIAN_ADMIN_API_URL names: the origin the directory is served from."""
        return self.base_url.removesuffix("/2.0")

    @property
    def admin_api_key(self) -> str:
        """The organization API key (Bearer) that reads the directory."""
        return self.state.auth.creds.admin_api_key

    @property
    def org_id(self) -> str:
        return self.state.org.org_id

    def expected_directory(self) -> list[dict[str, object]]:
        """Ground truth of the organization directory on the current day, in listing order."""
        return self.state.directory_users()

    @property
    def day(self) -> date:
        return self.state.day

    @property
    def scenario(self) -> Scenario:
        return self.state.scenario

    @property
    def request_count(self) -> int:
        """Requests served so far, all endpoints (including rejected ones)."""
        return self.state.request_count

    def request_paths(self) -> list[str]:
        """Paths of the requests served so far (the last 100,000), in the order they arrived:
        e.g. '/2.0/workspaces/acme/members'."""
        return self.state.request_paths()

    def set_day(self, day: date) -> None:
        """Move the simulated clock: the world as of that UTC day."""
        self.state.set_day(day)

    def set_scenario(self, scenario: Scenario) -> None:
        """Install fault injection; takes effect at once and resets fault counters/budgets."""
        self.state.set_scenario(scenario)

    def expected_members(self, slug: str) -> list[dict[str, object]]:
        """Ground truth for the current day, in listing order: dicts with account_id, uuid,
        nickname, display_name, permission, has_2fa_enabled (True/False/None)."""
        return self.state.expected_members(slug)


class _ThreadedServer(uvicorn.Server):
    """uvicorn in a thread, stopped from another thread by `stop()`.

    uvicorn's own main loop looks at `should_exit` every 0.1 s; this one is also woken at
    once, so stopping an emulator (the tests start and stop one about 120 times) does not
    wait for the next look."""

    _woken: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def install_signal_handlers(self) -> None:  # older uvicorn; newer checks the thread itself
        pass

    async def main_loop(self) -> None:
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks):  # uvicorn's tick: the Date header, should_exit
            ticks = (ticks + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), 0.1)

    def stop(self) -> None:
        self.should_exit = True
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(woken.set)


def _bind(port: int) -> socket.socket:
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on connections accepted from a socket that says it is TCP. With it on, every small
    # response on a kept-alive connection waited ~40 ms for the client's delayed ACK, as
    # Bitbucket's (or any tuned) server's never does.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise PortUnavailable(port, exc) from None
    return sock


class PortUnavailable(OSError):
    """The emulator's port is taken, or not this user's to bind (errno as the bind's)."""

    def __init__(self, port: int, cause: OSError) -> None:
        self.port, self.why = port, cause.strerror or type(cause).__name__
        super().__init__(
            cause.errno, f"cannot listen on {HOST}:{port} ({self.why}); pick another --port"
        )


@contextmanager
def run_emulator(
    workspaces: list[WorkspaceSpec],
    *,
    day: date | None = None,
    scenario: Scenario | None = None,
    port: int = 0,
    admin_token: str = DEFAULT_CREDENTIALS.admin_token,
    member_token: str = DEFAULT_CREDENTIALS.member_token,
    scopeless_token: str = DEFAULT_CREDENTIALS.scopeless_token,
    email: str = DEFAULT_CREDENTIALS.email,
    api_token: str = DEFAULT_CREDENTIALS.api_token,
    oauth_client_id: str = DEFAULT_CREDENTIALS.oauth_client_id,
    oauth_client_secret: str = DEFAULT_CREDENTIALS.oauth_client_secret,
    admin_api_key: str = DEFAULT_CREDENTIALS.admin_api_key,
    org: OrgSpec = DEFAULT_ORG,
) -> Iterator[Emulator]:
    """Serve `workspaces` on 127.0.0.1 (port 0 = a free port) in a background thread, with
    the organization `org` whose directory lists their people.

    `day` defaults to today (UTC). Stops the server and joins the thread on exit.
    """
    creds = Credentials(
        admin_token,
        member_token,
        scopeless_token,
        email,
        api_token,
        oauth_client_id,
        oauth_client_secret,
        admin_api_key,
    )
    state = EmulatorState(
        list(workspaces),
        day=day or datetime.now(UTC).date(),
        scenario=scenario,
        credentials=creds,
        org=org,
    )
    sock = _bind(port)
    config = uvicorn.Config(
        create_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = _ThreadedServer(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="bb2sv-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the emulator did not start; see the log above")
        time.sleep(0.005)
    bound = sock.getsockname()[1]
    origin = f"http://{HOST}:{bound}"
    try:
        yield Emulator(f"{origin}/2.0", f"{origin}/site/oauth2/access_token", bound, state)
    finally:
        state.stopping.set()
        server.stop()
        thread.join(timeout=10)
        sock.close()


def serve(
    port: int, members: int, seed: int, token: str, workspace: str, latency_s: float = 0.0
) -> None:
    """Run one emulated workspace until Ctrl+C. `token` is the admin Bearer token."""
    spec = WorkspaceSpec(workspace, members=members, seed=seed)
    with run_emulator(
        [spec], port=port, admin_token=token, scenario=Scenario(latency_s=latency_s)
    ) as emu:
        print(f"bb2sv emulator (fake data) serving workspace '{workspace}' with {members} members")
        print(f"  API base URL: {emu.base_url}")
        print("Point the collector at it:")
        print(f"  export BITBUCKET_API_URL={emu.base_url}")
        print("  export BITBUCKET_TOKEN=<the token you passed with --token>")
        print("and, for the organization directory (the emulator's fake org and key):")
        print(f"  export ATLASSIAN_ADMIN_API_URL={emu.admin_api_url}")
        print(f"  export ATLASSIAN_ORG_ID={emu.org_id}")
        print(f"  export ATLASSIAN_ADMIN_API_KEY={emu.admin_api_key}")
        print("Press Ctrl+C to stop.", flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("stopping the emulator")
