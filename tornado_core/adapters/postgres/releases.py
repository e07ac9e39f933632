"""The release store in PostgreSQL: routes, task versions, release states, events, figures."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from tornado_core.adapters.postgres.job_queries import rows_of, waiting_split
from tornado_core.adapters.postgres.pool import UNREACHABLE, PostgresPool, close_quietly
from tornado_core.errors import ReleaseError, StoreUnavailable
from tornado_core.ports.releases import ReleaseEvent, ReleaseState, VersionRelease, VersionStats
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.versions import TaskVersion

_RELEASE_COLUMNS = (
    "task, version, state, runtime, replicas, concurrency, grace_period, image, python_path,"
    " tasks_module, previous, smoke_job_id, detail, extract(epoch FROM updated_at)::float8"
)
_VERSION_COLUMNS = "task, version, payload_schema, max_attempts, visibility_timeout, timeout, description"
ROUTE_COLUMNS = "task, current_version, ramping_version, ramp_percent, pins, revision"

_SAVE_ROUTE = """
INSERT INTO tornado_routes AS r (task, current_version, ramping_version, ramp_percent, pins)
VALUES (%(task)s, %(current)s, %(ramping)s, %(percent)s, %(pins)s)
ON CONFLICT (task) DO UPDATE SET
    current_version = EXCLUDED.current_version, ramping_version = EXCLUDED.ramping_version,
    ramp_percent = EXCLUDED.ramp_percent, pins = EXCLUDED.pins,
    revision = r.revision + 1, updated_at = clock_timestamp()
"""

_SAVE_RELEASE = """
INSERT INTO tornado_releases AS r (task, version, state, runtime, replicas, concurrency, grace_period,
    image, python_path, tasks_module, previous, smoke_job_id, detail)
VALUES (%(task)s, %(version)s, %(state)s, %(runtime)s, %(replicas)s, %(concurrency)s,
    %(grace_period)s, %(image)s, %(python_path)s, %(tasks_module)s, %(previous)s, %(smoke_job_id)s,
    %(detail)s)
ON CONFLICT (task, version) DO UPDATE SET
    state = EXCLUDED.state, runtime = EXCLUDED.runtime, replicas = EXCLUDED.replicas,
    concurrency = EXCLUDED.concurrency, grace_period = EXCLUDED.grace_period, image = EXCLUDED.image,
    python_path = EXCLUDED.python_path, tasks_module = EXCLUDED.tasks_module,
    previous = EXCLUDED.previous, smoke_job_id = EXCLUDED.smoke_job_id, detail = EXCLUDED.detail,
    updated_at = clock_timestamp()
"""

_EVENT = """
INSERT INTO tornado_release_events (task, version, operation, state, detail)
VALUES (%(task)s, %(version)s, %(operation)s, %(state)s, %(detail)s)
"""

_REGISTER = f"""
INSERT INTO tornado_task_versions ({_VERSION_COLUMNS})
VALUES (%(task)s, %(version)s, %(payload_schema)s, %(max_attempts)s, %(visibility_timeout)s,
    %(timeout)s, %(description)s)
ON CONFLICT (task, version) DO UPDATE SET
    payload_schema = EXCLUDED.payload_schema, max_attempts = EXCLUDED.max_attempts,
    visibility_timeout = EXCLUDED.visibility_timeout, timeout = EXCLUDED.timeout,
    description = EXCLUDED.description, registered_at = clock_timestamp()
WHERE (tornado_task_versions.payload_schema, tornado_task_versions.max_attempts,
       tornado_task_versions.visibility_timeout, tornado_task_versions.timeout)
    IS DISTINCT FROM (EXCLUDED.payload_schema, EXCLUDED.max_attempts,
       EXCLUDED.visibility_timeout, EXCLUDED.timeout)
"""

_VERSION_JOBS = waiting_split(
    "task = %(task)s AND version = %(version)s"
    " AND (%(since)s::float8 IS NULL OR created_at >= to_timestamp(%(since)s::float8))",
    by_task=True,
    by_status=False,
)

_STATS = f"""
SELECT count(*), COALESCE(sum(attempts), 0),
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status IN ('dead', 'failed')),
       count(*) FILTER (WHERE status = 'running' AND lease_expires_at > clock_timestamp())
FROM ({rows_of("status, attempts, lease_expires_at", "tornado_jobs", _VERSION_JOBS)}) AS jobs
"""

# Who holds a task's release lock (a one-key advisory lock is classid/objid, objsubid 1).
_HOLDER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %(high)s::bigint::oid AND l.objid = %(low)s::bigint::oid
"""


