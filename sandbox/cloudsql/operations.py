"""The operation runner: every Cloud SQL mutation is an Operation that goes PENDING → RUNNING → DONE.

The work runs in a background thread, so callers must poll `operations.get` as they must against
Google. A failure never turns into an HTTP error: the operation ends `DONE` with `error.errors[]`,
which is exactly the case flows get wrong when they treat DONE as success.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sandbox.cloudsql.store import Operation, Store, now

Work = Callable[[Operation], None]
OnFailure = Callable[[Operation, dict[str, str]], None]


class OperationFailed(Exception):
    """Raised by an operation's work: the operation ends DONE with this code and message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class OperationRunner:
    def __init__(self, store: Store, min_seconds: Callable[[], float]):
        self.store = store
        # Read at each start so tests can stretch operations ("operation in progress") and restore.
        self.min_seconds = min_seconds
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def start(self, operation: Operation, work: Work, on_failure: OnFailure | None = None) -> None:
        thread = threading.Thread(
            target=self._run, args=(operation, work, on_failure), name=f"sql-op-{operation.name}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def wait_all(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, operation: Operation, work: Work, on_failure: OnFailure | None) -> None:
        with self.store.lock:
            operation.status = "RUNNING"
            operation.start_time = now()
        # The minimum duration is spent before the work, so the resources change (an instance turns
        # RUNNABLE or disappears, an export object appears) just before DONE, as with Google.
        time.sleep(max(0.0, self.min_seconds()))
        error: dict[str, str] | None = None
        try:
            injected = self.store.take_failure(operation)
            if injected is not None:
                raise OperationFailed(injected.code, injected.message)
            work(operation)
        except OperationFailed as failed:
            error = {"code": failed.code, "message": failed.message}
        except Exception as unexpected:  # a stand-in bug must still end the operation, visibly
            error = {"code": "INTERNAL_ERROR", "message": f"{type(unexpected).__name__}: {unexpected}"}
        if error is not None and on_failure is not None:
            try:
                on_failure(operation, error)
            except Exception as unexpected:
                error["message"] += f" (and cleaning up failed: {unexpected})"
        with self.store.lock:
            operation.error = error
            operation.status = "DONE"
            operation.end_time = now()
        self.store.release(operation)
        operation.done.set()
        with self._lock:
            self._threads.discard(threading.current_thread())
