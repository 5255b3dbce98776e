"""`opsflows sandbox up/status/down` as a user runs them: a daemon, found again from its state directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import world_readable_tmpdir

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "project",
    "region",
    "dr_region",
    "run_api",
    "sqladmin_api",
    "storage_api",
    "slack_api",
    "services",
    "instances",
    "buckets",
    "postgres_dsn",
    "environment",
}


def opsflows(*args: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "--state-dir", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def descendants(pid: int) -> set[int]:
    children = {int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid}
    return children | {d for child in children for d in descendants(child)}


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def listening_addresses(pids: set[int]) -> set[str]:
    """Local addresses of LISTEN sockets owned by `pids` (from /proc, no extra tools)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                hex_ip = fields[1].split(":")[0]
                addresses.add(
                    ".".join(str(int(hex_ip[i : i + 2], 16)) for i in (6, 4, 2, 0))
                    if len(hex_ip) == 8
                    else hex_ip
                )
    return addresses


@pytest.fixture(scope="module")
def state():
    directory = world_readable_tmpdir("opsflows-cli-") / "sandbox"
    yield directory
    opsflows("sandbox", "down", state=directory)


def test_up_twice_is_harmless_and_binds_only_loopback(state):
    first = opsflows("sandbox", "up", "--json", "--no-register", state=state)
    assert first.returncode == 0, first.stderr
    description = json.loads(first.stdout)
    assert KEYS <= set(description)
    second = opsflows("sandbox", "up", "--json", "--no-register", state=state)
    assert second.returncode == 0 and json.loads(second.stdout)["pid"] == description["pid"]
    status = opsflows("sandbox", "status", "--json", state=state)
    assert status.returncode == 0 and json.loads(status.stdout)["run_api"] == description["run_api"]

    processes = {description["pid"]} | descendants(description["pid"])
    # PostgreSQL clusters are started with pg_ctl and re-parented: find them by their data directories.
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if str(state) in Path(f"/proc/{pid}/cmdline").read_text():
                    processes.add(int(pid))
            except OSError:
                continue
    addresses = listening_addresses(processes)
    assert addresses and all(address.startswith("127.") for address in addresses), addresses


def test_down_leaves_no_process_behind(state):
    up = opsflows("sandbox", "up", "--json", "--no-register", state=state)
    pid = json.loads(up.stdout)["pid"]
    family = {pid} | descendants(pid)
    down = opsflows("sandbox", "down", state=state)
    assert down.returncode == 0 and "stopped" in down.stdout
    alive = [
        p
        for p in family
        if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
    ]
    assert alive == []
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _mentions(p, str(state))]
    assert leftovers == []
    assert opsflows("sandbox", "status", state=state).returncode == 1


def _mentions(pid: str, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False
