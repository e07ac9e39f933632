"""The outbox relay as an operator runs it: killed (SIGKILL) mid-relay and restarted, every committed
row becomes exactly one job, a rolled-back row none, and a real worker runs each job once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tornado_core.adapters.runtimes.process.cluster import LocalCluster, ManagedProcess
from tornado_core.bootstrap import build_outbox
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.ports.transactional import OutboxStorePort
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token
from tornado_core.transactional import add_many_to_outbox, add_to_outbox

from .helpers import wait_until

#: Rows in the outbox: enough that the relay is killed mid-way (its batches are 100 rows), fewer on
#: SQS, where moto sends and drains about a hundred jobs a second.
ROWS = {"postgres": 600, "sqs": 300}


@pytest.fixture
def outbox_url(fresh_database_url: str, tornado_cli: Callable[..., Any]) -> str:
    """An application database with the outbox installed by the command, twice (idempotent)."""
    assert (
        "tornado_outbox created" in tornado_cli("outbox", "install", "--database", fresh_database_url).stdout
    )
    again = tornado_cli("outbox", "install", "--database", fresh_database_url).stdout
    assert "already installed" in again
    return fresh_database_url


@pytest.fixture
def outbox(outbox_url: str) -> Iterator[OutboxStorePort]:
    store, close = build_outbox(outbox_url)
    yield store
    close()


@pytest.fixture
def tenant(services: Services) -> str:
    name = f"erp-{uuid.uuid4().hex[:8]}"
    services.tenants.create(name, hash_token(new_token()))
    return name


@pytest.fixture
def relays(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], ManagedProcess]]:
    """Starts ``tornado outbox relay`` processes; any still running at the end gets SIGTERM."""
    started: list[ManagedProcess] = []

    def start(database_url: str) -> ManagedProcess:
        args = ["outbox", "relay", "--database", database_url, "--batch-size", "5", "--idle-wait", "0.2"]
        process = ManagedProcess(
            f"relay-{len(started)}", args, e2e_env, tmp_path / f"relay-{len(started)}.log"
        )
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.terminate(grace=20)


def jobs_of(services: Services, tenant: str) -> list[JobRecord]:
    found: list[JobRecord] = []
    cursor = None
    while True:
        page = services.jobs.list(tenant=tenant, limit=500, cursor=cursor)
        found.extend(page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            return found


def test_every_committed_row_becomes_exactly_one_job_across_a_killed_relay(
    services: Services,
    outbox: OutboxStorePort,
    outbox_url: str,
    tenant: str,
    relays: Callable[[str], ManagedProcess],
    cluster: LocalCluster,
    tornado_cli: Callable[..., Any],
    backend: str,
) -> None:
    rows = ROWS[backend]
    keys = [f"order-{n}" for n in range(rows)]
    with psycopg2.connect(outbox_url) as conn:  # commits at the end of the block
        add_many_to_outbox(
            conn,
            tenant,
            [{"task": "demo.echo", "payload": {"message": k}, "idempotency_key": k} for k in keys],
        )
    with psycopg2.connect(outbox_url) as conn:
        add_to_outbox(conn, tenant, "demo.echo", {"message": "rolled back"}, idempotency_key="rolled-back")
        conn.rollback()
    assert outbox.status().pending == rows

    first = relays(outbox_url)
    wait_until(lambda: outbox.status().pending < rows - 20, timeout=60, what="the relay to start relaying")
    first.kill()  # SIGKILL in the middle of the outbox
    left = outbox.status().pending
    assert 0 < left < rows, "the relay finished before it could be killed: raise ROWS"

    relays(outbox_url)
    wait_until(
        lambda: outbox.status().pending == 0, timeout=120, what="the restarted relay to empty the outbox"
    )
    status = tornado_cli("outbox", "status", "--database", outbox_url).stdout
    assert "pending: 0" in status and "failed: 0" in status

    expected = {services.job_ids.for_idempotency_key(tenant, f"demo.echo\0{k}") for k in keys}
    assert sorted(job.job_id for job in jobs_of(services, tenant)) == sorted(expected)
    assert services.jobs.get(services.job_ids.for_idempotency_key(tenant, "demo.echo\0rolled-back")) is None

    cluster.start_worker("demo.echo", concurrency=8)

    def all_succeeded() -> bool:
        return all(job.status is JobStatus.SUCCEEDED for job in jobs_of(services, tenant))

    wait_until(all_succeeded, timeout=180, what=f"the {rows} jobs to succeed")
    done = jobs_of(services, tenant)
    assert len(done) == rows
    assert {job.attempts for job in done} == {1}  # each ran once, duplicates of a resent batch included
    assert {job.result["message"] for job in done if job.result} == set(keys)
