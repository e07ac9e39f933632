"""``tornado supervise``: keeps a task version's worker processes running.

One supervisor per (task, version) runs detached from the CLI that started it
(so it outlives it) and owns the version's folder under the process runtime's
state dir:

* ``spec.json`` — what to run (replicas, concurrency, grace); re-read every tick,
  so ``ensure`` scales by rewriting it;
* ``supervisor.lock`` — held (``flock``) for the supervisor's life: a second
  supervisor of the same folder exits at once;
* ``instances.json`` — its children (slot, pid, restarts), for the runtime's
  health checks and for reaping orphans after a supervisor crash;
* ``worker-N.alive`` — touched by worker N at every poll (readiness, liveness);
* ``logs/`` — one log per worker slot.

A child that exits is restarted (with a growing pause if it keeps dying at
start). SIGTERM is forwarded once to every child; the supervisor exits when
they have finished their in-flight jobs (or after the grace period).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from tornado_core.adapters.runtimes.process.cluster import ManagedProcess
from tornado_core.local_machine import is_alive

log = logging.getLogger("tornado.supervisor")

SPEC_FILE = "spec.json"
INSTANCES_FILE = "instances.json"
LOCK_FILE = "supervisor.lock"

#: A child that dies sooner than this after its start is crash-looping: wait before the next try.
_QUICK_DEATH = 2.0


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """What a supervisor runs (``spec.json``)."""

    task: str
    version: str
    replicas: int
    concurrency: int
    grace_period: float
    poll_wait: float = 1.0

    @classmethod
    def read(cls, directory: Path) -> WorkerSpec | None:
        """The spec in ``directory``, or ``None`` if it was removed (stop)."""
        try:
            return cls(**json.loads((directory / SPEC_FILE).read_text()))
        except FileNotFoundError:
            return None

    def write(self, directory: Path) -> None:
        """Replace ``spec.json`` atomically."""
        write_json(directory / SPEC_FILE, asdict(self))


@dataclass
class _Slot:
    process: ManagedProcess
    started: float
    spec: WorkerSpec
    restarts: int = 0
    retry_at: float = 0.0


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (readers never see half a file)."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


def read_instances(directory: Path) -> list[dict[str, Any]]:
    """The children a supervisor last recorded (empty if none)."""
    try:
        data = json.loads((directory / INSTANCES_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return []
    return data if isinstance(data, list) else []


def health_file(directory: Path, slot: int) -> Path:
    """The file worker ``slot`` touches at every poll."""
    return directory / f"worker-{slot}.alive"


class Supervisor:
    """Runs and restarts the workers of the version whose folder is ``directory``.

    Args:
        directory: The version's folder (with ``spec.json``).
        env: Environment of the workers (settings, ``PYTHONPATH``).
        tick: Seconds between checks.
    """

    def __init__(self, directory: Path, env: dict[str, str], *, tick: float = 0.5) -> None:
        self._dir = directory
        self._env = env
        self._tick = tick
        self._slots: dict[int, _Slot] = {}
        self._stopping = False
        self._recorded: list[dict[str, Any]] | None = None

    def run(self) -> int:
        """Supervise until SIGTERM; returns the exit code (0 also when another supervisor runs)."""
        with self._exclusive() as owned:
            if not owned:
                log.info("another supervisor owns %s; exiting", self._dir)
                return 0
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._request_stop)
            self._reap_orphans()
            spec = WorkerSpec.read(self._dir)
            while not self._stopping and spec is not None:
                self._converge(spec)
                time.sleep(self._tick)
                spec = WorkerSpec.read(self._dir)
            self._shutdown(spec)
        return 0

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        with (self._dir / LOCK_FILE).open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping the workers of %s", signal.Signals(signum).name, self._dir.name)
        self._stopping = True

    def _reap_orphans(self) -> None:
        """Workers left by a supervisor that died: stop them gracefully before starting new ones."""
        for entry in read_instances(self._dir):
            pid, marker = entry.get("pid"), str(health_file(self._dir, int(entry.get("slot", -1))))
            if isinstance(pid, int) and is_alive(pid, marker=marker):
                log.warning("stopping orphan worker %d of a previous supervisor", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _converge(self, spec: WorkerSpec) -> None:
        now = time.monotonic()
        for slot in range(spec.replicas):
            current = self._slots.get(slot)
            if current is None:
                self._slots[slot] = _Slot(self._start(spec, slot), now, spec)
            elif not current.process.alive():
                self._restart(spec, slot, current, now)
            elif replace(current.spec, replicas=spec.replicas) != spec:
                current.process.request_stop()  # new settings: it drains, then starts again with them
        for slot in [s for s in self._slots if s >= spec.replicas]:
            extra = self._slots[slot]
            extra.process.request_stop()
            if not extra.process.alive():
                del self._slots[slot]
        self._record()

    def _restart(self, spec: WorkerSpec, slot: int, current: _Slot, now: float) -> None:
        if current.retry_at == 0.0:
            code = current.process.popen.returncode if current.process.popen else None
            quick = now - current.started < _QUICK_DEATH
            pause = min(2.0 ** min(current.restarts, 5), 30.0) if quick else 0.0
            log.warning("worker %d exited with %s; restarting in %.0fs", slot, code, pause)
            current.retry_at = now + pause
        if now < current.retry_at:
            return
        self._slots[slot] = _Slot(self._start(spec, slot), now, spec, restarts=current.restarts + 1)

    def _start(self, spec: WorkerSpec, slot: int) -> ManagedProcess:
        health = health_file(self._dir, slot)
        health.unlink(missing_ok=True)  # not ready until it polls
        args = [
            "worker",
            "--task",
            spec.task,
            "--version",
            spec.version,
            "--concurrency",
            str(spec.concurrency),
            "--grace-period",
            str(spec.grace_period),
            "--poll-wait",
            str(spec.poll_wait),
            "--health-file",
            str(health),
        ]
        log_path = self._dir / "logs" / f"worker-{slot}.log"
        return ManagedProcess(f"worker-{slot}", args, self._env, log_path).start()

    def _record(self) -> None:
        entries = [
            {"slot": slot, "pid": s.process.pid, "started": s.started, "restarts": s.restarts}
            for slot, s in sorted(self._slots.items())
            if s.process.alive()
        ]
        if entries != self._recorded:
            write_json(self._dir / INSTANCES_FILE, entries)
            self._recorded = entries

    def _shutdown(self, spec: WorkerSpec | None) -> None:
        grace = (spec.grace_period if spec else 30.0) + 5.0
        for slot in self._slots.values():
            slot.process.request_stop()
        deadline = time.monotonic() + grace
        while any(s.process.alive() for s in self._slots.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for slot in self._slots.values():
            slot.process.kill()
        self._slots.clear()
        self._record()
        log.info("all workers of %s stopped", self._dir.name)
