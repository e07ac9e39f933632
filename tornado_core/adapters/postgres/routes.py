"""The API's cache of routes and task versions, fresh within a second through LISTEN/NOTIFY.

A background thread loads ``tornado_routes`` (and ``tornado_task_versions``
when they changed), then sleeps until PostgreSQL notifies a change on
:data:`CHANNEL` (a trigger fires on every write), or for ``refresh`` seconds
(``fallback`` seconds while the listening connection is down). Lookups never
touch the database: while PostgreSQL is unreachable the last known table keeps
routing (with the SQS backend the API keeps accepting jobs).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import psycopg2

from tornado_core.adapters.postgres._listener import QueueListener
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.adapters.postgres.releases import ROUTE_COLUMNS, route_from_row, version_from_row
from tornado_core.errors import StoreUnavailable
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.versions import TaskVersion

log = logging.getLogger(__name__)

#: The channel the route triggers notify.
CHANNEL = "tornado_routes"
_KEY = "changed"

_VERSIONS = (
    "SELECT task, version, payload_schema, max_attempts, visibility_timeout, timeout, description"
    " FROM tornado_task_versions"
)
_VERSIONS_MARK = "SELECT count(*), max(registered_at)::text FROM tornado_task_versions"


@dataclass(frozen=True)
class _Snapshot:
    routes: dict[str, RouteTable] = field(default_factory=dict)
    versions: dict[tuple[str, str], TaskVersion] = field(default_factory=dict)
    versions_mark: tuple[object, ...] = ()
    loaded_at: float = 0.0
    #: The version names of each task, in ``versions``' order (asked for every job routed to the newest).
    names: dict[str, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        names: dict[str, list[str]] = {}
        for task, version in self.versions:
            names.setdefault(task, []).append(version)
        object.__setattr__(self, "names", {task: tuple(found) for task, found in names.items()})


class PostgresRouteCache:
    """Routes and registered task versions of every task, in memory.

    Implements :class:`~tornado_core.versions.VersionCatalog`; pass :meth:`route`
    to :class:`~tornado_core.routing.Router`.

    Args:
        pool: Pool of the job-store database.
        refresh: Seconds between reloads while notifications arrive (a safety net).
        fallback: Seconds between reloads while the listening connection is down.
    """

    def __init__(self, pool: PostgresPool, *, refresh: float = 5.0, fallback: float = 0.5) -> None:
        self._pool = pool
        self._refresh = refresh
        self._fallback = fallback
        self._listener = QueueListener(lambda: pool.new_connection(autocommit=True), channel=CHANNEL)
        self._snapshot = _Snapshot()
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, *, wait: float = 5.0) -> bool:
        """Start the refresh thread and wait up to ``wait`` seconds for a first load.

        Returns:
            Whether the table is loaded (``False``: PostgreSQL is unreachable; it keeps trying).
        """
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="tornado-routes", daemon=True)
                self._thread.start()
        return self._loaded.wait(wait)

    def route(self, task: str) -> RouteTable | None:
        """The task's route as last loaded (``None``: no route, the newest version serves)."""
        if self._thread is None:
            self.start(wait=0)
        return self._snapshot.routes.get(task)

    def task_version(self, task: str, version: str) -> TaskVersion | None:
        """A registered version's contract as last loaded."""
        return self._snapshot.versions.get((task, version))

    def version_names(self, task: str) -> list[str]:
        """Registered versions of ``task`` as last loaded."""
        return list(self._snapshot.names.get(task, ()))

    @property
    def loaded_at(self) -> float:
        """Epoch seconds of the last successful load (0 before the first)."""
        return self._snapshot.loaded_at

    def reload(self) -> None:
        """Load now, in the caller's thread.

        Raises:
            StoreUnavailable: PostgreSQL cannot be reached.
        """
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {ROUTE_COLUMNS} FROM tornado_routes")
            routes = {row[0]: route_from_row(row) for row in cur.fetchall()}
            cur.execute(_VERSIONS_MARK)
            mark = tuple(cur.fetchone() or ())
            versions = self._snapshot.versions
            if mark != self._snapshot.versions_mark:
                cur.execute(_VERSIONS)
                versions = {(row[0], row[1]): version_from_row(row) for row in cur.fetchall()}
        self._snapshot = _Snapshot(routes, versions, mark, time.time())
        self._loaded.set()

    def close(self) -> None:
        """Stop the thread and its listening connection."""
        self._stop.set()
        self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            token = self._listener.generation(_KEY)
            try:
                self.reload()
            except (StoreUnavailable, psycopg2.Error) as exc:
                log.warning("route cache: could not reload (%s); routing with the last known table", exc)
            pause = self._refresh if self._listener.healthy and self._loaded.is_set() else self._fallback
            self._listener.wait(_KEY, token, pause)
