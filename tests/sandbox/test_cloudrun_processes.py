"""Revision processes never outlive the stand-in: stopped by `shutdown()`, and gone on their own when
the process that started them dies without cleaning up (a test run killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from sandbox.cloudrun import CloudRunStandIn

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited; only its parent's reaping is pending


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_shutdown_stops_every_revision_process():
    stand_in = CloudRunStandIn(project="p", startup_deadline_s=1.0)
    stand_in.serve()
    stand_in.seed_service("one")
    stand_in.seed_service("two", env={"SANDBOX_LATENCY_MS": "10"})
    pids = [entry["pid"] for entry in stand_in.instances.running().values()]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    stand_in.shutdown()
    assert wait_gone(pids, timeout=0.1) == []
    assert stand_in.instances.running() == {}


def test_revision_processes_exit_when_their_parent_dies():
    script = textwrap.dedent(
        """
        import json, os, sys
        from sandbox.cloudrun import CloudRunStandIn
        stand_in = CloudRunStandIn(project="p", startup_deadline_s=2.0)
        stand_in.serve()
        stand_in.seed_service("orphan")
        print(json.dumps([e["pid"] for e in stand_in.instances.running().values()]), flush=True)
        os._exit(0)  # no shutdown(): as if the test runner had been killed
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    pids = json.loads(done.stdout.strip().splitlines()[-1])
    assert pids and wait_gone(pids) == []


def test_the_app_runs_as_a_module_and_starts_fast():
    started = time.monotonic()
    app = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cloudrun.app", "--port", "0", "--image", "sandbox/app:v1"],
        cwd=ROOT,
        env={**os.environ, "K_REVISION": "app-00001-abc", "SANDBOX_HEALTHY": "false"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = app.stdout.readline().strip()
        assert line.startswith("LISTENING ") and time.monotonic() - started < 1.5
        base = f"http://127.0.0.1:{line.split()[1]}"
        assert httpx.get(base + "/health").status_code == 503
        assert httpx.get(base + "/").json()["revision"] == "app-00001-abc"
    finally:
        app.terminate()
        app.wait(5)
