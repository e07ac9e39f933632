"""The lambda runtime against moto's Lambda, SQS, S3 and IAM on the local endpoint, and its deployment zip.

moto records functions and event source mappings but runs no function (that needs Docker images
of Lambda's runtimes); the handler is tested in-process (test_lambda_handler.py). Wheels here are
small stand-ins built on the spot: packaging reads their names and files, never runs them.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.adapters.postgres.releases import PostgresReleaseStore
from tornado_core.adapters.runtimes.lambda_.config import LambdaConfig
from tornado_core.adapters.runtimes.lambda_.packaging import HANDLER_FILE, PackagingError, build_package
from tornado_core.adapters.runtimes.lambda_.runtime import LambdaRuntime
from tornado_core.bootstrap import build_runtime, build_services
from tornado_core.errors import ConfigError
from tornado_core.naming import queue_spec
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.releases import ReleaseState
from tornado_core.ports.runtime import Deployment, InstanceState
from tornado_core.ports.versions import TaskVersion
from tornado_core.registry import TaskRegistry
from tornado_core.releases.manager import DeployRequest, ReleaseManager
from tornado_core.releases.queues import Pace
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.worker.lambda_entry import HANDLER

pytestmark = pytest.mark.integration

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tornado/demo.echo:lambda"


def make_wheel(folder: Path, filename: str, files: dict[str, str]) -> Path:
    """A stand-in wheel holding ``files`` and its ``.dist-info``."""
    name, version = filename.split("-")[:2]
    members = {**files, f"{name}-{version}.dist-info/METADATA": f"Name: {name}\nVersion: {version}\n"}
    path = folder / filename
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return path


def wheelhouse(folder: Path, *, marker: str = "1") -> Path:
    """What `tornado image build` leaves: project wheels in wheels/, dependencies in deps/."""
    (folder / "wheels").mkdir(parents=True, exist_ok=True)
    (folder / "deps").mkdir(exist_ok=True)
    core = {"tornado_core/__init__.py": "", HANDLER_FILE: f"handler = None  # {marker}\n"}
    make_wheel(folder / "wheels", "tornado_core-0.1.0-py3-none-any.whl", core)
    make_wheel(
        folder / "deps",
        "psycopg2_binary-2.9.9-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        {
            "psycopg2/__init__.py": "",
            "psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so": "ELF",
            "psycopg2_binary-2.9.9.data/purelib/psycopg2_extra.py": "",
            "psycopg2_binary-2.9.9.data/scripts/pg-tool": "#!/bin/sh\n",
            "psycopg2/__pycache__/x.cpython-311.pyc": "",
        },
    )
    return folder


@pytest.fixture
def settings(stack_env: dict[str, str]) -> Settings:
    return Settings.load(
        {**stack_env, "TORNADO_QUEUE": "sqs", "TORNADO_QUEUE_PREFIX": f"lam{uuid.uuid4().hex[:6]}"}
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built, close = build_services(settings)
    yield built
    close()


def aws(settings: Settings, service: str) -> Any:
    return make_client(service, region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


@pytest.fixture
def role_arn(settings: Settings) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    name = f"{settings.queue_prefix}-functions"
    return str(
        aws(settings, "iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
    )


@pytest.fixture
def runtime(settings: Settings, role_arn: str) -> LambdaRuntime:
    config = LambdaConfig(role_arn=role_arn, memory=512, poll_interval=0.05)
    return LambdaRuntime(settings, registry=TaskRegistry.from_entry_points(), config=config)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    return wheelhouse(tmp_path / "wheelhouse")


def deployment(
    services: Services, code: Path | None, task: str = "demo.echo", **overrides: Any
) -> Deployment:
    """A deployment of the installed version of ``task``, its queue made as `release deploy` makes it."""
    spec = services.registry.get(task)
    services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, spec))
    values: dict[str, Any] = {"replicas": 5, "concurrency": 4, "grace_period": 30.0, "python_path": code}
    values.update(overrides)
    if values["python_path"] is not None:
        values["python_path"] = str(values["python_path"])
    return Deployment(task=task, version=spec.version, **values)


def mapping_of(settings: Settings, runtime: LambdaRuntime, task: str, version: str) -> dict[str, Any]:
    (mapping,) = aws(settings, "lambda").list_event_source_mappings(
        FunctionName=runtime.function_name(task, version)
    )["EventSourceMappings"]
    return dict(mapping)


def queue_arn(services: Services, task: str) -> str:
    sqs = aws(services.settings, "sqs")
    name = queue_spec(services.settings.queue_prefix, services.registry.get(task)).name
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


# --------------------------------------------------------------------------- deploy


def test_deploy_creates_the_function_and_its_event_source_mapping(
    runtime: LambdaRuntime, services: Services, settings: Settings, code: Path
) -> None:
    wanted = deployment(services, code)
    (instance,) = runtime.ensure(wanted)
    assert instance.state is InstanceState.HEALTHY
    name = runtime.function_name("demo.echo", wanted.version)
    function = aws(settings, "lambda").get_function(FunctionName=name)
    config = function["Configuration"]
    assert (config["Runtime"], config["Handler"], config["PackageType"]) == ("python3.11", HANDLER, "Zip")
    assert (config["Timeout"], config["MemorySize"], config["Role"]) == (30, 512, runtime.config.role_arn)
    env = config["Environment"]["Variables"]
    assert env["TORNADO_LAMBDA_TASK"] == "demo.echo" and env["TORNADO_LAMBDA_VERSION"] == wanted.version
    assert env["TORNADO_LAMBDA_CONCURRENCY"] == "4" and env["TORNADO_QUEUE"] == "sqs"
    assert config["CodeSha256"] == build_package(code).sha256

    mapping = mapping_of(settings, runtime, "demo.echo", wanted.version)
    assert mapping["EventSourceArn"] == queue_arn(services, "demo.echo")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (mapping["BatchSize"], mapping["ScalingConfig"]) == (10, {"MaximumConcurrency": 5})
    assert mapping["State"] == "Enabled"
    assert runtime.wait_healthy("demo.echo", wanted.version, replicas=5, timeout=5) == [instance]


def test_the_concurrency_is_the_task_s_cap_within_lambda_s_range(
    runtime: LambdaRuntime, services: Services, settings: Settings, code: Path
) -> None:
    capped = deployment(services, code, "demo.throttled")  # max_concurrency=2, visibility timeout 10 s
    runtime.ensure(capped)
    mapping = mapping_of(settings, runtime, "demo.throttled", capped.version)
    assert (mapping["BatchSize"], mapping["ScalingConfig"]) == (1, {"MaximumConcurrency": 2})
    function = aws(settings, "lambda").get_function(
        FunctionName=runtime.function_name("demo.throttled", capped.version)
    )
    assert function["Configuration"]["Timeout"] == 10  # no more than the queue's visibility timeout

    one = deployment(services, code, replicas=1)
    runtime.ensure(one)
    assert mapping_of(settings, runtime, "demo.echo", one.version)["ScalingConfig"] == {
        "MaximumConcurrency": 2
    }


def test_ensure_is_idempotent_and_updates_only_what_changed(
    role_arn: str, services: Services, settings: Settings, code: Path, tmp_path: Path
) -> None:
    client, writes = aws(settings, "lambda"), []
    client.meta.events.register(
        "before-parameter-build.lambda.*",
        lambda model, **_: writes.append(model.name) if not model.name.startswith(("Get", "List")) else None,
    )
    config = LambdaConfig(role_arn=role_arn, poll_interval=0.05)
    runtime = LambdaRuntime(settings, registry=services.registry, config=config, client=client)
    wanted = deployment(services, code)
    name = runtime.function_name("demo.echo", wanted.version)
    runtime.ensure(wanted)
    assert writes == ["CreateFunction", "CreateEventSourceMapping"]
    first = client.get_function(FunctionName=name)["Configuration"]
    uuid_before = mapping_of(settings, runtime, "demo.echo", wanted.version)["UUID"]
    writes.clear()
    runtime.ensure(wanted)
    assert writes == []  # nothing changed, nothing written

    runtime.ensure(deployment(services, code, replicas=7, concurrency=2))
    assert writes == ["UpdateFunctionConfiguration", "UpdateEventSourceMapping"]
    updated = client.get_function(FunctionName=name)["Configuration"]
    assert updated["CodeSha256"] == first["CodeSha256"]
    assert updated["Environment"]["Variables"]["TORNADO_LAMBDA_CONCURRENCY"] == "2"
    mapping = mapping_of(settings, runtime, "demo.echo", wanted.version)
    assert (mapping["UUID"], mapping["ScalingConfig"]) == (uuid_before, {"MaximumConcurrency": 7})

    writes.clear()
    runtime.ensure(
        deployment(services, wheelhouse(tmp_path / "newer", marker="2"), replicas=7, concurrency=2)
    )
    assert writes == ["UpdateFunctionCode"]
    assert client.get_function(FunctionName=name)["Configuration"]["CodeSha256"] != first["CodeSha256"]


def test_a_container_image_is_deployed_with_the_handler_as_its_command(
    runtime: LambdaRuntime, services: Services, settings: Settings
) -> None:
    wanted = deployment(services, None, image=IMAGE)
    runtime.ensure(wanted)
    function = aws(settings, "lambda").get_function(
        FunctionName=runtime.function_name("demo.echo", wanted.version)
    )
    assert function["Configuration"]["PackageType"] == "Image"
    assert function["Configuration"]["ImageConfigResponse"]["ImageConfig"]["Command"] == [HANDLER]
    assert function["Code"]["ImageUri"] == IMAGE


# --------------------------------------------------------------------------- stop, drain, retire


def test_stop_disables_the_mapping_waits_for_the_batch_in_flight_then_removes_everything(
    runtime: LambdaRuntime, services: Services, settings: Settings, code: Path
) -> None:
    wanted = deployment(services, code)
    queue = queue_spec(settings.queue_prefix, services.registry.get("demo.echo")).name
    # Sent before the mapping exists: a message sent to a mapped queue makes moto invoke the function.
    services.queue.send_batch(queue, [OutgoingMessage('{"stand-in": "a batch Lambda works on"}')])
    runtime.ensure(wanted)
    (in_flight,) = services.queue.receive(queue, max_messages=1, wait_seconds=5, visibility_timeout=60)
    uuid_ = mapping_of(settings, runtime, "demo.echo", wanted.version)["UUID"]
    client = aws(settings, "lambda")

    stopping = threading.Thread(
        target=runtime.stop, args=("demo.echo", wanted.version), kwargs={"grace_period": 30}
    )
    stopping.start()
    deadline = time.monotonic() + 30
    while client.get_event_source_mapping(UUID=uuid_)["State"] != "Disabled":
        assert time.monotonic() < deadline, "the mapping was not disabled"
        time.sleep(0.05)
    assert stopping.is_alive()  # the batch in flight is not done yet
    assert client.get_event_source_mapping(UUID=uuid_)["State"] == "Disabled"
    services.queue.delete(queue, [in_flight.receipt])  # the batch ends
    stopping.join(timeout=60)
    assert not stopping.is_alive()
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.get_event_source_mapping(UUID=uuid_)
    assert runtime.instances("demo.echo", wanted.version) == []
    runtime.stop("demo.echo", wanted.version, grace_period=30)  # again: nothing to do


class Release:
    """A release manager on a database of its own, with the lambda runtime the composition root builds."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.services, self._close = build_services(Settings.load(env))
        self._pool = PostgresPool(env["TORNADO_DATABASE_URL"], max_size=4)
        built = build_runtime(
            "lambda", self.services.settings, state_dir=tmp_path, registry=self.services.registry
        )
        assert isinstance(built, LambdaRuntime)
        self.runtime = built
        store = PostgresReleaseStore(self._pool)
        self.manager = ReleaseManager(
            self.services, store, lambda _name: built, pace=Pace(poll=0.05, settle=0.0)
        )

    def close(self) -> None:
        self._pool.close()
        self._close()


