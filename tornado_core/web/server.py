"""Running the API: one process or a pre-forked group, with a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from types import FrameType

from tornado.netutil import bind_sockets

from tornado_core.process_tuning import settle_long_running_process
from tornado_core.producer.submission import VersionResolver
from tornado_core.services import Services
from tornado_core.versions import VersionCatalog
from tornado_core.web.app import make_app
from tornado_core.web.connections import CappedHTTPServer, connection_cap, raise_open_files_limit
from tornado_core.web.console.context import ConsoleParts

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiParts:
    """What one API process serves with, when a factory builds it per process."""

    services: Services
    resolve_version: VersionResolver | None = None
    catalog: VersionCatalog | None = None
    console: ConsoleParts | None = None


ServicesSource = Services | Callable[[], Services | ApiParts]


def serve(
    services: ServicesSource,
    *,
    host: str = "127.0.0.1",
    port: int,
    processes: int = 1,
    grace: float = 25.0,
    resolve_version: VersionResolver | None = None,
    catalog: VersionCatalog | None = None,
    console: ConsoleParts | None = None,
) -> None:
    """Serve the API until SIGTERM or SIGINT; blocks.

    On a stop signal the listening socket closes, requests in flight get up to
    ``grace`` seconds to finish, pending queued-job rows are flushed, then it returns.

    Args:
        services: The services, or a factory called in each process (returning the
            services, or :class:`ApiParts` with their routing). With
            ``processes != 1`` pass a factory, so that no connection or thread
            is shared across ``fork``.
        host: Interface to listen on.
        port: TCP port (0 picks a free one, logged at startup).
        processes: Worker processes sharing the socket; 0 means one per CPU.
            The parent forwards SIGTERM/SIGINT to them and restarts crashed ones.
        grace: Seconds in-flight requests may take after a stop signal.
        resolve_version: Routing ``(task, tenant, job_id) -> version`` (see :func:`make_app`).
        catalog: Versions registered by releases (see :func:`make_app`).
        console: The operations console's parts, served under ``/console`` (see :func:`make_app`);
            with ``processes != 1`` the factory's :class:`ApiParts` carries each process's own.
    """
    open_files = raise_open_files_limit()  # before the fork: the children inherit it
    sockets = bind_sockets(port, host)
    if processes != 1:
        _prefork(processes if processes > 0 else (os.cpu_count() or 1))
    built = services if isinstance(services, Services) else services()
    if isinstance(built, ApiParts):
        resolve_version, catalog, console = built.resolve_version, built.catalog, built.console
        built = built.services
    cap = connection_cap(built.settings.max_connections, open_files)
    share = 1.0 / (processes if processes > 0 else (os.cpu_count() or 1))
    serving = _serve(
        built,
        sockets,
        grace,
        resolve_version,
        catalog,
        max_connections=cap,
        quota_share=share,
        console=console,
    )
    asyncio.run(serving)


async def _serve(
    services: Services,
    sockets: list[socket.socket],
    grace: float,
    resolve_version: VersionResolver | None,
    catalog: VersionCatalog | None = None,
    *,
    max_connections: int = 0,
    quota_share: float = 1.0,
    console: ConsoleParts | None = None,
) -> None:
    app = make_app(
        services, resolve_version=resolve_version, catalog=catalog, quota_share=quota_share, console=console
    )
    server = CappedHTTPServer(app, max_connections=max_connections, **app.http_server_options())
    server.add_sockets(sockets)
    settle_long_running_process()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    for sock in sockets:
        _log.info(
            "tornado API (pid %d) listening on %s, at most %d connections",
            os.getpid(), sock.getsockname(), max_connections,
        )  # fmt: skip
    await stop.wait()
    _log.info("stopping: no new connections, waiting up to %gs for %d requests", grace, app.api.in_flight)
    server.stop()
    deadline = loop.time() + grace
    while app.api.in_flight > 0 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    with suppress(TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), timeout=5.0)
    await app.aclose()


def _prefork(count: int) -> None:
    """Fork ``count`` children and return in each; the parent supervises and never returns."""
    children: dict[int, float] = {}
    for _ in range(count):
        if _spawn(children):
            return
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None or stopping or os.waitstatus_to_exitcode(status) == 0:
            continue
        _log.warning(
            "API process %d exited with status %d; restarting it", pid, os.waitstatus_to_exitcode(status)
        )
        if time.monotonic() - started < 1.0:
            time.sleep(1.0)  # do not spin on a process that dies at startup
        if _spawn(children):
            return
    sys.exit(0)


def _spawn(children: dict[int, float]) -> bool:
    """Fork one child; True in the child, False in the parent."""
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        return True
    children[pid] = time.monotonic()
    return False
