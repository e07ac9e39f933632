"""Shared plumbing of the benchmarks: the local stack, child processes, CPU accounting, tables.

Every benchmark starts (or reuses) the local stack, measures Tornado and a
baseline in the same run, prints a table and stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg2.extensions import cursor as Cursor

from tornado_core.adapters.postgres.pool import connect
from tornado_core.bootstrap import build_services
from tornado_core.devstack import DevStack, StackInfo
from tornado_core.local_machine import free_port
from tornado_core.naming import queue_spec
from tornado_core.ports.queue import QueueSpec
from tornado_core.producer.submission import PreparedJob, Submitter
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token

REPO_ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("postgres", "sqs")
ECHO = "demo.echo"
#: What the benchmarks post to ``/v1/jobs``.
ECHO_BODY = json.dumps(
    {"task": ECHO, "payload": {"message": "nota fiscal 35240112345678000190550010000012341000012345"}}
)


# --------------------------------------------------------------------------- stack


def python_path() -> str:
    """``PYTHONPATH`` of child processes: the repository first, then ours."""
    return os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))


def child_env(stack_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """Our environment without TORNADO_*, plus the stack's, :func:`python_path` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_")}
    env.update(stack_env)
    env["PYTHONPATH"] = python_path()
    env.update(extra)
    return env


@dataclass
class BenchStack:
    """The running local stack and what the benchmarks need from it."""

    info: StackInfo
    state_dir: Path
    log_dir: Path
    _closers: list[object] = field(default_factory=list)

    def env(self, backend: str, prefix: str) -> dict[str, str]:
        """Environment of child processes: ours without TORNADO_*, plus the stack's."""
        return child_env(
            self.info.env(), TORNADO_QUEUE=backend, TORNADO_QUEUE_PREFIX=prefix, TORNADO_LOG_LEVEL="WARNING"
        )

    def settings(self, backend: str, prefix: str) -> Settings:
        """Settings of this process for one backend and queue prefix."""
        return Settings.load(self.env(backend, prefix))

    @contextlib.contextmanager
    def services(self, backend: str, prefix: str, *, pool_size: int = 16) -> Iterator[Services]:
        """Services of this process (closed at the end)."""
        services, close = build_services(self.settings(backend, prefix), pool_size=pool_size)
        try:
            yield services
        finally:
            # build_services does not stop the PostgreSQL queue's LISTEN thread; do it here.
            stop_listener = getattr(services.queue, "close", None)
            if callable(stop_listener):
                stop_listener()
            close()


def unique(tag: str) -> str:
    """A short unique name, e.g. ``b-api-3f9a2c``, for queue prefixes and tenants."""
    return f"b{tag}{secrets.token_hex(3)}"


def new_tenant(services: Services, tag: str) -> tuple[str, str]:
    """Create a tenant; returns ``(name, token)``."""
    name = unique(tag)
    token = new_token()
    services.tenants.create(name, hash_token(token))
    return name, token


