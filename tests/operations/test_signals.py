"""SIGTERM to a real `bb2sv collect`: it stops within 10 s, keeps what it read, and leaves
no process behind (no Prefect API is set: it collects in-process, starting no server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import psutil
import pytest

from bb2sv.signals import Interrupted, interrupt_on_signals
from emulator import Scenario, WorkspaceSpec, run_emulator
from tasks.signals import STOP, stop_on_signals

BB2SV = str(Path(sys.executable).with_name("bb2sv"))
TOKEN = "emu-signal-test-token-4711"
ROOT = Path(__file__).resolve().parents[2]


def bb2sv_env(emu, tmp_path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BITBUCKET_", "PREFECT_API"))  # a user with no Prefect API
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),  # its own temporary server and database
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        BITBUCKET_API_URL=emu.base_url,
        BITBUCKET_TOKEN=TOKEN,
    )
    return env


def test_sigterm_stops_a_real_collect_within_10_s_and_keeps_the_attempt(tmp_path):
    spec = WorkspaceSpec("acme", members=2500, seed=3)
    with run_emulator(
        [spec], day=date(2026, 11, 20), admin_token=TOKEN, scenario=Scenario(latency_s=0.3)
    ) as emu:
        db = tmp_path / "e.duckdb"
        process = subprocess.Popen(
            [BB2SV, "collect", "-w", "acme", "--db", str(db), "--reports-dir", str(tmp_path / "r")],
            env=bb2sv_env(emu, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            # Both listings ask for page 1 at once: a fourth request follows two pages.
            while emu.request_count < 4 and process.poll() is None:
                assert time.monotonic() < deadline, "the collection never started reading"
                time.sleep(0.05)
            children = psutil.Process(process.pid).children(recursive=True)
            assert children == [], "no Prefect API is configured: no server is started"
            process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            out, err = process.communicate(timeout=30)
            took = time.monotonic() - stopped_at
        finally:
            if process.poll() is None:
                process.kill()
        requests = emu.request_count

    assert took < 10, f"took {took:.1f} s to stop"
    assert process.returncode == 8, err
    assert "stopped by SIGTERM" in err and TOKEN not in out + err
    assert "Prefect" not in err, "the ad-hoc path never talks to Prefect"
    with duckdb.connect(str(db), read_only=True) as conn:
        ((status, kind, error, sent),) = conn.execute(
            "select status, error_kind, error, request_count from collection_runs"
        ).fetchall()
        (pages,) = conn.execute("select count(*) from raw_api_pages").fetchone()
    assert (status, kind) == ("failed", "stopped") and "stopped by SIGTERM" in error
    # At most the cut requests (one per listing, read at once) are missing.
    assert sent == requests and sent - 2 <= pages <= sent
    assert pages >= 2


def test_outside_a_collection_a_signal_ends_the_command_through_an_exception():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as raised, interrupt_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises long before this ends
    assert raised.value.name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before
    STOP.clear()


def test_inside_a_collection_a_signal_only_sets_the_stop():
    STOP.clear()
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        assert STOP.wait(5) and STOP.reason == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
    STOP.clear()