def release_lock_key(task: str) -> int:
    """A stable signed 64-bit advisory-lock key for the releases of ``task``."""
    digest = hashlib.sha256(f"tornado-release:{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def route_from_row(row: Sequence[Any]) -> RouteTable:
    """A :class:`RouteTable` from a row of :data:`ROUTE_COLUMNS`."""
    return RouteTable(
        task=row[0], current=row[1], ramping=row[2], ramp_percent=row[3], pins=row[4], revision=row[5]
    )


def version_from_row(row: Sequence[Any]) -> TaskVersion:
    """A :class:`TaskVersion` from a row of the task-version columns."""
    return TaskVersion(
        task=row[0],
        version=row[1],
        payload_schema=row[2],
        max_attempts=row[3],
        visibility_timeout=row[4],
        timeout=row[5],
        description=row[6],
    )


def _release(row: Sequence[Any]) -> VersionRelease:
    return VersionRelease(
        task=row[0],
        version=row[1],
        state=ReleaseState(row[2]),
        runtime=row[3],
        replicas=row[4],
        concurrency=row[5],
        grace_period=row[6],
        image=row[7],
        python_path=row[8],
        tasks_module=row[9],
        previous=row[10],
        smoke_job_id=row[11],
        detail=row[12],
        updated_at=row[13],
    )


class PostgresReleaseStore:
    """Release state in the job-store database (see migration ``0002_releases``).

    Args:
        pool: Pool of the job-store database.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def _rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    @contextlib.contextmanager
    def lock(self, task: str) -> Iterator[None]:
        """Hold the task's advisory lock on a connection of its own (freed if this process dies)."""
        key = release_lock_key(task)
        conn = self._pool.new_connection(autocommit=True)
        try:
            if not self._try_lock(conn, key):
                raise ReleaseError(
                    f"another release operation on {task} is running ({self._holder(key)}); "
                    "wait for it, or stop it and re-run"
                )
            yield
        finally:
            close_quietly(conn)  # closing the session releases the lock

    @staticmethod
    def _try_lock(conn: Connection, key: int) -> bool:
        name = f"tornado release {socket.gethostname()}:{os.getpid()}"
        try:
            with conn.cursor() as cur:
                cur.execute("SET application_name = %s", (name,))
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row = cur.fetchone()
        except UNREACHABLE as exc:
            raise StoreUnavailable(f"could not take the release lock: {exc}") from exc
        return bool(row and row[0])

    def _holder(self, key: int) -> str:
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        try:
            rows = self._rows(_HOLDER, {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF})
        except (StoreUnavailable, psycopg2.Error):
            rows = []
        return f"held by {rows[0][0]}" if rows and rows[0][0] else "lock held"

    def route(self, task: str) -> RouteTable | None:
        """The task's route table, or ``None``."""
        rows = self._rows(f"SELECT {ROUTE_COLUMNS} FROM tornado_routes WHERE task = %s", (task,))
        return route_from_row(rows[0]) if rows else None

    def releases(self, task: str) -> list[VersionRelease]:
        """Every release of the task."""
        rows = self._rows(f"SELECT {_RELEASE_COLUMNS} FROM tornado_releases WHERE task = %s", (task,))
        return [_release(row) for row in rows]

    def save(
        self,
        *,
        operation: str,
        route: RouteTable | None = None,
        releases: Sequence[VersionRelease] = (),
        detail: str = "",
    ) -> None:
        """Write the route and releases in one transaction (the route change is notified)."""
        with self._cursor() as cur:
            if route is not None:
                cur.execute(
                    _SAVE_ROUTE,
                    {
                        "task": route.task,
                        "current": route.current,
                        "ramping": route.ramping,
                        "percent": route.ramp_percent,
                        "pins": Json(dict(route.pins)),
                    },
                )
            for release in releases:
                values = {
                    "task": release.task,
                    "version": release.version,
                    "state": str(release.state),
                    "runtime": release.runtime,
                    "replicas": release.replicas,
                    "concurrency": release.concurrency,
                    "grace_period": release.grace_period,
                    "image": release.image,
                    "python_path": release.python_path,
                    "tasks_module": release.tasks_module,
                    "previous": release.previous,
                    "smoke_job_id": release.smoke_job_id,
                    "detail": release.detail,
                }
                cur.execute(_SAVE_RELEASE, values)
                cur.execute(_EVENT, {**values, "operation": operation, "detail": detail or release.detail})

    def register_version(self, version: TaskVersion) -> None:
        """Record a version's contract (a no-op, and no notification, if unchanged)."""
        with self._cursor() as cur:
            cur.execute(_REGISTER, {**version.to_json(), "payload_schema": Json(version.payload_schema)})

    def task_version(self, task: str, version: str) -> TaskVersion | None:
        """A registered contract, or ``None``."""
        rows = self._rows(
            f"SELECT {_VERSION_COLUMNS} FROM tornado_task_versions WHERE task = %s AND version = %s",
            (task, version),
        )
        return version_from_row(rows[0]) if rows else None

    def version_names(self, task: str) -> list[str]:
        """Every registered version of ``task``."""
        rows = self._rows("SELECT version FROM tornado_task_versions WHERE task = %s", (task,))
        return [row[0] for row in rows]

    def stats(self, task: str, version: str, *, since: float | None = None) -> VersionStats:
        """Figures of the version's jobs created at or after ``since``."""
        row = self._rows(_STATS, {"task": task, "version": version, "since": since})[0]
        return VersionStats(jobs=row[0], attempts=int(row[1]), succeeded=row[2], dead=row[3], running=row[4])

    def requeue(self, job_ids: Sequence[str], *, version: str) -> None:
        """Moved jobs: their new version, status ``queued``."""
        if job_ids:
            with self._cursor() as cur:
                cur.execute(
                    "UPDATE tornado_jobs SET version = %s, status = 'queued', lease_expires_at = NULL,"
                    " updated_at = clock_timestamp() WHERE job_id = ANY(%s)",
                    (version, list(job_ids)),
                )

    def events(self, task: str, *, limit: int = 50) -> list[ReleaseEvent]:
        """The task's latest events, newest first."""
        rows = self._rows(
            "SELECT task, version, operation, state, detail, extract(epoch FROM at)::float8"
            " FROM tornado_release_events WHERE task = %s ORDER BY id DESC LIMIT %s",
            (task, limit),
        )
        return [
            ReleaseEvent(task=r[0], version=r[1], operation=r[2], state=r[3], detail=r[4], at=r[5])
            for r in rows
        ]
