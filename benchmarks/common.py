"""Shared by the benchmark child scripts: an emulator in its own process, RSS, timing."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# As `bb2sv` itself (bb2sv/cli.py main): the temporary Prefect servers of the benchmarks
# send no usage telemetry (the post-steps' server tried to, at 12:14 on 2026-11-29).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

TOKEN = "bench-admin-token"  # noqa: S105 (the emulator's fake token)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def emulator_process(members: int, latency_s: float, workspace: str = "bench") -> Iterator[str]:
    """`bb2sv emulator serve` in its own process, so its memory is not ours. Yields the API URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bb2sv",
        "emulator",
        "serve",
        "--port",
        str(port),
        "--members",
        str(members),
        "--token",
        TOKEN,
        "--workspace",
        workspace,
        "--latency",
        str(latency_s),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}/2.0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/user", headers={"Authorization": f"Bearer {TOKEN}"})
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"emulator did not start: {process.stderr.read()!r}") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