@contextlib.contextmanager
def local_stack() -> Iterator[BenchStack]:
    """The local stack: ``$TORNADO_STATE_DIR`` if set (left running if it was), else a temp one.

    A temp stack lives in /tmp (as root, PostgreSQL runs as an unprivileged user
    that must be able to enter it) and is stopped and removed at the end.
    """
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    reuse = os.environ.get("TORNADO_STATE_DIR")
    if reuse:
        state_dir = Path(reuse).expanduser().resolve()
        temp = False
    else:
        state_dir = Path(tempfile.mkdtemp(prefix="tornado-bench-"))
        state_dir.chmod(0o711)
        temp = True
    stack = DevStack(state_dir)
    was_running = (not temp) and stack.status().running
    started = time.monotonic()
    info = stack.up()
    log(
        f"local stack {'reused' if was_running else 'started'} in {state_dir} "
        f"({time.monotonic() - started:.1f}s)"
    )
    log_dir = Path(tempfile.mkdtemp(prefix="tornado-bench-logs-"))
    try:
        yield BenchStack(info=info, state_dir=state_dir, log_dir=log_dir)
    finally:
        if not was_running:
            stack.down()
        if temp:
            shutil.rmtree(state_dir, ignore_errors=True)
        if os.environ.get("BENCH_KEEP_LOGS"):
            log(f"process logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


@contextlib.contextmanager
def stack_from_args(stack: BenchStack | None) -> Iterator[BenchStack]:
    """Use ``stack`` if given (``python -m bench`` shares one), else start one."""
    if stack is not None:
        yield stack
        return
    with local_stack() as own:
        yield own


@contextlib.contextmanager
def pg_cursor(dsn: str) -> Iterator[Cursor]:
    """A cursor on a connection of its own (autocommit), closed at the end."""
    conn = connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def pg_count(dsn: str, sql: str, params: Sequence[Any] = ()) -> int:
    """The number one ``SELECT count(*) ...`` answers (0 if it answers no row)."""
    with pg_cursor(dsn) as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- command line


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line of a benchmark, described by its module docstring."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def bench_args(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Add ``--backend``, parse, and return the options given as the keyword arguments of ``run()``.

    Each option's ``dest`` is the name of a ``run()`` argument; options left unset
    (``None``) are left out, so that ``run()``'s defaults apply.
    """
    parser.add_argument(
        "--backend", dest="backends", action="append", choices=BACKENDS, help="only this backend (repeatable)"
    )
    return {name: value for name, value in vars(parser.parse_args()).items() if value is not None}


# --------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A child process of a benchmark (own session, so SIGTERM reaches its group)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, grace: float = 20.0) -> int:
        """SIGTERM its process group, wait, SIGKILL if needed; returns the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        return int(self.popen.returncode)

    def tail(self, lines: int = 20) -> str:
        """The end of its log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, module_args: Sequence[str], env: dict[str, str], log_dir: Path) -> Child:
    """Run ``python -m <module_args>`` in its own session, output to a log file."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    return Child(name, popen, log_path)


def wait_http(child: Child, url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers (any status), or fail with the child's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    child.stop()
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f}s:\n{child.tail()}")


@dataclass(frozen=True)
class Server:
    """A running HTTP server child: its URL and pid (for CPU accounting)."""

    url: str
    pid: int


@contextlib.contextmanager
def api_server(stack: BenchStack, backend: str, prefix: str, *, processes: int = 1) -> Iterator[Server]:
    """The Tornado API on a free port: the real ``tornado api --processes N`` command
    (``python -m tornado_cli api``); its processes share the port."""
    port = free_port()
    args = ["tornado_cli", "api", "--host", "127.0.0.1", "--port", str(port), "--processes", str(processes)]
    child = spawn(f"api-{backend}-{processes}p-{port}", args, stack.env(backend, prefix), stack.log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, url + "/healthz")
        yield Server(url, child.popen.pid)
    finally:
        code = child.stop()
        if code not in (0, -signal.SIGTERM):
            log(f"warning: {child.name} exited with {code}:\n{child.tail()}")


@contextlib.contextmanager
def hello_server(processes: int = 1) -> Iterator[Server]:
    """The trivial tornado POST handler (``bench._hello``); yields its URL."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = python_path()
    child = spawn(
        f"hello-{processes}p-{port}",
        ["bench._hello", "--port", str(port), "--processes", str(processes)],
        env,
        Path(tempfile.gettempdir()),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, url + "/")
        yield Server(url, child.popen.pid)
    finally:
        child.stop()
        with contextlib.suppress(OSError):
            child.log_path.unlink()


def warm_up(url: str, token: str, posts: int = 3) -> None:
    """POST demo.echo a few times: loads the token cache, opens pool connections, starts executor threads."""
    for _ in range(posts):
        request = urllib.request.Request(
            url + "/v1/jobs",
            data=ECHO_BODY.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202, answer.status


# --------------------------------------------------------------------------- output


def log(message: str) -> None:
    """Progress line on stderr (tables go to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    """One line describing where and when this ran."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )


@dataclass(frozen=True)
class Row:
    """One line of a result table."""

    backend: str
    measure: str
    tornado: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    note: str = ""


def backend_label(backend: str) -> str:
    """The backend as the tables name it (``sqs (moto)``: the local SQS is moto)."""
    return "postgres" if backend == "postgres" else "sqs (moto)"


def rows_per_backend(
    stack: BenchStack | None, backends: Sequence[str], rows_of: Callable[[BenchStack, str], list[Row]]
) -> list[Row]:
    """``rows_of(stack, backend)`` for each backend asked for (postgres first), on ``stack`` or a new one."""
    with stack_from_args(stack) as bench_stack:
        return [row for backend in BACKENDS if backend in backends for row in rows_of(bench_stack, backend)]


def ratio(value: float, base: float) -> str:
    """``value / base`` with two decimals (``n/a`` if the baseline is zero)."""
    return f"{value / base:.2f}" if base > 0 else "n/a"


def print_table(title: str, rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """Print (and return) a Markdown table with the standard columns and footnotes."""
    header = ("backend", "measure", "tornado", "baseline", "ratio", "target", "note")
    cells = [(r.backend, r.measure, r.tornado, r.baseline, r.ratio, r.target, r.note) for r in rows]
    return print_grid(title, header, cells, notes)


def print_grid(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> str:
    """Print (and return) a Markdown table with a title, the machine line and footnotes."""
    cells = [tuple(header)] + [tuple(row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [
        f"\n### {title}",
        f"_{machine()}_",
        "",
        line(cells[0]),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += [line(row) for row in cells[1:]]
    if notes:
        out.append("")
        out += [f"- {n}" for n in notes]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` (0..100) percentile of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


# --------------------------------------------------------------------------- queues


def echo_spec(services: Services) -> QueueSpec:
    """The queue (and DLQ) of ``demo.echo`` under the services' queue prefix."""
    return queue_spec(services.settings.queue_prefix, services.registry.get(ECHO))


def reset_queue(services: Services, spec: QueueSpec) -> None:
    """Empty a queue by deleting and re-creating it (moto refuses a second purge within 60 s)."""
    services.queue.delete_queue(spec.name)
    services.queue.ensure_queue(spec)


def drop_queues(services: Services) -> None:
    """Delete every task queue (and DLQ) under the services' prefix; errors are ignored."""
    for task_spec in services.registry:
        spec = queue_spec(services.settings.queue_prefix, task_spec)
        for name in (spec.name, spec.dead_letter_name):
            with contextlib.suppress(Exception):
                services.queue.delete_queue(name)


def prepared_jobs(services: Services, tenant: str, count: int) -> list[PreparedJob]:
    """``count`` prepared demo.echo jobs (envelope + queue), as the API prepares them."""
    submitter = Submitter(
        registry=services.registry,
        job_ids=services.job_ids,
        objects=services.objects,
        queue_prefix=services.settings.queue_prefix,
        claim_check_bytes=services.settings.claim_check_bytes,
    )
    return [
        submitter.prepare(task=ECHO, tenant=tenant, payload={"message": f"nota fiscal {i}"})
        for i in range(count)
    ]


@dataclass(frozen=True)
class Scope:
    """What one measured run has to itself: a queue prefix, its services, a tenant, the demo.echo queue."""

    prefix: str
    services: Services
    tenant: str
    token: str
    spec: QueueSpec

    @property
    def dsn(self) -> str:
        """The job store's database."""
        return self.services.settings.database_url

    def stored(self) -> int:
        """Messages in the demo.echo queue now."""
        return self.services.queue.depth(self.spec.name).total


@contextlib.contextmanager
def scope(stack: BenchStack, backend: str, tag: str, *, pool_size: int = 16) -> Iterator[Scope]:
    """A fresh queue prefix and tenant (both ``unique(tag)``); drops the prefix's queues at the end."""
    prefix = unique(tag)
    with stack.services(backend, prefix, pool_size=pool_size) as services:
        tenant, token = new_tenant(services, tag)
        try:
            yield Scope(prefix, services, tenant, token, echo_spec(services))
        finally:
            drop_queues(services)


# --------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int, *, reaped: bool = False) -> float:
    """CPU seconds (user + system) used so far by live process ``root`` and its descendants.

    Descendants are found by parent pid, not process group: PostgreSQL backends
    call ``setsid()``, pre-forked API processes do not. With ``reaped``, each
    process also counts the CPU of the children it has waited for.
    """
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    last = 15 if reaped else 13  # utime, stime[, cutime, cstime]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(v) for v in fields[11:last])
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / _TICK


def process_cpu() -> float:
    """CPU seconds (user + system) this process used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds used by named process trees (by root pid) between :meth:`start` and :meth:`stop`."""

    groups: dict[str, int | None]
    used: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    _start: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0
    _machine0: tuple[float, float] = (0.0, 0.0)
    machine_busy: float = 0.0

    def start(self) -> CpuMeter:
        self._start = {n: tree_cpu(g) for n, g in self.groups.items() if g is not None}
        self._machine0 = _machine_times()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        self.wall = time.monotonic() - self._t0
        busy1, total1 = _machine_times()
        busy0, total0 = self._machine0
        self.machine_busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
        self.used = {n: tree_cpu(self.groups[n] or 0) - s for n, s in self._start.items()}
        return self

    def cores(self, name: str) -> float:
        """Average cores ``name`` kept busy."""
        return self.used.get(name, 0.0) / self.wall if self.wall > 0 else 0.0

    def stack_cores(self) -> str:
        """Cores the stack's servers kept busy, e.g. ``postgres 0.41, moto 0.02`` (those that ran)."""
        return ", ".join(f"{n} {self.cores(n):.2f}" for n in ("postgres", "moto") if self.used.get(n))


def _machine_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def stack_groups(stack: BenchStack) -> dict[str, int | None]:
    """Root pids of the stack's PostgreSQL and moto servers."""
    status = DevStack(stack.state_dir).status()
    return {"postgres": status.postgres_pid, "moto": status.moto_pid}


@dataclass
class Stopwatch:
    """Wall seconds, this process's CPU seconds and ``cpu``'s trees, from :meth:`start` to :meth:`stop`."""

    cpu: CpuMeter
    started: float = 0.0  # perf_counter() at start
    seconds: float = 0.0
    self_cpu: float = 0.0
    _cpu0: float = 0.0

    def start(self) -> Stopwatch:
        self.cpu.start()
        self._cpu0, self.started = process_cpu(), time.perf_counter()
        return self

    def stop(self) -> Stopwatch:
        self.seconds, self.self_cpu = time.perf_counter() - self.started, process_cpu() - self._cpu0
        self.cpu.stop()
        return self


def run_gated(threads: Sequence[threading.Thread], gate: threading.Barrier, watch: Stopwatch) -> Stopwatch:
    """Start ``threads``, release them together through ``gate`` (one party more: this thread).

    ``watch`` runs from the release to the last join.
    """
    for thread in threads:
        thread.start()
    gate.wait()
    watch.start()
    for thread in threads:
        thread.join()
    return watch.stop()


@dataclass
class ClientRun:
    """A baseline run in this process: ``count`` messages in ``seconds``, ``self_cpu`` CPU seconds of ours."""

    count: int
    seconds: float
    cpu: CpuMeter
    self_cpu: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def cores_note(self, client: str) -> str:
        """``cores used: <client> 0.93, postgres 0.41``."""
        return f"cores used: {client} {self.self_cpu / self.seconds:.2f}, {self.cpu.stack_cores()}"
