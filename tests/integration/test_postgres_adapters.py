"""The PostgreSQL adapters against a real server: job store, limiter, tenants,
migrations, pool healing, and queue details beyond the shared contract."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2.extensions import make_dsn

from tornado_core.adapters.postgres import (
    PostgresJobStore,
    PostgresLimiter,
    PostgresPool,
    PostgresQueue,
    PostgresTenantStore,
    apply_migrations,
)
from tornado_core.adapters.postgres.jobs import write_successes
from tornado_core.adapters.postgres.migrations import load_migrations
from tornado_core.errors import ConfigError, QueueUnavailable, StoreUnavailable
from tornado_core.ports.jobs import ClaimOutcome, Failure, JobStatus, NewJob, Success
from tornado_core.ports.queue import OutgoingMessage, QueueSpec

pytestmark = pytest.mark.integration

UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"


@pytest.fixture
def pool(postgres_url: str) -> Iterator[PostgresPool]:
    """A small pool on the migrated test database."""
    pool = PostgresPool(postgres_url, max_size=3)
    yield pool
    pool.close()


@pytest.fixture
def prefix(unique_prefix: str) -> str:
    """The per-test prefix, safe in queue names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", unique_prefix)[:50]


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


# --- job store -----------------------------------------------------------------------------


def new_job(prefix: str, n: int, *, tenant: str = "acme", task: str = "demo.echo") -> NewJob:
    return NewJob(
        job_id=f"{prefix}-{n:04d}",
        tenant=f"{prefix}-{tenant}",
        task=task,
        version="1.0.0",
        submitted_at=1_700_000_000.0 + n,
    )


