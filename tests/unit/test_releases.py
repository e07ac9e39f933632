"""The release lifecycle as a state machine, over in-memory adapters and a fake runtime."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from tornado_core import RetryPolicy, TaskContext, TaskSpec, task
from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.adapters.memory.releases import MemoryReleaseStore
from tornado_core.bootstrap import Routing, build_submitter, provision_queues
from tornado_core.errors import PayloadInvalid, ReleaseError
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.jobs import Failure, JobStatus, NewJob
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.releases import ReleaseState
from tornado_core.ports.runtime import Deployment, InstanceState, WorkerInstance
from tornado_core.ports.versions import TaskVersion
from tornado_core.registry import TaskRegistry
from tornado_core.releases.manager import DeployRequest, ReleaseManager
from tornado_core.releases.queues import Pace
from tornado_core.releases.rollout import Rollout, RunPlan
from tornado_core.routing import Router
from tornado_core.services import Services
from tornado_core.toolchain.testing import memory_services
from tornado_core.versions import contract_of, newest_version

TASK = "erp.sync"


class Payload(BaseModel):
    n: int


def declare(version: str) -> TaskSpec:
    @task(name=TASK, payload=Payload, version=version, retry=RetryPolicy(max_attempts=2), timeout=5)
    def handler(ctx: TaskContext, payload: Payload) -> int:
        return payload.n

    return handler


@dataclass
class FakeRuntime:
    """Instances in a dict; ``contracts`` is what ``describe`` finds in "images"."""

    name: str = "fake"
    running: dict[tuple[str, str], int] = field(default_factory=dict)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    contracts: dict[tuple[str, str], TaskVersion] = field(default_factory=dict)

    def ensure(self, deployment: Deployment) -> list[WorkerInstance]:
        self.running[(deployment.task, deployment.version)] = deployment.replicas
        return self.instances(deployment.task, deployment.version)

    def instances(self, task: str, version: str) -> list[WorkerInstance]:
        count = self.running.get((task, version), 0)
        return [
            WorkerInstance(
                instance_id=f"{version}-{i}", task=task, version=version, state=InstanceState.HEALTHY
            )
            for i in range(count)
        ]

    def wait_healthy(self, task: str, version: str, *, replicas: int, timeout: float) -> list[WorkerInstance]:
        return self.instances(task, version)

    def stop(self, task: str, version: str, *, grace_period: float) -> None:
        self.running.pop((task, version), None)
        self.stopped.append((task, version))

    def describe(self, deployment: Deployment) -> TaskVersion | None:
        return self.contracts.get((deployment.task, deployment.version))


@pytest.fixture
def services() -> Services:
    """This process has the code of 1.0.0 only; later versions live in their "images"."""
    return memory_services(TaskRegistry([declare("1.0.0")]))


@pytest.fixture
def store(services: Services) -> MemoryReleaseStore:
    assert isinstance(services.jobs, MemoryJobStore)
    return MemoryReleaseStore(services.jobs)


@pytest.fixture
def runtime() -> FakeRuntime:
    contracts = {(TASK, v): contract_of(declare(v)) for v in ("2.0.0", "3.0.0")}
    return FakeRuntime(contracts=contracts)


@pytest.fixture
def manager(services: Services, store: MemoryReleaseStore, runtime: FakeRuntime) -> ReleaseManager:
    return ReleaseManager(services, store, lambda _name: runtime, pace=Pace(poll=0.01, settle=0.0))


def deploy(manager: ReleaseManager, version: str) -> None:
    manager.deploy(DeployRequest(task=TASK, version=version, runtime="fake", replicas=2))


def submit(
    services: Services, store: MemoryReleaseStore, *, tenant: str = "acme", payload: object = None
) -> Envelope:
    """Submit like the API does: routed by the store's table, sent, recorded."""
    router = Router(store.route, lambda task: newest_version(services.registry, store, task))
    submitter = build_submitter(services, Routing(resolve=router, catalog=store))
    prepared = submitter.prepare(task=TASK, tenant=tenant, payload=payload or {"n": 1})
    assert services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)]) == [None]
    services.jobs.record_queued([prepared.as_new_job()])
    return prepared.envelope


