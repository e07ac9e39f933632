"""Throwaway message brokers on 127.0.0.1 (a redis-server, a RabbitMQ node) for tests and benchmarks.

Each one lives in a folder its caller owns, listens on free ports of 127.0.0.1 only, keeps nothing
on disk worth keeping, and is stopped (with its Erlang port mapper, for RabbitMQ) by ``stop()``::

    redis = LocalRedis(folder / "redis")
    url = redis.start()        # redis://127.0.0.1:PORT/0
    ...
    redis.stop()

A server that is not installed or does not start raises :class:`BrokerUnavailable` with the reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import NamedTuple

from tornado_core.devstack.errors import DevStackError
from tornado_core.local_machine import free_port, port_open, tail, wait_until

#: Seconds a redis-server may take to answer PING.
REDIS_BOOT_SECONDS = 20.0
#: Seconds RabbitMQ (with its management plugin) may take to accept connections.
RABBITMQ_BOOT_SECONDS = 60.0
#: Debian's server script (not the ``/usr/sbin`` wrapper, which switches user).
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: The RabbitMQ node's one user (its password is random per node).
RABBITMQ_USER = "tornado"

_RABBITMQ_CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{port}
management.tcp.ip = 127.0.0.1
management.tcp.port = {management_port}
collect_statistics_interval = 50
consumer_timeout = 86400000
default_user = {user}
default_pass = {password}
loopback_users = none
log.console = false
log.file.level = warning
"""
#: Quorum queues report their counts on each tick, the management API keeps samples per second: short
#: intervals keep its numbers fresh (within about a second).
_RABBITMQ_ADVANCED = """[
  {rabbit, [{quorum_tick_interval, 50}]},
  {rabbitmq_management_agent, [{sample_retention_policies, [
    {global, [{605, 1}]}, {basic, [{605, 1}]}, {detailed, [{10, 1}]}]}]}
].
"""


class BrokerUnavailable(DevStackError):
    """A local broker is not installed or did not start (the message says why)."""


class RabbitMQUrls(NamedTuple):
    """Where a RabbitMQ node answers: AMQP and the management HTTP API (credentials in both)."""

    url: str
    management_url: str


class LocalRedis:
    """A ``redis-server`` on a free port of 127.0.0.1: no persistence, its files in ``folder``.

    Args:
        folder: Its working folder and log (created if missing; left in place).
        boot_seconds: How long it may take to answer.
    """

    def __init__(self, folder: Path, *, boot_seconds: float = REDIS_BOOT_SECONDS) -> None:
        self.folder = folder
        self.log_file = folder / "redis.log"
        self.port = 0
        self._boot_seconds = boot_seconds
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._server.pid if self._server is not None else None

    def start(self) -> str:
        """Start the server and wait until it answers ``PING``.

        Returns:
            Its URL, ``redis://127.0.0.1:PORT/0``.

        Raises:
            BrokerUnavailable: redis-server is not installed, exited, or did not answer in time.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise BrokerUnavailable("redis-server is not installed (apt-get install redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._server = _spawn([*argv, "--dir", str(self.folder)], self.log_file)
        server, port = self._server, self.port
        up = wait_until(lambda: server.poll() is not None or _redis_answers(port), timeout=self._boot_seconds)
        if server.poll() is not None or not up:
            code = server.returncode
            self.stop()
            reason = (
                f"exited {code}" if code is not None else f"did not answer within {self._boot_seconds:.0f} s"
            )
            raise BrokerUnavailable(f"redis-server on port {port} {reason}: {tail(self.log_file)}")
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 10 s); nothing if it is not running."""
        server, self._server = self._server, None
        if server is None:
            return
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


