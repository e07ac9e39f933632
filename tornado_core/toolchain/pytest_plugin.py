"""Tornado's pytest plugin: fixtures for testing task projects against the local stack.

Installed with tornado-core (entry point ``pytest11``), so a task project's tests
just name the fixtures::

    def test_archives(run_task, tornado_services):
        result = run_task(archive, {"invoice_id": 7, "xml": "<nfe/>"})
        assert tornado_services.objects.get(result["key"]) == b"<nfe/>"

Which services the fixtures use, first match wins:

1. ``TORNADO_TEST_DATABASE_URL`` and ``TORNADO_TEST_AWS_ENDPOINT``: services
   someone else runs (CI service containers), as in Tornado's own tests;
2. ``TORNADO_DATABASE_URL`` and ``TORNADO_AWS_ENDPOINT_URL``: a shell pointed at
   a running stack (``eval "$(tornado dev env)"``), used as is;
3. otherwise the project's local stack (``tornado dev up`` in ``./.tornado`` or
   ``$TORNADO_STATE_DIR``), started if needed and stopped again after the session
   if this session started it.

If the services cannot start, the tests that need them are skipped with the
reason, except in strict mode (CI: ``TORNADO_STRICT`` or ``CI``, see
:mod:`tornado_core.toolchain.strict`) where that is an error, and any skip fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tornado_core.devstack import DevStack, ExternalStack, StackInfo, default_state_dir
from tornado_core.errors import TornadoError
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.task import TaskSpec
from tornado_core.task_context import TaskContext, job_logger
from tornado_core.toolchain.strict import STRICT_VARIABLES, strict_mode

__all__ = ["TaskRun", "TaskRunner", "running_stack"]


@dataclass
class TaskRun:
    """One handler call made by :class:`TaskRunner`.

    Attributes:
        job_id: The job id the handler saw.
        tenant: The tenant the handler saw.
        result: What the handler returned (after a JSON round trip).
        progress: Every ``ctx.progress(fraction, note)`` call, in order.
    """

    job_id: str
    tenant: str
    result: Any = None
    progress: list[tuple[float, str | None]] = field(default_factory=list)


class TaskRunner:
    """Runs task handlers with a real :class:`TaskContext` on the given services.

    Args:
        services: Where ``ctx.s3``, ``ctx.rds`` and ``ctx.redshift`` point.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self.runs: list[TaskRun] = []

    @property
    def last(self) -> TaskRun:
        """The latest run (its job id, progress and result)."""
        if not self.runs:
            raise LookupError("run_task has not run anything yet")
        return self.runs[-1]

    def __call__(
        self,
        spec: TaskSpec,
        payload: Mapping[str, Any] | Any,
        *,
        tenant: str = "tests",
        attempt: int = 1,
        job_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Validate ``payload`` like the API does, run the handler, return its result.

        Args:
            spec: The task (what ``@task`` returned).
            payload: A dict (validated against the task's schema) or the payload model itself.
            tenant: Tenant the handler sees.
            attempt: Attempt number the handler sees (``> 1`` for a retry).
            job_id: Job id the handler sees (default: a fresh one); reuse one to test idempotency.
            timeout: Seconds before ``ctx.check_deadline()`` raises (default: the task's timeout).

        Raises:
            PayloadInvalid: The payload does not match the schema (``.errors`` per field).
            TypeError: The result is not JSON, so a worker could not record it.
        """
        if isinstance(payload, spec.payload_model):
            payload = payload.model_dump(mode="json")
        model = spec.parse_payload(payload)
        run = TaskRun(job_id=job_id or self._services.job_ids.new(tenant), tenant=tenant)
        self.runs.append(run)
        ctx = self._context(spec, run, attempt=attempt, timeout=timeout)
        result = spec.handler(ctx, model)
        run.result = json.loads(json.dumps(result))
        return run.result

    def _context(self, spec: TaskSpec, run: TaskRun, *, attempt: int, timeout: float | None) -> TaskContext:
        def report(fraction: float, note: str | None) -> None:
            run.progress.append((fraction, note))

        return TaskContext(
            job_id=run.job_id,
            task=spec.name,
            version=spec.version,
            tenant=run.tenant,
            attempt=attempt,
            s3=self._services.objects,
            rds=self._services.rds,
            redshift=self._services.redshift,
            logger=job_logger(logging.getLogger(f"tornado.task.{spec.name}"), job=run.job_id),
            deadline=time.monotonic() + (spec.timeout if timeout is None else timeout),
            _progress_sink=report,
        )


def _env_stack(env: Mapping[str, str]) -> StackInfo:
    return StackInfo(
        database_url=env["TORNADO_DATABASE_URL"],
        erp_database_url=env.get("TORNADO_ERP_DATABASE_URL") or env["TORNADO_DATABASE_URL"],
        redshift_url=env.get("TORNADO_REDSHIFT_URL") or env["TORNADO_DATABASE_URL"],
        aws_endpoint_url=env["TORNADO_AWS_ENDPOINT_URL"],
        aws_region=env.get("TORNADO_AWS_REGION", "us-east-1"),
        bucket=env.get("TORNADO_BUCKET", "tornado"),
        secret_key=env.get("TORNADO_SECRET_KEY") or secrets.token_urlsafe(32),
    )


def running_stack(env: Mapping[str, str], cwd: Path) -> Iterator[StackInfo]:
    """Yield the services the environment names (see the module docstring); clean up after.

    Raises:
        TornadoError: The services cannot be reached or started.
    """
    if env.get("TORNADO_TEST_DATABASE_URL") and env.get("TORNADO_TEST_AWS_ENDPOINT"):
        yield ExternalStack(env["TORNADO_TEST_DATABASE_URL"], env["TORNADO_TEST_AWS_ENDPOINT"]).up()
        return
    if env.get("TORNADO_DATABASE_URL") and env.get("TORNADO_AWS_ENDPOINT_URL"):
        yield _env_stack(env)
        return
    stack = DevStack(default_state_dir(dict(env), cwd=cwd))
    was_running = stack.status().running
    info = stack.up()
    try:
        yield info
    finally:
        if not was_running:
            stack.down()


@pytest.fixture(scope="session")
def tornado_stack(pytestconfig: pytest.Config) -> Iterator[StackInfo]:
    """Where the session's PostgreSQL and SQS/S3 endpoint are (started if needed)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    stacks = running_stack(os.environ, pytestconfig.rootpath)
    try:
        info = next(stacks)
    except (TornadoError, OSError) as exc:
        if strict_mode(os.environ):
            raise
        pytest.skip(f"the local stack could not start: {exc}")
    yield info
    next(stacks, None)


@pytest.fixture(scope="session")
def tornado_settings(tornado_stack: StackInfo) -> Settings:
    """Settings pointing at :func:`tornado_stack`."""
    return Settings.load(tornado_stack.env())


@pytest.fixture(scope="session")
def tornado_services(tornado_settings: Settings) -> Iterator[Services]:
    """Real services on the stack: ``objects`` (S3), ``rds`` (the ERP database), ``redshift``, ..."""
    from tornado_core.bootstrap import build_services

    services, close = build_services(tornado_settings, registry=TaskRegistry(), pool_size=4)
    yield services
    close()


@pytest.fixture
def run_task(tornado_services: Services) -> TaskRunner:
    """``run_task(spec, payload)`` runs a handler with a real context and returns its result.

    ``run_task.last`` is the latest :class:`TaskRun` (job id, progress notes, result).
    """
    return TaskRunner(tornado_services)


class StrictRun:
    """In strict mode (CI), a run that skipped a test fails: a skip there hides a missing service."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note each skipped test (an expected failure, ``xfail``, is not a skip)."""
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Fail a strict run that passed with skips, saying how many and which first."""
        if self.skipped and strict_mode(os.environ) and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            writer = session.config.get_terminal_writer()
            writer.line()
            writer.line(
                f"strict mode ({'/'.join(STRICT_VARIABLES)}): {len(self.skipped)} test(s) skipped, "
                f"which fails the run; first: {self.skipped[0]}",
                red=True,
            )


def pytest_configure(config: pytest.Config) -> None:
    """Watch for skips (see :class:`StrictRun`)."""
    config.pluginmanager.register(StrictRun(), "tornado-strict-run")