@pytest.fixture
def release(
    stack_env: dict[str, str],
    fresh_database_url: str,
    role_arn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Release]:
    monkeypatch.setenv("TORNADO_LAMBDA_ROLE_ARN", role_arn)  # read by the runtime, as `tornado release` would
    prefix = f"lam{uuid.uuid4().hex[:6]}"
    env = {
        **stack_env,
        "TORNADO_QUEUE": "sqs",
        "TORNADO_DATABASE_URL": fresh_database_url,
        "TORNADO_QUEUE_PREFIX": prefix,
    }
    made = Release(env, tmp_path)
    yield made
    made.close()


def test_promote_drain_and_retire_work_as_for_the_other_runtimes(release: Release, code: Path) -> None:
    manager, runtime = release.manager, release.runtime
    old = release.services.registry.get("demo.echo").version
    request = DeployRequest(
        task="demo.echo", version=old, runtime="lambda", python_path=str(code), grace_period=30
    )
    assert manager.deploy(request).state is ReleaseState.CURRENT  # the task's first version
    contract = TaskVersion(
        task="demo.echo", version="9.0.0", payload_schema={"type": "object"}, max_attempts=3,
        visibility_timeout=60, timeout=20,
    )  # fmt: skip
    manager.store.register_version(contract)  # a version whose code only its wheels hold
    new = DeployRequest(task="demo.echo", version="9.0.0", runtime="lambda", python_path=str(code))
    assert manager.deploy(new).state is ReleaseState.DEPLOYED
    manager.promote("demo.echo", "9.0.0")
    assert [i.state for i in runtime.instances("demo.echo", old)] == [
        InstanceState.HEALTHY
    ]  # draining: still runs

    assert manager.drain("demo.echo", old, timeout=60).state is ReleaseState.DRAINED
    assert runtime.instances("demo.echo", old) == []  # mapping and function removed
    assert manager.retire("demo.echo", old).state is ReleaseState.RETIRED
    assert [i.state for i in runtime.instances("demo.echo", "9.0.0")] == [InstanceState.HEALTHY]


