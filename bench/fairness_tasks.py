"""The tasks of ``bench.fairness``: the same short sleep, one first come first served, one fair.

Loaded by the benchmark's API and workers through ``TORNADO_TASKS_MODULES=bench.fairness_tasks``
(the same as ``tornado api|worker --tasks-module bench.fairness_tasks``).
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from tornado_core import TaskContext, task

#: Version of both tasks (the bench package has no ``__version__``).
VERSION = "1"

PLAIN_TASK = "bench_fairness.plain"
FAIR_TASK = "bench_fairness.fair"


class NapPayload(BaseModel):
    """Payload of both tasks."""

    seconds: float = Field(default=0.005, ge=0, le=60, description="How long the job sleeps.")


def _nap(payload: NapPayload) -> dict[str, float]:
    started = time.time()  # the job's start, by the handler's own clock (same machine as the bench)
    time.sleep(payload.seconds)
    return {"started": started, "ended": time.time()}


@task(name=PLAIN_TASK, payload=NapPayload, version=VERSION, visibility_timeout=30)
def plain(ctx: TaskContext, payload: NapPayload) -> dict[str, float]:
    """Sleep; the queue is served first come, first served."""
    return _nap(payload)


@task(
    name=FAIR_TASK,
    payload=NapPayload,
    version=VERSION,
    visibility_timeout=30,
    fair=True,
)
def fair(ctx: TaskContext, payload: NapPayload) -> dict[str, float]:
    """Sleep; fair dispatch: the workers take the waiting tenants' jobs in turn."""
    return _nap(payload)
