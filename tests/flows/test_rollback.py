"""Manual rollback: no analysis, a clear error (and no change) for a target that cannot serve."""

from __future__ import annotations

import threading

import pytest
from google.cloud import run_v2

from flows.deploy import deploy
from flows.rollback import rollback
from tasks.clients import revisions_client
from tests.flows.helpers import audit_records, clear_log, mutations, run_id, served


def two_deploys(sandbox, service) -> tuple[str, str, str]:
    """v1 (seeded) → v2 → v3; returns the three revision names."""
    (original,) = served(sandbox, service)
    second = deploy("sandbox", service, f"sandbox/{service}:v2")["candidate"]
    third = deploy("sandbox", service, f"sandbox/{service}:v3")["candidate"]
    return original, second, third


def test_rollback_to_previous_is_the_revision_that_served_before(sandbox, service):
    original, second, third = two_deploys(sandbox, service)
    # A failed canary in between must not count as "previous": it never served.
    failed = deploy(
        "sandbox", service, f"sandbox/{service}:v4", env={"SANDBOX_HEALTHY": "false"}, return_state=True
    )
    assert failed.is_failed()
    state = rollback(
        "sandbox", service, reason="INC-1: 500s on checkout", requested_by="alice", return_state=True
    )
    assert state.is_completed(), state.message
    assert served(sandbox, service) == {second: 100}
    finished = audit_records(sandbox, run_id(state))[-1]
    assert finished["actor"] == "alice"
    assert finished["summary"]["before"]["serving"] == third
    assert finished["summary"]["after"]["serving"] == second
    assert finished["summary"]["facts"]["reason"] == "INC-1: 500s on checkout"
    assert any("rollback" in m["text"] and "completed" in m["text"] for m in sandbox.slack.messages)


def test_rollback_to_a_named_revision(sandbox, service):
    original, _, _ = two_deploys(sandbox, service)
    state = rollback(
        "sandbox", service, reason="back to launch build", to_revision=original, return_state=True
    )
    assert state.is_completed(), state.message
    assert served(sandbox, service) == {original: 100}


@pytest.mark.parametrize("target", ["unknown", "pruned"])
def test_unknown_or_pruned_target_is_a_clear_error_and_changes_nothing(sandbox, service, target):
    original, second, third = two_deploys(sandbox, service)
    if target == "pruned":
        name = f"projects/{sandbox.environment.project}/locations/{sandbox.environment.region}/services/{service}/revisions/{original}"
        revisions_client(sandbox.environment).delete_revision(
            request=run_v2.DeleteRevisionRequest(name=name)
        ).result(30)
    revision = original if target == "pruned" else f"{service}-00099-zzz"
    clear_log(sandbox.run)
    state = rollback("sandbox", service, reason="test", to_revision=revision, return_state=True)
    assert state.is_failed()
    assert "does not exist (never created, or pruned)" in state.message
    assert mutations(sandbox.run) == []
    assert served(sandbox, service) == {third: 100}


def test_rollback_needs_a_reason(sandbox, service):
    clear_log(sandbox.run)
    state = rollback("sandbox", service, reason="  ", return_state=True)
    assert state.is_failed() and "a reason is required" in state.message
    assert mutations(sandbox.run) == []


def test_dry_run_changes_nothing(sandbox, service):
    _, second, third = two_deploys(sandbox, service)
    clear_log(sandbox.run)
    state = rollback("sandbox", service, reason="rehearsal", dry_run=True, return_state=True)
    assert state.is_completed()
    assert state.result()["to_revision"] == second
    assert mutations(sandbox.run) == [] and served(sandbox, service) == {third: 100}


def test_deploy_and_rollback_of_one_service_never_interleave(sandbox, service):
    original, _, _ = two_deploys(sandbox, service)
    clear_log(sandbox.run)
    results = {}

    def run_deploy():
        results["deploy"] = deploy(
            "sandbox", service, f"sandbox/{service}:v9", soak_seconds=1.5, return_state=True
        )

    thread = threading.Thread(target=run_deploy)
    thread.start()
    # Start the rollback while the deploy holds the lock (its candidate is being created or soaked).
    while not any(m["method"] == "PATCH" for m in mutations(sandbox.run)):
        pass
    results["rollback"] = rollback("sandbox", service, reason="race", to_revision=original, return_state=True)
    thread.join()
    assert results["deploy"].is_completed() and results["rollback"].is_completed()
    # The rollback's single traffic PATCH comes after every PATCH of the deploy.
    patches = [m for m in mutations(sandbox.run) if m["method"] == "PATCH"]
    assert len(patches) == 1 + 4 + 1
    assert served(sandbox, service) == {original: 100}
