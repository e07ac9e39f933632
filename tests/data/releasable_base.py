"""The ``demo.release`` task, declared once per version by ``tests/data/releasable/vN/releasable``.

Each version's package sits in its own directory (deployed with ``--python-path``),
so two versions of the task run side by side. A job's result names the version
that ran it; with ``record_effect`` it also counts its runs in the ERP table
``release_effects`` (created by the tests), to check "exactly once".
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from tornado_core import RetryPolicy, TaskContext, TaskSpec, task

EFFECTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS release_effects ("
    " job_id text PRIMARY KEY, version text NOT NULL, runs int NOT NULL DEFAULT 1)"
)


class Work(BaseModel):
    """Payload of ``demo.release``."""

    n: int = Field(ge=0, description="Any number; returned in the result.")
    seconds: float = Field(default=0.0, ge=0, le=60, description="How long the job works.")
    record_effect: bool = Field(default=False, description="Count this run in release_effects.")


def declare(version: str, *, broken: bool = False) -> TaskSpec:
    """The task as ``version`` ships it; a ``broken`` version fails every attempt."""

    @task(
        name="demo.release",
        payload=Work,
        version=version,
        retry=RetryPolicy(max_attempts=2, backoff_base=1.0, backoff_factor=1.0, jitter=0.0),
        timeout=30,
        visibility_timeout=10,
    )
    def work(ctx: TaskContext, payload: Work) -> dict[str, Any]:
        """Sleep a little, optionally count the run, return the version that ran."""
        time.sleep(payload.seconds)
        if broken:
            raise RuntimeError(f"version {version} is broken")
        if payload.record_effect:
            with ctx.rds.connection() as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO release_effects (job_id, version) VALUES (%s, %s)"
                    " ON CONFLICT (job_id) DO UPDATE SET runs = release_effects.runs + 1",
                    (ctx.job_id, version),
                )
        return {"version": version, "n": payload.n}

    return work
