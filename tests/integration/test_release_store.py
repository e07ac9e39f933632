"""The release store and the route cache against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tornado_core.adapters.postgres import PostgresJobStore, PostgresPool
from tornado_core.adapters.postgres.releases import PostgresReleaseStore
from tornado_core.adapters.postgres.routes import PostgresRouteCache
from tornado_core.devstack import DevStack, ExternalStack
from tornado_core.errors import ReleaseError
from tornado_core.ports.jobs import Failure, JobStatus, NewJob
from tornado_core.ports.releases import ReleaseState, VersionRelease
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.versions import TaskVersion
from tornado_core.routing import Router, choose_version

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[PostgresPool]:
    pool = PostgresPool(fresh_database_url, max_size=4)
    yield pool
    pool.close()


@pytest.fixture
def store(pool: PostgresPool) -> PostgresReleaseStore:
    return PostgresReleaseStore(pool)


@pytest.fixture
def cache(pool: PostgresPool) -> Iterator[PostgresRouteCache]:
    cache = PostgresRouteCache(pool, refresh=30.0)
    assert cache.start(wait=5)
    yield cache
    cache.close()


def contract(task: str, version: str) -> TaskVersion:
    return TaskVersion(
        task=task, version=version, payload_schema=SCHEMA, max_attempts=3, visibility_timeout=30, timeout=60
    )


#: A generous bound: the cache reloads by itself only every 30 s, so seeing a change before that
#: shows the notification at work (how fast it is, bench/ measures).
NOTIFIED_WITHIN = 10.0


def wait_for(predicate: Callable[[], object], what: str, timeout: float = NOTIFIED_WITHIN) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.01)


def test_routes_releases_and_events_are_saved_in_one_transaction(store: PostgresReleaseStore) -> None:
    route = RouteTable(
        task="nfe.emit", current="1.0.0", ramping="2.0.0", ramp_percent=20, pins={"acme": "2.0.0"}
    )
    release = VersionRelease(task="nfe.emit", version="2.0.0", state=ReleaseState.RAMPING, previous="1.0.0")
    store.save(operation="ramp", route=route, releases=[release], detail="2.0.0 at 20%")
    store.save(operation="ramp", route=route.ramped("2.0.0", 50))
    saved = store.route("nfe.emit")
    assert saved is not None and saved.ramp_percent == 50 and dict(saved.pins) == {"acme": "2.0.0"}
    assert saved.revision == 2
    (loaded,) = store.releases("nfe.emit")
    assert (loaded.state, loaded.previous, loaded.runtime) == (ReleaseState.RAMPING, "1.0.0", "process")
    assert loaded.updated_at == pytest.approx(time.time(), abs=5)
    assert [(e.operation, e.state, e.detail) for e in store.events("nfe.emit")] == [
        ("ramp", "ramping", "2.0.0 at 20%")
    ]


def test_task_versions_are_registered_once_and_found_by_name(store: PostgresReleaseStore) -> None:
    store.register_version(contract("sped.file", "1.0.0"))
    store.register_version(contract("sped.file", "1.0.0"))
    store.register_version(contract("sped.file", "1.1.0"))
    assert sorted(store.version_names("sped.file")) == ["1.0.0", "1.1.0"]
    assert store.task_version("sped.file", "1.1.0") == contract("sped.file", "1.1.0")
    assert store.task_version("sped.file", "9") is None


def test_stats_count_attempts_failures_and_running_jobs_since_a_time(
    store: PostgresReleaseStore, pool: PostgresPool
) -> None:
    jobs = PostgresJobStore(pool)
    before = time.time()

    def job(name: str, when: float) -> NewJob:
        return NewJob(job_id=name, tenant="acme", task="t.stats", version="2", submitted_at=when)

    jobs.record_queued([job("old", before - 60)])
    for name in ("ok", "retried", "dead", "running"):
        jobs.claim(job(name, before + 1), attempt=1, lease_seconds=60, worker="w")
    jobs.record_success("ok", result=None, result_ref=None)
    failure = Failure(error_type="E", message="boom")
    jobs.record_failure("retried", status=JobStatus.RETRYING, failure=failure)
    jobs.claim(job("retried", before + 1), attempt=2, lease_seconds=60, worker="w")
    jobs.record_success("retried", result=None, result_ref=None)
    jobs.record_failure("dead", status=JobStatus.DEAD, failure=failure)

    stats = store.stats("t.stats", "2", since=before)
    assert (stats.jobs, stats.attempts, stats.succeeded, stats.dead, stats.running) == (4, 5, 2, 1, 1)
    assert stats.failures == 2 and stats.error_rate == 50.0
    assert store.stats("t.stats", "2").jobs == 5

    store.requeue(["dead"], version="1")
    record = jobs.get("dead")
    assert record is not None and (record.version, record.status) == ("1", JobStatus.QUEUED)


def test_one_release_operation_per_task_names_the_holder(store: PostgresReleaseStore) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lock("nfe.emit"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    try:
        with (
            pytest.raises(
                ReleaseError, match=r"another release operation on nfe\.emit .*held by tornado release"
            ),
            store.lock("nfe.emit"),
        ):
            pass
        with store.lock("sped.file"):  # other tasks are not blocked
            pass
    finally:
        release.set()
        holder.join()
    with store.lock("nfe.emit"):  # free again
        pass


def test_the_cache_follows_route_changes_as_they_are_notified(
    store: PostgresReleaseStore, cache: PostgresRouteCache
) -> None:
    task = f"t.cache{uuid.uuid4().hex[:6]}"
    assert cache.route(task) is None
    store.register_version(contract(task, "2.0.0"))
    store.save(operation="promote", route=RouteTable(task=task, current="1.0.0"))
    wait_for(lambda: cache.route(task) is not None, "the cache seeing the new route")
    for percent in (10, 50, 100):
        store.save(operation="ramp", route=RouteTable(task=task, current="1.0.0").ramped("2.0.0", percent))
        wait_for(
            lambda p=percent: (cache.route(task) or RouteTable(task=task, current="x")).ramp_percent == p,
            f"the cache seeing the ramp to {percent}%",
        )
    assert cache.task_version(task, "2.0.0") == contract(task, "2.0.0")
    assert cache.version_names(task) == ["2.0.0"]


def test_routing_goes_on_with_the_last_known_table_while_postgres_is_gone(
    dev_stack: DevStack | ExternalStack,
    store: PostgresReleaseStore,
    cache: PostgresRouteCache,
    fresh_database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.save(operation="promote", route=RouteTable(task="nfe.emit", current="2.0.0"))
    wait_for(lambda: cache.route("nfe.emit") is not None, "the cache seeing the route")
    dev_stack.drop_database(fresh_database_url)  # every connection is cut, reloads fail from now on
    loaded = cache.loaded_at
    failures = len([r for r in caplog.records if "could not reload" in r.getMessage()])
    wait_for(
        lambda: len([r for r in caplog.records if "could not reload" in r.getMessage()]) >= failures + 2,
        "two failed reloads",
    )
    assert cache.loaded_at == loaded
    router = Router(cache.route, lambda task: "newest")
    assert router("nfe.emit", "acme", "job-1") == "2.0.0"
    assert choose_version(cache.route("nfe.emit"), "acme", "job-1") == "2.0.0"  # type: ignore[arg-type]
