"""The ECS runtime's calls against moto's ECS API on the local endpoint, and task scale-in protection.

moto records services and task definitions but runs no containers: tasks that the
ECS scheduler would start are simulated with ``run_task`` in the service's group.
The protection hook is checked against a small HTTP server standing in for the
ECS container agent, alone and driven by a real worker loop.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.runtimes.ecs.protection import TaskProtection, protection_from_env
from tornado_core.adapters.runtimes.ecs.runtime import FARGATE_MAX_STOP_TIMEOUT, EcsConfig, EcsRuntime
from tornado_core.errors import RuntimeFailure
from tornado_core.naming import queue_spec
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.runtime import Deployment, InstanceState
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.settings import Settings
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.loop import Worker, WorkerOptions

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tornado/demo.sleep:1.0.0"


@pytest.fixture
def settings(stack_env: dict[str, str]) -> Settings:
    return Settings.load({**stack_env, "TORNADO_QUEUE_PREFIX": f"ecs{uuid.uuid4().hex[:6]}"})


@pytest.fixture
def ecs(settings: Settings) -> Any:
    return make_client("ecs", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


@pytest.fixture
def subnet(settings: Settings) -> str:
    ec2 = make_client("ec2", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"])


@pytest.fixture
def runtime(settings: Settings, subnet: str) -> EcsRuntime:
    config = EcsConfig(
        cluster=f"tornado-{uuid.uuid4().hex[:6]}",
        subnets=(subnet,),
        execution_role_arn="arn:aws:iam::123456789012:role/tornado-execution",
        task_role_arn="arn:aws:iam::123456789012:role/tornado-worker",
        secrets={"TORNADO_SECRET_KEY": "arn:aws:secretsmanager:us-east-1:123456789012:secret:tornado-key"},
        poll_interval=0.05,
    )
    return EcsRuntime(settings, config=config)


def deployment(version: str = "1.0.0", **overrides: Any) -> Deployment:
    values: dict[str, Any] = {"replicas": 2, "grace_period": 60.0, "image": IMAGE, **overrides}
    return Deployment(task="demo.sleep", version=version, **values)


def container_of(ecs: Any, arn: str) -> dict[str, Any]:
    return dict(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["containerDefinitions"][0])


def service_of(ecs: Any, runtime: EcsRuntime, cluster: str, version: str = "1.0.0") -> dict[str, Any]:
    name = runtime.service_name("demo.sleep", version)
    return dict(ecs.describe_services(cluster=cluster, services=[name])["services"][0])


def test_ensure_creates_a_task_definition_and_a_service_per_version(
    runtime: EcsRuntime, ecs: Any, settings: Settings
) -> None:
    cluster = runtime.config.cluster
    assert runtime.ensure(deployment()) == []  # moto starts no tasks
    service = service_of(ecs, runtime, cluster)
    assert service["serviceName"] == runtime.service_name("demo.sleep", "1.0.0")
    assert service["serviceName"].endswith("-demo-sleep-1-0-0")
    assert service["desiredCount"] == 2 and service["launchType"] == "FARGATE"
    container = container_of(ecs, service["taskDefinition"])
    assert container["image"] == IMAGE
    assert container["command"][:6] == ["tornado", "worker", "--task", "demo.sleep", "--version", "1.0.0"]
    assert container["stopTimeout"] == 75  # grace period 60 s + 15 s to exit
    assert container["linuxParameters"]["initProcessEnabled"] is False  # tini in the image is the init
    assert container["healthCheck"]["command"][0] == "CMD"
    assert container["dockerLabels"]["io.tornado.task"] == "demo.sleep"
    assert container["dockerLabels"]["io.tornado.version"] == "1.0.0"
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["TORNADO_QUEUE_PREFIX"] == settings.queue_prefix
    assert "TORNADO_SECRET_KEY" not in env
    assert [s["name"] for s in container["secrets"]] == ["TORNADO_SECRET_KEY"]


def test_ensure_is_idempotent_and_scales_without_a_new_revision(runtime: EcsRuntime, ecs: Any) -> None:
    cluster = runtime.config.cluster
    runtime.ensure(deployment())
    first = service_of(ecs, runtime, cluster)["taskDefinition"]
    runtime.ensure(deployment())
    runtime.ensure(deployment(replicas=5))
    service = service_of(ecs, runtime, cluster)
    assert service["taskDefinition"] == first and service["desiredCount"] == 5
    runtime.ensure(deployment(replicas=5, env={"TORNADO_LOG_LEVEL": "DEBUG"}))  # a real change
    assert service_of(ecs, runtime, cluster)["taskDefinition"] != first


def test_fargate_caps_the_stop_timeout(runtime: EcsRuntime, ecs: Any) -> None:
    runtime.ensure(deployment(grace_period=600))
    arn = service_of(ecs, runtime, runtime.config.cluster)["taskDefinition"]
    assert container_of(ecs, arn)["stopTimeout"] == FARGATE_MAX_STOP_TIMEOUT


@pytest.fixture
def ec2_runtime(settings: Settings, ecs: Any) -> Iterator[EcsRuntime]:
    """An EC2-launch-type runtime with one container instance, whose tasks moto keeps RUNNING."""
    cluster = f"tornado-{uuid.uuid4().hex[:6]}"
    ecs.create_cluster(clusterName=cluster)
    ec2 = make_client("ec2", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ecs.register_container_instance(
        cluster=cluster, instanceIdentityDocument=json.dumps({"instanceId": instance})
    )
    moto_api = f"{settings.aws_endpoint_url}/moto-api/state-manager"
    _post(
        f"{moto_api}/set-transition",
        {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**6}},
    )
    yield EcsRuntime(
        settings, config=EcsConfig(cluster=cluster, launch_type="EC2", memory="512", poll_interval=0.05)
    )
    _post(f"{moto_api}/unset-transition", {"model_name": "ecs::task"})


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def _start_service_task(ecs: Any, runtime: EcsRuntime, version: str = "1.0.0") -> str:
    """What the ECS scheduler does for a service: a task in the group ``service:<name>``."""
    cluster = runtime.config.cluster
    service = service_of(ecs, runtime, cluster, version)
    answer = ecs.run_task(
        cluster=cluster, taskDefinition=service["taskDefinition"], launchType="EC2",
        group=f"service:{service['serviceName']}", startedBy="ecs-svc/test",
    )  # fmt: skip
    return str(answer["tasks"][0]["taskArn"])


def test_instances_are_the_service_tasks_with_their_health(ec2_runtime: EcsRuntime, ecs: Any) -> None:
    ec2_runtime.ensure(deployment())
    ec2_runtime.ensure(deployment("2.0.0"))
    arns = [_start_service_task(ecs, ec2_runtime) for _ in range(2)]
    _start_service_task(ecs, ec2_runtime, "2.0.0")  # another version's task is not ours
    found = ec2_runtime.wait_healthy("demo.sleep", "1.0.0", replicas=2, timeout=10)
    assert sorted(i.instance_id for i in found) == sorted(arn.rsplit("/", 1)[-1] for arn in arns)
    assert {i.state for i in found} == {InstanceState.HEALTHY}
    assert len(ec2_runtime.instances("demo.sleep", "2.0.0")) == 1


def test_wait_healthy_times_out_with_a_clear_error(runtime: EcsRuntime) -> None:
    runtime.ensure(deployment())
    with pytest.raises(RuntimeFailure, match=r"fewer than 2 healthy task\(s\) after 0s \(0 found\)"):
        runtime.wait_healthy("demo.sleep", "1.0.0", replicas=2, timeout=0.2)


def test_stop_scales_to_zero_then_deletes_the_service(runtime: EcsRuntime, ecs: Any) -> None:
    runtime.ensure(deployment())
    runtime.stop("demo.sleep", "1.0.0", grace_period=60)
    service = service_of(ecs, runtime, runtime.config.cluster)
    assert service["desiredCount"] == 0 and service["status"] != "ACTIVE"
    runtime.stop("demo.sleep", "1.0.0", grace_period=60)  # again: nothing to do
    assert runtime.instances("demo.sleep", "1.0.0") == []


def test_config_from_environment() -> None:
    config = EcsConfig.from_env(
        {
            "TORNADO_ECS_CLUSTER": "prod",
            "TORNADO_ECS_LAUNCH_TYPE": "ec2",
            "TORNADO_ECS_SUBNETS": "subnet-a, subnet-b",
            "TORNADO_ECS_ASSIGN_PUBLIC_IP": "true",
            "TORNADO_ECS_SECRETS": "TORNADO_DATABASE_URL=arn:aws:ssm:x:1:parameter/db",
        }
    )
    assert (config.cluster, config.launch_type, config.subnets) == ("prod", "EC2", ("subnet-a", "subnet-b"))
    assert config.assign_public_ip
    assert config.secrets == {"TORNADO_DATABASE_URL": "arn:aws:ssm:x:1:parameter/db"}
    assert EcsConfig.from_env({}) == EcsConfig()


# --------------------------------------------------------------------------- task protection


class _Agent(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict[str, Any]]]

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append((self.path, body))  # type: ignore[attr-defined]
        answer = json.dumps({"protection": {"ProtectionEnabled": body["ProtectionEnabled"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@pytest.fixture
def agent() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A stand-in for the ECS container agent; yields its URI and the calls it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/task-1", server.calls  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_protection_sets_and_clears_through_the_agent(agent: tuple[str, list[Any]]) -> None:
    uri, calls = agent
    protect = protection_from_env({"ECS_AGENT_URI": uri, "TORNADO_ECS_PROTECTION_MINUTES": "30"})
    assert protect is not None
    protect(True)
    protect(False)
    path = "/api/task-1/task-protection/v1/state"
    assert calls == [
        (path, {"ProtectionEnabled": True, "ExpiresInMinutes": 30}),
        (path, {"ProtectionEnabled": False}),
    ]
    assert protection_from_env({}) is None  # not on ECS: no hook at all


def test_an_unreachable_agent_never_breaks_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    TaskProtection("http://127.0.0.1:9", timeout=0.5)(True)
    assert "could not set task protection" in caplog.text


def test_a_worker_is_protected_exactly_while_it_runs_jobs(agent: tuple[str, list[Any]]) -> None:
    uri, calls = agent
    registry = TaskRegistry()
    registry.register_module(demo)
    services = memory_services(registry)
    submitter = Submitter.for_services(services)
    services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, registry.get("demo.sleep")))
    jobs = [submitter.prepare(task="demo.sleep", tenant="acme", payload={"seconds": 0.3, "steps": 1})]
    jobs.append(submitter.prepare(task="demo.sleep", tenant="acme", payload={"seconds": 0.5, "steps": 1}))
    services.queue.send_batch(jobs[0].queue, [OutgoingMessage(job.body) for job in jobs])
    services.jobs.record_queued([job.as_new_job() for job in jobs])
    options = WorkerOptions(concurrency=2, poll_wait=0.1, grace_period=5, on_busy_change=TaskProtection(uri))
    worker = Worker(services, registry.get("demo.sleep"), options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not all(_succeeded(services, job.envelope.job_id) for job in jobs) or len(calls) < 2:
        assert time.monotonic() < deadline, calls
        time.sleep(0.02)
    worker.stop()
    thread.join(timeout=10)
    states = [body["ProtectionEnabled"] for _path, body in calls]
    assert states[0] is True and states[-1] is False  # set on the first job, cleared when idle
    assert all(a != b for a, b in itertools.pairwise(states))  # only on changes


def _succeeded(services: Any, job_id: str) -> bool:
    record = services.jobs.get(job_id)
    return record is not None and record.status is JobStatus.SUCCEEDED
