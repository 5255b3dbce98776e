"""Shared pieces of the Cloud SQL stand-in's contract tests: the stand-in fixture and polling.

Exports and imports go through the real Cloud Storage stand-in's store, as in `opsflows sandbox up`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

from google.cloud import sqladmin_v1beta4 as sql

from sandbox.cloudsql import CloudSqlStandIn
from sandbox.storage import StorageStandIn
from tests.conftest import world_readable_tmpdir

PROJECT = "contract-project"
REGION = "europe-west1"
BUCKET = "bkt"
DONE = sql.Operation.SqlOperationStatus.DONE


def running_stand_in() -> Iterator[CloudSqlStandIn]:
    """Body of each test module's `stand_in` fixture: one stand-in (and its clusters) per module."""
    base = world_readable_tmpdir("opsflows-cloudsql-")
    store = StorageStandIn(project=PROJECT).store
    store.create_bucket(BUCKET, location=REGION.upper())
    stand_in = CloudSqlStandIn(store, base / "state", project=PROJECT)
    stand_in.serve()
    yield stand_in
    stand_in.shutdown()
    shutil.rmtree(base, ignore_errors=True)


def wait(clients, operation: sql.Operation, timeout: float = 30.0) -> sql.Operation:
    """Poll operations.get until DONE (success or not): the loop every flow has to write."""
    deadline = time.monotonic() + timeout
    while operation.status != DONE:
        assert time.monotonic() < deadline, f"operation {operation.name} still {operation.status.name}"
        time.sleep(0.05)
        operation = clients.operations.get({"project": PROJECT, "operation": operation.name})
    return operation


def succeeded(clients, operation: sql.Operation) -> sql.Operation:
    done = wait(clients, operation)
    assert not done.error.errors, [(e.code, e.message) for e in done.error.errors]
    return done
