"""Workflows and their steps in PostgreSQL (``tornado_workflows``, ``tornado_workflow_steps``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.ports.workflows import (
    Advance,
    AdvanceWorkflow,
    NewWorkflow,
    Step,
    StepStatus,
    Workflow,
    WorkflowStatus,
)

_WORKFLOW_COLUMNS = "workflow_id, tenant, name, status, created_at, finished_at, failed_step, error"

_INSERT_WORKFLOW = """
INSERT INTO tornado_workflows (workflow_id, tenant, name, scope, status)
VALUES (%(workflow_id)s, %(tenant)s, %(name)s, %(scope)s, 'running')
"""

_INSERT_STEPS = """
INSERT INTO tornado_workflow_steps (workflow_id, position, name, task, payload, after, status)
SELECT %(workflow_id)s, r.ordinality - 1, r.value->>'name', r.value->>'task', r.value->'payload',
       ARRAY(SELECT jsonb_array_elements_text(r.value->'after')), 'waiting'
FROM jsonb_array_elements(%(steps)s) WITH ORDINALITY AS r
"""

# A failed job's error is the step's error unless the step has its own (an input it could not build).
_STEPS = """
SELECT s.name, s.task, s.payload, s.after, s.status, s.job_id, j.status,
       COALESCE(s.error, CASE WHEN j.status IN ('dead', 'failed')
                              THEN concat_ws(': ', j.error_type, j.error_message) END)
FROM tornado_workflow_steps AS s LEFT JOIN tornado_jobs AS j ON j.job_id = s.job_id
WHERE s.workflow_id = %(workflow_id)s
ORDER BY s.position
"""

_NEXT_RUNNING = f"""
SELECT {_WORKFLOW_COLUMNS} FROM tornado_workflows
WHERE scope = %(scope)s AND status = 'running' AND workflow_id > %(after)s
  AND (%(only)s::text IS NULL OR workflow_id = %(only)s)
ORDER BY workflow_id LIMIT 1
FOR UPDATE SKIP LOCKED
"""

_CHANGE_STEPS = """
UPDATE tornado_workflow_steps AS s
SET status = c.value->>'status', job_id = COALESCE(c.value->>'job_id', s.job_id),
    error = COALESCE(c.value->>'error', s.error), updated_at = clock_timestamp()
FROM jsonb_array_elements(%(changes)s) AS c
WHERE s.workflow_id = %(workflow_id)s AND s.name = c.value->>'name'
"""

_FINISH = """
UPDATE tornado_workflows SET status = %(status)s, failed_step = %(failed_step)s, error = %(error)s,
    finished_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE workflow_id = %(workflow_id)s
