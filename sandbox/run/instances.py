"""Revision instances: one real local process of the demo app per revision, on its own loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.http import LOOPBACK
from sandbox.postgres import free_port

# Where `python -m sandbox.run.app` resolves.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instance:
    revision: str
    port: int
    process: subprocess.Popen


class Instances:
    def __init__(self) -> None:
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()

    def start(self, revision: str, image: str, env: dict[str, str]) -> Instance:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.run.app", "--port", str(port)],
            env={"PATH": "/usr/bin:/bin", **env, "K_REVISION": revision, "SANDBOX_IMAGE": image},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
        )
        instance = Instance(revision, port, process)
        with self._lock:
            self._instances[revision] = instance
        return instance

    def wait_listening(self, revision: str, deadline_s: float) -> bool:
        """True once the revision's process accepts connections (Cloud Run's default TCP startup probe)."""
        instance = self.get(revision)
        deadline = time.monotonic() + deadline_s
        while instance is not None and time.monotonic() < deadline:
            if instance.process.poll() is not None:
                return False
            try:
                with socket.create_connection((LOOPBACK, instance.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def get(self, revision: str) -> Instance | None:
        with self._lock:
            return self._instances.get(revision)

    def stop(self, revision: str) -> None:
        with self._lock:
            instance = self._instances.pop(revision, None)
        if instance is not None:
            instance.process.kill()
            instance.process.wait()

    def stop_all(self) -> None:
        with self._lock:
            names = list(self._instances)
        for name in names:
            self.stop(name)
