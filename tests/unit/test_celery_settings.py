"""Choosing the Celery engine: its settings, and clear errors for a bad configuration at start."""

from __future__ import annotations

import pytest

from tornado_core.adapters.celery.redis_queue import RedisQueue
from tornado_core.bootstrap.celery import build_celery_queue
from tornado_core.errors import ConfigError
from tornado_core.settings import Settings

BASE = {"TORNADO_DATABASE_URL": "postgresql://localhost/tornado", "TORNADO_SECRET_KEY": "k"}


def test_the_celery_engine_takes_its_broker_from_the_environment() -> None:
    settings = Settings.load(
        {**BASE, "TORNADO_QUEUE": "celery", "TORNADO_BROKER_URL": "redis://127.0.0.1:6379/0"}
    )
    assert (settings.queue_backend, settings.broker_url) == ("celery", "redis://127.0.0.1:6379/0")
    assert settings.as_env()["TORNADO_BROKER_URL"] == "redis://127.0.0.1:6379/0"  # handed to workers
    closers: list[object] = []
    queue = build_celery_queue(settings, closers.append)
    assert isinstance(queue, RedisQueue) and closers == [queue.close]


def test_an_amqp_broker_url_builds_the_rabbitmq_queue_with_its_management_api() -> None:
    from tornado_core.adapters.celery.amqp_queue import AmqpQueue

    env = {**BASE, "TORNADO_QUEUE": "celery", "TORNADO_BROKER_URL": "amqp://u:p@127.0.0.1:5672//"}
    settings = Settings.load({**env, "TORNADO_BROKER_MANAGEMENT_URL": "http://u:p@127.0.0.1:15672"})
    assert settings.as_env()["TORNADO_BROKER_MANAGEMENT_URL"] == "http://u:p@127.0.0.1:15672"
    closers: list[object] = []
    queue = build_celery_queue(settings, closers.append)
    assert isinstance(queue, AmqpQueue) and closers == [queue.close]  # it connects on first use


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"'postgres' or 'sqs', not 'kafka' \(or 'celery': a Celery broker\)"
    ):
        Settings.load({**BASE, "TORNADO_QUEUE": "kafka"})


def test_the_celery_engine_without_a_broker_is_refused() -> None:
    with pytest.raises(ConfigError, match="TORNADO_BROKER_URL"):
        Settings.load({**BASE, "TORNADO_QUEUE": "celery"})


@pytest.mark.parametrize("url", ["kafka://guest:guest@127.0.0.1:9092", "memory://"])
def test_a_broker_the_engine_does_not_speak_is_refused_at_start(url: str) -> None:
    settings = Settings.load({**BASE, "TORNADO_QUEUE": "celery", "TORNADO_BROKER_URL": url})
    with pytest.raises(ConfigError, match="not supported by the Celery engine") as caught:
        build_celery_queue(settings, lambda _close: None)
    assert "guest" not in str(caught.value)