"""


class PostgresWorkflows:
    """:class:`~tornado_core.ports.workflows.WorkflowStorePort` on the job store's database.

    Args:
        pool: Connections to the job store's database (the steps' jobs are read there too).
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def create(self, workflow: NewWorkflow) -> Workflow:
        """Store the workflow ``running`` and its steps ``waiting``, in one commit."""
        steps = [
            {"name": s.name, "task": s.task, "payload": s.payload, "after": list(s.after)}
            for s in workflow.steps
        ]
        with self._pool.connection() as conn, conn.cursor() as cur:
            params = {"workflow_id": workflow.workflow_id, "tenant": workflow.tenant, "name": workflow.name}
            cur.execute(_INSERT_WORKFLOW, {**params, "scope": workflow.scope})
            cur.execute(_INSERT_STEPS, {"workflow_id": workflow.workflow_id, "steps": Json(steps)})
        created = self.get(workflow.workflow_id)
        assert created is not None
        return created

    def get(self, workflow_id: str, *, tenant: str | None = None) -> Workflow | None:
        """The workflow with its steps' job statuses, or ``None``."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT {_WORKFLOW_COLUMNS} FROM tornado_workflows WHERE workflow_id = %(id)s",
                {"id": workflow_id},
            )
            row = cur.fetchone()
            if row is None or (tenant is not None and row[1] != tenant):
                return None
            return _workflow(row, _steps(cur, workflow_id))

    def list(
        self, tenant: str, *, status: WorkflowStatus | None = None, limit: int = 50, before: str | None = None
    ) -> list[Workflow]:
        """A tenant's workflows, newest first, each with its steps."""
        sql = (
            f"SELECT {_WORKFLOW_COLUMNS} FROM tornado_workflows WHERE tenant = %(tenant)s"
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
            " AND (%(before)s::text IS NULL OR workflow_id < %(before)s)"
            " ORDER BY workflow_id DESC LIMIT %(limit)s"
        )
        params = {"tenant": tenant, "status": status and status.value, "before": before, "limit": limit}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
            return [_workflow(row, _steps(cur, row[0])) for row in rows]

    def advance(self, *, scope: str, limit: int, advance: AdvanceWorkflow, only: str | None = None) -> int:
        """Pass over running workflows one by one, each in its own transaction under its row lock."""
        passed, after = 0, ""
        while passed < limit:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(_NEXT_RUNNING, {"scope": scope, "after": after, "only": only})
                row = cur.fetchone()
                if row is None:
                    return passed
                workflow = _workflow(row, _steps(cur, row[0]))
                _apply(cur, workflow.workflow_id, advance(workflow))
            passed, after = passed + 1, workflow.workflow_id
        return passed

    def cancel(
        self, workflow_id: str, *, tenant: str, cancel_jobs: Callable[[Sequence[str]], None]
    ) -> Workflow | None:
        """Cancel a running workflow under its lock (see the port)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT status FROM tornado_workflows"
                " WHERE workflow_id = %(id)s AND tenant = %(tenant)s FOR UPDATE",
                {"id": workflow_id, "tenant": tenant},
            )
            row = cur.fetchone()
            if row is None:
                return None
            if row[0] == WorkflowStatus.RUNNING:
                steps = _steps(cur, workflow_id)
                cancel_jobs([s.job_id for s in steps if s.job_id and s.current_status() is StepStatus.QUEUED])
                cur.execute(
                    "UPDATE tornado_workflow_steps SET status = 'cancelled', updated_at = clock_timestamp()"
                    " WHERE workflow_id = %(id)s AND status IN ('waiting', 'queued')",
                    {"id": workflow_id},
                )
                cur.execute(_FINISH, {"workflow_id": workflow_id, "status": "cancelled", "failed_step": None,
                                      "error": None})  # fmt: skip
        return self.get(workflow_id, tenant=tenant)


def _apply(cur: Cursor, workflow_id: str, decided: Advance) -> None:
    """Record what the advancer decided, in the transaction holding the workflow's lock."""
    if decided.steps:
        changes = [
            {"name": c.name, "status": c.status.value, "job_id": c.job_id, "error": c.error}
            for c in decided.steps
        ]
        cur.execute(_CHANGE_STEPS, {"workflow_id": workflow_id, "changes": Json(changes)})
    if decided.status is not None:
        cur.execute(_FINISH, {"workflow_id": workflow_id, "status": decided.status.value,
                              "failed_step": decided.failed_step, "error": decided.error})  # fmt: skip
    elif decided.steps:
        cur.execute("UPDATE tornado_workflows SET updated_at = clock_timestamp() WHERE workflow_id = %(id)s",
                    {"id": workflow_id})  # fmt: skip


def _steps(cur: Cursor, workflow_id: str) -> tuple[Step, ...]:
    cur.execute(_STEPS, {"workflow_id": workflow_id})
    return tuple(
        Step(
            name=r[0],
            task=r[1],
            payload=r[2],
            after=tuple(r[3]),
            status=StepStatus(r[4]),
            job_id=r[5],
            job_status=r[6],
            error=r[7],
        )
        for r in cur.fetchall()
    )


def _workflow(row: Sequence[Any], steps: tuple[Step, ...]) -> Workflow:
    return Workflow(
        workflow_id=row[0], tenant=row[1], name=row[2], status=WorkflowStatus(row[3]), created_at=row[4],
        finished_at=row[5], failed_step=row[6], error=row[7], steps=steps,
    )  # fmt: skip
