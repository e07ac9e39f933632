"""Simulated time-clock collectors: many keep-alive HTTP clients posting punches (load tests, benchmarks).

Each device behaves like a collector with an outbox: it sends one punch per request
and re-sends it (same UUID) until the API answers 202, backing off on 503s and
broken connections -- so an outage delays punches but never loses one.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

#: CPFs with valid check digits, for generated punches.
SAMPLE_CPFS = ("12345678909", "52998224725", "11144477735", "39053344705", "86288366757", "71428793860")


@dataclass
class DeviceRun:
    """What the devices saw."""

    accepted: dict[str, str] = field(default_factory=dict)  # punch id -> job id
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of accepted requests
    retries: int = 0
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)  # punch id -> error
    wall: float = 0.0

    def percentile(self, fraction: float) -> float:
        """A latency percentile in seconds (0 if nothing was accepted)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def make_punches(reps: Sequence[str], count: int, *, now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` valid online punches spread over ``reps`` (``now`` must be aware)."""
    rng = random.Random(seed)
    return [
        {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "cpf": SAMPLE_CPFS[n % len(SAMPLE_CPFS)],
            "rep": reps[n % len(reps)],
            "time": (now - timedelta(seconds=rng.randint(0, 60))).isoformat(),
            "collector": "mobile",
        }
        for n in range(count)
    ]


class _Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        try:
            self._writer.write(raw)
            await self._writer.drain()
            status = int((await self._reader.readline()).split()[1])
            length = 0
            while (header := await self._reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return status, await self._reader.readexactly(length)
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            self.close()
            raise ConnectionError("connection lost") from None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _request(host: str, path: str, token: str, punch: dict[str, Any]) -> bytes:
    body = json.dumps({"punches": [punch]}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _device(
    queue: asyncio.Queue[dict[str, Any]], url: str, token: str, run: DeviceRun, deadline: float
) -> None:
    parts = urlsplit(url)
    conn = _Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        while not queue.empty():
            punch = queue.get_nowait()
            raw = _request(parts.netloc, "/v1/punches", token, punch)
            await _send_until_acked(conn, raw, punch, run, deadline)
    finally:
        conn.close()


async def _send_until_acked(
    conn: _Connection, raw: bytes, punch: dict[str, Any], run: DeviceRun, deadline: float
) -> None:
    delay = 0.05
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            status, body = await conn.post(raw)
        except ConnectionError:
            status, body = 0, b""
        run.statuses[status] += 1
        if status == 202:
            run.latencies.append(time.monotonic() - started)
            run.accepted[punch["id"]] = json.loads(body)["results"][0]["job_id"]
            return
        if status == 422:
            run.rejected[punch["id"]] = json.loads(body)["results"][0]["error"]
            return
        run.retries += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise TimeoutError(f"punch {punch['id']} was never acknowledged")


async def send_punches(
    url: str,
    token: str,
    punches: Sequence[dict[str, Any]],
    *,
    devices: int,
    timeout: float = 600.0,
    run: DeviceRun | None = None,
) -> DeviceRun:
    """Post every punch, one per request, from ``devices`` concurrent keep-alive clients.

    Args:
        url: The API's base URL.
        token: The tenant's bearer token.
        punches: The punches (``IncomingPunch`` JSON).
        devices: Concurrent clients.
        timeout: Seconds until a punch still not acknowledged is an error.
        run: Where to record progress (another thread may watch it); a new one by default.

    Raises:
        TimeoutError: A punch was still not acknowledged after ``timeout`` seconds.
    """
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for punch in punches:
        queue.put_nowait(punch)
    run = run if run is not None else DeviceRun()
    started = time.monotonic()
    deadline = started + timeout
    await asyncio.gather(*(_device(queue, url, token, run, deadline) for _ in range(devices)))
    run.wall = time.monotonic() - started
    return run