def test_a_role_created_with_the_deployment_has_the_least_privilege_policy_and_goes_with_it(
    settings: Settings, services: Services, code: Path
) -> None:
    config = LambdaConfig(create_role=True, poll_interval=0.05)
    runtime = LambdaRuntime(settings, registry=TaskRegistry.from_entry_points(), config=config)
    wanted = deployment(services, code)
    runtime.ensure(wanted)
    iam = aws(settings, "iam")
    role_name = runtime.role_name("demo.echo", wanted.version)
    role = iam.get_role(RoleName=role_name)["Role"]
    function = aws(settings, "lambda").get_function(
        FunctionName=runtime.function_name("demo.echo", wanted.version)
    )
    assert function["Configuration"]["Role"] == role["Arn"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    stored = iam.get_role_policy(RoleName=role_name, PolicyName="tornado-worker")["PolicyDocument"]
    assert stored == runtime.worker_role("demo.echo", wanted.version).policy

    runtime.stop("demo.echo", wanted.version, grace_period=30)
    with pytest.raises(ClientError, match="NoSuchEntity"):
        iam.get_role(RoleName=role_name)


# --------------------------------------------------------------------------- bad configuration


def test_bad_configuration_is_refused_before_anything_is_created(
    runtime: LambdaRuntime,
    services: Services,
    settings: Settings,
    code: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TORNADO_LAMBDA_ROLE_ARN", "TORNADO_LAMBDA_CREATE_ROLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="needs the functions' execution role: set TORNADO_LAMBDA_ROLE_ARN"):
        build_runtime("lambda", settings, state_dir=tmp_path)
    with pytest.raises(ConfigError, match="TORNADO_LAMBDA_MEMORY must be MiB"):
        LambdaConfig.from_env({"TORNADO_LAMBDA_MEMORY": "lots"})
    with pytest.raises(ConfigError, match="SUBNETS and TORNADO_LAMBDA_SECURITY_GROUPS go together"):
        LambdaConfig(role_arn="arn:aws:iam::123456789012:role/r", subnets=("subnet-1",)).check()

    with pytest.raises(ConfigError, match=r"either a zip of the version's code .* or a container image"):
        runtime.ensure(deployment(services, None))
    mac = wheelhouse(tmp_path / "mac")
    make_wheel(mac / "deps", "orjson-3.10.0-cp311-cp311-macosx_11_0_arm64.whl", {"orjson/__init__.py": ""})
    with pytest.raises(
        PackagingError, match=r"not for Lambda's python3\.11 on x86_64: orjson-3\.10\.0-cp311"
    ):
        runtime.ensure(deployment(services, mac))
    empty = tmp_path / "no-core"
    empty.mkdir()
    make_wheel(empty, "acme_tasks-1.0-py3-none-any.whl", {"acme_tasks/__init__.py": ""})
    with pytest.raises(PackagingError, match="holds no tornado-core"):
        runtime.ensure(deployment(services, empty))
    assert runtime.instances("demo.echo", services.registry.get("demo.echo").version) == []


# --------------------------------------------------------------------------- the zip


def test_wheels_are_installed_into_the_zip_as_pip_would_and_the_zip_is_reproducible(code: Path) -> None:
    package = build_package(code)
    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        names = set(archive.namelist())
    assert {HANDLER_FILE, "psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so", "psycopg2_extra.py"} <= names
    assert "tornado_core-0.1.0.dist-info/METADATA" in names  # entry points are found through it
    assert not any("scripts" in n or "__pycache__" in n or n.endswith(".pyc") for n in names)
    assert build_package(code) == package  # same folder, same bytes, same CodeSha256


def test_a_folder_of_installed_packages_is_zipped_as_it_is(tmp_path: Path) -> None:
    target = tmp_path / "site"
    for relative in (
        HANDLER_FILE,
        "tornado_core/__init__.py",
        "bin/tornado",
        "tornado_core/__pycache__/a.pyc",
    ):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_text("x")
    with zipfile.ZipFile(io.BytesIO(build_package(target).data)) as archive:
        assert sorted(archive.namelist()) == ["tornado_core/__init__.py", HANDLER_FILE]
    (target / "fast.cpython-312-x86_64-linux-gnu.so").write_text("ELF")
    with pytest.raises(
        PackagingError, match=r"fast\.cpython-312-x86_64-linux-gnu\.so is not built for Lambda"
    ):
        build_package(target)


# --------------------------------------------------------------------------- tornado release policy


def test_release_policy_prints_the_role_and_creates_it_on_request(stack_env: dict[str, str]) -> None:
    from tornado_cli.main import cli

    env = {**stack_env, "TORNADO_QUEUE_PREFIX": f"lam{uuid.uuid4().hex[:6]}"}
    version = TaskRegistry.from_entry_points().get("demo.echo").version
    runner = CliRunner()
    result = runner.invoke(
        cli, ["release", "policy", "demo.echo", version, "--runtime", "lambda", "--create-role"], env=env
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    actions = {a for s in printed["policy"]["Statement"] for a in s["Action"]}
    assert "sqs:ReceiveMessage" in actions and "ecs:UpdateTaskProtection" not in actions
    assert printed["role_arn"].endswith(f":role/{printed['role']}")

    result = runner.invoke(cli, ["release", "policy", "demo.echo", version, "--runtime", "ecs"], env=env)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["assume_role_policy"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    assert "logs:PutLogEvents" in {
        a for s in printed["execution_role_policy"]["Statement"] for a in s["Action"]
    }
    assert "role_arn" not in printed


def test_release_deploy_runs_on_lambda_and_refuses_a_missing_role_first(
    stack_env: dict[str, str], fresh_database_url: str, role_arn: str, code: Path
) -> None:
    from tornado_cli.main import cli

    prefix = f"lam{uuid.uuid4().hex[:6]}"
    env = {
        **stack_env,
        "TORNADO_QUEUE": "sqs",
        "TORNADO_DATABASE_URL": fresh_database_url,
        "TORNADO_QUEUE_PREFIX": prefix,
    }
    version = TaskRegistry.from_entry_points().get("demo.echo").version
    deploy = ["release", "deploy", "demo.echo", version, "--runtime", "lambda", "--python-path", str(code)]
    runner = CliRunner()

    refused = runner.invoke(cli, deploy, env={**env, "TORNADO_LAMBDA_ROLE_ARN": None})
    assert refused.exit_code == 1
    assert "Error: the lambda runtime needs the functions' execution role" in refused.output
    status = runner.invoke(cli, ["release", "status", "demo.echo", "--json"], env=env)
    assert json.loads(status.output)["versions"] == []  # nothing was recorded

    done = runner.invoke(
        cli, [*deploy, "--grace-period", "30"], env={**env, "TORNADO_LAMBDA_ROLE_ARN": role_arn}
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == f"demo.echo {version}: current (1 worker(s) healthy on lambda)"