class LocalRabbitMQ:
    """A RabbitMQ node with its management plugin, every file in ``folder``, all ports on 127.0.0.1.

    The management API collects statistics every 50 ms, ``consumer_timeout`` is a day, quorum
    queues tick every 50 ms. The node's Erlang port mapper (epmd) and distribution port listen on
    127.0.0.1 only, on free ports of their own, and are stopped with it.

    Args:
        folder: Its state, configuration and logs (created if missing; left in place).
        server: The ``rabbitmq-server`` script to run.
        boot_seconds: How long it may take to accept connections.
    """

    def __init__(
        self, folder: Path, *, server: Path = RABBITMQ_SERVER, boot_seconds: float = RABBITMQ_BOOT_SECONDS
    ) -> None:
        self.folder = folder
        self.log_file = folder / "server.log"
        self.port = 0
        self.management_port = 0
        self._script, self._boot_seconds = server, boot_seconds
        self._server: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}

    @property
    def pid(self) -> int | None:
        """The node's pid (the leader of its process group) while it runs."""
        return self._server.pid if self._server is not None else None

    def start(self) -> RabbitMQUrls:
        """Start the node and wait until its management API and AMQP listener accept connections.

        Returns:
            ``amqp://tornado:PASSWORD@127.0.0.1:PORT//`` (vhost ``/``) and ``http://tornado:PASSWORD@127.0.0.1:MPORT``.

        Raises:
            BrokerUnavailable: rabbitmq-server is not installed, exited, or did not open its ports in time.
        """
        if not os.access(self._script, os.X_OK):
            raise BrokerUnavailable(f"{self._script} is not installed (apt-get install rabbitmq-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        password = secrets.token_hex(8)
        self.port = free_port()
        self._env = self._configure(password)
        self._server = _spawn([str(self._script)], self.log_file, env=self._env, session=True)
        server, ports = self._server, (self.management_port, self.port)
        # the AMQP listener opens last, after the plugins
        up = wait_until(
            lambda: server.poll() is not None or all(port_open(p) for p in ports), timeout=self._boot_seconds
        )
        if server.poll() is not None or not up:
            self.stop()
            raise BrokerUnavailable(f"rabbitmq-server did not start: {tail(self.log_file)}")
        credentials = f"{RABBITMQ_USER}:{password}@127.0.0.1"
        return RabbitMQUrls(
            f"amqp://{credentials}:{self.port}//", f"http://{credentials}:{self.management_port}"
        )

    def stop(self) -> None:
        """Stop the node and its own epmd; nothing if it is not running.

        SIGKILL to its process group: the node is thrown away with its folder, and a clean Erlang
        shutdown would cost some ten seconds.
        """
        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        # epmd refuses to die while it still lists the node, which it forgets a moment after the kill
        wait_until(lambda: _epmd_gone(self._env), timeout=10)

    def _configure(self, password: str) -> dict[str, str]:
        """Write the node's files into the folder; its environment."""
        ports = {self.port}
        while len(ports) < 4:  # the management API, epmd, the Erlang distribution: all distinct
            ports.add(free_port())
        self.management_port, epmd_port, dist_port = sorted(ports - {self.port})
        folder = self.folder
        (folder / "rabbitmq.conf").write_text(
            _RABBITMQ_CONFIG.format(
                port=self.port, management_port=self.management_port, user=RABBITMQ_USER, password=password
            )
        )
        (folder / "advanced.config").write_text(_RABBITMQ_ADVANCED)
        (folder / "enabled_plugins").write_text("[rabbitmq_management].\n")
        cookie = folder / ".erlang.cookie"
        cookie.unlink(missing_ok=True)
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(folder),
            RABBITMQ_NODENAME=f"tornado-test-{self.port}@localhost",
            RABBITMQ_MNESIA_BASE=str(folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(folder / "log"),
            RABBITMQ_CONFIG_FILE=str(folder / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(folder / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(folder / "enabled_plugins"),
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_PORT=str(epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env


def _spawn(
    argv: list[str], log_file: Path, *, env: dict[str, str] | None = None, session: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output in ``log_file`` (in a process group of its own if ``session``)."""
    with log_file.open("wb") as log:
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=session,
        )  # fmt: skip


def _redis_answers(port: int) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers ``PING``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _epmd_gone(env: dict[str, str]) -> bool:
    """Ask the node's epmd to exit; whether it did (or was not running)."""
    try:
        done = subprocess.run(
            ["epmd", "-kill"], env=env, capture_output=True, text=True, timeout=10, check=False
        )
    except FileNotFoundError:  # no Erlang, so no epmd of ours
        return True
    return "Killed" in done.stdout or (done.returncode != 0 and "Cannot connect" in done.stdout + done.stderr)
