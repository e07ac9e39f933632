"""The throwaway brokers' launcher (``tornado_core.devstack.brokers``) with stand-in servers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tornado_core.devstack import DevStackError
from tornado_core.devstack.brokers import BrokerUnavailable, LocalRabbitMQ, LocalRedis
from tornado_core.local_machine import is_alive, port_open

#: A stand-in ``redis-server``: answers ``+PONG`` to anything on the ``--port`` it is given.
_PONG_SERVER = """
import socket, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
server = socket.create_server(("127.0.0.1", port))
while True:
    conn, _ = server.accept()
    with conn:
        conn.recv(64)
        conn.sendall(b"+PONG\\r\\n")
"""

#: A stand-in ``rabbitmq-server``: records its environment, complains and exits 1.
_FAILING_RABBIT = """
import json, os, sys
with open(os.path.join(os.environ["HOME"], "env.json"), "w") as out:
    json.dump(dict(os.environ), out)
print("BOOT FAILED: no such plugin")
sys.exit(1)
"""


def _program(folder: Path, name: str, source: str) -> Path:
    """An executable ``name`` in ``folder`` that runs ``source`` with this Python."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(0o755)
    return path


def test_redis_that_is_not_installed_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrokerUnavailable, match="apt-get install redis-server"):
        LocalRedis(tmp_path / "redis").start()


def test_redis_that_exits_is_reported_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _program(tmp_path / "bin", "redis-server", "print('FATAL CONFIG FILE ERROR'); raise SystemExit(1)")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    server = LocalRedis(tmp_path / "redis")
    with pytest.raises(BrokerUnavailable, match=r"exited 1(.|\n)*FATAL CONFIG FILE ERROR"):
        server.start()
    assert server.pid is None  # nothing left to stop


def test_redis_url_points_at_the_server_until_it_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _program(tmp_path / "bin", "redis-server", _PONG_SERVER)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    server = LocalRedis(tmp_path / "redis")
    url = server.start()
    pid = server.pid
    try:
        assert url == f"redis://127.0.0.1:{server.port}/0"
        assert port_open(server.port)
    finally:
        server.stop()
    assert not is_alive(pid)
    server.stop()  # a second stop is harmless


def test_rabbitmq_that_is_not_installed_says_how_to_install_it(tmp_path: Path) -> None:
    node = LocalRabbitMQ(tmp_path / "rabbitmq", server=tmp_path / "no-rabbitmq-server")
    with pytest.raises(BrokerUnavailable, match="apt-get install rabbitmq-server"):
        node.start()


def test_rabbitmq_node_is_configured_on_loopback_with_its_own_ports(tmp_path: Path) -> None:
    script = _program(tmp_path / "bin", "rabbitmq-server", _FAILING_RABBIT)
    folder = tmp_path / "rabbitmq"
    node = LocalRabbitMQ(folder, server=script)
    with pytest.raises(DevStackError, match=r"rabbitmq-server did not start(.|\n)*BOOT FAILED"):
        node.start()
    config = (folder / "rabbitmq.conf").read_text()
    assert f"listeners.tcp.1 = 127.0.0.1:{node.port}\n" in config
    assert f"management.tcp.port = {node.management_port}\n" in config
    assert "consumer_timeout = 86400000\n" in config
    assert "quorum_tick_interval, 50" in (folder / "advanced.config").read_text()
    env = json.loads((folder / "env.json").read_text())
    assert env["RABBITMQ_MNESIA_BASE"] == str(folder / "mnesia")
    assert env["ERL_EPMD_ADDRESS"] == "127.0.0.1"
    ports = {node.port, node.management_port, int(env["ERL_EPMD_PORT"]), int(env["RABBITMQ_DIST_PORT"])}
    assert len(ports) == 4
    assert oct((folder / ".erlang.cookie").stat().st_mode & 0o777) == oct(0o400)
