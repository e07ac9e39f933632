"""Group commit: jobs that finish together share one durable transaction, and each job's thread
returns only once its own record is durable."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.errors import StoreUnavailable
from tornado_core.ports.jobs import JobStatus, NewJob, Success
from tornado_core.ports.queue_and_jobs import Completion
from tornado_core.worker.completions import BackgroundCompleter, GroupCommit


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


# --- the worker's background completer --------------------------------------------------------


def completion(n: int) -> Completion:
    return Completion(success=Success(job_id=f"job-{n}", result=n), queue="q", receipt=f"r{n}")


class Reports:
    """What the completer told the worker: each batch's job ids and error."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], BaseException | None]] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[Completion], error: BaseException | None) -> None:
        with self.lock:
            self.batches.append(([c.success.job_id for c in batch], error))

    def jobs(self) -> int:
        with self.lock:
            return sum(len(ids) for ids, _ in self.batches)


def test_the_completer_commits_what_arrived_during_a_commit_in_the_next_one(store: GatedStore) -> None:
    reports = Reports()
    completer = BackgroundCompleter(lambda batch: store.record_successes([c.success for c in batch]), reports)
    completer.start()
    try:
        completer.submit(completion(0))
        wait_until(store.entered.is_set, "the first commit to start")
        for n in range(1, 10):
            completer.submit(completion(n))  # returns at once: the job thread goes on
        assert reports.batches == []  # nothing is reported durable while the commit is under way
        store.gate.set()
        wait_until(lambda: reports.jobs() == 10, "every completion to be reported")
    finally:
        completer.close()
    assert store.calls == [1, 9]
    assert reports.batches == [(["job-0"], None), ([f"job-{n}" for n in range(1, 10)], None)]
    assert all(store.get(f"job-{n}").status is JobStatus.SUCCEEDED for n in range(10))  # type: ignore[union-attr]


def test_the_completer_reports_a_failed_batch_with_its_error_and_goes_on(store: GatedStore) -> None:
    reports = Reports()
    store.fail_next = True
    store.gate.set()
    completer = BackgroundCompleter(lambda batch: store.record_successes([c.success for c in batch]), reports)
    completer.start()
    try:
        completer.submit(completion(0))
        wait_until(lambda: reports.jobs() == 1, "the failed batch to be reported")
        completer.submit(completion(1))
        wait_until(lambda: reports.jobs() == 2, "the next batch to be reported")
    finally:
        completer.close()
    (failed, error), (written, ok) = reports.batches
    assert (failed, type(error), written, ok) == (["job-0"], StoreUnavailable, ["job-1"], None)
    assert store.get("job-0").status is JobStatus.QUEUED  # type: ignore[union-attr]  # nothing to acknowledge


def test_the_completer_holds_job_threads_back_when_too_many_wait(store: GatedStore) -> None:
    reports = Reports()
    write = lambda batch: store.record_successes([c.success for c in batch])  # noqa: E731
    completer = BackgroundCompleter(write, reports, max_batch=2, max_pending=2)
    completer.start()
    blocked = threading.Event()
    try:
        completer.submit(completion(0))
        wait_until(store.entered.is_set, "the first commit to start")
        completer.submit(completion(1))
        completer.submit(completion(2))  # two waiting: the limit

        def third() -> None:
            completer.submit(completion(3))
            blocked.set()

        threading.Thread(target=third, daemon=True).start()
        assert not blocked.wait(0.2)  # the job thread waits for room
        store.gate.set()
        assert blocked.wait(10)
        wait_until(lambda: reports.jobs() == 4, "every completion to be reported")
    finally:
        store.gate.set()
        completer.close()


def test_closing_the_completer_writes_everything_still_pending(store: GatedStore) -> None:
    reports = Reports()
    completer = BackgroundCompleter(lambda batch: store.record_successes([c.success for c in batch]), reports)
    completer.start()
    completer.submit(completion(0))
    wait_until(store.entered.is_set, "the first commit to start")
    completer.submit(completion(1))
    store.gate.set()
    completer.close()
    assert reports.jobs() == 2 and store.calls == [1, 1]


def test_a_faulty_report_does_not_stop_the_completer(store: GatedStore) -> None:
    reports = Reports()
    store.gate.set()
    calls = {"n": 0}

    def report(batch: list[Completion], error: BaseException | None) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the worker's bookkeeping")
        reports(batch, error)

    completer = BackgroundCompleter(lambda batch: store.record_successes([c.success for c in batch]), report)
    completer.start()
    try:
        completer.submit(completion(0))
        wait_until(lambda: calls["n"] == 1, "the first report")
        completer.submit(completion(1))
        wait_until(lambda: reports.jobs() == 1, "the second batch to be reported")
    finally:
        completer.close()
    assert reports.batches == [(["job-1"], None)]
