"""Fixtures for the emulator's own tests: a fresh emulator per test over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from emulator import Emulator, WorkspaceSpec, run_emulator
from tasks.bitbucket.tls import tls_context

DAY = date(2026, 11, 27)
ADD_2FA = "+values.user.has_2fa_enabled"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """Two workspaces: "acme" (25 members) and "globex" (3 members), day fixed."""
    specs = [WorkspaceSpec("acme", members=25, seed=1), WorkspaceSpec("globex", members=3, seed=7)]
    with run_emulator(specs, day=DAY) as running:
        yield running


@pytest.fixture
def admin(emu: Emulator) -> Iterator[httpx.Client]:
    """httpx client with the admin Bearer token, rooted at the emulator's base URL."""
    with _client(emu, emu.admin_token) as client:
        yield client


@pytest.fixture
def member(emu: Emulator) -> Iterator[httpx.Client]:
    with _client(emu, emu.member_token) as client:
        yield client


def _client(emu: Emulator, token: str) -> httpx.Client:
    """Rooted at the emulator, with the process's one TLS context (making one per client
    loads the CA bundle again: ~40 ms)."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(
        base_url=emu.base_url + "/", headers=headers, timeout=10, verify=tls_context()
    )


def walk(client: httpx.Client, url: str, params: dict | None = None, limit: int = 50) -> list[dict]:
    """Follow `next` links from `url`; return every page body (stops after `limit` pages)."""
    pages = []
    response = client.get(url, params=params)
    while True:
        response.raise_for_status()
        pages.append(response.json())
        if "next" not in pages[-1] or len(pages) >= limit:
            return pages
        response = client.get(pages[-1]["next"])