def test_record_queued_inserts_once(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    job = new_job(prefix, 1)
    store.record_queued([job, new_job(prefix, 2)])
    store.record_progress(job.job_id, fraction=0.5, note="half")
    store.record_queued([job, job])  # known ids are left as they are
    record = store.get(job.job_id)
    assert record is not None
    assert (record.status, record.progress, record.progress_note) == (JobStatus.QUEUED, 0.5, "half")
    assert record.created_at.timestamp() == job.submitted_at
    assert record.tenant == job.tenant and record.attempts == 0
    assert store.get(f"{prefix}-missing") is None


def test_claim_rules(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    job = new_job(prefix, 1)
    claim = store.claim  # a job claimed before record_queued ran is inserted
    assert claim(job, attempt=1, lease_seconds=30, worker="w1") is ClaimOutcome.CLAIMED
    assert claim(job, attempt=2, lease_seconds=30, worker="w2") is ClaimOutcome.BUSY
    assert claim(job, attempt=2, lease_seconds=30, worker="w1") is ClaimOutcome.CLAIMED
    store.record_queued([job])
    record = store.get(job.job_id)
    assert record is not None
    assert (record.status, record.attempts) == (JobStatus.RUNNING, 2)
    assert record.started_at is not None
    store.record_success(job.job_id, result={"ok": True, "n": [1, 2], "text": "ação"}, result_ref=None)
    assert claim(job, attempt=3, lease_seconds=30, worker="w2") is ClaimOutcome.ALREADY_DONE
    done = store.get(job.job_id)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"ok": True, "n": [1, 2], "text": "ação"}
    assert done.progress == 1.0 and done.finished_at is not None


def test_expired_lease_can_be_taken_over(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    job = new_job(prefix, 1)
    assert store.claim(job, attempt=1, lease_seconds=0.2, worker="w1") is ClaimOutcome.CLAIMED
    store.extend_lease(job.job_id, lease_seconds=0.5)
    assert store.claim(job, attempt=1, lease_seconds=30, worker="w2") is ClaimOutcome.BUSY
    deadline = time.monotonic() + 30
    while (taken := store.claim(job, attempt=2, lease_seconds=30, worker="w2")) is ClaimOutcome.BUSY:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert taken is ClaimOutcome.CLAIMED


def test_concurrent_claims_admit_one_worker(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    job = new_job(prefix, 1)
    outcomes: list[ClaimOutcome] = []
    threads = [
        threading.Thread(
            target=lambda w=w: outcomes.append(store.claim(job, attempt=1, lease_seconds=30, worker=f"w{w}"))
        )
        for w in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count(ClaimOutcome.CLAIMED) == 1


def test_failures_and_marks(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    job = new_job(prefix, 1)
    store.claim(job, attempt=1, lease_seconds=30, worker="w1")
    store.record_failure(
        job.job_id, status=JobStatus.RETRYING, failure=Failure(error_type="ValueError", message="bad")
    )
    retrying = store.get(job.job_id)
    assert retrying is not None
    assert (retrying.status, retrying.error_type, retrying.finished_at) == (
        JobStatus.RETRYING,
        "ValueError",
        None,
    )
    # another worker may take a retrying job at once
    assert store.claim(job, attempt=2, lease_seconds=30, worker="w2") is ClaimOutcome.CLAIMED
    store.record_failure(
        job.job_id,
        status=JobStatus.DEAD,
        failure=Failure(error_type="NonRetryable", message="no", traceback="tb"),
    )
    dead = store.get(job.job_id)
    assert dead is not None
    assert dead.status is JobStatus.DEAD and dead.finished_at is not None
    assert dead.to_json()["error"] == {"type": "NonRetryable", "message": "no"}
    store.mark([job.job_id], status=JobStatus.QUEUED)
    marked = store.get(job.job_id)
    assert marked is not None and marked.status is JobStatus.QUEUED


def test_listing_newest_first_with_filters_and_cursor(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    acme = [new_job(prefix, n, task="demo.echo" if n % 2 else "demo.sleep") for n in range(7)]
    other = [new_job(prefix, n, tenant="other") for n in range(7, 9)]
    store.record_queued(acme + other)
    store.record_success(acme[1].job_id, result=None, result_ref="results/x.json")
    tenant = acme[0].tenant

    ids: list[str] = []
    cursor = None
    while True:
        page = store.list(tenant=tenant, limit=3, cursor=cursor)
        ids += [j.job_id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == [j.job_id for j in reversed(acme)]

    sleeps = store.list(tenant=tenant, task="demo.sleep").jobs
    assert [j.job_id for j in sleeps] == [acme[n].job_id for n in (6, 4, 2, 0)]
    done = store.list(tenant=tenant, status=JobStatus.SUCCEEDED).jobs
    assert [(j.job_id, j.result_ref) for j in done] == [(acme[1].job_id, "results/x.json")]
    assert store.list(tenant=f"{prefix}-nobody").jobs == []
    everyone = store.list(tenant=None, limit=100, cursor=f"{prefix}~").jobs  # from just above our ids
    mine = [j.job_id for j in everyone if j.job_id.startswith(prefix)]
    assert mine == sorted(mine, reverse=True) and len(mine) == 9


def test_job_store_unreachable_raises_store_unavailable() -> None:
    pool = PostgresPool(UNREACHABLE_DSN, min_size=0)
    store = PostgresJobStore(pool)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.get("x")
    with pytest.raises(StoreUnavailable):
        PostgresTenantStore(pool).list()
    with pytest.raises(QueueUnavailable):
        PostgresQueue(pool).ping()
    with pytest.raises(StoreUnavailable):
        PostgresLimiter(UNREACHABLE_DSN).try_acquire("t", 1)


# --- limiter -------------------------------------------------------------------------------


def test_limiter_caps_slots_and_releases(postgres_url: str, prefix: str) -> None:
    limiter = PostgresLimiter(postgres_url)
    task = f"{prefix}.task"
    first = limiter.try_acquire(task, 2)
    second = limiter.try_acquire(task, 2)
    assert first is not None and second is not None
    assert limiter.try_acquire(task, 2) is None
    assert limiter.try_acquire(f"{prefix}.other", 1) is not None  # other tasks are independent
    with first:
        pass
    third = limiter.try_acquire(task, 2)
    assert third is not None
    with second, third:
        pass
    held = [limiter.try_acquire(task, 2) for _ in range(2)]
    assert all(h is not None for h in held)
    limiter.close()


def test_slots_taken_together_are_capped_and_released_one_by_one_or_together(
    postgres_url: str, prefix: str
) -> None:
    limiter = PostgresLimiter(postgres_url)
    task = f"{prefix}.many"
    batch = limiter.try_acquire_many(task, 3, 5)
    assert len(batch) == 3  # no more than the cap, however many were asked for
    assert limiter.try_acquire_many(task, 3, 5) == [] and limiter.try_acquire(task, 3) is None
    limiter.release_many(batch[:2])
    again = limiter.try_acquire_many(task, 3, 5)
    assert len(again) == 2
    with batch[2]:
        pass
    last = limiter.try_acquire(task, 3)
    assert last is not None and limiter.try_acquire(task, 3) is None
    limiter.release_many([*again, last])
    assert len(limiter.try_acquire_many(task, 3, 3)) == 3
    limiter.close()


def test_a_connection_still_holding_a_slot_never_takes_more(postgres_url: str, prefix: str) -> None:
    """Advisory locks are re-entrant within a session: a connection reused while it still held a
    slot would "win" that slot a second time and let one more job run than the cap allows."""
    limiter = PostgresLimiter(postgres_url)
    task = f"{prefix}.reentrant"
    first, second = limiter.try_acquire_many(task, 2, 2)
    with first:
        pass  # its connection still holds the second slot
    retaken = limiter.try_acquire_many(task, 2, 2)
    assert len(retaken) == 1
    assert limiter.try_acquire(task, 2) is None
    limiter.release_many([second, *retaken])
    limiter.close()


def test_limiter_is_thread_safe(postgres_url: str, prefix: str) -> None:
    limiter = PostgresLimiter(postgres_url)
    task = f"{prefix}.threads"
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        for _ in range(10):
            slot = limiter.try_acquire(task, 3)
            if slot is None:
                time.sleep(0.005)
                continue
            with slot:
                with lock:
                    running += 1
                    peak = max(peak, running)
                time.sleep(0.005)
                with lock:
                    running -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak <= 3
    limiter.close()


HOLDER = """
import sys, time
from tornado_core.adapters.postgres import PostgresLimiter
slot = PostgresLimiter(sys.argv[1]).try_acquire(sys.argv[2], 1)
print("held" if slot is not None else "refused", flush=True)
time.sleep(120)
"""


def test_slot_of_killed_process_is_released(postgres_url: str, prefix: str) -> None:
    task = f"{prefix}.killed"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, postgres_url, task],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        limiter = PostgresLimiter(postgres_url)
        assert limiter.try_acquire(task, 1) is None
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)

        def free() -> bool:
            slot = limiter.try_acquire(task, 1)
            if slot is None:
                return False
            with slot:
                return True

        assert wait_until(free), "the killed process's slot was never released"
        limiter.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# --- tenants -------------------------------------------------------------------------------


def test_tenants(pool: PostgresPool, prefix: str) -> None:
    tenants = PostgresTenantStore(pool)
    created = tenants.create(f"{prefix}-b", f"{prefix}-hash-b")
    tenants.create(f"{prefix}-a", f"{prefix}-hash-a")
    assert created.name == f"{prefix}-b" and created.created_at.tzinfo is not None
    with pytest.raises(ConfigError, match="already exists"):
        tenants.create(f"{prefix}-b", f"{prefix}-other-hash")
    with pytest.raises(ConfigError):
        tenants.create(f"{prefix}-c", f"{prefix}-hash-a")  # token hashes are unique
    names = [t.name for t in tenants.list() if t.name.startswith(prefix)]
    assert names == [f"{prefix}-a", f"{prefix}-b"]
    grants = tenants.grants()
    assert grants[f"{prefix}-hash-a"].tenant == f"{prefix}-a"
    assert f"{prefix}-other-hash" not in grants


# --- migrations ----------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(fresh_database_url: str) -> None:
    versions = [m.version for m in load_migrations()]
    assert versions[0] == "0001_core" and versions == sorted(versions)
    with psycopg2.connect(fresh_database_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA scratch")  # empty: the fixture migrated ``public``
    conn.close()
    pool = PostgresPool(make_dsn(fresh_database_url, options="-csearch_path=scratch"), max_size=4)
    try:
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda: results.append(apply_migrations(pool))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 3
        applied = sorted(v for result in results for v in result)
        assert applied == versions  # each applied exactly once, by one caller
        assert apply_migrations(pool) == []
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT version FROM scratch.tornado_schema_migrations ORDER BY version")
            assert [r[0] for r in cur.fetchall()] == versions
            cur.execute("SELECT count(*) FROM scratch.tornado_jobs")
    finally:
        pool.close()


def test_migrations_of_a_migrated_database_do_nothing(fresh_database_url: str) -> None:
    pool = PostgresPool(fresh_database_url)
    try:
        assert apply_migrations(pool) == []
    finally:
        pool.close()


# --- pool ----------------------------------------------------------------------------------


def backend_pid(pool: PostgresPool) -> int:
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def backend_pids(dsn: str) -> set[int]:
    """The server processes serving clients now."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'")
        pids = {int(row[0]) for row in cur.fetchall()}
    conn.close()
    return pids


def terminate(dsn: str, pid: int) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    conn.close()


def test_pool_commits_and_rolls_back(pool: PostgresPool, prefix: str) -> None:
    table = f"t_{prefix}".replace("-", "_").lower()
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (v int)")
    with pytest.raises(RuntimeError), pool.connection() as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (1)")
        raise RuntimeError("boom")
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (2)")
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT v FROM {table}")
        assert cur.fetchall() == [(2,)]
        cur.execute(f"DROP TABLE {table}")


def test_pool_heals_after_idle_connection_is_killed(postgres_url: str) -> None:
    pool = PostgresPool(postgres_url, min_size=1, max_size=1)
    try:
        pid = backend_pid(pool)
        terminate(postgres_url, pid)
        deadline = time.monotonic() + 30
        while pid in backend_pids(postgres_url):  # until the server has really ended it
            assert time.monotonic() < deadline, f"backend {pid} did not end"
            time.sleep(0.02)
        assert backend_pid(pool) != pid  # the dead connection was discarded, not handed out
    finally:
        pool.close()


def test_pool_heals_after_connection_dies_mid_transaction(postgres_url: str) -> None:
    pool = PostgresPool(postgres_url, max_size=1)
    try:
        with pytest.raises(StoreUnavailable), pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
            assert row is not None
            terminate(postgres_url, row[0])
            cur.execute("SELECT 1")
        assert backend_pid(pool) > 0
    finally:
        pool.close()


def test_pool_is_thread_safe_and_bounded(postgres_url: str) -> None:
    pool = PostgresPool(postgres_url, max_size=3)
    pids: set[int] = set()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                pids.add(backend_pid(pool))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    assert errors == [] and 1 <= len(pids) <= 3


# --- queue details beyond the contract -------------------------------------------------------


@pytest.fixture
def queue(pool: PostgresPool, prefix: str) -> Iterator[tuple[PostgresQueue, QueueSpec]]:
    """A PostgreSQL queue with a fresh spec, deleted afterwards."""
    adapter = PostgresQueue(pool)
    spec = QueueSpec(
        name=f"{prefix}-q",
        dead_letter_name=f"{prefix}-q-dlq",
        max_receive_count=1,
        visibility_timeout=30,
    )
    adapter.ensure_queue(spec)
    yield adapter, spec
    adapter.delete_queue(spec.name)
    adapter.delete_queue(spec.dead_letter_name)
    adapter.close()


def test_concurrent_receivers_never_share_a_message(
    queue: tuple[PostgresQueue, QueueSpec],
) -> None:
    adapter, spec = queue
    adapter.send_batch(spec.name, [OutgoingMessage(str(i)) for i in range(200)])
    seen: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        while got := adapter.receive(spec.name, max_messages=7, wait_seconds=0, visibility_timeout=30):
            with lock:
                seen.extend(m.body for m in got)

    threads = [threading.Thread(target=drain) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen, key=int) == [str(i) for i in range(200)]


def test_dead_lettered_message_starts_with_a_fresh_receive_count(
    queue: tuple[PostgresQueue, QueueSpec],
) -> None:
    adapter, spec = queue
    adapter.send_batch(spec.name, [OutgoingMessage("poison")])
    first = adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30)
    adapter.change_visibility(spec.name, first[0].receipt, 0)
    adapter.send_batch(spec.name, [OutgoingMessage("fine")])  # visible after the poison
    # the poison message is set aside and the next one is delivered in the same call
    again = adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30)
    assert [m.body for m in again] == ["fine"]
    dead = adapter.receive(spec.dead_letter_name, max_messages=10, wait_seconds=0, visibility_timeout=30)
    assert [(m.body, m.receive_count) for m in dead] == [("poison", 1)]


def test_ensure_queue_updates_the_redrive_policy(queue: tuple[PostgresQueue, QueueSpec]) -> None:
    adapter, spec = queue
    adapter.ensure_queue(
        QueueSpec(
            name=spec.name,
            dead_letter_name=spec.dead_letter_name,
            max_receive_count=3,
            visibility_timeout=5,
        )
    )
    adapter.send_batch(spec.name, [OutgoingMessage("x")])
    for count in (1, 2, 3):
        got = adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30)
        assert [m.receive_count for m in got] == [count]
        adapter.change_visibility(spec.name, got[0].receipt, 0)
    assert adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30) == []


def test_queue_rejects_oversized_batch_and_malformed_receipts(
    queue: tuple[PostgresQueue, QueueSpec],
) -> None:
    adapter, spec = queue
    with pytest.raises(ValueError):
        adapter.send_batch(spec.name, [OutgoingMessage("x")] * (adapter.max_send_batch + 1))
    adapter.delete(spec.name, ["garbage", "1:not-a-uuid"])  # ignored like stale receipts
    with pytest.raises(QueueUnavailable, match="not valid"):
        adapter.change_visibility(spec.name, "garbage", 5)


def test_tokens_are_rotated_revoked_expired_and_quotas_set(pool: PostgresPool, prefix: str) -> None:
    tenants = PostgresTenantStore(pool)
    name = f"{prefix}-t"
    tenants.create(name, f"{prefix}-first")
    tenants.add_token(name, f"{prefix}-second", expires_at=time.time() + 3600)
    with pytest.raises(ConfigError, match="no tenant"):
        tenants.add_token(f"{prefix}-nobody", f"{prefix}-third")
    grants = tenants.grants()
    assert grants[f"{prefix}-first"].tenant == name and grants[f"{prefix}-first"].expires_at is None
    assert grants[f"{prefix}-second"].expires_at == pytest.approx(time.time() + 3600, abs=60)

    assert tenants.expire_tokens(name, at=time.time() - 1, keep=f"{prefix}-second") == 1
    assert f"{prefix}-first" not in tenants.grants()  # its overlap is over
    tenants.set_quota(name, 12.5)
    assert tenants.grants()[f"{prefix}-second"].requests_per_second == 12.5
    assert [t.requests_per_second for t in tenants.list() if t.name == name] == [12.5]
    assert tenants.revoke(name) == 1
    assert not [g for g in tenants.grants().values() if g.tenant == name]
    with pytest.raises(ConfigError, match="no tenant"):
        tenants.set_quota(f"{prefix}-nobody", 1)


def test_every_token_change_is_notified_with_its_hash(pool: PostgresPool, prefix: str) -> None:
    tenants = PostgresTenantStore(pool)
    heard: list[frozenset[str] | None] = []
    stop = tenants.watch(heard.append)
    try:
        wait = time.monotonic() + 10
        while None not in heard:  # listening (a connection is announced with None)
            assert time.monotonic() < wait, "the listener did not connect"
            time.sleep(0.02)
        name = f"{prefix}-w"
        token = frozenset({f"{prefix}-w1"})
        changes = (
            lambda: tenants.create(name, f"{prefix}-w1"),
            lambda: tenants.set_quota(name, 3),
            lambda: tenants.revoke(name),
        )
        for change in changes:  # one at a time: the listener may fold notifications read together
            before = len(heard)
            change()
            wait = time.monotonic() + 10
            while not any(h and token <= h for h in heard[before:]):
                assert time.monotonic() < wait, (change, heard)
                time.sleep(0.02)
    finally:
        stop()


def test_several_successes_are_recorded_in_one_statement(pool: PostgresPool, prefix: str) -> None:
    store = PostgresJobStore(pool)
    jobs = [new_job(prefix, n) for n in range(3)]
    store.record_queued(jobs)
    for job in jobs:
        assert store.claim(job, attempt=1, lease_seconds=30, worker="w") is ClaimOutcome.CLAIMED
    store.record_successes([
        Success(job_id=jobs[0].job_id, result={"ok": True, "text": "ação"}),
        Success(job_id=jobs[1].job_id, result=None, result_ref="results/t/big.json"),
    ])  # fmt: skip
    first, second, third = (store.get(job.job_id) for job in jobs)
    assert first is not None and (first.status, first.result, first.progress) == (
        JobStatus.SUCCEEDED, {"ok": True, "text": "ação"}, 1.0,
    )  # fmt: skip
    assert second is not None
    assert (second.status, second.result_ref) == (JobStatus.SUCCEEDED, "results/t/big.json")
    assert third is not None and third.status is JobStatus.RUNNING  # not in the batch: untouched
    assert store.claim(jobs[0], attempt=2, lease_seconds=30, worker="w2") is ClaimOutcome.ALREADY_DONE


def test_deleting_received_messages_looks_them_up_by_key_in_a_deep_stale_queue(
    fresh_database_url: str,
) -> None:
    """At 100,000 messages, with statistics gathered when the table was nearly empty, the
    acknowledgement still finds its rows by primary key: its cost does not grow with the depth."""
    from tornado_core.adapters.postgres import queue as postgres_queue

    pool = PostgresPool(fresh_database_url, max_size=2)
    queue = PostgresQueue(pool)
    try:
        name = "deep"
        queue.ensure_queue(
            QueueSpec(name=name, dead_letter_name="deep-dlq", max_receive_count=5, visibility_timeout=30)
        )
        fill = (
            "INSERT INTO tornado_messages (queue, body, visible_at)"
            " SELECT %s, 'm' || n, clock_timestamp() FROM generate_series(1, %s) AS n"
        )
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute(fill, (name, 10))
            cur.execute("ANALYZE tornado_messages")  # statistics of a nearly empty table ...
            cur.execute(fill, (name, 100000 - 10))  # ... that is then filled: stale by 10,000 times
        received = queue.receive(name, max_messages=10, wait_seconds=0, visibility_timeout=30)
        parsed = [receipt.split(":") for receipt in (m.receipt for m in received)]
        params = {"queue": name, "ids": [int(i) for i, _ in parsed], "tokens": [t for _, t in parsed]}
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("EXPLAIN " + postgres_queue._DELETE, params)
            plan = "\n".join(row[0] for row in cur.fetchall())
            conn.rollback()
        assert "tornado_messages_pkey" in plan, plan
        assert "Seq Scan on tornado_messages" not in plan and "Hash Join" not in plan, plan
        queue.delete(name, [m.receipt for m in received])
        assert queue.depth(name).total == 100000 - 10
    finally:
        queue.close()
        pool.close()


def test_recording_successes_finds_jobs_by_key_after_the_table_outgrew_its_first_plan(
    fresh_database_url: str,
) -> None:
    """A worker's connection plans its success statement once, while the job table may be nearly
    empty; when the table has grown to 100,000 jobs since, recording three successes still finds
    them by primary key instead of reading the whole table (its cost does not grow with the table)."""
    pool = PostgresPool(fresh_database_url, max_size=1)  # one connection: the one holding the plan
    store = PostgresJobStore(pool)
    try:
        jobs = [new_job("grow", n) for n in range(40)]
        store.record_queued(jobs)
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("ANALYZE tornado_jobs")  # statistics of a nearly empty table
        for n in range(0, 30, 3):  # more than five runs: PostgreSQL settles on one cached plan
            store.record_successes([Success(job_id=job.job_id, result={"n": n}) for job in jobs[n : n + 3]])
        fill = (
            "INSERT INTO tornado_jobs (job_id, tenant, task, version, status, created_at, updated_at)"
            " SELECT 'fill-' || n, 'fill', 'demo.echo', '1.0.0', 'succeeded', now(), now()"
            " FROM generate_series(1, 100000) AS n"
        )
        with psycopg2.connect(fresh_database_url) as other, other.cursor() as cur:
            cur.execute(fill)  # another connection: the cached plan is not invalidated
        with pool.connection() as conn, conn.cursor() as cur:
            # Scans of this backend not yet reported (earlier transactions' too): compared before and after.
            scans = (
                "SELECT seq_scan, idx_scan, idx_tup_fetch FROM pg_stat_xact_user_tables"
                " WHERE relname = 'tornado_jobs'"
            )
            cur.execute(scans)
            before = cur.fetchone()
            write_successes(cur, [Success(job_id=job.job_id, result={"late": True}) for job in jobs[30:33]])
            cur.execute(scans)
            after = cur.fetchone()
            conn.commit()
        seq_scans, index_scans, rows_read = (now - then for now, then in zip(after, before, strict=True))
        assert seq_scans == 0, f"{seq_scans} scan(s) of the whole table"
        assert index_scans >= 1 and rows_read <= 3, f"{rows_read} rows read through an index"
        assert all(store.get(job.job_id).status is JobStatus.SUCCEEDED for job in jobs[30:33])  # type: ignore[union-attr]
    finally:
        pool.close()


def _messages_read(dsn: str) -> tuple[int, int]:
    """Rows of ``tornado_messages`` read so far by sequential scans and through indexes (reported)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_user_tables WHERE relname = 'tornado_messages'"
        )
        seq, index = cur.fetchone()
    return int(seq), int(index)


def test_a_burst_into_a_queue_planned_empty_is_received_and_deleted_by_key(fresh_database_url: str) -> None:
    """A worker's connection plans its receive and delete on a nearly empty queue; then 100,000
    messages arrive. Each receive and delete still reads a handful of rows, not the backlog."""
    pool = PostgresPool(fresh_database_url, max_size=1)  # one connection: the one holding the plans
    queue = PostgresQueue(pool)
    fill = (
        "INSERT INTO tornado_messages (queue, body, visible_at)"
        " SELECT %s, 'm' || n, clock_timestamp() FROM generate_series(1, %s) AS n"
    )

    def receive_and_delete(rounds: int) -> None:
        for _ in range(rounds):
            received = queue.receive("burst", max_messages=3, wait_seconds=0, visibility_timeout=30)
            assert len(received) == 3
            queue.delete("burst", [m.receipt for m in received])
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")  # reported when this transaction ends

    try:
        spec = QueueSpec(
            name="burst", dead_letter_name="burst-dlq", max_receive_count=5, visibility_timeout=30
        )
        queue.ensure_queue(spec)
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute(fill, ("burst", 30))
            cur.execute("ANALYZE tornado_messages")  # statistics of a nearly empty queue
        receive_and_delete(8)  # more than five runs: PostgreSQL settles on one cached plan of each
        with psycopg2.connect(fresh_database_url) as other, other.cursor() as cur:
            cur.execute(fill, ("burst", 100_000))  # another connection: the cached plans stay
        before = _messages_read(fresh_database_url)
        receive_and_delete(20)
        after = _messages_read(fresh_database_url)
        seq_rows, index_rows = after[0] - before[0], after[1] - before[1]
        assert seq_rows == 0, f"{seq_rows} rows read by sequential scans"
        assert index_rows <= 20 * 3 * 3, f"{index_rows} rows read through indexes for 60 messages"
        assert queue.depth("burst").total == 100_000 + 30 - 28 * 3
    finally:
        queue.close()
        pool.close()
