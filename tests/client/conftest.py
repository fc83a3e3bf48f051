"""Fixtures for the client tests: one emulator on loopback for the folder, small retry caps.

Every test talks real HTTP to `run_emulator`. Time is real for the HTTP, but retry and
pacing waits go through `FakeClock`, whose `sleep` only moves its own clock forward: a
`Retry-After: 30` is honoured (and asserted) without waiting 30 s.
"""

from __future__ import annotations

import random
import socket
import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest

from emulator import Scenario, WorkspaceSpec, run_emulator
from tasks.bitbucket.auth import BearerToken, BitbucketAuth
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.extract import extract_workspace
from tasks.bitbucket.models import WorkspaceExtract
from tasks.bitbucket.ratelimit import RequestPacer

DAY = date(2026, 11, 27)
SIZES = {"empty": 0, "solo": 1, "hundred": 100, "hundred-one": 101, "acme": 250}


@pytest.fixture
def one_member_page() -> dict[str, Any]:
    """A whole page of either listing with one owner who uses 2SV: the smallest population
    a fake server can answer with that is whole (an empty workspace is not)."""
    user = {"account_id": "557058:one-owner", "uuid": "{one-owner}", "has_2fa_enabled": True}
    return {"pagelen": 100, "size": 1, "values": [{"user": user, "permission": "owner"}]}


class FakeClock:
    """Real wall time (the server's HTTP-dates stay meaningful); monotonic time is real time
    plus whatever was 'slept', so deadlines and pacing see the waits. Records every sleep."""

    def __init__(self) -> None:
        import time

        self._time = time
        self.offset = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self._time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += max(0.0, seconds)


@pytest.fixture(scope="session")
def emu():
    specs = [WorkspaceSpec(slug, members=n, seed=7) for slug, n in SIZES.items()]
    specs.append(WorkspaceSpec("big", members=10_000, seed=3))
    with run_emulator(specs, day=DAY) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def healthy(emu):
    """Each test starts with a healthy API and the same simulated day."""
    emu.set_day(DAY)
    emu.set_scenario(Scenario())
    yield
    emu.set_scenario(Scenario())


def _make_settings(
    base_url: str, token: str, auth: BitbucketAuth | None = None, **overrides: Any
) -> BitbucketSettings:
    """Settings with small retry caps so fault tests stay fast."""
    values: dict[str, Any] = {
        "api_url": base_url,
        "auth": auth or BearerToken(token),
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "retry_deadline": 120.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.2,
        "max_requests_per_hour": 1_000_000,
    }
    values.update(overrides)
    return BitbucketSettings(**values)


def _collect(
    settings: BitbucketSettings, workspace: str, *, clock=None, pacer=None, **kwargs: Any
) -> WorkspaceExtract:
    """extract_workspace with a fresh pacer (no budget shared between tests) and seeded jitter."""
    return extract_workspace(
        settings,
        workspace,
        clock=clock or FakeClock(),
        pacer=pacer or RequestPacer(settings.max_requests_per_hour),
        rng=random.Random(1),
        **kwargs,
    )


def _member_keys(extract: WorkspaceExtract) -> list[str]:
    from tasks.normalise import observations_from_pages

    frame = observations_from_pages(extract.workspace, extract.pages)
    return frame["account_id"].fillna(frame["uuid"]).tolist()


def _expected_keys(emu, workspace: str) -> list[str]:
    return [m.get("account_id") or m.get("uuid") for m in emu.expected_members(workspace)]


# Test modules cannot import conftest (pytest runs with --import-mode=importlib), so the
# helpers above reach them as fixtures.


@pytest.fixture
def make_settings(emu):
    """make_settings(auth=None, **overrides): settings for the emulator (admin Bearer token)."""
    return lambda auth=None, **overrides: _make_settings(
        emu.base_url, emu.admin_token, auth, **overrides
    )


@pytest.fixture
def settings_at():
    """settings_at(base_url, token, **overrides): settings for any loopback server."""
    return _make_settings


@pytest.fixture
def collect():
    return _collect


@pytest.fixture
def member_keys():
    return _member_keys


@pytest.fixture
def expected_keys(emu):
    return lambda workspace: _expected_keys(emu, workspace)


@pytest.fixture
def clock():
    return FakeClock()


class CannedServer:
    """A bare HTTP/1.1 server on loopback: answers every request with one canned response
    (keep-alive) and records each request head exactly as it arrived on the wire."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.response = (
            f"HTTP/1.1 {status} Canned\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/2.0"
        self.heads: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.heads.append(head)
                conn.sendall(self.response)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def canned_server():
    """canned_server(status, body): a CannedServer, closed after the test."""
    servers: list[CannedServer] = []

    def start(status: int, body: bytes, content_type: str = "application/json") -> CannedServer:
        servers.append(CannedServer(status, body, content_type))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
