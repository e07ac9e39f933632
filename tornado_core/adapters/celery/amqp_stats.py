"""Unacknowledged-message counts from RabbitMQ's management HTTP API (the one number AMQP cannot give).

The management API's counts are sampled: they lag by about ``collect_statistics_interval`` (and, for
quorum queues, ``quorum_tick_interval``) plus the sample retention's smallest step (5 s by default).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from urllib.parse import quote, unquote, urlsplit

from tornado_core.errors import QueueUnavailable


class ManagementApi:
    """A reader of queue statistics.

    Args:
        url: ``http://user:pass@host:15672`` (``https://`` for TLS); the credentials are sent as basic auth.
        vhost_path: The vhost, quoted for a path (``%2F`` for ``/``).
        timeout: Seconds one request may take.
    """

    def __init__(self, url: str, *, vhost_path: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}"
        login = f"{unquote(parts.username or 'guest')}:{unquote(parts.password or 'guest')}"
        self._auth = "Basic " + base64.b64encode(login.encode()).decode("ascii")
        self._vhost_path = vhost_path
        self._timeout = timeout

    def unacknowledged(self, queue: str) -> int:
        """The queue's unacknowledged messages (held by some consumer), as last sampled.

        Raises:
            QueueUnavailable: The management API does not answer, or does not know the queue.
        """
        url = f"{self._base}/api/queues/{self._vhost_path}/{quote(queue, safe='')}"
        request = urllib.request.Request(url, headers={"Authorization": self._auth})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                stats = json.load(response)
        except (OSError, ValueError) as exc:
            where = self._base.partition("://")[2]
            raise QueueUnavailable(
                f"RabbitMQ's management API at {where} did not answer for queue {queue}: {exc}"
            ) from exc
        return int(stats.get("messages_unacknowledged") or 0)
