"""Bulk actions of the console: retry, cancel, redrive or purge every job a filter matches, server-side.

An action is a row of the job store, run by a background thread of the API process in batches (a
cancel: of jobs by job-id keyset; the others: of the letters of each DLQ concerned, see
``bulk_sweep``), its progress written with each batch. It holds a lease on its row, renewed by
each batch: if its process stops or dies, another process adopts it and goes on from its position.
Each action leaves two audit entries, ``jobs.bulk_<action>``: one when it starts, one when it ends.
The meaning of each action is in docs/console-bulk-actions.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from tornado_core.console.bulk_sweep import ActionInterrupted, DeadLetterSweep, SweepParts, until_done
from tornado_core.console.dead_letters import DeadLetterRoutes
from tornado_core.console.filters import JobFilter
from tornado_core.errors import BackendError
from tornado_core.ports.console_jobs import BulkActionKind, BulkActionRow, BulkActionStorePort, JobSearchPort
from tornado_core.ports.operators import AuditLogPort
from tornado_core.ports.queue import QueuePort

__all__ = ["BulkAction", "BulkActionKind", "BulkActions", "BulkOptions"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class BulkOptions:
    """How bulk actions run.

    Attributes:
        batch_size: Jobs per batch (one transaction; the most held in memory).
        lease_seconds: How long an action stays with its process without a batch; then another adopts it.
        workers: Actions run at once by one process.
        watch_every: Seconds between looks for actions whose process stopped (see :meth:`BulkActions.watch`).
        attempts: Tries of one backend call before the action fails.
    """

    batch_size: int = 500
    lease_seconds: float = 30.0
    workers: int = 2
    watch_every: float = 5.0
    attempts: int = 5


@dataclass(frozen=True, kw_only=True)
class BulkAction:
    """A bulk action and its progress.

    Attributes:
        id: Its number.
        action: What it does.
        filter: The jobs it acts on.
        operator: Who started it.
        status: ``running``, ``succeeded`` or ``failed``.
        matched: Jobs the filter matched when it started.
        done: Jobs it changed.
        skipped: Matched jobs not in a state it applies to.
        error: Why it failed.
        created_at: When it started.
        finished_at: When it ended.
    """

    id: int
    action: BulkActionKind
    filter: JobFilter
    operator: str
    status: str
    matched: int | None
    done: int
    skipped: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: BulkActionRow) -> BulkAction:
        """The action of a stored row."""
        return cls(
            id=row.id, action=row.action, filter=JobFilter.from_json(row.filter), operator=row.operator,
            status=row.status, matched=row.matched, done=row.done, skipped=row.skipped, error=row.error,
            created_at=row.created_at, finished_at=row.finished_at,
        )  # fmt: skip

    @property
    def fraction(self) -> float:
        """How far it got, 0 to 1 (the progress bar): jobs handled over jobs matched."""
        if self.status == "succeeded":
            return 1.0
        if not self.matched:
            return 0.0
        return min(1.0, (self.done + self.skipped) / self.matched)

    def totals(self) -> dict[str, Any]:
        """The figures an audit entry keeps."""
        return {
            "bulk_action": self.id, "status": self.status, "matched": self.matched, "done": self.done,
            "skipped": self.skipped, "error": self.error,
        }  # fmt: skip


class BulkActions:
    """Starts bulk actions and runs them in background threads of this process.

    Args:
        store: The actions' rows, and their batches in the job store.
        search: The job store's reads.
        queue: The queue port (dead-letter actions on SQS).
        audit: The audit log.
        routes: Where each action sends a version's dead letters.
        letters_in_store: The dead letters are in the job store's database (the PostgreSQL queue), so
            batches move them in SQL; else (SQS) they are read through the queue.
        options: Batch size, lease, threads.
        runner: This process's name on the actions it holds (host, pid and a random part by default).
    """

    def __init__(
        self,
        *,
        store: BulkActionStorePort,
        search: JobSearchPort,
        queue: QueuePort,
        audit: AuditLogPort,
        routes: DeadLetterRoutes,
        letters_in_store: bool,
        options: BulkOptions | None = None,
        runner: str | None = None,
    ) -> None:
        self._store = store
        self._search = search
        self._queue = queue
        self._audit = audit
        self._routes = routes
        self._letters_in_store = letters_in_store
        self._options = options or BulkOptions()
        self.runner = runner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._executor = ThreadPoolExecutor(
            max_workers=self._options.workers, thread_name_prefix="tornado-bulk"
        )
        self._watcher: threading.Thread | None = None

    def start(self, action: BulkActionKind, job_filter: JobFilter, *, actor: str) -> BulkAction:
        """Start ``action`` over every job ``job_filter`` matches now; returns at once, the action running.

        Records the audit entry ``jobs.bulk_<action>`` (target: the filter's description; detail: the
        action's number, the jobs matched, the filter).

        Raises:
            StoreUnavailable: The job store is unreachable (nothing was started).
        """
        opts = self._options
        row = self._store.create(
            action, job_filter.to_json(), criteria=job_filter, operator=actor, runner=self.runner,
            lease_seconds=opts.lease_seconds,
        )  # fmt: skip
        detail = {
            "bulk_action": row.id,
            "phase": "started",
            "matched": row.matched,
            "filter": job_filter.to_json(),
        }
        try:
            self._audit.record(
                actor=actor, action=_audit_action(action), target=_target(job_filter), detail=detail
            )
        except BaseException:
            with contextlib.suppress(BackendError):
                self._store.finish(row.id, runner=self.runner, error="its audit entry could not be written")
            raise
        self._submit(row)
        return BulkAction.from_row(row)

    def get(self, action_id: int) -> BulkAction | None:
        """One action with its progress, or ``None``."""
        row = self._store.get(action_id)
        return BulkAction.from_row(row) if row is not None else None

    def recent(self, limit: int = 20) -> list[BulkAction]:
        """The latest actions, newest first."""
        return [BulkAction.from_row(row) for row in self._store.recent(limit)]

    @property
    def stopping(self) -> bool:
        """Whether :meth:`close` was called: no batch starts any more."""
        return self._stop.is_set()

    def watch(self) -> None:
        """Adopt, every ``watch_every`` seconds in a thread, the actions whose process stopped."""
        with self._lock:
            if self._watcher is not None or self._stop.is_set():
                return
            self._watcher = threading.Thread(target=self._watch, name="tornado-bulk-watch", daemon=True)
        self._watcher.start()

    def resume_orphans(self) -> int:
        """Adopt the running actions whose lease ran out, as many as this process has free threads for.

        Returns:
            How many it adopted.
        """
        adopted = 0
        while not self._stop.is_set():
            with self._lock:
                if len(self._running) >= self._options.workers:
                    break
            row = self._store.adopt(self.runner, lease_seconds=self._options.lease_seconds)
            if row is None:
                break
            log.info("resuming bulk %s #%d of %s at %s", row.action, row.id, row.operator, row.position)
            adopted += self._submit(row)
        return adopted

    def close(self) -> None:
        """Stop taking batches: each running action ends its batch and is given back for another process."""
        self._stop.set()
        self._executor.shutdown(wait=True)
        if self._watcher is not None:
            self._watcher.join(timeout=self._options.watch_every + 5)

    def _watch(self) -> None:
        while not self._stop.wait(self._options.watch_every):
            try:
                self.resume_orphans()
            except BackendError as exc:
                log.warning("could not look for bulk actions to resume: %s", exc)

    def _submit(self, row: BulkActionRow) -> int:
        with self._lock:
            if row.id in self._running or self._stop.is_set():
                return 0
            self._running.add(row.id)
        self._executor.submit(self._run, row)
        return 1

    def _run(self, row: BulkActionRow) -> None:
        try:
            final = self._drive(row)
        except ActionInterrupted as stop:
            if stop.release:
                with contextlib.suppress(BackendError):
                    self._store.release(row.id, runner=self.runner)
            return
        except Exception as exc:
            log.exception("bulk %s #%d failed", row.action, row.id)
            final = self._finish_failed(row, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.discard(row.id)
        if final is not None:
            self._audit_end(BulkAction.from_row(final))

    def _drive(self, row: BulkActionRow) -> BulkActionRow | None:
        if row.action is BulkActionKind.CANCEL:
            return self._cancel(row)
        opts = self._options
        parts = SweepParts(
            queue=self._queue, search=self._search, store=self._store, routes=self._routes,
            letters_in_store=self._letters_in_store, runner=self.runner, batch_size=opts.batch_size,
            lease_seconds=opts.lease_seconds, attempt=self._attempt, stopping=self._stop.is_set,
        )  # fmt: skip
        return DeadLetterSweep(parts, row).run()

    def _cancel(self, row: BulkActionRow) -> BulkActionRow | None:
        """Batch after batch by job-id keyset, each applied with its progress in one commit."""
        job_filter = JobFilter.from_json(row.filter)
        opts = self._options
        until_done(
            lambda: self._store.cancel_batch(
                row.id, runner=self.runner, criteria=job_filter, size=opts.batch_size,
                lease_seconds=opts.lease_seconds,
            ),
            attempt=self._attempt, stopping=self._stop.is_set,
        )  # fmt: skip
        return self._attempt(lambda: self._store.finish(row.id, runner=self.runner))

    def _attempt(self, call: Callable[[], T]) -> T:
        """``call()``, tried again after a backend failure (with a growing pause) up to ``attempts`` times."""
        for attempt in range(1, self._options.attempts + 1):
            try:
                return call()
            except BackendError as exc:
                if attempt >= self._options.attempts:
                    raise
                log.warning("bulk action: %s (try %d of %d)", exc, attempt, self._options.attempts)
                if self._stop.wait(min(0.5 * 2**attempt, 10.0)):
                    raise ActionInterrupted(release=True) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish_failed(self, row: BulkActionRow, error: str) -> BulkActionRow | None:
        try:
            return self._store.finish(row.id, runner=self.runner, error=error[:2000])
        except BackendError as exc:  # the lease runs out and another process takes it up
            log.warning("could not record the failure of bulk action %d: %s", row.id, exc)
            return None

    def _audit_end(self, action: BulkAction) -> None:
        detail = {**action.totals(), "phase": "finished"}
        try:
            self._audit.record(
                actor=action.operator, action=_audit_action(action.action), target=_target(action.filter),
                detail=detail,
            )  # fmt: skip
        except BackendError as exc:
            log.warning("could not write the audit entry of bulk action %d's end: %s", action.id, exc)


def _audit_action(action: BulkActionKind) -> str:
    return f"jobs.bulk_{action}"


def _target(job_filter: JobFilter) -> str:
    return job_filter.describe() or "every job"
