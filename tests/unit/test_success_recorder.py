"""Group commit: jobs that finish together share one durable transaction, and each job's thread
returns only once its own record is durable."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from tornado_core.adapters.memory.stores import MemoryJobStore
from tornado_core.errors import StoreUnavailable
from tornado_core.ports.jobs import JobStatus, NewJob, Success
from tornado_core.worker.completions import GroupCommit


class GatedStore(MemoryJobStore):
    """Counts record_successes calls; the first one waits for the gate (a slow commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail_next = False

    def record_successes(self, successes: Sequence[Success]) -> None:
        self.calls.append(len(successes))
        self.entered.set()
        self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailable("PostgreSQL is restarting")
        super().record_successes(successes)


def job(n: int) -> NewJob:
    return NewJob(job_id=f"job-{n}", tenant="acme", task="t", version="1", submitted_at=time.time())


@pytest.fixture
def store() -> GatedStore:
    gated = GatedStore()
    gated.record_queued([job(n) for n in range(40)])
    return gated


def record_in_threads(
    recorder: GroupCommit[Success], store: MemoryJobStore, numbers: range, errors: list[BaseException]
) -> list[threading.Thread]:
    """One thread per job, each recording its success; what goes wrong lands in ``errors``."""

    def run(n: int) -> None:
        try:
            recorder.record(Success(job_id=f"job-{n}", result={"n": n}))
        except BaseException as exc:
            errors.append(exc)
            return
        record = store.get(f"job-{n}")
        if record is None or record.status is not JobStatus.SUCCEEDED:  # durable before returning
            errors.append(AssertionError(f"job-{n} returned before its record was written"))

    threads = [threading.Thread(target=run, args=(n,)) for n in numbers]
    for thread in threads:
        thread.start()
    return threads


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_a_lone_record_is_committed_at_once_on_its_own(store: GatedStore) -> None:
    store.gate.set()
    GroupCommit(store.record_successes).record(Success(job_id="job-1", result=1))
    assert store.calls == [1]
    assert store.get("job-1").status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


def test_records_that_arrive_during_a_commit_share_the_next_one(store: GatedStore) -> None:
    recorder, errors = GroupCommit(store.record_successes), []
    first = record_in_threads(recorder, store, range(1), errors)
    wait_until(store.entered.is_set, "the first commit to start")
    others = record_in_threads(recorder, store, range(1, 10), errors)
    wait_until(lambda: recorder.pending == 9, "nine records waiting")
    store.gate.set()
    for thread in first + others:
        thread.join(10)
    assert errors == []
    assert store.calls == [1, 9]  # ten records, two commits


def test_batches_are_bounded(store: GatedStore) -> None:
    recorder, errors = GroupCommit(store.record_successes, max_batch=4), []
    first = record_in_threads(recorder, store, range(1), errors)
    wait_until(store.entered.is_set, "the first commit to start")
    others = record_in_threads(recorder, store, range(1, 11), errors)
    wait_until(lambda: recorder.pending == 10, "ten records waiting")
    store.gate.set()
    for thread in first + others:
        thread.join(10)
    assert errors == [] and store.calls == [1, 4, 4, 2]


def test_a_failed_commit_fails_every_record_in_it_and_the_next_commit_works(store: GatedStore) -> None:
    recorder, errors = GroupCommit(store.record_successes), []
    store.fail_next = True
    first = record_in_threads(recorder, store, range(1), errors)
    wait_until(store.entered.is_set, "the first commit to start")
    store.gate.set()
    first[0].join(10)
    assert [type(e) for e in errors] == [StoreUnavailable]
    assert store.get("job-0").status is JobStatus.QUEUED  # type: ignore[union-attr]  # nothing to acknowledge
    recorder.record(Success(job_id="job-0", result=0))  # the store is back
    assert store.get("job-0").status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
