"""The ``process`` runtime: supervised local worker processes (the embedded default).

Each task version gets a detached ``tornado supervise`` process (see
:mod:`tornado_core.adapters.runtimes.process.supervisor`) that runs and restarts its ``tornado
worker`` children. Everything is found from the version's folder under the
state dir (``.tornado/runtime/<task>/<version>/``), never from memory, so every
call is idempotent and works from a fresh CLI after a crash. A version's code
can come from its own directory (``Deployment.python_path`` is put first on
``PYTHONPATH``), so two versions of one task run side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tornado_core.adapters.runtimes.process.supervisor import (
    WorkerSpec,
    health_file,
    read_instances,
    write_json,
)
from tornado_core.errors import RuntimeFailure
from tornado_core.local_machine import (
    LocalProcessError,
    is_alive,
    spawn_detached,
    tail,
    terminate,
    tornado_argv,
)
from tornado_core.ports.runtime import Deployment, InstanceState, WorkerInstance
from tornado_core.ports.versions import TaskVersion
from tornado_core.settings import Settings
from tornado_core.versions import DESCRIBE_NOT_FOUND, describe_args

_SUPERVISOR_FILE = "supervisor.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ProcessRuntime:
    """Worker processes on this machine, supervised and found through the state dir.

    Args:
        settings: Settings the workers get (as ``TORNADO_*`` variables).
        state_dir: Folder of the runtime's state (pidfiles, health files, logs).
        base_env: Environment the workers start from (``PATH``, AWS credentials...);
            defaults to this process's.
        poll_wait: Long-poll seconds of the workers (a stop waits for the current poll).
        stale_after: Seconds after which a worker that stopped touching its health file is unhealthy.
    """

    name = "process"

    def __init__(
        self,
        settings: Settings,
        *,
        state_dir: Path,
        base_env: Mapping[str, str] | None = None,
        poll_wait: float = 1.0,
        stale_after: float = 10.0,
    ) -> None:
        self._settings = settings
        self._root = state_dir
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._poll_wait = poll_wait
        self._stale_after = stale_after

    def directory(self, task: str, version: str) -> Path:
        """The version's folder."""
        return self._root / _UNSAFE.sub("_", task) / _UNSAFE.sub("_", version)

    def ensure(self, deployment: Deployment) -> list[WorkerInstance]:
        """Write the wanted replicas and make sure one supervisor runs them (restarted if its env changed)."""
        folder = self.directory(deployment.task, deployment.version)
        env = self._env(deployment)
        digest = _digest(env)
        with self._guard(folder):
            WorkerSpec(
                task=deployment.task,
                version=deployment.version,
                replicas=deployment.replicas,
                concurrency=deployment.concurrency,
                grace_period=deployment.grace_period,
                poll_wait=self._poll_wait,
            ).write(folder)
            running = self._supervisor(folder)
            if running is not None and running.get("digest") != digest:
                self._terminate(folder, running, deployment.grace_period)
                running = None
            if running is None:
                self._spawn(folder, env, digest)
        return self.instances(deployment.task, deployment.version)

    def instances(self, task: str, version: str) -> list[WorkerInstance]:
        """The version's worker processes with their health."""
        folder = self.directory(task, version)
        supervised = self._supervisor(folder) is not None
        found = []
        for entry in read_instances(folder):
            slot, pid = int(entry["slot"]), int(entry["pid"])
            health = health_file(folder, slot)
            found.append(
                WorkerInstance(
                    instance_id=f"{task}@{version}/{slot}:{pid}",
                    task=task,
                    version=version,
                    state=self._health(pid, health) if supervised else InstanceState.STOPPED,
                    detail=f"pid {pid}, restarts {entry.get('restarts', 0)}",
                )
            )
        return found

    def wait_healthy(self, task: str, version: str, *, replicas: int, timeout: float) -> list[WorkerInstance]:
        """Wait until ``replicas`` workers poll their queue.

        Raises:
            RuntimeFailure: The supervisor died or ``timeout`` passed (with the workers' log tail).
        """
        folder = self.directory(task, version)
        deadline = time.monotonic() + timeout
        while True:
            found = self.instances(task, version)
            if sum(1 for i in found if i.state is InstanceState.HEALTHY) >= replicas:
                return found
            if self._supervisor(folder) is None:
                raise RuntimeFailure(
                    f"the supervisor of {task} {version} is not running:\n{self._logs(folder)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"{task} {version}: fewer than {replicas} healthy worker(s) after {timeout:g}s:\n"
                    + self._logs(folder)
                )
            time.sleep(0.1)

    def stop(self, task: str, version: str, *, grace_period: float) -> None:
        """SIGTERM the supervisor (it forwards it: in-flight jobs finish), then forget the version."""
        folder = self.directory(task, version)
        if not folder.exists():
            return
        with self._guard(folder):
            running = self._supervisor(folder)
            if running is not None:
                self._terminate(folder, running, grace_period)
            for entry in read_instances(folder):  # orphans of a supervisor that died
                marker = str(health_file(folder, int(entry["slot"])))
                with contextlib.suppress(LocalProcessError):
                    terminate(int(entry["pid"]), marker=marker, grace=grace_period + 5.0)
            for name in ("spec.json", "instances.json", _SUPERVISOR_FILE):
                (folder / name).unlink(missing_ok=True)

    def describe(self, deployment: Deployment) -> TaskVersion | None:
        """Read the version's contract by running ``tornado release describe`` with its code.

        Raises:
            RuntimeFailure: The command failed for another reason than a missing task.
        """
        argv = tornado_argv(*describe_args(deployment.task, deployment.version))
        result = subprocess.run(
            argv, env=self._env(deployment), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode == DESCRIBE_NOT_FOUND:
            return None
        if result.returncode != 0:
            raise RuntimeFailure(
                f"could not describe {deployment.task} {deployment.version}: {result.stderr}"
            )
        return TaskVersion.from_json(result.stdout)

    # -- helpers ------------------------------------------------------------------------

    def _env(self, deployment: Deployment) -> dict[str, str]:
        env = {**self._base_env, **self._settings.as_env(), **deployment.env}
        if deployment.python_path:
            paths = [str(Path(deployment.python_path).resolve()), self._base_env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return env

    @contextlib.contextmanager
    def _guard(self, folder: Path) -> Iterator[None]:
        """Serialise ensure/stop of one version across processes."""
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        with (folder / "ensure.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _supervisor(self, folder: Path) -> dict[str, object] | None:
        try:
            data = json.loads((folder / _SUPERVISOR_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        pid = data.get("pid")
        return data if isinstance(pid, int) and is_alive(pid, marker=str(folder)) else None

    def _spawn(self, folder: Path, env: dict[str, str], digest: str) -> None:
        argv = tornado_argv("supervise", "--dir", str(folder))
        pid = spawn_detached(argv, log=folder / "logs" / "supervisor.log", env=env)
        write_json(folder / _SUPERVISOR_FILE, {"pid": pid, "digest": digest, "started": time.time()})

    def _terminate(self, folder: Path, running: dict[str, object], grace: float) -> None:
        pid = running.get("pid")
        if not isinstance(pid, int):
            return
        try:  # the supervisor waits grace + 5 s for its workers, then kills them
            terminate(pid, marker=str(folder), grace=grace + 15.0)
        except LocalProcessError as exc:
            raise RuntimeFailure(f"could not stop the supervisor {pid}: {exc}") from exc

    def _health(self, pid: int, health: Path) -> InstanceState:
        if not is_alive(pid, marker=str(health)):
            return InstanceState.UNHEALTHY
        try:
            age = time.time() - health.stat().st_mtime
        except FileNotFoundError:
            return InstanceState.STARTING
        return InstanceState.HEALTHY if age <= self._stale_after else InstanceState.UNHEALTHY

    def _logs(self, folder: Path) -> str:
        parts = [f"--- {log} ---\n{tail(log)}" for log in sorted((folder / "logs").glob("*.log"))]
        return "\n".join(parts) or "(no logs)"


def _digest(env: dict[str, str]) -> str:
    """What in a supervisor's environment matters to its workers (not the caller's shell noise)."""
    relevant = {k: v for k, v in env.items() if k.startswith(("TORNADO_", "AWS_")) or k == "PYTHONPATH"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
