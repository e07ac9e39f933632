"""The NF-e number allocator on a real PostgreSQL: gap-free per series, idempotent per job, burned runs."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from tornado_tasks.nfe.access_key import build_access_key, parse_access_key, random_code_for
from tornado_tasks.nfe.numbering import (
    Allocation,
    AllocationConflict,
    AllocationNotFound,
    IllegalTransition,
    NumberingInvalid,
    SeriesExhausted,
    Status,
    allocate_number,
    burned_numbers,
    configure_series,
    find_allocation,
    mark,
)
from tornado_tasks.nfe.schema import ensure_schema

from tornado_core import NonRetryable
from tornado_core.adapters.postgres import PostgresPool

CNPJ = "11222333000181"
OTHER_CNPJ = "12ABC34501DE35"
THREADS = 8
PER_THREAD = 25


@pytest.fixture(name="erp")
def erp_fixture(fresh_database_url: str) -> Iterator[PostgresPool]:
    """A fresh ERP database with the NF-e tables (ensured twice: the second call is a no-op)."""
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=THREADS + 2)
    for _ in range(2):
        with pool.connection() as conn:
            ensure_schema(conn)
    yield pool
    pool.close()


def allocate(pool: PostgresPool, job: str, cnpj: str = CNPJ, model: int = 55, series: int = 1) -> Allocation:
    """One allocation in a transaction of its own, committed."""
    with pool.connection() as conn:
        return allocate_number(conn, job_id=job, cnpj=cnpj, model=model, series=series)


def set_status(pool: PostgresPool, job: str, status: Status | str) -> Allocation:
    with pool.connection() as conn:
        return mark(conn, job, status)


def scalar(pool: PostgresPool, sql: str, *params: object) -> object:
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
        return row[0] if row else None


def series_numbers(pool: PostgresPool, cnpj: str = CNPJ, model: int = 55, series: int = 1) -> list[int]:
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT number FROM nfe_number WHERE cnpj = %s AND model = %s AND series = %s ORDER BY number",
            (cnpj, model, series),
        )
        return [row[0] for row in cur.fetchall()]


def test_sequential_allocations_count_from_one_with_the_jobs_cnf(erp: PostgresPool) -> None:
    allocations = [allocate(erp, f"job-{i}", cnpj="11.222.333/0001-81") for i in range(1, 6)]

    assert [a.number for a in allocations] == [1, 2, 3, 4, 5]
    first = allocations[0]
    assert (first.job_id, first.cnpj, first.model, first.series, first.status) == (
        "job-1", CNPJ, 55, 1, Status.ALLOCATED,
    )  # fmt: skip
    assert all(a.random_code == random_code_for(a.job_id, number=a.number) for a in allocations)
    assert first.updated_at == first.allocated_at  # until its status changes
    key = build_access_key(
        uf_code=35, year=2026, month=1, issuer=first.cnpj, model=first.model, series=first.series,
        number=first.number, emission_type=1, random_code=first.random_code,
    )  # fmt: skip
    assert parse_access_key(key.text).number == 1
    assert scalar(erp, "SELECT last_number FROM nfe_series WHERE cnpj = %s", CNPJ) == 5


def test_each_cnpj_model_and_series_counts_on_its_own(erp: PostgresPool) -> None:
    series_list = [(CNPJ, 55, 1), (CNPJ, 55, 2), (CNPJ, 65, 1), (OTHER_CNPJ, 55, 1), (CNPJ, 55, 0)]
    got: dict[tuple[str, int, int], list[int]] = {key: [] for key in series_list}
    for round_ in range(3):
        for index, (cnpj, model, series) in enumerate(series_list):
            allocation = allocate(erp, f"job-{round_}-{index}", cnpj, model, series)
            got[(cnpj, model, series)].append(allocation.number)

    assert got == {key: [1, 2, 3] for key in series_list}
    assert allocate(erp, "alnum", "12.abc.345/01de-35").cnpj == OTHER_CNPJ


def test_a_redelivered_job_gets_its_number_back_on_another_worker(erp: PostgresPool) -> None:
    first = allocate(erp, "emit-42")
    other_worker = PostgresPool(erp.dsn, min_size=0, max_size=1)
    try:
        again = allocate(other_worker, "emit-42", cnpj="11.222.333/0001-81")
    finally:
        other_worker.close()

    assert again == first
    assert scalar(erp, "SELECT count(*) FROM nfe_number WHERE job_id = %s", "emit-42") == 1
    assert allocate(erp, "emit-43").number == 2
    burned = set_status(erp, "emit-42", Status.REJECTED_BURNED)
    redelivered = allocate(erp, "emit-42")
    assert (redelivered.number, redelivered.random_code, redelivered.status) == (
        1, first.random_code, Status.REJECTED_BURNED,
    )  # fmt: skip
    assert redelivered == burned
    with erp.connection() as conn:
        assert find_allocation(conn, "emit-42") == burned
        assert find_allocation(conn, "never-allocated") is None


def test_a_job_never_takes_numbers_in_two_series(erp: PostgresPool) -> None:
    allocate(erp, "emit-1", series=1)

    held = r"job 'emit-1' already holds number 1 of series 1"
    with pytest.raises(AllocationConflict, match=held) as caught:
        allocate(erp, "emit-1", series=2)

    assert isinstance(caught.value, NonRetryable)
    assert scalar(erp, "SELECT count(*) FROM nfe_series WHERE series = 2") == 0
    assert series_numbers(erp, series=2) == []


def test_eight_threads_allocate_exactly_one_to_two_hundred(erp: PostgresPool) -> None:
    start = threading.Barrier(THREADS)

    def run(thread: int) -> list[int]:
        start.wait()
        return [allocate(erp, f"t{thread}-{i}").number for i in range(PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, range(THREADS)))
    numbers = sorted(n for result in results for n in result)

    assert numbers == list(range(1, THREADS * PER_THREAD + 1))
    assert all(result == sorted(result) for result in results)  # each thread sees its numbers grow
    assert series_numbers(erp) == numbers
    assert scalar(erp, "SELECT last_number FROM nfe_series") == THREADS * PER_THREAD


def test_concurrent_deliveries_of_the_same_jobs_share_their_numbers(erp: PostgresPool) -> None:
    jobs = [f"emit-{i}" for i in range(PER_THREAD)]
    start = threading.Barrier(THREADS)

    def run(thread: int) -> dict[str, tuple[int, int]]:
        order = random.Random(thread).sample(jobs, len(jobs))
        start.wait()
        return {job: (a.number, a.random_code) for job in order for a in [allocate(erp, job)]}

    with ThreadPoolExecutor(THREADS) as pool:
        seen = list(pool.map(run, range(THREADS)))

    assert all(result == seen[0] for result in seen)
    assert sorted(number for number, _ in seen[0].values()) == list(range(1, PER_THREAD + 1))
    assert series_numbers(erp) == list(range(1, PER_THREAD + 1))


@pytest.mark.parametrize("series_exists", [True, False], ids=["series-row-exists", "first-allocation"])
def test_a_delivery_waiting_for_the_lock_returns_the_number_the_other_committed(
    erp: PostgresPool, series_exists: bool
) -> None:
    if series_exists:
        allocate(erp, "earlier")
    holder, waiter = erp.new_connection(), erp.new_connection()
    try:
        held = allocate_number(holder, job_id="emit-7", cnpj=CNPJ, model=55, series=1)  # not committed
        waiter_pid = waiter.get_backend_pid()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(allocate_number, waiter, job_id="emit-7", cnpj=CNPJ, model=55, series=1)
            deadline = time.monotonic() + 30
            sql = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
            while scalar(erp, sql, waiter_pid) != "Lock":  # the waiter is blocked by the holder's row
                assert time.monotonic() < deadline, "the second delivery never waited for the first"
                assert not pending.done(), pending.result()
            holder.commit()
            got = pending.result(timeout=30)
        waiter.commit()
    finally:
        holder.close()
        waiter.close()

    assert got == held
    assert series_numbers(erp) == ([1, 2] if series_exists else [1])
    assert allocate(erp, "next").number == held.number + 1


def test_a_rolled_back_allocation_leaves_no_hole(erp: PostgresPool) -> None:
    assert allocate(erp, "emit-1").number == 1
    with pytest.raises(RuntimeError, match="SEFAZ client crashed"), erp.connection() as conn:
        assert allocate_number(conn, job_id="emit-2", cnpj=CNPJ, model=55, series=1).number == 2
        raise RuntimeError("SEFAZ client crashed")

    with erp.connection() as conn:
        assert find_allocation(conn, "emit-2") is None
    assert allocate(erp, "emit-3").number == 2
    assert allocate(erp, "emit-2").number == 3  # the job's next delivery starts afresh
    assert series_numbers(erp) == [1, 2, 3]


def test_burned_numbers_come_back_as_merged_runs(erp: PostgresPool) -> None:
    for i in range(1, 11):
        allocate(erp, f"emit-{i}")
    allocate(erp, "other-series", series=2)
    set_status(erp, "other-series", Status.REJECTED_BURNED)
    for i in (1, 2, 6, 8, 10):
        set_status(erp, f"emit-{i}", Status.AUTHORIZED)
    for i in (9, 4, 3, 5, 7):
        set_status(erp, f"emit-{i}", "rejected_burned")
    set_status(erp, "emit-7", Status.VOIDED)  # already inutilizado

    with erp.connection() as conn:
        assert burned_numbers(conn, CNPJ, 55, 1) == [(3, 5), (9, 9)]
        assert burned_numbers(conn, "11.222.333/0001-81", 55, 2) == [(1, 1)]
        assert burned_numbers(conn, CNPJ, 65, 1) == []
    for i in (3, 4, 5):
        set_status(erp, f"emit-{i}", Status.VOIDED)
    with erp.connection() as conn:
        assert burned_numbers(conn, CNPJ, 55, 1) == [(9, 9)]


def test_status_moves_only_forward(erp: PostgresPool) -> None:
    allocated = [allocate(erp, job) for job in ("a", "b", "c", "d")]
    authorized = set_status(erp, "a", Status.AUTHORIZED)
    assert authorized.status is Status.AUTHORIZED
    assert authorized == dataclasses.replace(
        allocated[0], status=Status.AUTHORIZED, updated_at=authorized.updated_at
    )
    assert set_status(erp, "a", "authorized") == authorized  # the same status again: a no-op
    set_status(erp, "b", Status.REJECTED_BURNED)
    set_status(erp, "c", Status.VOIDED)  # allocated, never sent, inutilizado
    set_status(erp, "d", Status.REJECTED_BURNED)
    assert set_status(erp, "d", Status.VOIDED).status is Status.VOIDED

    refused = [("a", Status.REJECTED_BURNED), ("a", Status.VOIDED), ("a", Status.ALLOCATED),
               ("b", Status.AUTHORIZED), ("b", Status.ALLOCATED), ("c", Status.AUTHORIZED),
               ("d", Status.REJECTED_BURNED)]  # fmt: skip
    for job, status in refused:
        with pytest.raises(IllegalTransition, match=f"cannot become {status}") as caught:
            set_status(erp, job, status)
        assert isinstance(caught.value, NonRetryable)
    with pytest.raises(IllegalTransition, match=r"number 1 of series 1 of model 55 of CNPJ 11222333000181"):
        set_status(erp, "a", Status.VOIDED)
    with pytest.raises(AllocationNotFound, match="'nobody'"):
        set_status(erp, "nobody", Status.AUTHORIZED)
    with pytest.raises(NumberingInvalid, match="status: must be one of"):
        set_status(erp, "a", "cancelled")
    statuses = scalar(erp, "SELECT string_agg(status, ',' ORDER BY number) FROM nfe_number")
    assert statuses == "authorized,rejected_burned,voided,voided"


def test_the_series_stops_at_999_999_999(erp: PostgresPool) -> None:
    with erp.connection() as conn:
        configure_series(conn, cnpj=CNPJ, model=55, series=7, first_number=999_999_998)
    assert allocate(erp, "last-but-one", series=7).number == 999_999_998
    last = allocate(erp, "last", series=7)
    assert last.number == 999_999_999

    exhausted = "series 7 of model 55 of CNPJ 11222333000181 is exhausted"
    with pytest.raises(SeriesExhausted, match=exhausted) as caught:
        allocate(erp, "one-too-many", series=7)

    assert isinstance(caught.value, NonRetryable)
    assert (caught.value.cnpj, caught.value.model, caught.value.series) == (CNPJ, 55, 7)
    assert allocate(erp, "last", series=7) == last  # its redelivery still gets it
    assert series_numbers(erp, series=7) == [999_999_998, 999_999_999]
    assert allocate(erp, "one-too-many", series=8).number == 1


def test_a_series_may_start_at_a_configured_number_until_it_allocates(erp: PostgresPool) -> None:
    with erp.connection() as conn:
        configure_series(conn, cnpj=CNPJ, model=55, series=3, first_number=5000)
        configure_series(conn, cnpj=CNPJ, model=55, series=3, first_number=1000)  # unused: may change
    assert allocate(erp, "migrated-1", series=3).number == 1000
    with erp.connection() as conn:
        configure_series(conn, cnpj="11.222.333/0001-81", model=55, series=3, first_number=1000)  # no-op
    with pytest.raises(AllocationConflict, match="has allocated 1 number"), erp.connection() as conn:
        configure_series(conn, cnpj=CNPJ, model=55, series=3, first_number=1)
    assert allocate(erp, "migrated-2", series=3).number == 1001


def test_allocation_rows_are_never_deleted_nor_renumbered(erp: PostgresPool) -> None:
    allocate(erp, "emit-1")
    statements = [
        "DELETE FROM nfe_number",
        "UPDATE nfe_number SET number = 2",
        "UPDATE nfe_number SET random_code = random_code + 1",
        "TRUNCATE nfe_number",
    ]
    for sql in statements:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), erp.connection() as conn:
            conn.cursor().execute(sql)
    assert series_numbers(erp) == [1]


def test_bad_arguments_are_refused_before_any_allocation(erp: PostgresPool) -> None:
    with pytest.raises(NumberingInvalid) as caught, erp.connection() as conn:
        allocate_number(conn, job_id="x", cnpj="11222333000182", model=57, series=1000)
    assert [p["field"] for p in caught.value.problems] == ["cnpj", "model", "series"]
    assert scalar(erp, "SELECT count(*) FROM nfe_series") == 0
