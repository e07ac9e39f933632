"""Helpers of the release tests (and ``bench/releases.py``): steady HTTP load, worker processes."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado_core.client import ApiError, TornadoClient
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services

RELEASABLE = Path(__file__).resolve().parents[1] / "data" / "releasable"
TASK = "demo.release"


def code_of(version: str) -> list[str]:
    """``release deploy`` options loading ``demo.release`` VERSION from its own directory."""
    return ["--python-path", str(RELEASABLE / f"v{version[0]}"), "--tasks-module", "releasable"]


@dataclass(frozen=True)
class Submitted:
    """One accepted job: its id, the version it was routed to, when it was sent and answered."""

    job_id: str
    version: str
    sent: float
    answered: float


@dataclass
class SteadyLoad:
    """Submits ``demo.release`` jobs at ``rate`` per second over HTTP until stopped (open loop).

    Every answer is kept: accepted jobs in ``submitted``, anything else in ``failures``.
    """

    api_url: str
    token: str
    rate: float
    payload: Callable[[int], dict[str, Any]] = lambda n: {"n": n, "seconds": 0.02, "record_effect": True}
    threads: int = 4
    submitted: list[Submitted] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SteadyLoad:
        started = time.monotonic()
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, args=(started,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)

    def _run(self, started: float) -> None:
        client = TornadoClient(self.api_url, self.token, timeout=30)
        while not self._stop.is_set():
            with self._lock:
                n = next(self._counter)
            delay = started + n / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            sent = time.time()
            try:
                receipt = client.submit(TASK, self.payload(n))
            except ApiError as exc:
                self.failures.append(f"{exc.status} {exc}")
                continue
            self.submitted.append(Submitted(receipt["id"], receipt["version"], sent, time.time()))


def wait_all_done(services: Services, job_ids: list[str], *, timeout: float = 90.0) -> dict[str, JobRecord]:
    """Wait until every job is succeeded, dead or failed; returns their records."""
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    done: dict[str, JobRecord] = {}
    final = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.FAILED)
    while pending:
        for job_id in list(pending):
            record = services.jobs.get(job_id)
            if record is not None and record.status in final:
                done[job_id] = record
                pending.discard(job_id)
        if pending and time.monotonic() > deadline:
            sample = {j: (services.jobs.get(j) or "not recorded") for j in list(pending)[:3]}
            raise AssertionError(f"{len(pending)} job(s) not finished after {timeout:.0f}s, e.g. {sample}")
        time.sleep(0.2)
    return done


def worker_pids(state_dir: Path, version: str) -> list[int]:
    """Live ``tornado worker`` processes of a ``demo.release`` version started by the process runtime."""
    marker = str(state_dir / "runtime" / TASK / version)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if " worker " in cmdline and marker in cmdline and state not in ("Z", "X"):
            found.append(int(proc.name))
    return found
