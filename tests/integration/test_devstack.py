"""The local stack really runs PostgreSQL and an SQS/S3 endpoint, idempotently.

These tests own a second stack (not the session's), since they stop and kill it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.aws.sqs import SqsQueue
from tornado_core.devstack import DevStack, DevStackError, StackInfo
from tornado_core.local_machine import is_alive, tornado_argv, wait_until
from tornado_core.ports.queue import OutgoingMessage, QueueSpec

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(make_state_dir: Callable[[], Path], dev_stack: object) -> Iterator[DevStack]:
    """A stack of this module's own (``dev_stack`` first: it decides skip or fail)."""
    own = DevStack(make_state_dir())
    own.up()
    yield own
    own.down()


def _tornado(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env_extra or {})}
    return subprocess.run(tornado_argv(*args), capture_output=True, text=True, env=env, timeout=120)


def _query(dsn: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def _s3(info: StackInfo) -> S3ObjectStore:
    client = make_client("s3", region=info.aws_region, endpoint_url=info.aws_endpoint_url)
    return S3ObjectStore(client, info.bucket)


def test_up_is_idempotent(stack: DevStack) -> None:
    first = stack.up()
    before = stack.status()
    again = stack.up()
    assert again == first
    after = stack.status()
    assert (after.postgres_pid, after.moto_pid) == (before.postgres_pid, before.moto_pid)


def test_status_reports_pids_and_ports(stack: DevStack) -> None:
    status = stack.status()
    assert status.initialized and status.running
    assert is_alive(status.postgres_pid) and is_alive(status.moto_pid)
    info = stack.info()
    assert f":{status.postgres_port}/" in info.database_url
    assert info.aws_endpoint_url == f"http://127.0.0.1:{status.moto_port}"


def test_status_of_an_empty_state_dir(tmp_path: Path) -> None:
    status = DevStack(tmp_path / "nothing").status()
    assert not status.initialized and not status.running
    with pytest.raises(DevStackError, match="tornado dev up"):
        DevStack(tmp_path / "nothing").env()


def test_env_names_every_setting(stack: DevStack) -> None:
    env = stack.env()
    assert env["TORNADO_DATABASE_URL"].endswith("/tornado")
    assert env["TORNADO_ERP_DATABASE_URL"].endswith("/tornado_erp")
    assert env["TORNADO_REDSHIFT_URL"].endswith("/tornado_redshift")
    assert env["TORNADO_AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["TORNADO_AWS_REGION"] == "us-east-1"
    assert env["TORNADO_BUCKET"] == "tornado"
    assert env["TORNADO_QUEUE"] == "postgres"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("test", "test")
    assert len(env["TORNADO_SECRET_KEY"]) >= 32


def test_cli_env_output_can_be_evaluated_by_a_shell(stack: DevStack) -> None:
    printed = _tornado("dev", "--state-dir", str(stack.state_dir), "env")
    assert printed.returncode == 0, printed.stderr
    assert all(line.startswith("export ") for line in printed.stdout.splitlines())
    shell = subprocess.run(
        ["sh", "-c", 'eval "$1"; echo "$TORNADO_DATABASE_URL $TORNADO_SECRET_KEY"', "sh", printed.stdout],
        capture_output=True,
        text=True,
        check=True,
    )
    env = stack.env()
    assert shell.stdout.split() == [env["TORNADO_DATABASE_URL"], env["TORNADO_SECRET_KEY"]]


def test_cli_up_and_status(stack: DevStack) -> None:
    up = _tornado("dev", "up", env_extra={"TORNADO_STATE_DIR": str(stack.state_dir)})
    assert up.returncode == 0, up.stderr
    assert 'eval "$(tornado dev env)"' in up.stdout
    assert stack.info().database_url in up.stdout
    assert stack.info().secret_key not in up.stdout
    status = _tornado("dev", "--state-dir", str(stack.state_dir), "status")
    assert status.returncode == 0
    assert f"pid {stack.status().postgres_pid}" in status.stdout


def test_cli_reports_a_missing_stack_in_one_line(tmp_path: Path) -> None:
    result = _tornado("dev", "--state-dir", str(tmp_path / "none"), "env")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: no local stack in {tmp_path / 'none'}; run `tornado dev up` first"
    ]
    status = _tornado("dev", "--state-dir", str(tmp_path / "none"), "status")
    assert status.returncode == 3


def test_postgres_accepts_connections_on_loopback_with_every_database(stack: DevStack) -> None:
    info = stack.up()
    assert info.database_url.startswith("postgresql://postgres@127.0.0.1:")
    assert _query(info.database_url, "SELECT inet_server_addr()::text") == [("127.0.0.1/32",)]
    assert _query(info.database_url, "SHOW listen_addresses") == [("127.0.0.1",)]
    assert _query(info.database_url, "SHOW fsync") == [("on",)]
    assert _query(info.database_url, "SHOW max_connections") == [("300",)]
    names = {row[0] for row in _query(info.database_url, "SELECT datname FROM pg_database")}
    assert {"tornado", "tornado_erp", "tornado_redshift"} <= names
    assert _query(info.database_url, "SELECT count(*) > 0 FROM tornado_schema_migrations") == [(True,)]
    for dsn in (info.erp_database_url, info.redshift_url):
        assert _query(dsn, "SELECT 1") == [(1,)]


def test_create_database_clones_the_migrated_template(stack: DevStack) -> None:
    dsn = stack.create_database()
    try:
        sql = "SELECT version FROM tornado_schema_migrations ORDER BY 1"
        assert _query(dsn, sql) == _query(stack.info().database_url, sql)
    finally:
        stack.drop_database(dsn)
    with pytest.raises(DevStackError, match="refusing"):
        stack.drop_database("tornado")


def test_moto_answers_sqs_and_s3(stack: DevStack, unique_prefix: str) -> None:
    info = stack.up()
    sqs = SqsQueue(make_client("sqs", region=info.aws_region, endpoint_url=info.aws_endpoint_url))
    spec = QueueSpec(
        name=f"{unique_prefix}-q",
        dead_letter_name=f"{unique_prefix}-dlq",
        max_receive_count=3,
        visibility_timeout=30,
    )
    sqs.ensure_queue(spec)
    assert sqs.send_batch(spec.name, [OutgoingMessage("hello")]) == [None]
    got = sqs.receive(spec.name, max_messages=1, wait_seconds=1, visibility_timeout=30)
    assert [m.body for m in got] == ["hello"]
    store = _s3(info)
    store.put(f"{unique_prefix}/x", b"data")
    assert store.get(f"{unique_prefix}/x") == b"data"


def test_up_restarts_a_killed_endpoint_with_its_bucket(stack: DevStack, unique_prefix: str) -> None:
    info = stack.up()
    old_pid = stack.status().moto_pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    assert wait_until(lambda: not stack.status().moto_running, timeout=10)
    assert stack.up() == info
    status = stack.status()
    assert status.moto_running and status.moto_pid != old_pid
    store = _s3(info)
    store.put(f"{unique_prefix}/after-restart", b"ok")
    assert store.exists(f"{unique_prefix}/after-restart")


def test_postgres_restart_keeps_data_and_dsn(stack: DevStack) -> None:
    info = stack.up()
    conn = psycopg2.connect(info.erp_database_url)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS kept (v int)")
        cur.execute("INSERT INTO kept VALUES (42)")
    conn.close()
    stack.stop_postgres()
    assert not stack.status().postgres_running
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(info.erp_database_url, connect_timeout=2)
    stack.start_postgres()
    assert stack.info() == info
    assert (42,) in _query(info.erp_database_url, "SELECT v FROM kept")


def test_down_stops_both_and_up_brings_back_the_same_stack(stack: DevStack) -> None:
    info = stack.up()
    before = stack.status()
    stack.down()
    assert not is_alive(before.postgres_pid) and not is_alive(before.moto_pid)
    status = stack.status()
    assert not status.postgres_running and not status.moto_running
    stack.down()  # stopping a stopped stack is fine
    assert stack.up() == info
    assert stack.status().running


class Squatter:
    """Another program listening on a port of 127.0.0.1 (it accepts and hangs up, as servers do)."""

    def __init__(self, port: int = 0) -> None:
        self.socket = socket.create_server(("127.0.0.1", port))
        self.port = int(self.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.socket.accept()
                connection.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self._thread.join(timeout=5)


def test_a_first_up_moves_off_ports_another_program_took_since_they_were_picked(
    make_state_dir: Callable[[], Path], dev_stack: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = Squatter()
    picks = iter([squatter.port, squatter.port])  # both services are handed the squatted port first
    monkeypatch.setattr("tornado_core.devstack.state.free_port", lambda: next(picks))
    fresh = DevStack(make_state_dir())
    try:
        info = fresh.up()
        status = fresh.status()
        assert status.running
        assert squatter.port not in (status.postgres_port, status.moto_port)
        assert _query(info.database_url, "SELECT 1") == [(1,)]
        fresh.down()
        # Once the stack has been up, its ports are its address: a squatter is an error, not a move.
        squatter.close()
        squatter = Squatter(status.moto_port)
        with pytest.raises(DevStackError, match=f"port {status.moto_port} on 127.0.0.1 is taken"):
            fresh.up()
    finally:
        squatter.close()
        fresh.down()


def test_cli_down_stops_both_services_and_keeps_the_data(stack: DevStack) -> None:
    info = stack.up()
    before = stack.status()
    down = _tornado("dev", "--state-dir", str(stack.state_dir), "down")
    assert down.returncode == 0 and "Local stack is stopped" in down.stdout, down.stderr
    assert not is_alive(before.postgres_pid) and not is_alive(before.moto_pid)
    assert _tornado("dev", "--state-dir", str(stack.state_dir), "status").returncode == 3  # not running
    assert stack.up() == info  # the same stack comes back: ports, key and databases kept