def queue_of(services: Services, version: str) -> str:
    return queue_name(services.settings.queue_prefix, TASK, version)


def states(store: MemoryReleaseStore) -> dict[str, ReleaseState]:
    return {r.version: r.state for r in store.releases(TASK)}


def test_the_first_deploy_becomes_current_and_the_next_waits_for_promote(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services, runtime: FakeRuntime
) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    assert states(store) == {"1.0.0": ReleaseState.CURRENT, "2.0.0": ReleaseState.DEPLOYED}
    assert runtime.running == {(TASK, "1.0.0"): 2, (TASK, "2.0.0"): 2}
    assert {submit(services, store).version for _ in range(20)} == {"1.0.0"}

    manager.promote(TASK, "2.0.0")
    assert states(store) == {"1.0.0": ReleaseState.DRAINING, "2.0.0": ReleaseState.CURRENT}
    assert {submit(services, store).version for _ in range(20)} == {"2.0.0"}
    assert next(r for r in store.releases(TASK) if r.version == "2.0.0").previous == "1.0.0"


def test_deploying_next_to_an_unmanaged_version_keeps_routing_on_it(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services
) -> None:
    # 1.0.0 runs from plain `tornado worker` processes: deploying 2.0.0 must not steal its jobs.
    provision_queues(services)
    deploy(manager, "2.0.0")
    route = store.route(TASK)
    assert route is not None and route.current == "1.0.0"
    assert submit(services, store).version == "1.0.0"
    assert [row.release.runtime for row in manager.status(TASK)] == ["fake", "external"]


def test_a_version_known_only_to_its_image_is_registered_and_validated_by_schema(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services
) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    manager.promote(TASK, "2.0.0")
    assert store.task_version(TASK, "2.0.0") is not None
    assert submit(services, store).version == "2.0.0"
    assert services.queue.depth(queue_of(services, "2.0.0")).visible == 1
    with pytest.raises(PayloadInvalid) as caught:
        submit(services, store, payload={"n": "many"})
    assert caught.value.errors == [{"field": "n", "message": "'many' is not of type 'integer'"}]


def test_ramp_and_pins_route_a_share_and_a_tenant(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services
) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    manager.ramp(TASK, "2.0.0", 50)
    assert states(store)["2.0.0"] is ReleaseState.RAMPING
    versions = [submit(services, store).version for _ in range(200)]
    assert 60 < versions.count("2.0.0") < 140
    manager.ramp(TASK, "2.0.0", 0)
    assert states(store)["2.0.0"] is ReleaseState.DEPLOYED
    manager.pin(TASK, "vip", "2.0.0")
    assert states(store)["2.0.0"] is ReleaseState.RAMPING
    assert {submit(services, store, tenant="vip").version for _ in range(10)} == {"2.0.0"}
    with pytest.raises(ReleaseError, match="pinned: vip"):
        manager.drain(TASK, "2.0.0", timeout=1)
    manager.pin(TASK, "vip", None)
    assert states(store)["2.0.0"] is ReleaseState.DEPLOYED


