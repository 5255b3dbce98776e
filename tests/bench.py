"""`make bench`: the figures DESIGN.md §5 aims at, measured as ratios in one run on the sandbox.

Not a test: it prints figures, it asserts nothing about time. Run: `uv run python -m tests.bench`.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="opsflows-bench-")
os.environ["DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"] = "true"

import httpx  # noqa: E402
from google.cloud import run_v2  # noqa: E402
from google.protobuf.field_mask_pb2 import FieldMask  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from cli.sandbox_env import sandbox_environment  # noqa: E402
from sandbox.core import Sandbox  # noqa: E402
from sandbox.postgres import client_tool  # noqa: E402

RESULTS: list[tuple[str, str, str]] = []


def report(name: str, figure: str, goal: str) -> None:
    RESULTS.append((name, figure, goal))
    print(f"{name:<58} {figure:<34} goal: {goal}", flush=True)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def bench_deploy(sb: Sandbox) -> None:
    from flows.deploy import deploy
    from flows.rollback import rollback

    env = sb.environment
    sb.run.seed_service("bench", image="sandbox/bench:v1")
    env.cloud_run.services.append("bench")
    env.save("sandbox", overwrite=True)
    soak = 2.0

    flow_s, _ = timed(deploy, "sandbox", "bench", "sandbox/bench:v2", soak_seconds=soak)
    script_s = plain_script_deploy(sb, "bench", "sandbox/bench:v3", soak, env.canary.probe_interval_seconds)
    report(
        "deploy flow vs the same API calls in a plain script",
        f"{flow_s:.1f} s vs {script_s:.1f} s = {flow_s / script_s:.2f}x",
        "<= 1.3x",
    )

    # A failing canary: from the last probe of the failing window to the restored split.
    httpx.delete(sb.run.url + "/_sandbox/requests")
    httpx.delete(sb.run.ingress_url + "/_sandbox/requests")
    deploy(
        "sandbox",
        "bench",
        "sandbox/bench:v4",
        env={"SANDBOX_ERROR_RATE": "1.0"},
        soak_seconds=soak,
        return_state=True,
    )
    probes = [
        r
        for r in httpx.get(sb.run.ingress_url + "/_sandbox/requests").json()["requests"]
        if "candidate---" in r["path"] and not r["path"].endswith("/health")
    ]
    patches = [
        r for r in httpx.get(sb.run.url + "/_sandbox/requests").json()["requests"] if r["method"] == "PATCH"
    ]
    restore_done = patches[-1]["time"]
    one_update_s, _ = timed(
        lambda: (
            sb.run.clients()
            .services.update_service(
                request=run_v2.UpdateServiceRequest(
                    service=run_v2.Service(
                        name=f"projects/{env.project}/locations/{env.region}/services/bench",
                        traffic=sb.run.clients()
                        .services.get_service(
                            name=f"projects/{env.project}/locations/{env.region}/services/bench"
                        )
                        .traffic,
                    ),
                    update_mask=FieldMask(paths=["traffic"]),
                )
            )
            .result(30)
        )
    )
    report(
        "failing canary: last failing probe -> prior split restored",
        f"{restore_done - probes[-1]['time']:.2f} s",
        f"<= probe interval + one update ({env.canary.probe_interval_seconds + one_update_s:.2f} s)",
    )

    rollback_s, _ = timed(rollback, "sandbox", "bench", reason="bench", to_revision="previous")
    report(
        "rollback request -> 100% on the target (whole flow run)",
        f"{rollback_s:.1f} s",
        "<= 5 s beyond the API call",
    )


def plain_script_deploy(sb: Sandbox, service: str, image: str, soak: float, interval: float) -> float:
    """The same Cloud Run calls and probes as the flow, with no Prefect, audit or locks."""
    clients = sb.run.clients()
    name = f"projects/{sb.environment.project}/locations/{sb.environment.region}/services/{service}"
    started = time.perf_counter()
    svc = clients.services.get_service(name=name)
    stable = svc.latest_ready_revision.rsplit("/", 1)[-1]
    template = run_v2.RevisionTemplate(svc.template)
    template.revision = f"{service}-script-{int(time.time())}"
    template.containers[0].image = image
    candidate = template.revision

    def traffic(percent: int, tag: str | None = "candidate"):
        targets = [run_v2.TrafficTarget(type_=2, revision=candidate, percent=percent, tag=tag or "")]
        if percent < 100:
            targets.append(run_v2.TrafficTarget(type_=2, revision=stable, percent=100 - percent))
        return targets

    def update(service_msg, paths):
        return clients.services.update_service(
            request=run_v2.UpdateServiceRequest(service=service_msg, update_mask=FieldMask(paths=paths))
        ).result(60)

    svc = update(run_v2.Service(name=name, template=template, traffic=traffic(0)), ["template", "traffic"])
    url = next(s.uri for s in svc.traffic_statuses if s.tag == "candidate")
    with httpx.Client() as http:
        http.get(url + "/health")
        for percent in (10, 50, 100):
            update(run_v2.Service(name=name, traffic=traffic(percent)), ["traffic"])
            deadline = time.monotonic() + soak
            while time.monotonic() < deadline:
                http.get(url)
                time.sleep(interval)
        svc = update(run_v2.Service(name=name, traffic=traffic(100, tag=None)), ["traffic"])
        http.get(svc.uri + "/health")
    return time.perf_counter() - started


def bench_replication(sb: Sandbox) -> None:
    from flows.replicate import replicate_backups
    from tasks.storage import copy_objects, list_objects

    env = sb.environment
    primary, dr = env.storage.primary_bucket, env.storage.dr_bucket
    for i in range(10_000):
        data = f"unchanged {i}".encode()
        sb.storage.store.write_object(primary, f"bench-unchanged/{i:05d}", data)
        sb.storage.store.write_object(dr, f"bench-unchanged/{i:05d}", data)
    client = sb.storage.client()
    list_s, _ = timed(
        lambda: (
            list(client.list_blobs(primary, prefix="bench-unchanged/")),
            list(client.list_blobs(dr, prefix="bench-unchanged/")),
        )
    )
    flow_s, result = timed(replicate_backups, "sandbox", prefix="bench-unchanged/")
    assert result["copied"] == 0
    sync_s, _ = timed(
        lambda: (
            list_objects.fn(env, primary, "bench-unchanged/"),
            list_objects.fn(env, dr, "bench-unchanged/"),
        )
    )
    report(
        "DR sync of 10,000 unchanged objects vs listing both buckets",
        f"flow {flow_s:.2f} s, sync work {sync_s:.2f} s vs list {list_s:.2f} s",
        "<= 1.5x",
    )

    for i in range(2000):
        sb.storage.store.write_object(primary, f"bench-copy/{i:05d}", os.urandom(2048))
    sources = list(list_objects.fn(env, primary, "bench-copy/").values())
    one_by_one_s, _ = timed(lambda: copy_objects.fn(env, primary, dr, sources[:200], {}, threads=1))
    one_by_one_s *= len(sources) / 200  # extrapolated from 200 copies one at a time
    flow_s, result = timed(replicate_backups, "sandbox", prefix="bench-copy/")
    report(
        "full copy of 2,000 objects vs one at a time (server-side rewrite)",
        f"{flow_s:.1f} s vs {one_by_one_s:.1f} s = {one_by_one_s / flow_s:.1f}x faster",
        ">= 8x",
    )


def bench_backup_and_restore(sb: Sandbox) -> None:
    from flows.backup import nightly_backup
    from flows.restore_drill import restore_drill
    from tasks.audit import AuditStore

    dsn = sb.sql.instance_dsn("app-db", "shop")
    raw_dump_s, dump = timed(
        lambda: (
            subprocess.run(
                [client_tool("pg_dump"), "--no-owner", "--no-privileges", dsn],
                capture_output=True,
                check=True,
            ).stdout
        )
    )
    gzip.compress(dump, 6)
    backup_s, _ = timed(nightly_backup, "sandbox", replicate=True)
    report(
        "nightly backup flow (backup run + export + manifest) vs raw pg_dump",
        f"{backup_s:.1f} s vs {raw_dump_s:.2f} s",
        "(figure)",
    )

    state = restore_drill("sandbox", return_state=True)
    records = AuditStore(sb.environment.audit_dsn.get_secret_value()).records(
        flow_run_id=str(state.state_details.flow_run_id)
    )
    phases = records[-1]["summary"]["drill"]["phases"]
    scratch = sb.sql.instance_dsn("app-db", "postgres").rsplit("/", 1)[0]
    subprocess.run(
        [client_tool("psql"), "-q", f"{scratch}/postgres", "-c", "CREATE DATABASE bench_restore"], check=True
    )
    raw_restore_s, _ = timed(
        lambda: subprocess.run(
            [
                client_tool("psql"),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                f"{scratch}/bench_restore",
            ],
            input=dump,
            capture_output=True,
            check=True,
        )
    )
    report(
        "drill restore step vs raw psql of the same dump",
        f"{phases['restore']:.2f} s vs {raw_restore_s:.2f} s = {phases['restore'] / raw_restore_s:.2f}x",
        "<= 1.2x",
    )
    report("drill RTO breakdown (s)", ", ".join(f"{k} {v}" for k, v in phases.items()), "(figure)")


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="opsflows-bench-sandbox-"))
    state.chmod(0o755)
    sb = Sandbox(state / "state")
    with prefect_test_harness(server_startup_timeout=120):
        description = sb.start()
        try:
            sb.environment = sandbox_environment(description)
            sb.environment.save("sandbox", overwrite=True)
            bench_deploy(sb)
            bench_replication(sb)
            bench_backup_and_restore(sb)
        finally:
            sb.stop()
    print("\n| figure | measured | goal |\n|---|---|---|")
    for name, figure, goal in RESULTS:
        print(f"| {name} | {figure} | {goal} |")


if __name__ == "__main__":
    main()
