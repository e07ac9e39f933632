"""Small tasks that show (and test) what the worker guarantees."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from tornado_core import NonRetryable, RetryPolicy, TaskContext, task


class EchoPayload(BaseModel):
    """Payload of ``demo.echo``."""

    message: str = Field(description="Text returned as the job's result.")


@task(name="demo.echo", payload=EchoPayload, retry=RetryPolicy(max_attempts=3))
def echo(ctx: TaskContext, payload: EchoPayload) -> dict[str, str]:
    """Return the message unchanged."""
    return {"message": payload.message}


class SleepPayload(BaseModel):
    """Payload of ``demo.sleep``."""

    seconds: float = Field(ge=0, le=3600, description="How long to work.")
    steps: int = Field(default=10, ge=1, le=1000, description="Progress reports along the way.")


@task(name="demo.sleep", payload=SleepPayload, visibility_timeout=30)
def sleep(ctx: TaskContext, payload: SleepPayload) -> dict[str, float]:
    """Sleep, reporting progress at each step."""
    for step in range(payload.steps):
        time.sleep(payload.seconds / payload.steps)
        ctx.progress((step + 1) / payload.steps, f"step {step + 1} of {payload.steps}")
    return {"slept": payload.seconds}


class FlakyPayload(BaseModel):
    """Payload of ``demo.flaky``."""

    failures: int = Field(ge=0, le=20, description="Attempts that fail before one succeeds.")


@task(
    name="demo.flaky",
    payload=FlakyPayload,
    retry=RetryPolicy(max_attempts=5, backoff_base=0.5, backoff_factor=2.0, jitter=0.1),
)
def flaky(ctx: TaskContext, payload: FlakyPayload) -> dict[str, int]:
    """Fail the first ``failures`` attempts, then succeed."""
    if ctx.attempt <= payload.failures:
        raise RuntimeError(f"planned failure {ctx.attempt} of {payload.failures}")
    return {"attempts": ctx.attempt}


class FailPayload(BaseModel):
    """Payload of ``demo.fail``."""

    reason: str = "always fails"
    retryable: bool = Field(default=True, description="False raises NonRetryable: straight to the DLQ.")


@task(
    name="demo.fail",
    payload=FailPayload,
    retry=RetryPolicy(max_attempts=3, backoff_base=0.2, backoff_factor=2.0, jitter=0.1),
)
def fail(ctx: TaskContext, payload: FailPayload) -> Any:
    """Always fail; with ``retryable: false`` fail for good at once."""
    if not payload.retryable:
        raise NonRetryable(payload.reason)
    raise RuntimeError(payload.reason)
