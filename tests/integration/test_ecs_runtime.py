"""The ECS runtime's calls against moto's ECS API on the local endpoint, and task scale-in protection.

moto records services and task definitions but runs no containers: tasks that the
ECS scheduler would start are simulated with ``run_task`` in the service's group.
A real ``tornado worker`` process on the local stack, told it runs in an ECS task
(``ECS_AGENT_URI``), protects its task through a stand-in for the ECS container agent.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ecs_agent import ecs_agent
from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.runtimes.ecs.runtime import FARGATE_MAX_STOP_TIMEOUT, EcsConfig, EcsRuntime
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import build_services
from tornado_core.errors import RuntimeFailure
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.runtime import Deployment, InstanceState
from tornado_core.producer.submission import Submitter
from tornado_core.settings import Settings

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


def test_tornado_worker_in_an_ecs_task_protects_it_while_it_works(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    with ecs_agent() as (uri, calls):
        env = {**stack_env, "TORNADO_QUEUE_PREFIX": f"ecs{uuid.uuid4().hex[:6]}", "ECS_AGENT_URI": uri}
        services, close = build_services(Settings.load(env))
        cluster = LocalCluster(env, tmp_path)
        try:
            cluster.start_worker("demo.sleep", concurrency=1, extra=["--poll-wait", "1"])
            prepared = Submitter.for_services(services).prepare(
                task="demo.sleep", tenant="acme", payload={"seconds": 0.5, "steps": 1}
            )
            services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)])
            deadline = time.monotonic() + 60
            while not _succeeded(services, prepared.envelope.job_id) or len(calls) < 2:
                assert time.monotonic() < deadline, calls
                time.sleep(0.05)
        finally:
            assert set(cluster.stop_all(grace=20).values()) == {0}
            close()
    states = [body["ProtectionEnabled"] for path, body in calls]
    assert states == [True, False], calls  # protected for the job, cleared when idle
    assert all(path == "/api/task-1/task-protection/v1/state" for path, _ in calls)


def _succeeded(services: Any, job_id: str) -> bool:
    record = services.jobs.get(job_id)
    return record is not None and record.status is JobStatus.SUCCEEDED
