"""What ``bench.peers`` shares between the systems it compares: results, databases, drain runs.

A *peer* (pgqueuer, procrastinate) is driven through the :class:`Peer` protocol:
its own database on the bench's PostgreSQL server, its own schema installed with
its own tooling, jobs pre-filled and enqueued with its own API, and its worker
run as a child process (``python -m bench._peers_<name> --dsn ...``) so that its
CPU can be read from /proc like the Tornado worker's.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from bench._common import (
    BenchStack,
    Child,
    CpuMeter,
    Stopwatch,
    child_env,
    log,
    pg_cursor,
    spawn,
    stack_groups,
)
from tornado_core.adapters.postgres.admin import DatabaseAdmin

#: Payload of every job (the same text the Tornado benches put in ``demo.echo``).
MESSAGE = "nota fiscal 35240112345678000190550010000012341000012345"


def message(index: int) -> str:
    """The payload text of job ``index``."""
    return f"{MESSAGE} {index}"


@dataclass(frozen=True)
class Result:
    """One line of the table.

    Attributes:
        system: ``tornado``, ``pgqueuer``, ...
        measure: What was measured (the same text for every system, so rows can be compared).
        count: Jobs.
        seconds: The measured interval.
        cpu: CPU seconds of the system's own processes (worker, producer, API + client).
        note: How it ran and what the clock measured.
    """

    system: str
    measure: str
    count: int
    seconds: float
    cpu: float
    note: str

    @property
    def rate(self) -> float:
        """Jobs per second."""
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per job."""
        return self.cpu / self.count * 1e6 if self.count else 0.0


class Peer(Protocol):
    """One job system compared with Tornado; every call blocks (async peers run their own loop)."""

    name: str

    def version(self) -> str:
        """Installed version."""
        ...

    def concurrency_note(self, concurrency: int) -> str:
        """What ``concurrency`` is mapped to in this system."""
        ...

    def install(self, dsn: str) -> None:
        """Create the system's tables in the (fresh) database ``dsn``, with its own installer."""
        ...

    def reset(self, dsn: str) -> None:
        """Empty every table of the system (jobs, logs, events, statistics)."""
        ...

    def prefill(self, dsn: str, count: int) -> None:
        """Queue ``count`` no-op jobs (not timed)."""
        ...

    def done(self, dsn: str) -> int:
        """Jobs whose completion is recorded in the database."""
        ...

    def statuses(self, dsn: str) -> dict[str, int]:
        """What the system's tables hold, by status (to check that every job ran once)."""
        ...

    def span(self, dsn: str) -> tuple[datetime | None, datetime | None]:
        """(first job started, last job completion recorded), both from the system's own tables."""
        ...

    def enqueue(self, dsn: str, count: int, batch: int, watch: Stopwatch) -> int:
        """Enqueue ``count`` jobs, ``batch`` per call (one commit each); ``watch`` times only the loop.

        Returns:
            The jobs found queued afterwards.
        """
        ...

    def enqueue_call(self, batch: int) -> str:
        """The API call :meth:`enqueue` makes for ``batch`` jobs."""
        ...

    def worker_module(self) -> str:
        """The module run as the worker child (``python -m <module> --dsn ... --concurrency ...``)."""
        ...


@contextlib.contextmanager
def peer_database(stack: BenchStack, peer: Peer) -> Iterator[str]:
    """A fresh database for ``peer`` on the bench's server (schema installed); dropped at the end."""
    admin = DatabaseAdmin(stack.info.database_url)
    name = f"bpeer_{peer.name}_{secrets.token_hex(3)}"
    dsn = admin.create(name)
    try:
        peer.install(dsn)
        yield dsn
    finally:
        admin.drop(name)


def quiet_server(dsns: Sequence[str]) -> None:
    """Leave the server as quiet for the next system as for the first: ``VACUUM ANALYZE`` each
    database (else the last system's writes wake an autovacuum worker during the next one's clock),
    then a ``CHECKPOINT`` (every system starts with the same full-page writes ahead of it)."""
    for dsn in dsns:
        with pg_cursor(dsn) as cur:
            cur.execute("VACUUM ANALYZE")
    with pg_cursor(dsns[0]) as cur:
        cur.execute("CHECKPOINT")


def _wait_ready(child: Child, ready: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s:\n{child.tail()}")
        time.sleep(0.05)


def drain(
    stack: BenchStack, peer: Peer, dsn: str, measure: str, count: int, concurrency: int, timeout: float
) -> Result:
    """One worker child of ``peer`` drains ``count`` pre-filled no-op jobs.

    The rate is ``count`` / (last completion recorded - first job started), both read
    from the peer's own tables once every job is done; CPU is metered from the moment
    the child says it is ready (imports and connections done) to the moment all are done.
    """
    peer.reset(dsn)
    peer.prefill(dsn, count)
    tag = f"{peer.name}-c{concurrency}-{secrets.token_hex(2)}"
    ready = stack.log_dir / f"{tag}.ready"
    args = [peer.worker_module(), "--dsn", dsn, "--concurrency", str(concurrency), "--ready-file", str(ready)]
    child = spawn(f"worker-{tag}", args, child_env(stack.info.env()), stack.log_dir)
    try:
        _wait_ready(child, ready)
        meter = CpuMeter({"worker": child.popen.pid, **stack_groups(stack)}).start()
        deadline = time.monotonic() + timeout
        while (finished := peer.done(dsn)) < count:
            if child.popen.poll() is not None:
                raise RuntimeError(f"{child.name} died:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{peer.name}: only {finished} of {count} done after {timeout:.0f}s")
            time.sleep(0.1)
        meter.stop()
    finally:
        code = child.stop(grace=15)
        if code not in (0, -15):
            log(f"warning: {child.name} exited with {code}:\n{child.tail()}")
    first, last = peer.span(dsn)
    if first is None or last is None:
        raise RuntimeError(f"{peer.name}: no start/finish timestamps in its tables")
    seconds = (last - first).total_seconds()
    worker_cpu = meter.used.get("worker", 0.0)
    note = (
        f"N={count}; {peer.concurrency_note(concurrency)}; first start to last completion {seconds:.2f}s "
        f"(its own tables' timestamps); cores: worker {meter.cores('worker'):.2f}, "
        f"{meter.stack_cores()}; postgres {meter.used.get('postgres', 0.0) / count * 1e6:.0f} us/job; "
        f"{peer.statuses(dsn)}"
    )
    return Result(peer.name, measure, count, seconds, worker_cpu, note)


def enqueue(stack: BenchStack, peer: Peer, dsn: str, measure: str, count: int, batch: int) -> Result:
    """``peer`` enqueues ``count`` jobs, ``batch`` per call, from this process (one thread, one loop)."""
    peer.reset(dsn)
    watch = Stopwatch(CpuMeter(stack_groups(stack)))
    stored = peer.enqueue(dsn, count, batch, watch)
    postgres = watch.cpu.used.get("postgres", 0.0)
    note = (
        f"N={count}; {peer.enqueue_call(batch)}, sequential, one commit per call; queued afterwards "
        f"{stored}; postgres {postgres / count * 1e6:.0f} us/job ({watch.cpu.stack_cores()} cores)"
    )
    return Result(peer.name, measure, count, watch.seconds, watch.self_cpu, note)
