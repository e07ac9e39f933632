"""Fixtures of the Celery engine on RabbitMQ: one real rabbitmq-server per test session on 127.0.0.1.

The server runs from Debian's ``/usr/lib/rabbitmq/bin/rabbitmq-server`` (not the ``/usr/sbin`` wrapper,
which switches user) with every file in a temp folder, the management plugin on a second free port,
statistics every 50 ms and ``consumer_timeout`` raised to a day. Its Erlang port mapper (epmd) and
distribution port listen on 127.0.0.1 only, on free ports of their own, and are stopped with it.
Set ``TORNADO_TEST_RABBITMQ_URL`` to use a RabbitMQ you started yourself (its management API at
``TORNADO_TEST_RABBITMQ_MANAGEMENT_URL``, by default port 15672 of its host). If the server cannot
start, its tests are skipped with the reason, except on CI (strict mode) where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.celery_support import _unavailable
from tornado_core.adapters.celery.amqp_link import management_url_of
from tornado_core.local_machine import free_port, port_open, tail, wait_until

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: Seconds RabbitMQ (with its management plugin) may take to accept connections.
BOOT_SECONDS = 60.0
USER = "tornado"

_CONFIG = """\
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
_ADVANCED = """[
  {rabbit, [{quorum_tick_interval, 50}]},
  {rabbitmq_management_agent, [{sample_retention_policies, [
    {global, [{605, 1}]}, {basic, [{605, 1}]}, {detailed, [{10, 1}]}]}]}
].
"""


def _environment(folder: Path, port: int, password: str) -> dict[str, str]:
    """Files and environment of a server whose state lives in ``folder``."""
    ports = {port}
    while len(ports) < 4:  # the management API, epmd, the Erlang distribution: all distinct
        ports.add(free_port())
    management_port, epmd_port, dist_port = sorted(ports - {port})
    (folder / "rabbitmq.conf").write_text(
        _CONFIG.format(port=port, management_port=management_port, user=USER, password=password)
    )
    (folder / "advanced.config").write_text(_ADVANCED)
    (folder / "enabled_plugins").write_text("[rabbitmq_management].\n")
    cookie = folder / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update(
        HOME=str(folder),
        RABBITMQ_NODENAME=f"tornado-test-{port}@localhost",
        RABBITMQ_MNESIA_BASE=str(folder / "mnesia"),
        RABBITMQ_LOG_BASE=str(folder / "log"),
        RABBITMQ_CONFIG_FILE=str(folder / "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(folder / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(folder / "enabled_plugins"),
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        ERL_EPMD_PORT=str(epmd_port),
        ERL_EPMD_ADDRESS="127.0.0.1",
        MANAGEMENT_PORT=str(management_port),
    )
    return env


def _stop(server: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    """Stop the node and its own epmd. SIGKILL to its process group: the node is thrown away with
    its temp folder, and a clean Erlang shutdown would cost the suite some ten seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    # epmd refuses to die while it still lists the node, which it forgets a moment after the kill
    wait_until(lambda: _epmd_gone(env), timeout=10)


def _epmd_gone(env: dict[str, str]) -> bool:
    """Ask the node's epmd to exit; whether it did (or was not running)."""
    done = subprocess.run(["epmd", "-kill"], env=env, capture_output=True, text=True, timeout=10, check=False)
    return "Killed" in done.stdout or (done.returncode != 0 and "Cannot connect" in done.stdout + done.stderr)


@dataclass(frozen=True)
class RabbitBroker:
    """Where the session's RabbitMQ answers: AMQP and the management HTTP API (credentials in both)."""

    url: str
    management_url: str


@pytest.fixture(scope="session")
def rabbitmq_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitBroker]:
    """The session's RabbitMQ (``amqp://tornado:PASSWORD@127.0.0.1:PORT//``, vhost ``/``)."""
    external = os.environ.get("TORNADO_TEST_RABBITMQ_URL")
    if external:
        management = os.environ.get("TORNADO_TEST_RABBITMQ_MANAGEMENT_URL") or management_url_of(external)
        yield RabbitBroker(external, management)
        return
    if not os.access(SERVER, os.X_OK):
        _unavailable(f"{SERVER} is not installed (apt-get install rabbitmq-server)")
    folder: Path = tmp_path_factory.mktemp("rabbitmq")
    port, password = free_port(), secrets.token_hex(8)
    env = _environment(folder, port, password)
    management_port = int(env["MANAGEMENT_PORT"])
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [str(SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        # the AMQP listener opens last, after the plugins
        answers = lambda: server.poll() is not None or (port_open(management_port) and port_open(port))  # noqa: E731
        if not wait_until(answers, timeout=BOOT_SECONDS) or server.poll() is not None:
            _unavailable(f"rabbitmq-server did not start: {tail(folder / 'server.log')}")
        url = f"amqp://{USER}:{password}@127.0.0.1:{port}//"
        yield RabbitBroker(url, management_url_of(url, port=management_port))
    finally:
        _stop(server, env)
        log.close()


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_broker: RabbitBroker) -> str:
    """AMQP URL of the session's RabbitMQ."""
    return rabbitmq_broker.url
