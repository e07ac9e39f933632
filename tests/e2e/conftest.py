"""End-to-end fixtures: real API and worker processes on the real local stack, per queue backend."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.celery_support import backend_env
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import build_services
from tornado_core.client import TornadoClient
from tornado_core.local_machine import tornado_argv
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token


@pytest.fixture(scope="module", params=["postgres", "sqs"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every end-to-end module runs once per queue backend."""
    return str(request.param)


@pytest.fixture(scope="module")
def e2e_env(stack_env: dict[str, str], backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment of the module's processes: its own queue prefix on the chosen backend."""
    return {
        **stack_env,
        **backend_env(backend, request),
        "TORNADO_QUEUE_PREFIX": f"e2e{uuid.uuid4().hex[:6]}",
        "TORNADO_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def services(e2e_env: dict[str, str]) -> Iterator[Services]:
    """The same services the processes use, for looking behind the API."""
    built, close = build_services(Settings.load(e2e_env))
    yield built
    close()


def _create_tenant(services: Services) -> str:
    token = new_token()
    services.tenants.create(f"tenant-{uuid.uuid4().hex[:8]}", hash_token(token))
    return token


@pytest.fixture(scope="module")
def tenant_token(services: Services) -> str:
    return _create_tenant(services)


@pytest.fixture(scope="module")
def other_tenant_token(services: Services) -> str:
    return _create_tenant(services)


@pytest.fixture(scope="module")
def module_cluster(
    e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    cluster = LocalCluster(e2e_env, tmp_path_factory.mktemp("logs"))
    yield cluster
    cluster.stop_all(grace=20)


@pytest.fixture(scope="module")
def api_launch(module_cluster: LocalCluster, tenant_token: str, other_tenant_token: str) -> Future[str]:
    """The module's API, starting (after the tenants exist, so its token cache is warm): its URL, once up.

    A module's worker fixture takes this instead of ``api_url``, so that its workers boot while
    the API does; the tests' ``api_url`` (and ``client``) still wait until ``/healthz`` answers.
    """
    launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-launch")
    started = launcher.submit(lambda: module_cluster.start_api()[1])
    launcher.shutdown(wait=False)
    return started


@pytest.fixture(scope="module")
def api_url(api_launch: Future[str]) -> str:
    """A running API (started after the tenants exist, so its token cache is warm)."""
    return api_launch.result(timeout=120)


@pytest.fixture(scope="module")
def client(api_url: str, tenant_token: str) -> TornadoClient:
    return TornadoClient(api_url, tenant_token)


@pytest.fixture
def cluster(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[LocalCluster]:
    """Workers started by one test, stopped (SIGTERM) at its end."""
    local = LocalCluster(e2e_env, tmp_path / "logs")
    yield local
    local.stop_all(grace=20)


@pytest.fixture
def queue_of(services: Services) -> Callable[[str], str]:
    """Name of a demo task's work queue in this module."""

    def name(task: str) -> str:
        return queue_name(services.settings.queue_prefix, task, services.registry.get(task).version)

    return name


@pytest.fixture
def dlq_of(queue_of: Callable[[str], str]) -> Callable[[str], str]:
    return lambda task: dead_letter_name(queue_of(task))


@pytest.fixture
def tornado_cli(e2e_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``tornado ARGS`` as a user would, with the module's environment."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(tornado_argv(*args), env=e2e_env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"tornado {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run
