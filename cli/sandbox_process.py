"""Starting, finding and stopping the sandbox daemon (`python -m sandbox`) from its state directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

DESCRIPTION_FILE = "sandbox.json"
ERROR_FILE = "startup-error.txt"
LOG_FILE = "daemon.log"


def default_state_dir() -> Path:
    return Path(os.environ.get("OPSFLOWS_SANDBOX_DIR", ".sandbox")).resolve()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running_description(state_dir: Path) -> dict[str, Any] | None:
    """The description of the sandbox running from `state_dir`, or None when none answers."""
    path = state_dir / DESCRIPTION_FILE
    if not path.exists():
        return None
    description = json.loads(path.read_text())
    if not _alive(description["pid"]):
        return None
    try:
        httpx.get(description["storage_api"] + "/_sandbox/health", timeout=2).raise_for_status()
    except httpx.HTTPError:
        return None
    return description


def start(state_dir: Path, timeout_s: float = 120) -> dict[str, Any]:
    """Start the daemon unless one already runs from `state_dir`; return its description."""
    description = running_description(state_dir)
    if description is not None:
        return description
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / DESCRIPTION_FILE).unlink(missing_ok=True)
    with open(state_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--state-dir", str(state_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (state_dir / DESCRIPTION_FILE).exists():
            return json.loads((state_dir / DESCRIPTION_FILE).read_text())
        if process.poll() is not None:
            error = state_dir / ERROR_FILE
            reason = (
                error.read_text().strip().splitlines()[-1]
                if error.exists()
                else "see " + str(state_dir / LOG_FILE)
            )
            raise RuntimeError(f"the sandbox failed to start: {reason}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the sandbox did not come up within {timeout_s:.0f} s; see {state_dir / LOG_FILE}")


def stop(state_dir: Path, timeout_s: float = 30) -> bool:
    """Stop the daemon and anything it left behind; True when something was running."""
    from sandbox.postgres import PostgresCluster

    path = state_dir / DESCRIPTION_FILE
    was_running = False
    if path.exists():
        pid = json.loads(path.read_text())["pid"]
        if _alive(pid):
            was_running = True
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
    # A daemon that died hard leaves its clusters running: find them by their postmaster.pid.
    for pid_file in state_dir.glob("**/postmaster.pid"):
        cluster = PostgresCluster(pid_file.parent.parent)
        if cluster.port is not None:
            was_running = True
            cluster.stop("immediate")
    return was_running
