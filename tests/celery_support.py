"""Fixtures of the Celery engine: a real Redis broker started once per test session on 127.0.0.1.

Set ``TORNADO_TEST_REDIS_URL`` to use a Redis you started yourself. If the server cannot start,
its tests are skipped with the reason, except on CI (strict mode) where that is a failure.
End-to-end modules that prove the core guarantees run on it too: ``backend_env`` maps their
``backend`` parameter (``postgres``, ``sqs``, ``redis``) to the processes' settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tornado_core.local_machine import free_port, wait_until
from tornado_core.toolchain.strict import strict_mode

#: The queue backends of the end-to-end modules that prove the core guarantees.
CORE_BACKENDS = ["postgres", "sqs", "redis", "rabbitmq"]
#: The Celery engine's brokers (the modules of Celery-only features run on each).
CELERY_BACKENDS = ["redis", "rabbitmq"]
#: Seconds a broker may take to accept connections.
BOOT_SECONDS = 20.0


def backend_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings of a backend parameter: a Celery broker (``redis``, ``rabbitmq``) or ``TORNADO_QUEUE``."""
    if backend == "redis":
        return {"TORNADO_QUEUE": "celery", "TORNADO_BROKER_URL": request.getfixturevalue("redis_url")}
    if backend == "rabbitmq":
        broker = request.getfixturevalue("rabbitmq_broker")
        return {
            "TORNADO_QUEUE": "celery",
            "TORNADO_BROKER_URL": broker.url,
            "TORNADO_BROKER_MANAGEMENT_URL": broker.management_url,
        }
    return {"TORNADO_QUEUE": backend}


def _unavailable(reason: str) -> None:
    """Fail in strict mode (CI), else skip."""
    if strict_mode(os.environ):
        pytest.fail(f"the Celery engine's broker could not start: {reason}", pytrace=False)
    pytest.skip(f"the Celery engine's broker could not start: {reason}")


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's Redis (``redis://127.0.0.1:PORT/0``): no persistence, a temp folder."""
    external = os.environ.get("TORNADO_TEST_REDIS_URL")
    if external:
        yield external
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (apt-get install redis-server)")
    folder: Path = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    log = (folder / "redis.log").open("wb")
    server = subprocess.Popen([*argv, "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_until(lambda: server.poll() is not None or _redis_answers(port), timeout=BOOT_SECONDS):
            _unavailable(f"no answer on port {port} within {BOOT_SECONDS:.0f} s")
        if server.poll() is not None:
            _unavailable(
                f"redis-server exited {server.returncode}: {(folder / 'redis.log').read_text()[-500:]}"
            )
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
