"""The brokers of ``bench.celery_peers`` beyond the dev stack, and how each one's calls are counted.

* Redis: a ``redis-server`` on 127.0.0.1 (``tornado_core.devstack.brokers.LocalRedis``: a free
  port, a temp folder, no persistence, as the tests start it); its calls from ``INFO
  commandstats`` deltas (every command executed, those inside Lua scripts included) and from
  ``MONITOR`` (the clients' round trips: a script call is one, a MULTI/EXEC pipeline is one).
* SQS (moto): moto's own request recorder (``/moto-api/recorder/...``), by action.
* RabbitMQ: ``bench/_celery_rabbitmq.py``.
* PostgreSQL: ``pg_stat_statements`` (statements, BEGIN/COMMIT included) and
  ``pg_stat_database`` (commits) of the jobs database; the extension is loaded by restarting
  the bench's own temp stack with ``shared_preload_libraries`` (a reused stack is not touched).
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
import time
import urllib.request
from base64 import b64decode
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import parse_qs

import redis

from bench._common import BenchStack, log, pg_cursor
from tornado_core.devstack import DevStack
from tornado_core.devstack.brokers import LocalRedis

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Commands the counters themselves send (left out of the counts).
_OWN_COMMANDS = {"info", "monitor", "config", "ping", "flushdb", "hello", "client"}


class _Launcher(Protocol[T_co]):
    """A broker of ``tornado_core.devstack.brokers``."""

    def start(self) -> T_co: ...

    def stop(self) -> None: ...


@contextlib.contextmanager
def started(launcher: Callable[[Path], _Launcher[T]], name: str) -> Iterator[T]:
    """A broker started in a temp folder: what its ``start()`` returns; stopped, folder removed, at the end.

    Raises:
        BrokerUnavailable: The server is not installed or did not start.
    """
    with tempfile.TemporaryDirectory(prefix=f"tornado-bench-{name}-") as folder:
        server = launcher(Path(folder))
        found = server.start()
        try:
            yield found
        finally:
            server.stop()


@dataclass(frozen=True)
class RedisServer:
    """A running ``redis-server``: its URL."""

    url: str

    def client(self) -> redis.Redis:
        """A client of it."""
        return redis.Redis.from_url(self.url, socket_timeout=10)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """:class:`LocalRedis` for the run (see :func:`started`)."""
    with started(LocalRedis, "redis") as url:
        yield RedisServer(url)


@dataclass(frozen=True)
class Calls:
    """Calls one counter saw in a window."""

    total: int
    by_kind: dict[str, int]

    def top(self, count: int, jobs: int) -> str:
        """``evalsha 1.02, brpop 0.10`` per job: the ``count`` most frequent kinds."""
        ranked = sorted(self.by_kind.items(), key=lambda kv: -kv[1])[:count]
        return ", ".join(f"{kind} {calls / jobs:.2f}" for kind, calls in ranked)


class RedisCalls:
    """Client round trips (``MONITOR``) and commands executed (``INFO commandstats``), start to stop."""

    def __init__(self, server: RedisServer) -> None:
        self._server = server
        self._before: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._in_multi: set[bytes] = set()  # clients between MULTI and EXEC
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Snapshot the command statistics and start watching ``MONITOR``."""
        self._before = _commandstats(self._server.client())
        self._sent = Counter()
        self._in_multi.clear()
        self._stop.clear()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._monitor, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self) -> tuple[Calls, Calls]:
        """(client requests, commands executed) since :meth:`start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        executed = _commandstats(self._server.client())
        executed.subtract(self._before)
        executed = Counter({k: v for k, v in executed.items() if v > 0 and k not in _OWN_COMMANDS})
        sent = Counter({k: v for k, v in self._sent.items() if k not in _OWN_COMMANDS})
        return Calls(sum(sent.values()), dict(sent)), Calls(sum(executed.values()), dict(executed))

    def _monitor(self, ready: threading.Event) -> None:
        port = int(self._server.url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"MONITOR\r\n")
            buffered = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    ready.set()
                    continue
                if not chunk:
                    return
                ready.set()
                *lines, buffered = (buffered + chunk).split(b"\r\n")
                for line in lines:
                    self._count(line)

    def _count(self, line: bytes) -> None:
        """One line ``+1700000000.123 [0 127.0.0.1:5555] "EVALSHA" ...`` of ``MONITOR``.

        ``[0 lua]`` lines ran inside a script; a client's ``MULTI`` ... ``EXEC`` (a pipeline
        sent in one write) counts once, as ``multi/exec``.
        """
        stamp_and_client, _, rest = line.partition(b"] ")
        client = stamp_and_client.rpartition(b" ")[2]  # 127.0.0.1:5555, or lua
        if not rest or client == b"lua":
            return
        command = rest.split(b" ", 1)[0].strip(b'"').decode(errors="replace").lower()
        if command == "multi":
            self._in_multi.add(client)
            self._sent["multi/exec"] += 1
        elif command in ("exec", "discard"):
            self._in_multi.discard(client)
        elif client not in self._in_multi:
            self._sent[command] += 1


def _commandstats(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_").lower(): int(v["calls"]) for name, v in stats.items()})


class SqsCalls:
    """SQS requests moto received between start and stop, by action (moto's request recorder)."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint.rstrip("/")

    def start(self) -> None:
        """Empty the recording and start recording."""
        self._post("reset-recording")
        self._post("start-recording")

    def stop(self) -> Calls:
        """Stop recording; the SQS actions recorded."""
        self._post("stop-recording")
        with urllib.request.urlopen(
            f"{self._endpoint}/moto-api/recorder/download-recording", timeout=30
        ) as r:
            lines = r.read().decode().splitlines()
        actions = Counter(action for line in lines if (action := _sqs_action(json.loads(line))))
        self._post("reset-recording")
        return Calls(sum(actions.values()), dict(actions))

    def _post(self, what: str) -> None:
        request = urllib.request.Request(f"{self._endpoint}/moto-api/recorder/{what}", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass


def _sqs_action(entry: dict[str, object]) -> str | None:
    """The SQS action of one recorded request (JSON protocol's target, or the query protocol's Action)."""
    headers = {str(k).lower(): str(v) for k, v in dict(entry.get("headers") or {}).items()}  # type: ignore[call-overload]
    target = headers.get("x-amz-target", "")
    if target.startswith("AmazonSQS."):
        return target.removeprefix("AmazonSQS.")
    body = str(entry.get("body") or "")
    if entry.get("body_encoded"):
        body = b64decode(body).decode(errors="replace")
    action = parse_qs(body).get("Action") or parse_qs(str(entry.get("url", "")).partition("?")[2]).get(
        "Action"
    )
    return action[0] if action else None


class PgCalls:
    """Statements (``pg_stat_statements``, by query) and commits (``pg_stat_database``) of one database.

    Args:
        dsn: The database.
        statements: Whether ``pg_stat_statements`` is loaded (else statements read zero).
    """

    def __init__(self, dsn: str, *, statements: bool) -> None:
        self._dsn, self._statements = dsn, statements
        self._before: tuple[Counter[str], int] = (Counter(), 0)

    def start(self) -> None:
        """Snapshot the counters."""
        self._before = self._read()

    def stop(self) -> tuple[Calls, Calls]:
        """(statements by query, commits) since :meth:`start`; waits for the statistics to be flushed."""
        time.sleep(1.05)  # backends report pg_stat_database at most once a second
        statements, commits = self._read()
        statements.subtract(self._before[0])
        by_query = {query: calls for query, calls in statements.items() if calls > 0}
        return Calls(sum(by_query.values()), by_query), Calls(commits - self._before[1], {})

    def _read(self) -> tuple[Counter[str], int]:
        statements: Counter[str] = Counter()
        with pg_cursor(self._dsn) as cur:
            if self._statements:
                cur.execute(
                    "SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = current_database() AND s.query NOT LIKE '%%pg_stat_%%'"
                )
                for query, calls in cur.fetchall():
                    statements[_short(str(query))] += int(calls)
            cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            commits = int((cur.fetchone() or (0,))[0])
        return statements, commits


def _short(query: str) -> str:
    """The first words of a statement, e.g. ``UPDATE tornado_jobs SET``; a prepared one by its name."""
    words = query.split()
    if words[:1] == ["PREPARE"] and len(words) > 1:
        return f"EXECUTE {words[1]}"
    return " ".join(words[:4])[:60]


def load_pg_stat_statements(stack: BenchStack, *, own_stack: bool) -> bool:
    """Make ``pg_stat_statements`` available in the jobs database; False if it cannot be.

    On the bench's own temp stack, PostgreSQL is restarted once with the library preloaded;
    a stack given through ``TORNADO_STATE_DIR`` is used as it is.
    """
    dsn = stack.info.database_url
    with pg_cursor(dsn) as cur:
        cur.execute("SHOW shared_preload_libraries")
        loaded = "pg_stat_statements" in str((cur.fetchone() or ("",))[0])
        if not loaded and own_stack:
            cur.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    if not loaded and own_stack:
        devstack = DevStack(stack.state_dir)
        devstack.stop_postgres()
        devstack.start_postgres()
        loaded = True
        log("celery_peers: PostgreSQL restarted with pg_stat_statements preloaded")
    if loaded:
        with pg_cursor(dsn) as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return loaded
