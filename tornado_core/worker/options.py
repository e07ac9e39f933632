"""How a worker process runs: its concurrency, grace period, polling and identity."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def default_worker_id() -> str:
    """``host:pid:random`` — unique per worker process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """How a worker runs.

    Attributes:
        concurrency: Jobs this process runs at once.
        grace_period: Seconds running jobs get to finish after a stop request.
        poll_wait: Long-poll seconds per receive (SQS allows up to 20).
        worker_id: Identity recorded in job leases.
        health_file: Touched whenever the loop polls (liveness probes, readiness
            of local processes); ``None`` disables it.
        on_busy_change: Called with ``True`` when the worker starts running a job
            after being idle and ``False`` when it becomes idle again (e.g. ECS
            task scale-in protection); calls never overlap and errors are logged.
        prefetch: Messages received ahead of a free thread, so one receive fetches
            a batch (kept hidden by the heartbeat, returned at once on stop);
            default ``concurrency`` up to a receive's batch (10 on SQS), 0 for tasks with a global cap.
    """

    concurrency: int = 4
    grace_period: float = 30.0
    poll_wait: float = 5.0
    worker_id: str = field(default_factory=default_worker_id)
    health_file: Path | None = None
    on_busy_change: Callable[[bool], None] | None = None
    prefetch: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.prefetch is not None and self.prefetch < 0:
            raise ValueError("prefetch must not be negative")
