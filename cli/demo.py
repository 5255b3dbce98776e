"""`opsflows demo`: the whole story on embedded defaults, through real deployment runs.

A real Prefect server (embedded SQLite, project-local PREFECT_HOME, telemetry off), the sandbox, the
blocks, `prefect deploy --all`, a process worker; then a good deploy, a bad deploy that rolls back by
itself, a manual rollback, the nightly backup (which starts DR replication), a replication run and a
restore drill. Prints what happened and exits 0 only if every expected outcome happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer

from cli import sandbox_process
from sandbox.postgres import free_port

ROOT = Path(__file__).resolve().parent.parent
POOL = "opsflows-sandbox"


@dataclass
class Scenario:
    title: str
    deployment: str
    parameters: dict
    expect: str  # the final state type we expect: COMPLETED or FAILED


SCENARIOS = [
    Scenario(
        "good deploy (canary passes)",
        "deploy/sandbox",
        {"service": "api", "image": "sandbox/api:v2", "requested_by": "demo"},
        "COMPLETED",
    ),
    Scenario(
        "bad deploy (30% errors) rolls back by itself",
        "deploy/sandbox",
        {
            "service": "api",
            "image": "sandbox/api:v3",
            "env": {"SANDBOX_ERROR_RATE": "0.3"},
            "requested_by": "demo",
        },
        "FAILED",
    ),
    Scenario(
        "manual rollback to the previous revision",
        "rollback/sandbox",
        {
            "service": "api",
            "to_revision": "previous",
            "reason": "demo: v2 misbehaves",
            "requested_by": "on-call",
        },
        "COMPLETED",
    ),
    Scenario(
        "nightly backup (verified exports + manifest)",
        "nightly-backup/sandbox",
        {"replicate": False},
        "COMPLETED",
    ),
    Scenario("DR replication", "replicate-backups/sandbox", {}, "COMPLETED"),
    Scenario(
        "restore drill from the DR copy", "restore-drill/sandbox", {"requested_by": "demo"}, "COMPLETED"
    ),
]


def _start(command: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _wait_healthy(url: str, timeout_s: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited; see {log}")
        try:
            if httpx.get(url, timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer within {timeout_s:.0f} s; see {log}")


def run_demo(state_dir: Path, keep: bool) -> bool:
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(state_dir / "prefect"),
        PREFECT_API_URL=api_url,
        PREFECT_UI_API_URL=api_url,  # the UI otherwise calls the default port 4200
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="WARNING",
        OPSFLOWS_SANDBOX_DIR=str(state_dir / "sandbox"),
    )
    os.environ.update(env)  # this process talks to the same server (prefect is imported below)
    prefect = [sys.executable, "-m", "prefect"]
    server = worker = None
    started = time.monotonic()
    try:
        typer.echo(f"starting the Prefect server on {api_url} ...")
        server = _start(
            [*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            state_dir / "server.log",
            env,
        )
        _wait_healthy(f"{api_url}/health", 180, server, state_dir / "server.log")
        typer.echo("starting the sandbox ...")
        description = sandbox_process.start(state_dir / "sandbox")

        from prefect_gcp import GcpCredentials

        from blocks import OpsEnvironment
        from cli.sandbox_env import sandbox_environment

        for block_type in (GcpCredentials, OpsEnvironment):
            block_type.register_type_and_schema()
        sandbox_environment(description).save("sandbox", overwrite=True)
        subprocess.run(
            [*prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        typer.echo("deploying the flows (prefect deploy --all) ...")
        subprocess.run(
            [*prefect, "--no-prompt", "deploy", "--all"], env=env, cwd=ROOT, check=True, capture_output=True
        )
        worker = _start([*prefect, "worker", "start", "--pool", POOL], state_dir / "worker.log", env)
        rows = run_scenarios()
        print_table(rows, api_url.removesuffix("/api"), time.monotonic() - started)
        return all(row["ok"] for row in rows)
    finally:
        if keep:
            typer.echo(
                f"\n--keep: the server ({api_url.removesuffix('/api')}), worker and sandbox are still up; "
                f"stop them with `kill {server.pid if server else ''} {worker.pid if worker else ''}` "
                "and `opsflows sandbox down`."
            )
        else:
            _stop(worker)
            sandbox_process.stop(state_dir / "sandbox")
            _stop(server)


def run_scenarios() -> list[dict]:
    from prefect.deployments import run_deployment

    from tasks.audit import AuditStore
    from tasks.clients import load_environment

    store = AuditStore(load_environment("sandbox").audit_dsn.get_secret_value())
    rows = []
    for scenario in SCENARIOS:
        typer.echo(f"running: {scenario.title} ...")
        flow_run = run_deployment(scenario.deployment, parameters=scenario.parameters, timeout=600)
        state = flow_run.state
        records = store.records(flow_run_id=str(flow_run.id))
        facts = records[-1]["summary"].get("facts", {}) if records else {}
        rows.append(
            {
                "title": scenario.title,
                "deployment": scenario.deployment,
                "expected": scenario.expect,
                "state": state.type.value if state else "UNKNOWN",
                "ok": state is not None and state.type.value == scenario.expect,
                "facts": _key_facts(facts),
                "audit": len(records),
            }
        )
    return rows


def _key_facts(facts: dict) -> str:
    keys = (
        "served",
        "failure",
        "to_revision",
        "manifest",
        "copied",
        "replication_lag_seconds",
        "checks",
        "rto_seconds",
        "rpo_seconds",
        "teardown",
    )
    return "; ".join(f"{k}={facts[k]}" for k in keys if k in facts)[:160]


def print_table(rows: list[dict], ui_url: str, seconds: float) -> None:
    typer.echo("")
    typer.echo(f"{'scenario':<48} {'expected':<10} {'outcome':<10} {'ok':<3} key facts")
    for row in rows:
        typer.echo(
            f"{row['title']:<48} {row['expected']:<10} {row['state']:<10} "
            f"{'yes' if row['ok'] else 'NO':<3} {row['facts']}"
        )
    typer.echo(
        f"\n{sum(r['ok'] for r in rows)}/{len(rows)} outcomes as expected in {seconds:.0f} s. "
        f"Prefect UI: {ui_url} (runs, artifacts, blocks); audit trail: `opsflows audit list`."
    )
