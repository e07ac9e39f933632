"""The Celery engine's queue, picked by ``queue_backend = "celery"`` and the broker URL's scheme."""

from __future__ import annotations

from collections.abc import Callable

from tornado_core.errors import ConfigError
from tornado_core.ports.queue import QueuePort
from tornado_core.settings import Settings

#: Broker URL schemes of Redis.
REDIS_SCHEMES = ("redis://", "rediss://")
#: Broker URL schemes of RabbitMQ.
AMQP_SCHEMES = ("amqp://", "amqps://")
#: Broker URL schemes the Celery engine speaks.
BROKER_SCHEMES = REDIS_SCHEMES + AMQP_SCHEMES


def build_celery_queue(settings: Settings, on_close: Callable[[Callable[[], None]], None]) -> QueuePort:
    """The queue on the Celery broker of ``settings.broker_url`` (Redis or RabbitMQ).

    The queue connects on first use; an unreachable broker then raises ``QueueUnavailable`` within
    ``request_deadline`` seconds, naming its host and port (never the password).

    Args:
        settings: Loaded settings (``broker_url``, ``broker_management_url``, ``request_deadline`` as
            the calls' timeout).
        on_close: Registers the queue's ``close`` with the process's closers.

    Raises:
        ConfigError: The URL names a broker the engine does not speak.
    """
    url = settings.broker_url or ""
    if url.startswith(AMQP_SCHEMES):
        from tornado_core.adapters.celery.amqp_queue import AmqpQueue

        management, deadline = settings.broker_management_url, settings.request_deadline
        rabbit = AmqpQueue(url, management_url=management, timeout=deadline)
        on_close(rabbit.close)
        return rabbit
    if not url.startswith(REDIS_SCHEMES):
        scheme = url.partition("://")[0] or url
        raise ConfigError(
            f"broker_url {scheme + '://...'!r} is not supported by the Celery engine: use "
            "redis://host:port/db or amqp://user:pass@host:port/vhost (docs/celery.md)"
        )
    from tornado_core.adapters.celery.redis_queue import RedisQueue

    queue = RedisQueue(url, timeout=settings.request_deadline)
    on_close(queue.close)
    return queue
