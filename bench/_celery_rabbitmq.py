"""RabbitMQ in ``bench.celery_peers``: the node it starts, how its calls are counted, its queues dropped.

The node is ``tornado_core.devstack.brokers.LocalRabbitMQ`` (as the tests start it: a temp folder,
free ports on 127.0.0.1, statistics every 50 ms). Its calls come from the management API, taken
node-wide before and after a window:

* message operations, ``/api/overview``'s ``message_stats``: ``publish``, ``deliver`` (pushed to a
  consumer), ``get`` and ``get_empty`` (``basic.get`` that found one / none), ``ack`` (messages
  acknowledged; a ``multiple`` ack counts each), with ``confirm`` (publisher confirms) and
  ``redeliver`` beside them, outside the total;
* ``recv_cnt`` of every client connection (``/api/connections``): the TCP reads the broker made,
  at least one per round trip; writes sent back to back may share one (200 publishes, 250
  ``basic.get`` and 200 acks in a row from one client were 514 reads).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from bench._celery_brokers import Calls, started
from tornado_core.devstack.brokers import LocalRabbitMQ

#: The message operations in the total (``confirm`` and ``redeliver`` are listed, not added).
TOTAL_KINDS = ("publish", "deliver", "get", "get_empty", "ack")
#: Every kind read (``deliver_get``, their sum, is left out).
KINDS = (*TOTAL_KINDS, "confirm", "redeliver")
#: The counters that must stand still before a reading (idle ``basic.get`` polls never do).
SETTLED_KINDS = ("publish", "deliver", "get", "ack")
#: Seconds between two readings that must agree, and the longest wait for them: the management API
#: keeps one sample a second, so two readings closer than that may both be stale (a prefill's
#: publishes were seen to reach the counters more than a second late).
SETTLE_STEP, SETTLE_MAX = 1.1, 8.0


@dataclass(frozen=True)
class RabbitServer:
    """A running RabbitMQ node: AMQP and management URLs (credentials in both)."""

    url: str
    management_url: str

    def api(self, path: str, *, method: str = "GET") -> Any:
        """One call of the management HTTP API (``/api/...``); its JSON answer (None if empty)."""
        parts = urlsplit(self.management_url)
        token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
        base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
        request = urllib.request.Request(
            f"{base}{path}", method=method, headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def delete_queue(self, name: str) -> None:
        """Drop a queue of the vhost ``/`` (nothing if it is missing)."""
        with contextlib.suppress(Exception):
            self.api(f"/api/queues/%2F/{quote(name, safe='')}", method="DELETE")


@contextlib.contextmanager
def rabbitmq_server() -> Iterator[RabbitServer]:
    """:class:`LocalRabbitMQ` for the run (``bench._celery_brokers.started``), stopped with its epmd."""
    with started(LocalRabbitMQ, "rabbitmq") as urls:
        yield RabbitServer(urls.url, urls.management_url)


class RabbitCalls:
    """Message operations and the clients' TCP writes (as the broker read them), start to stop."""

    def __init__(self, server: RabbitServer) -> None:
        self._server = server
        self._ops: Counter[str] = Counter()
        self._reads: dict[str, int] = {}

    def start(self) -> None:
        """Snapshot the counters once what came before (a prefill's publishes) has reached them."""
        self._ops, self._reads = self._settled(), self._recv_counts()

    def stop(self) -> tuple[Calls, Calls]:
        """(message operations, TCP reads by connection) since :meth:`start`, once the counters caught up."""
        ops = self._settled()
        ops.subtract(self._ops)
        kinds = {kind: n for kind, n in ops.items() if n > 0}
        reads = {name: n - self._reads.get(name, 0) for name, n in self._recv_counts().items()}
        reads = {name: n for name, n in reads.items() if n > 0}
        total = sum(kinds.get(kind, 0) for kind in TOTAL_KINDS)
        return Calls(total, kinds), Calls(sum(reads.values()), {})

    def _settled(self) -> Counter[str]:
        """The message counters once two readings :data:`SETTLE_STEP` apart agree (or after SETTLE_MAX)."""
        deadline = time.monotonic() + SETTLE_MAX
        before = self._message_stats()
        while True:
            time.sleep(SETTLE_STEP)
            now = self._message_stats()
            if all(now[k] == before[k] for k in SETTLED_KINDS) or time.monotonic() > deadline:
                return now
            before = now

    def _message_stats(self) -> Counter[str]:
        stats = (self._server.api("/api/overview") or {}).get("message_stats") or {}
        return Counter({k: int(stats[k]) for k in KINDS if isinstance(stats.get(k), int)})

    def _recv_counts(self) -> dict[str, int]:
        return {
            str(c["name"]): int(c.get("recv_cnt") or 0) for c in self._server.api("/api/connections") or []
        }
