"""A real Prefect server with its UI (not the test harness), the flows deployed with `prefect deploy
--all`, and a process worker: the way users run opsflows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks import OpsEnvironment
from sandbox.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


@dataclass
class Platform:
    api: str
    ui: str
    env: dict[str, str]

    def save_environment(self, environment: OpsEnvironment) -> None:
        # A fresh copy: the original remembers its document id on the other (harness) server.
        copy = OpsEnvironment(**{name: getattr(environment, name) for name in OpsEnvironment.model_fields})
        with temporary_settings(updates={PREFECT_API_URL: self.api}):
            # _sync: Playwright's sync API runs an event loop, which would turn these into coroutines.
            OpsEnvironment.register_type_and_schema(_sync=True)
            copy.save("sandbox", overwrite=True, _sync=True)

    def prefect(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*PREFECT, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )


def start_server(home: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, dict]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(
        os.environ,
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_UI_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        **(extra_env or {}),
    )
    log = open(home / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code in (200, 401):
                return server, api, env
        except httpx.HTTPError:
            time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"Prefect server did not start; see {home / 'server.log'}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def platform(sandbox, tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    server, api, env = start_server(home)
    platform = Platform(api=api, ui=api.removesuffix("/api"), env=env)
    platform.save_environment(sandbox.environment)
    assert platform.prefect("work-pool", "create", "opsflows-sandbox", "--type", "process").returncode == 0
    deployed = platform.prefect("--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker_log = open(home / "worker.log", "w")  # noqa: SIM115 - lives as long as the worker
    worker = subprocess.Popen(
        [*PREFECT, "worker", "start", "--pool", "opsflows-sandbox"],
        env=env,
        cwd=ROOT,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield platform
    stop(worker)
    stop(server)
