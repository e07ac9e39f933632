"""Fixtures of the Celery engine on RabbitMQ: one real rabbitmq-server per test session on 127.0.0.1.

The node is :class:`tornado_core.devstack.brokers.LocalRabbitMQ`: Debian's
``/usr/lib/rabbitmq/bin/rabbitmq-server`` (not the ``/usr/sbin`` wrapper, which switches user)
with every file in a temp folder, the management plugin on a second free port,
statistics every 50 ms and ``consumer_timeout`` raised to a day. Its Erlang port mapper (epmd) and
distribution port listen on 127.0.0.1 only, on free ports of their own, and are stopped with it.
Set ``TORNADO_TEST_RABBITMQ_URL`` to use a RabbitMQ you started yourself (its management API at
``TORNADO_TEST_RABBITMQ_MANAGEMENT_URL``, by default port 15672 of its host). If the server cannot
start, its tests are skipped with the reason, except on CI (strict mode) where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.celery_support import _unavailable
from tornado_core.adapters.celery.amqp_link import management_url_of
from tornado_core.devstack.brokers import BrokerUnavailable, LocalRabbitMQ, RabbitMQUrls

#: Seconds RabbitMQ (with its management plugin) may take to accept connections.
BOOT_SECONDS = 60.0


@pytest.fixture(scope="session")
def rabbitmq_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQUrls]:
    """Where the session's RabbitMQ answers: AMQP (``amqp://tornado:PASSWORD@127.0.0.1:PORT//``, vhost
    ``/``) and the management HTTP API, credentials in both."""
    external = os.environ.get("TORNADO_TEST_RABBITMQ_URL")
    if external:
        management = os.environ.get("TORNADO_TEST_RABBITMQ_MANAGEMENT_URL") or management_url_of(external)
        yield RabbitMQUrls(external, management)
        return
    node = LocalRabbitMQ(tmp_path_factory.mktemp("rabbitmq"), boot_seconds=BOOT_SECONDS)
    try:
        urls = node.start()
    except BrokerUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield urls
    finally:
        node.stop()


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_broker: RabbitMQUrls) -> str:
    """AMQP URL of the session's RabbitMQ."""
    return rabbitmq_broker.url
