"""Reading the sandbox's observable state in flow tests: traffic through the real Cloud Run client,
mutations from the stand-ins' request logs, records from the audit store."""

from __future__ import annotations

import httpx
from google.cloud import run_v2

from tasks.audit import AuditStore
from tasks.clients import services_client

MUTATIONS = {"POST", "PATCH", "PUT", "DELETE"}


def service_traffic(sandbox, service: str) -> list[tuple[str, int, str]]:
    """(revision, percent, tag) of the service's traffic, sorted; LATEST named by the revision it serves."""
    svc = services_client(sandbox.environment).get_service(
        name=f"projects/{sandbox.environment.project}/locations/{sandbox.environment.region}/services/{service}"
    )
    kind = run_v2.TrafficTargetAllocationType
    return sorted(
        (
            (
                t.revision.rsplit("/", 1)[-1]
                if t.type_ == kind.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
                else svc.latest_ready_revision.rsplit("/", 1)[-1]
            ),
            t.percent,
            t.tag,
        )
        for t in svc.traffic
    )


def served(sandbox, service: str) -> dict[str, int]:
    return {rev: pct for rev, pct, _ in service_traffic(sandbox, service) if pct}


def mutations(standin) -> list[dict]:
    log = httpx.get(standin.url + "/_sandbox/requests").json()["requests"]
    return [entry for entry in log if entry["method"] in MUTATIONS]


def clear_log(standin) -> None:
    httpx.delete(standin.url + "/_sandbox/requests")


def inject(standin, **fault) -> None:
    httpx.post(standin.url + "/_sandbox/faults", json=fault).raise_for_status()


def audit_records(sandbox, run_id) -> list[dict]:
    return AuditStore(sandbox.environment.audit_dsn.get_secret_value()).records(flow_run_id=str(run_id))


def run_id(state) -> str:
    return str(state.state_details.flow_run_id)
