"""Local ``tornado`` processes (API and workers) started, watched and stopped.

Used by the showcase, the end-to-end tests and the ``process`` runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tornado_core.errors import TornadoError
from tornado_core.local_machine import free_port, tornado_argv

__all__ = ["LocalCluster", "ManagedProcess", "ProcessError", "free_port"]


class ProcessError(TornadoError):
    """A local Tornado process did not start or stop as expected."""


@dataclass
class ManagedProcess:
    """One child process running ``tornado ...``.

    Attributes:
        name: Human label (``api``, ``worker demo.echo``).
        args: The command's arguments after ``tornado``.
        log_path: Where its stdout and stderr go.
    """

    name: str
    args: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _term_sent: bool = field(default=False, repr=False)

    def start(self) -> ManagedProcess:
        """Start it; returns self."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                tornado_argv(*self.args),
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """Its process id."""
        if self.popen is None:
            raise ProcessError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.popen is not None and self.popen.poll() is None

    def terminate(self, *, grace: float = 30.0) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
        if self.popen is None:
            return 0
        self.request_stop()
        try:
            return self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait()

    def request_stop(self) -> None:
        """Send SIGTERM once (a second one is never sent: draining is not rushed)."""
        if self.popen is not None and self.popen.poll() is None and not self._term_sent:
            self.popen.send_signal(signal.SIGTERM)
            self._term_sent = True

    def wait_ready(self, health_file: Path, timeout: float = 30.0) -> None:
        """Wait until the process touches ``health_file`` (a worker polling its queue)."""
        deadline = time.monotonic() + timeout
        while not health_file.exists():
            if not self.alive():
                raise ProcessError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.name} was not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, no questions asked (simulates a crash)."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The end of its log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """API and worker processes sharing one environment.

    Args:
        env: Environment of the children (the stack's settings and PATH).
        log_dir: Folder for their logs.
    """

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self._env = dict(env)
        self._log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def start_api(
        self, *, port: int | None = None, processes: int = 1, timeout: float = 30.0
    ) -> tuple[ManagedProcess, str]:
        """Start the API and wait until ``/healthz`` answers; returns it and its URL."""
        port = port or free_port()
        args = ["api", "--host", "127.0.0.1", "--port", str(port), "--processes", str(processes)]
        process = self._start("api", args)
        url = f"http://127.0.0.1:{port}"
        _wait_http(process, url + "/healthz", timeout)
        return process, url

    def start_worker(
        self,
        task: str,
        *,
        version: str | None = None,
        concurrency: int = 4,
        extra: Sequence[str] = (),
        wait_ready: bool = True,
    ) -> ManagedProcess:
        """Start a worker for one task version; by default wait until it polls its queue."""
        name = f"worker-{task}-{len(self.processes)}"
        health = self._log_dir / f"{name}.alive"
        args = [
            "worker",
            "--task",
            task,
            "--concurrency",
            str(concurrency),
            "--health-file",
            str(health),
            *extra,
        ]
        if version:
            args += ["--version", version]
        process = self._start(name, args)
        if wait_ready:
            process.wait_ready(health)
        return process

    def start_scheduler(self, *, extra: Sequence[str] = ()) -> ManagedProcess:
        """Start a scheduler (``tornado scheduler``): parked jobs and periodic schedules."""
        return self._start(f"scheduler-{len(self.processes)}", ["scheduler", *extra])

    def stop_all(self, *, grace: float = 30.0) -> dict[str, int]:
        """SIGTERM every process (workers drain); returns exit codes by name."""
        for process in self.processes:
            process.request_stop()
        return {p.name: p.terminate(grace=grace) for p in self.processes}

    def _start(self, name: str, args: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, args, self._env, self._log_dir / f"{name}.log").start()
        self.processes.append(process)
        return process


def _wait_http(process: ManagedProcess, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise ProcessError(f"{process.name} exited at start:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise ProcessError(f"{process.name} did not answer {url} within {timeout:.0f}s:\n{process.log_tail()}")
