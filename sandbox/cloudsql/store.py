"""The Cloud SQL stand-in's state: instances, backup runs and operations, behind one lock. No HTTP here.

The store also enforces the two rules Cloud SQL applies before any work starts:
- one admin operation at a time per instance (a second one is refused with 409 `operationInProgress`);
- a deleted instance's name cannot be reused (Google blocks it for about a week: 409
  `instanceAlreadyExists`), so a drill that recreates a fixed scratch name fails here as it would there.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.http import ApiError

# The first loopback address handed to an instance; 127.0.0.1 stays free for everything else.
FIRST_INSTANCE_ADDRESS = ipaddress.IPv4Address("127.0.0.10")
LAST_INSTANCE_ADDRESS = ipaddress.IPv4Address("127.0.255.254")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Instance:
    name: str
    region: str
    database_version: str
    tier: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    deletion_protection: bool = False
    state: str = "PENDING_CREATE"
    create_time: datetime = field(default_factory=now)
    settings_version: int = 1


@dataclass
class BackupRun:
    id: int
    instance: str
    type: str  # AUTOMATED or ON_DEMAND
    location: str
    directory: Path  # where the run's dumps live
    description: str | None = None
    status: str = "ENQUEUED"
    enqueued_time: datetime = field(default_factory=now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: dict[str, str] | None = None  # {"code", "message"} once FAILED


@dataclass
class Operation:
    operation_type: str
    target: str
    user: str
    # Every instance the operation works on (a clone holds its source and its destination).
    holds: tuple[str, ...] = ()
    name: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "PENDING"
    insert_time: datetime = field(default_factory=now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: dict[str, str] | None = None
    export_context: dict[str, Any] | None = None
    import_context: dict[str, Any] | None = None
    backup_id: int | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)


@dataclass
class InjectedFailure:
    instance: str | None
    operation_type: str | None
    message: str
    code: str

    def matches(self, operation: Operation) -> bool:
        wanted_instance = self.instance is None or self.instance in (operation.target, *operation.holds)
        return wanted_instance and self.operation_type in (None, operation.operation_type)


def operation_in_progress() -> ApiError:
    return ApiError(
        409,
        "Operation failed because another operation was already in progress.",
        reason="operationInProgress",
        status="ABORTED",
    )


def instance_not_found(name: str) -> ApiError:
    return ApiError(404, f"The Cloud SQL instance does not exist: {name}.", reason="instanceDoesNotExist")


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.instances: dict[str, Instance] = {}
        self.retired_names: set[str] = set()
        self.backup_runs: dict[str, dict[int, BackupRun]] = {}
        self.operations: dict[str, Operation] = {}
        self.failures: list[InjectedFailure] = []
        self._busy: dict[str, str] = {}  # instance name -> name of its running operation
        self._last_backup_id = 0

    # -- instances -----------------------------------------------------------------------------
    def instance(self, name: str) -> Instance:
        with self.lock:
            found = self.instances.get(name)
            if found is None:
                raise instance_not_found(name)
            return found

    def list_instances(self) -> list[Instance]:
        with self.lock:
            return sorted(self.instances.values(), key=lambda i: i.name)

    def check_name_free(self, name: str) -> None:
        with self.lock:
            if name in self.instances or name in self.retired_names:
                raise ApiError(
                    409,
                    "The Cloud SQL instance already exists. When you delete an instance, you can't reuse "
                    "the name of the deleted instance until one week from the deletion date.",
                    reason="instanceAlreadyExists",
                )

    def remove_instance(self, name: str) -> None:
        with self.lock:
            self.instances.pop(name, None)
            self.backup_runs.pop(name, None)
            self.retired_names.add(name)

    def allocate_address(self, port: int) -> str:
        """The next loopback address no instance uses and on which `port` is free right now."""
        with self.lock:
            taken = {i.address for i in self.instances.values()}
            address = FIRST_INSTANCE_ADDRESS
            while address <= LAST_INSTANCE_ADDRESS:
                text = str(address)
                # Another stand-in (a second test session, `sandbox up`) may run clusters on this
                # address with the same port: probing the bind avoids a server that cannot start.
                if text not in taken and _bindable(text, port):
                    return text
                address += 1
            raise ApiError(503, "No free loopback address is left for another instance.")

    # -- operations ----------------------------------------------------------------------------
    def begin(self, operation: Operation, new_instances: tuple[Instance, ...] = ()) -> None:
        """Record `operation` and mark its instances busy, atomically; 409 when one is already busy."""
        with self.lock:
            for instance in new_instances:
                self.check_name_free(instance.name)
            for name in operation.holds:
                if name in self._busy:
                    raise operation_in_progress()
            for instance in new_instances:
                self.instances[instance.name] = instance
            for name in operation.holds:
                self._busy[name] = operation.name
            self.operations[operation.name] = operation

    def release(self, operation: Operation) -> None:
        with self.lock:
            for name in operation.holds:
                if self._busy.get(name) == operation.name:
                    del self._busy[name]

    def busy_on(self, instance: str) -> bool:
        with self.lock:
            return instance in self._busy

    def operation(self, name: str) -> Operation:
        with self.lock:
            found = self.operations.get(name)
            if found is None:
                raise ApiError(404, f"The operation {name} does not exist.", reason="notFound")
            return found

    def list_operations(self, instance: str | None) -> list[Operation]:
        with self.lock:
            chosen = [o for o in self.operations.values() if instance in (None, o.target)]
        return sorted(chosen, key=lambda o: o.insert_time, reverse=True)  # newest first, as Google lists

    def take_failure(self, operation: Operation) -> InjectedFailure | None:
        with self.lock:
            for failure in self.failures:
                if failure.matches(operation):
                    self.failures.remove(failure)
                    return failure
        return None

    # -- backup runs ---------------------------------------------------------------------------
    def new_backup_id(self, at: datetime) -> int:
        # Real ids look like epoch milliseconds; they only have to be unique and increasing.
        with self.lock:
            self._last_backup_id = max(int(at.timestamp() * 1000), self._last_backup_id + 1)
            return self._last_backup_id

    def add_backup_run(self, run: BackupRun) -> None:
        with self.lock:
            self.backup_runs.setdefault(run.instance, {})[run.id] = run

    def backup_run(self, instance: str, run_id: str | int) -> BackupRun:
        with self.lock:
            try:
                found = self.backup_runs.get(instance, {}).get(int(run_id))
            except ValueError:
                found = None
            if found is None:
                raise ApiError(404, f"The backup run {run_id} of instance {instance} does not exist.")
            return found

    def list_backup_runs(self, instance: str | None) -> list[BackupRun]:
        with self.lock:
            runs = [
                r
                for name, by_id in self.backup_runs.items()
                if instance in (None, name)
                for r in by_id.values()
            ]
        return sorted(runs, key=lambda r: (r.enqueued_time, r.id), reverse=True)  # newest first

    def remove_backup_run(self, run: BackupRun) -> None:
        with self.lock:
            self.backup_runs.get(run.instance, {}).pop(run.id, None)


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
