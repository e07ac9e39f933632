"""The Celery engine's queue, picked by ``queue_backend = "celery"`` and the broker URL's scheme."""

from __future__ import annotations

from collections.abc import Callable

from tornado_core.errors import ConfigError
from tornado_core.ports.queue import QueuePort
from tornado_core.settings import Settings

#: Broker URL schemes the Celery engine speaks.
BROKER_SCHEMES = ("redis://", "rediss://")


def build_celery_queue(settings: Settings, on_close: Callable[[Callable[[], None]], None]) -> QueuePort:
    """The queue on the Celery broker of ``settings.broker_url``.

    Args:
        settings: Loaded settings (``broker_url``, ``request_deadline`` as the calls' timeout).
        on_close: Registers the queue's ``close`` with the process's closers.

    Raises:
        ConfigError: The URL names a broker the engine does not speak (``amqp://`` among them, for
            now: docs/celery.md).
    """
    url = settings.broker_url or ""
    if not url.startswith(BROKER_SCHEMES):
        scheme = url.partition("://")[0] or url
        raise ConfigError(
            f"broker_url {scheme + '://...'!r} is not supported by the Celery engine: use "
            "redis://host:port/db (RabbitMQ, amqp://, is not available yet; docs/celery.md)"
        )
    from tornado_core.adapters.celery.redis_queue import RedisQueue

    queue = RedisQueue(url, timeout=settings.request_deadline)
    on_close(queue.close)
    return queue
