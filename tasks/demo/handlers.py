"""Small tasks that show (and test) what the worker guarantees."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from tornado_core import ConcurrencyLimit, NonRetryable, RateLimit, RetryPolicy, TaskContext, UniqueJobs, task


class EchoPayload(BaseModel):
    """Payload of ``demo.echo``."""

    message: str = Field(description="Text returned as the job's result.")


@task(name="demo.echo", payload=EchoPayload, retry=RetryPolicy(max_attempts=3))
def echo(ctx: TaskContext, payload: EchoPayload) -> dict[str, str]:
    """Return the message unchanged."""
    return {"message": payload.message}


class SleepPayload(BaseModel):
    """Payload of ``demo.sleep`` and ``demo.throttled``."""

    seconds: float = Field(ge=0, le=3600, description="How long to work.")
    steps: int = Field(default=10, ge=1, le=1000, description="Progress reports along the way.")
    record_effect: bool = Field(
        default=False, description="Insert one row per job into the ERP table demo_effects (idempotently)."
    )


def _work(ctx: TaskContext, payload: SleepPayload) -> dict[str, Any]:
    for step in range(payload.steps):
        time.sleep(payload.seconds / payload.steps)
        ctx.progress((step + 1) / payload.steps, f"step {step + 1} of {payload.steps}")
    if payload.record_effect:
        _record_effect(ctx)
    return {"slept": payload.seconds}


def _record_effect(ctx: TaskContext) -> None:
    """The idempotent side-effect pattern: the job id is the key, a repeat is a no-op."""
    with ctx.rds.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS demo_effects ("
            " job_id text PRIMARY KEY, tenant text NOT NULL, attempt int NOT NULL,"
            " done_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute(
            "INSERT INTO demo_effects (job_id, tenant, attempt) VALUES (%s, %s, %s)"
            " ON CONFLICT (job_id) DO NOTHING",
            (ctx.job_id, ctx.tenant, ctx.attempt),
        )


@task(name="demo.sleep", payload=SleepPayload, visibility_timeout=3)
def sleep(ctx: TaskContext, payload: SleepPayload) -> dict[str, Any]:
    """Sleep, reporting progress at each step (outlives its 3 s visibility timeout by heartbeats)."""
    return _work(ctx, payload)


@task(name="demo.throttled", payload=SleepPayload, max_concurrency=2, visibility_timeout=10)
def throttled(ctx: TaskContext, payload: SleepPayload) -> dict[str, Any]:
    """Like demo.sleep, but at most two run at once across every worker process."""
    return _work(ctx, payload)


class FlakyPayload(BaseModel):
    """Payload of ``demo.flaky``."""

    failures: int = Field(ge=0, le=20, description="Attempts that fail before one succeeds.")


@task(
    name="demo.flaky",
    payload=FlakyPayload,
    # SQS counts visibility in whole seconds, so the first delay is one second.
    retry=RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_factor=2.0, jitter=0.1),
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


class ReportPayload(BaseModel):
    """Payload of ``demo.report``."""

    company: str = Field(min_length=1, description="The company the report is for.")
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="The month, YYYY-MM.")
    seconds: float = Field(default=0, ge=0, le=3600, description="How long to work.")


@task(
    name="demo.report",
    payload=ReportPayload,
    visibility_timeout=3,
    unique=UniqueJobs(fields=("company", "period")),
)
def report(ctx: TaskContext, payload: ReportPayload) -> dict[str, str]:
    """One report per company and period in flight: a second submission gets the first job back."""
    steps = 10
    for step in range(steps):
        time.sleep(payload.seconds / steps)
        ctx.progress((step + 1) / steps)
    return {"company": payload.company, "period": payload.period}


class TimedPayload(BaseModel):
    """Payload of ``demo.fair`` and ``demo.rated``."""

    account: str = Field(default="", max_length=100, description="The key of demo.rated's rate limit.")
    seconds: float = Field(default=0, ge=0, le=60, description="How long to work.")


def _timed(payload: TimedPayload) -> dict[str, float]:
    started = time.time()
    time.sleep(payload.seconds)
    return {"started": started, "ended": time.time()}


@task(name="demo.fair", payload=TimedPayload, visibility_timeout=10, fair=True)
def fair(ctx: TaskContext, payload: TimedPayload) -> dict[str, float]:
    """Fair dispatch: workers take the waiting tenants' jobs in turn, so a burst holds no one back."""
    return _timed(payload)


@task(name="demo.capped", payload=TimedPayload, visibility_timeout=10, limits=[ConcurrencyLimit(2)])
def capped(ctx: TaskContext, payload: TimedPayload) -> dict[str, float]:
    """At most 2 jobs of a tenant at once, across every worker."""
    return _timed(payload)


@task(name="demo.rated", payload=TimedPayload, visibility_timeout=10, limits=[RateLimit(5, per=("account",))])
def rated(ctx: TaskContext, payload: TimedPayload) -> dict[str, float]:
    """At most 5 jobs per second per account (a burst of 5), across every worker."""
    return _timed(payload)


class AddPayload(BaseModel):
    """Payload of ``demo.add``."""

    numbers: list[float] = Field(max_length=1000, description="The numbers to add up.")


@task(name="demo.add", payload=AddPayload)
def add(ctx: TaskContext, payload: AddPayload) -> dict[str, Any]:
    """Add the numbers up (a workflow's fan-in takes each earlier step's sum this way)."""
    return {"sum": sum(payload.numbers), "count": len(payload.numbers), "numbers": payload.numbers}
