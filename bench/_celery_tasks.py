"""The workload of ``bench.celery_peers``: one nap (0 s = no-op, 20 ms = I/O-bound), run by both systems.

The same function runs inside Tornado's handler and Celery's task, and records the job the
same way for both: one line ``index sent started ended`` (``time.time()`` of this machine)
appended to the file named by ``$BENCH_CELERY_DONE_FILE``. ``sent`` is the producer's clock
just before its submit call, carried in the job's payload (Tornado) or arguments (Celery).

Tornado loads the task through ``TORNADO_TASKS_MODULES=bench._celery_tasks``.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, Field

from tornado_core import TaskContext, task

#: Where each finished job is recorded (set in the worker's environment).
DONE_FILE_ENV = "BENCH_CELERY_DONE_FILE"
#: Tornado's name of the task (Celery's is the same).
NAME = "bench_celery.nap"
#: Its version (the bench package has no ``__version__``).
VERSION = "1"
#: The module Tornado's processes load it from.
MODULE = __name__


class NapPayload(BaseModel):
    """Payload of the task."""

    seconds: float = Field(default=0.0, ge=0, le=10, description="How long the job sleeps (0: no-op).")
    sent: float = Field(description="Producer's time.time() just before the submit call.")
    index: int = Field(ge=0, description="The job's number in its run.")


def nap(seconds: float, sent: float, index: int) -> None:
    """Sleep ``seconds`` (not at all if 0) and record the job in the done file."""
    started = time.time()
    if seconds > 0:
        time.sleep(seconds)
    line = f"{index} {sent:.6f} {started:.6f} {time.time():.6f}\n"
    with open(os.environ[DONE_FILE_ENV], "a") as done:
        done.write(line)


@task(name=NAME, payload=NapPayload, version=VERSION, visibility_timeout=30)
def tornado_nap(ctx: TaskContext, payload: NapPayload) -> None:
    """Tornado's handler: :func:`nap`; no result."""
    nap(payload.seconds, payload.sent, payload.index)
