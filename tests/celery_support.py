"""Fixtures of the Celery engine: a real Redis broker started once per test session on 127.0.0.1.

Set ``TORNADO_TEST_REDIS_URL`` to use a Redis you started yourself. If the server cannot start,
its tests are skipped with the reason, except on CI (strict mode) where that is a failure.
End-to-end modules that prove the core guarantees run on it too: ``backend_env`` maps their
``backend`` parameter (``postgres``, ``sqs``, ``redis``) to the processes' settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tornado_core.devstack.brokers import BrokerUnavailable, LocalRedis
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


def _unavailable(reason: str) -> NoReturn:
    """Fail in strict mode (CI), else skip."""
    if strict_mode(os.environ):
        pytest.fail(f"the Celery engine's broker could not start: {reason}", pytrace=False)
    pytest.skip(f"the Celery engine's broker could not start: {reason}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's Redis (``redis://127.0.0.1:PORT/0``): no persistence, a temp folder."""
    external = os.environ.get("TORNADO_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = LocalRedis(tmp_path_factory.mktemp("redis"), boot_seconds=BOOT_SECONDS)
    try:
        url = server.start()
    except BrokerUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield url
    finally:
        server.stop()