def test_drain_waits_for_the_queue_then_stops_the_workers(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services, runtime: FakeRuntime
) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    envelope = submit(services, store)
    manager.promote(TASK, "2.0.0")
    events = len(store.events(TASK))
    with pytest.raises(
        ReleaseError,
        match=r"drain of erp.sync 1.0.0 not done after 0.2s \(1 visible.*left\); nothing was changed",
    ):
        manager.drain(TASK, "1.0.0", timeout=0.2)
    assert states(store)["1.0.0"] is ReleaseState.DRAINING and len(store.events(TASK)) == events
    assert (TASK, "1.0.0") in runtime.running

    queue = queue_of(services, envelope.version)
    received = services.queue.receive(queue, max_messages=1, wait_seconds=0, visibility_timeout=30)
    services.queue.delete(queue, [received[0].receipt])
    seen = []
    assert manager.drain(TASK, "1.0.0", timeout=5, on_progress=seen.append).state is ReleaseState.DRAINED
    assert seen[-1].remaining == 0
    assert (TASK, "1.0.0") not in runtime.running
    assert manager.retire(TASK, "1.0.0").state is ReleaseState.RETIRED
    assert manager.drain(TASK, "1.0.0").state is ReleaseState.RETIRED  # idempotent


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (lambda m: m.promote(TASK, "9.9.9"), "version '9.9.9' of erp.sync was never deployed"),
        (lambda m: m.promote("no.such", "1.0.0"), "unknown task 'no.such'"),
        (lambda m: m.retire(TASK, "1.0.0"), "cannot retire erp.sync 1.0.0: it is current"),
        (lambda m: m.drain(TASK, "1.0.0", timeout=1), "cannot drain erp.sync 1.0.0: it is current"),
        (lambda m: m.ramp(TASK, "1.0.0", 10), "is current already"),
        (lambda m: m.ramp(TASK, "2.0.0", 101), "within 0..100"),
        (lambda m: m.rollback(TASK), "no previous version to roll back to"),
        (
            lambda m: m.deploy(DeployRequest(task=TASK, version="7.0.0", runtime="fake")),
            "task 'erp.sync' has no version '7.0.0'",
        ),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    manager: ReleaseManager, store: MemoryReleaseStore, operation: object, message: str
) -> None:
    deploy(manager, "1.0.0")
    before = (store.route(TASK), states(store), len(store.events(TASK)))
    with pytest.raises(ReleaseError, match=message):
        operation(manager)  # type: ignore[operator]
    assert (store.route(TASK), states(store), len(store.events(TASK))) == before


def test_one_operation_per_task_at_a_time(manager: ReleaseManager, store: MemoryReleaseStore) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    with store.lock(TASK), pytest.raises(ReleaseError, match="another release operation"):
        manager.promote(TASK, "2.0.0")
    with manager.exclusive(TASK):  # re-entrant within one manager (release run)
        manager.promote(TASK, "2.0.0")


def test_rollback_of_a_ramp_moves_its_queue_and_dlq_to_the_current_version(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services, runtime: FakeRuntime
) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    manager.ramp(TASK, "2.0.0", 100)
    queued, dead = submit(services, store), submit(services, store)
    bad_queue = queue_of(services, "2.0.0")
    for m in services.queue.receive(bad_queue, max_messages=10, wait_seconds=0, visibility_timeout=30):
        if dead.job_id in m.body:  # one job dead-lettered, the other back in the queue
            services.queue.send_batch(dead_letter_name(bad_queue), [OutgoingMessage(m.body)])
            services.queue.delete(bad_queue, [m.receipt])
        else:
            services.queue.change_visibility(bad_queue, m.receipt, 0)

    done = manager.rollback(TASK)
    assert done.state is ReleaseState.ROLLED_BACK and "moved 2 job(s)" in done.detail
    assert states(store) == {"1.0.0": ReleaseState.CURRENT, "2.0.0": ReleaseState.ROLLED_BACK}
    assert (TASK, "2.0.0") in runtime.stopped
    good_queue = queue_of(services, "1.0.0")
    moved = services.queue.receive(good_queue, max_messages=10, wait_seconds=0, visibility_timeout=30)
    assert sorted(Envelope.from_json(m.body).job_id for m in moved) == sorted([queued.job_id, dead.job_id])
    assert {Envelope.from_json(m.body).version for m in moved} == {"1.0.0"}
    for job_id in (queued.job_id, dead.job_id):
        record = services.jobs.get(job_id)
        assert record is not None and (record.version, record.status) == ("1.0.0", JobStatus.QUEUED)
    with pytest.raises(ReleaseError, match=r"1\.0\.0 has no previous version"):
        manager.rollback(TASK)  # done: 1.0.0 has nothing to go back to


