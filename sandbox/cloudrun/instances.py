"""The processes behind revisions: one demo-app process per running revision, on a loopback port.

A revision's process is started when the revision is created (and again when traffic comes back to a
revision that was scaled to zero); it is Ready once the app prints ``LISTENING <port>``, and failed when
it exits first or stays silent past the startup deadline (``SANDBOX_READY=false``). Revisions that
serve no traffic and carry no tag are scaled to zero after a grace period, as Cloud Run does with
min-instances 0, which keeps the number of processes small when tests create hundreds of revisions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

APP = Path(__file__).with_name("app.py")


@dataclass
class Instance:
    key: str  # the revision's full resource name
    process: subprocess.Popen
    ready: threading.Event = field(default_factory=threading.Event)
    port: int | None = None
    failure: str = ""  # why it never got Ready (exited, or stopped by the stand-in)


class Instances:
    """Starts, watches and stops revision processes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Instance] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, key: str, service: str, revision: str, image: str, env: dict[str, str]) -> Instance:
        """Start the revision's process unless it runs already; return at once (see `wait_ready`)."""
        with self._lock:
            self._cancel_timer(key)
            current = self._running.get(key)
            if current is not None and current.process.poll() is None:
                return current
            if self._closed:
                raise RuntimeError("the Cloud Run stand-in is shut down")
            # The container sees its own env vars plus what Cloud Run sets, not the test runner's.
            process_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                **env,
                "PORT": "0",
                "K_SERVICE": service,
                "K_REVISION": revision,
                "K_CONFIGURATION": service,
            }
            command = [sys.executable, "-I", "-S", str(APP), "--port", "0"]
            command += ["--parent-pid", str(os.getpid()), "--image", image]
            process = subprocess.Popen(
                command,
                env=process_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                # Never a pipe nobody reads: a full pipe would freeze the app's request threads.
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            instance = Instance(key, process)
            self._running[key] = instance
        threading.Thread(target=self._watch, args=(instance,), name=f"run-{revision}", daemon=True).start()
        return instance

    def _watch(self, instance: Instance) -> None:
        """Read the LISTENING line, then wait for the process to end (so no zombie is left)."""
        stdout = instance.process.stdout
        assert stdout is not None
        line = stdout.readline().decode(errors="replace").strip()
        if line.startswith("LISTENING "):
            instance.port = int(line.split()[1])
            instance.ready.set()
        status = instance.process.wait()
        if not instance.failure:
            detail = f": {line}" if line and not line.startswith("LISTENING ") else ""
            instance.failure = f"Container called exit({status}){detail}."
        instance.port = None
        instance.ready.set()  # wake waiters; `port is None` tells them it failed
        with self._lock:
            if self._running.get(instance.key) is instance:
                del self._running[instance.key]

    def wait_ready(self, instance: Instance, deadline_s: float) -> str:
        """'' once the process listens, else why not (exited early, or silent past the deadline)."""
        instance.ready.wait(deadline_s)
        if instance.port is not None:
            return ""
        if instance.failure:
            return instance.failure
        return f"The container did not listen on its port within the startup deadline of {deadline_s:g} s."

    def stop(self, key: str, reason: str = "stopped by the sandbox") -> None:
        with self._lock:
            self._cancel_timer(key)
            instance = self._running.pop(key, None)
        if instance is not None:
            _terminate(instance, reason)

    def stop_later(self, key: str, delay_s: float, still_idle: Callable[[], bool]) -> None:
        """Scale to zero after `delay_s` unless the revision got traffic back in the meantime."""
        with self._lock:
            if key not in self._running or key in self._timers:
                return

            def fire() -> None:
                with self._lock:
                    if self._timers.get(key) is timer:
                        del self._timers[key]
                if still_idle():
                    self.stop(key, "scaled to zero")

            timer = threading.Timer(delay_s, fire)
            timer.daemon = True
            self._timers[key] = timer
        timer.start()

    def _cancel_timer(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            instances = list(self._running.values())
            self._running.clear()
        for instance in instances:
            instance.failure = instance.failure or "stand-in shut down"
            instance.process.terminate()
        deadline = time.monotonic() + 3
        for instance in instances:
            try:
                instance.process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait()

    # -- queries -------------------------------------------------------------------------------
    def port(self, key: str) -> int | None:
        with self._lock:
            instance = self._running.get(key)
        return instance.port if instance is not None else None

    def running(self) -> dict[str, dict]:
        """{revision name: {"pid", "port"}} of every live process."""
        with self._lock:
            return {
                key: {"pid": i.process.pid, "port": i.port}
                for key, i in self._running.items()
                if i.process.poll() is None
            }


def _terminate(instance: Instance, reason: str) -> None:
    instance.failure = instance.failure or f"Container {reason}."
    instance.process.terminate()
    try:
        instance.process.wait(2)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        instance.process.wait()
