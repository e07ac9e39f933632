"""One AMQP connection to RabbitMQ (py-amqp), reopened after a loss, its failures as ``QueueUnavailable``.

The link has two channels: the *holding* channel, which only takes messages (``basic_get``) and settles
them (ack, reject), so that no error of another call can close it and hand back the messages it holds;
and the *control* channel (publisher confirms on) for declarations, passive checks and publishing, which
is reopened when RabbitMQ closes it over an error (an unknown queue, a declaration that conflicts).
Callers hold :attr:`AmqpLink.lock` around every use: py-amqp is not thread-safe.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import amqp  # type: ignore[import-untyped]
import amqp.exceptions  # type: ignore[import-untyped]

from tornado_core.errors import ConfigError, QueueUnavailable

#: Errors of a lost connection (the socket, or RabbitMQ closing the connection).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    socket.timeout,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.IrrecoverableConnectionError,
)


def management_url_of(broker_url: str, *, port: int = 15672) -> str:
    """The management API's base URL on the broker's host, with the broker's credentials.

    Args:
        broker_url: ``amqp://user:pass@host:port/vhost`` (``amqps://`` gives ``https://``).
        port: The management API's port.
    """
    parts = urlsplit(broker_url)
    scheme = "https" if parts.scheme == "amqps" else "http"
    credentials = parts.netloc.rpartition("@")[0]
    prefix = f"{credentials}@" if credentials else ""
    return f"{scheme}://{prefix}{parts.hostname or 'localhost'}:{port}"


class AmqpLink:
    """The connection and its two channels; :attr:`generation` grows with each new connection.

    Args:
        url: ``amqp://user:pass@host:port/vhost`` (``//`` or no path: vhost ``/``; ``amqps://``: TLS).
        timeout: Seconds to connect and to wait for any answer of RabbitMQ.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigError(f"not an AMQP URL: {parts.scheme}://...")
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        self.where = f"{parts.hostname or 'localhost'}:{port}"
        self._login = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self.vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self._tls = parts.scheme == "amqps"
        self._timeout = timeout
        self.lock = threading.RLock()
        self.generation = 0
        self._connection: amqp.Connection | None = None
        self._holding: Any = None
        self._control: Any = None
        self._published = 0
        self._unconfirmed: set[int] = set()
        self._refused: set[int] = set()

    @property
    def vhost_path(self) -> str:
        """The vhost as a management API path segment (``/`` is ``%2F``)."""
        return quote(self.vhost, safe="")

    def holding(self) -> Any:
        """The channel that takes and settles messages (connecting first if needed).

        A new holding channel starts a new :attr:`generation`: the messages of the old one went back.
        """
        connection = self._connect()
        if self._holding is None or not self._holding.is_open:
            self._holding = connection.channel()
            self.generation += 1
        return self._holding

    def control(self) -> Any:
        """The channel for declarations and publishing (reopened if an error closed it)."""
        connection = self._connect()
        if self._control is None or not self._control.is_open:
            self._control = connection.channel()
            self._control.events["basic_ack"].add(self._on_ack)
            self._control.events["basic_nack"].add(self._on_nack)
            self._control.confirm_select()
            self._published = 0
            self._unconfirmed.clear()
        return self._control

    def publish(self, messages: Sequence[tuple[str, amqp.Message]]) -> list[str | None]:
        """Publish (default exchange, routing key = queue) and wait until RabbitMQ confirmed them all.

        Returns:
            For each message, ``None`` once RabbitMQ stored it, else why it refused it.
        """
        channel = self.control()
        numbers = []
        for routing_key, message in messages:
            channel.basic_publish(message, exchange="", routing_key=routing_key)
            self._published += 1
            numbers.append(self._published)
            self._unconfirmed.add(self._published)
        deadline = time.monotonic() + self._timeout
        while self._unconfirmed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueueUnavailable(f"RabbitMQ at {self.where} confirmed no send in {self._timeout:g}s")
            self.drain(left)
        refused = [number in self._refused for number in numbers]
        self._refused.difference_update(numbers)
        return ["RabbitMQ refused the message (queue full or unavailable)" if no else None for no in refused]

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._unconfirmed.difference_update(self._settled(tag, multiple))

    def _on_nack(self, tag: int, multiple: bool) -> None:
        settled = self._settled(tag, multiple)
        self._refused.update(settled)
        self._unconfirmed.difference_update(settled)

    def _settled(self, tag: int, multiple: bool) -> list[int]:
        """The publishes a confirm covers (``multiple``: every one up to ``tag``)."""
        return [n for n in self._unconfirmed if n == tag or (multiple and n < tag)]

    def holding_open(self) -> bool:
        """Whether the holding channel of :attr:`generation` still holds its messages."""
        return self._holding is not None and self._connection is not None and bool(self._connection.connected)

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for RabbitMQ's next frame (confirms; 0: only what has come)."""
        assert self._connection is not None
        try:
            self._connection.drain_events(timeout=timeout)
        except TimeoutError:
            return

    @contextmanager
    def call(self, what: str, *, holding: bool = False) -> Iterator[None]:
        """Run a step on one channel; a refusal or a lost connection becomes ``QueueUnavailable``.

        RabbitMQ closes a channel over an error (py-amqp then reopens the same object, without its
        confirms or held messages), so the step's channel is dropped: ``holding`` says which one it
        used. The connection is dropped on a loss, so the next call opens a new one.
        """
        try:
            yield
        except amqp.exceptions.ChannelError as exc:
            self.drop_channel(holding=holding)
            if isinstance(exc, amqp.exceptions.NotFound):
                raise QueueUnavailable(f"{what}: not found on RabbitMQ at {self.where}") from exc
            raise QueueUnavailable(f"RabbitMQ at {self.where} refused {what}: {exc}") from exc
        except CONNECTION_ERRORS as exc:
            self.close()
            raise QueueUnavailable(f"RabbitMQ at {self.where} is unreachable ({what}): {exc}") from exc

    def drop_channel(self, *, holding: bool) -> None:
        """Forget a channel RabbitMQ closed over an error (the holding one: its messages went back)."""
        channel = self._holding if holding else self._control
        if holding:
            self._holding = None
        else:
            self._control = None
        if channel is not None:
            try:
                channel.close()
            except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                self.close()

    def close(self) -> None:
        """Close the connection (RabbitMQ gives back every message it held)."""
        connection, self._connection = self._connection, None
        self._holding = self._control = None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                connection.collect()

    def _connect(self) -> amqp.Connection:
        if self._connection is not None and self._connection.connected:
            return self._connection
        self.close()
        user, password = self._login
        connection = amqp.Connection(
            self.where, userid=user, password=password, virtual_host=self.vhost, ssl=self._tls,
            connect_timeout=self._timeout, read_timeout=self._timeout, write_timeout=self._timeout,
            client_properties={"connection_name": "tornado"},
        )  # fmt: skip
        try:
            connection.connect()
        except amqp.exceptions.AccessRefused as exc:
            connection.collect()
            raise QueueUnavailable(f"RabbitMQ at {self.where} refused the login of {user!r}") from exc
        except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
            connection.collect()
            raise QueueUnavailable(f"RabbitMQ at {self.where} is unreachable: {exc}") from exc
        self._connection = connection
        return connection
