"""A private Docker engine: Debian's ``dockerd`` started by the project, like the devstack.

The engine keeps everything under ``<state dir>/docker`` (data root, exec root,
socket, pid file, log), listens only on a unix socket there, and touches no
host networking: ``--iptables=false --ip-masq=false --bridge=none``. Containers
and builds therefore use ``network_mode="host"`` and reach the local PostgreSQL
and SQS/S3 endpoint on 127.0.0.1. ``DOCKER_HOST`` (see :meth:`DockerEngine.env`)
points the docker SDK and CLI at it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from tornado_core.errors import RuntimeFailure
from tornado_core.local_machine import (
    LocalProcessError,
    default_state_dir,
    is_alive,
    locked,
    spawn_detached,
    tail,
    terminate,
    wait_until,
)

#: Seconds the daemon may take to answer on its socket after start.
START_TIMEOUT = 60.0
#: Seconds the daemon gets to stop its containers and exit on SIGTERM.
STOP_GRACE = 60.0
#: Longest unix socket path (``sun_path``) Linux accepts, terminator excluded.
_SUN_PATH_MAX = 107
#: The containerd socket the daemon creates inside its exec root.
_CONTAINERD_SOCKET = "containerd/containerd.sock"


def connect(docker_host: str, *, timeout: int = 120) -> Any:
    """A docker SDK client (``docker.DockerClient``) of the engine at ``docker_host``.

    Args:
        docker_host: E.g. ``unix:///path/docker.sock`` (a ``DOCKER_HOST`` value).
        timeout: HTTP timeout in seconds of each API call.
    """
    return docker.DockerClient(base_url=docker_host, timeout=timeout)


def default_docker_host(env: Mapping[str, str]) -> str | None:
    """``$DOCKER_HOST``, else the project's own engine if it runs, else ``None`` (the SDK's default).

    Args:
        env: Usually ``os.environ`` (``DOCKER_HOST``, ``TORNADO_STATE_DIR``).
    """
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    engine = DockerEngine(default_state_dir(dict(env)))
    return engine.docker_host if engine.socket.is_socket() else None


class DockerEngineError(RuntimeFailure):
    """The private Docker engine is not installed or did not start or stop."""


@dataclass(frozen=True, kw_only=True)
class EngineStatus:
    """What runs right now."""

    state_dir: Path
    running: bool
    pid: int | None
    socket: Path
    version: str | None = None


class DockerEngine:
    """``dockerd`` as a background daemon with its state in ``state_dir/docker``.

    Every method is safe to repeat and to call from several processes at once
    (a file lock serializes ``up`` and ``down``). The daemon outlives the
    process that started it.

    Args:
        state_dir: The project's state folder (``./.tornado`` by default).
        dockerd: The daemon binary; found on ``PATH`` (or ``/usr/sbin``) if omitted.
    """

    def __init__(self, state_dir: Path, *, dockerd: str | None = None) -> None:
        self.root = state_dir.resolve() / "docker"
        self._dockerd = dockerd

    @property
    def socket(self) -> Path:
        """The daemon's API socket."""
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        """``DOCKER_HOST`` value for the SDK and the CLI."""
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Environment variables that point docker clients at this engine."""
        return {"DOCKER_HOST": self.docker_host}

    def client(self, *, timeout: int = 120) -> Any:
        """A docker SDK client for this engine (``docker.DockerClient``).

        Args:
            timeout: HTTP timeout in seconds of each API call.
        """
        return connect(self.docker_host, timeout=timeout)

    def up(self) -> str:
        """Start the daemon unless it runs (idempotent); returns ``DOCKER_HOST``.

        Raises:
            DockerEngineError: ``dockerd`` is missing or did not come up.
        """
        with locked(self.root):
            if not self._answers(self._pid()):
                self._start()
        return self.docker_host

    def down(self) -> None:
        """Stop the daemon (it stops its containers first); images and data are kept."""
        with locked(self.root):
            pid = self._pid()
            try:
                terminate(pid, marker=self.docker_host, grace=STOP_GRACE)
            except LocalProcessError as exc:
                raise DockerEngineError(f"dockerd (pid {pid}) did not stop: {exc}") from exc
            self._pid_file.unlink(missing_ok=True)
            self._unmount_leftovers()

    def status(self) -> EngineStatus:
        """Whether the daemon runs and answers, with its pid and version."""
        pid = self._pid()
        version = self._version() if is_alive(pid, marker=self.docker_host) else None
        return EngineStatus(
            state_dir=self.root.parent,
            running=version is not None,
            pid=pid if version is not None else None,
            socket=self.socket,
            version=version,
        )

    @property
    def log_file(self) -> Path:
        """Where the daemon's output goes."""
        return self.root / "dockerd.log"

    @property
    def _pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    def _exec_root(self) -> Path:
        """``root/exec`` unless its containerd socket path would be too long for Linux."""
        preferred = self.root / "exec"
        if len(str(preferred / _CONTAINERD_SOCKET)) <= _SUN_PATH_MAX:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/run") / f"tornado-docker-{digest}"

    def _binary(self) -> str:
        found = self._dockerd or shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/sbin")
        if not found or not os.access(found, os.X_OK):
            raise DockerEngineError(
                "dockerd is not installed; install Debian's engine with "
                "`apt-get install docker.io iptables` (as root; `.ci/bootstrap` does it)"
            )
        return found

    def _start(self) -> None:
        if len(str(self.socket)) > _SUN_PATH_MAX:
            raise DockerEngineError(f"state dir path too long for a unix socket: {self.socket}")
        binary = self._binary()
        for path in (self.root / "data", self._exec_root()):
            path.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        argv = [
            binary,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self._exec_root()),
            "-H", self.docker_host,
            "--pidfile", str(self._pid_file),
            "--iptables=false", "--ip-masq=false", "--bridge=none",
            "--log-level=warn",
        ]  # fmt: skip
        pid = spawn_detached(argv, log=self.log_file, cwd=self.root)
        up = wait_until(
            lambda: self._version() is not None or not is_alive(pid), timeout=START_TIMEOUT, interval=0.1
        )
        if not (up and is_alive(pid)):
            terminate(pid, grace=5.0)
            raise DockerEngineError(
                f"dockerd did not start (is this machine able to run containers?)\n"
                f"--- {self.log_file} ---\n{tail(self.log_file)}"
            )
        self._pid_file.write_text(f"{pid}\n")

    def _unmount_leftovers(self) -> None:
        """Unmount what a stopped dockerd leaves mounted in its folders (``netns/default``, data root)."""
        inside = (f"{self.root}/", f"{self._exec_root()}/")
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return
        points = [line.split()[4].replace("\\040", " ") for line in lines if len(line.split()) > 4]
        for point in sorted((p for p in points if p.startswith(inside)), key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)

    def _pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _answers(self, pid: int | None) -> bool:
        return is_alive(pid, marker=self.docker_host) and self._version() is not None

    def _version(self) -> str | None:
        if not self.socket.exists():
            return None
        try:
            client = connect(self.docker_host, timeout=5)
            try:
                return str(client.version().get("Version", "?"))
            finally:
                client.close()
        except (docker.errors.DockerException, OSError):
            return None