def test_rollback_to_a_drained_version_restarts_its_workers(
    manager: ReleaseManager, store: MemoryReleaseStore, runtime: FakeRuntime
) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    manager.promote(TASK, "2.0.0")
    manager.drain(TASK, "1.0.0", timeout=5)
    assert (TASK, "1.0.0") not in runtime.running
    manager.rollback(TASK)
    assert runtime.running.get((TASK, "1.0.0")) == 2
    assert states(store) == {"1.0.0": ReleaseState.CURRENT, "2.0.0": ReleaseState.ROLLED_BACK}
    route = store.route(TASK)
    assert route is not None and route.routed_versions() == {"1.0.0"}


def test_a_retired_version_is_no_rollback_target(manager: ReleaseManager) -> None:
    deploy(manager, "1.0.0")
    deploy(manager, "2.0.0")
    manager.promote(TASK, "2.0.0")
    manager.drain(TASK, "1.0.0", timeout=5)
    manager.retire(TASK, "1.0.0")
    with pytest.raises(ReleaseError, match=r"1\.0\.0 is retired: deploy it again"):
        manager.rollback(TASK)


def seed(services: Services, version: str, *, ok: int, failed: int) -> None:
    """Jobs of ``version`` "submitted" a moment from now, so a step's window counts them."""
    later = time.time() + 2
    for i in range(ok + failed):
        job = NewJob(
            job_id=f"{version}-{i}-{later}", tenant="acme", task=TASK, version=version, submitted_at=later
        )
        services.jobs.claim(job, attempt=1, lease_seconds=5, worker="w")
        if i < ok:
            services.jobs.record_success(job.job_id, result=1, result_ref=None)
        else:
            services.jobs.record_failure(
                job.job_id, status=JobStatus.DEAD, failure=Failure(error_type="E", message="x")
            )


def plan(strategy: str = "canary") -> RunPlan:
    return RunPlan(
        deploy=DeployRequest(task=TASK, version="2.0.0", runtime="fake"),
        strategy=strategy,  # type: ignore[arg-type]
        steps=(10, 50),
        max_error_rate=5,
        step_wait=0,
        min_jobs=4,
        step_timeout=5,
    )


def test_run_canary_walks_the_steps_then_promotes_drains_and_retires_the_old_version(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services
) -> None:
    deploy(manager, "1.0.0")
    seed(services, "2.0.0", ok=4, failed=0)
    notes: list[str] = []
    result = Rollout(manager, note=notes.append).run(plan())
    assert result.outcome == "released" and result.retired == ["1.0.0"]
    assert [v.percent for v in result.verdicts] == [10, 50, 100]
    assert states(store) == {"1.0.0": ReleaseState.RETIRED, "2.0.0": ReleaseState.CURRENT}
    assert any("ramped 2.0.0 to 10%" in n for n in notes)


def test_run_rolls_back_when_the_new_version_errs_more_than_allowed(
    manager: ReleaseManager, store: MemoryReleaseStore, services: Services
) -> None:
    deploy(manager, "1.0.0")
    seed(services, "1.0.0", ok=10, failed=0)
    seed(services, "2.0.0", ok=2, failed=2)
    result = Rollout(manager).run(plan("bluegreen"))
    assert result.outcome == "rolled_back"
    assert result.verdicts[0].new.error_rate == 50.0 and result.verdicts[0].baseline.error_rate == 0.0
    assert states(store) == {"1.0.0": ReleaseState.CURRENT, "2.0.0": ReleaseState.ROLLED_BACK}


def test_run_without_enough_jobs_stops_at_the_step_and_says_how_to_go_on(
    manager: ReleaseManager, store: MemoryReleaseStore
) -> None:
    deploy(manager, "1.0.0")
    with pytest.raises(ReleaseError, match="re-run `tornado release run` to go on"):
        Rollout(manager).run(
            RunPlan(deploy=plan().deploy, steps=(25,), min_jobs=1, step_wait=0, step_timeout=0.1)
        )
    route = store.route(TASK)
    assert route is not None and (route.ramping, route.ramp_percent) == ("2.0.0", 25)
