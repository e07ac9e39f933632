"""HTTP load generators: ``wrk`` (preferred) and a Python asyncio fallback.

The machine has 2 cores and the generator competes with the server, so the
default is ``wrk`` (C, one thread): ``apt-get install -y wrk`` on Debian/Ubuntu.
Without it (or with ``BENCH_LOADGEN=python``) a keep-alive asyncio client runs
in this process instead; it takes more CPU from the server, so its figures are
lower bounds. Runs bounded by a request count (the SQS runs, a few hundred
requests) always use the asyncio client. Every table says which generator ran.

Both are closed loops: ``connections`` clients each send one request, wait for
the answer, send the next, until ``duration`` seconds or ``max_requests``
answers. Status codes are counted one by one (non-2xx included).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench._common import percentile

WRK_HINT = (
    "wrk not found: install it with `apt-get install -y wrk` (Debian/Ubuntu); using the Python generator"
)

_WRK_SCRIPT = r"""
counts = {}
local seen = 0
local limit = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local threads = {}
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH") or ""
if auth ~= "" then wrk.headers["Authorization"] = auth end

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  seen = seen + 1
  if limit > 0 and seen >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do
      parts[#parts + 1] = string.format('"%d": %d', k, v)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "requests": %d, "errors": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"statuses": [{%s}]}\n',
    summary.duration, summary.requests, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ", ")))
end
"""


@dataclass
class LoadResult:
    """What one closed-loop run saw."""

    generator: str
    duration_s: float
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def answered(self) -> int:
        """Responses with a status."""
        return sum(self.statuses.values())

    def count(self, status: int) -> int:
        """Responses with this status."""
        return self.statuses.get(status, 0)

    @property
    def non_2xx(self) -> int:
        """Responses outside 200..299."""
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def rate(self, status: int) -> float:
        """Responses with ``status`` per second."""
        return self.count(status) / self.duration_s if self.duration_s > 0 else 0.0


def generator_name() -> str:
    """``wrk`` or ``python`` (``BENCH_LOADGEN`` overrides; missing wrk falls back)."""
    wanted = os.environ.get("BENCH_LOADGEN", "wrk")
    if wanted == "wrk" and shutil.which("wrk"):
        return "wrk"
    return "python"


def closed_loop(
    url: str,
    body: str,
    *,
    token: str | None,
    connections: int,
    duration: float,
    max_requests: int = 0,
) -> LoadResult:
    """POST ``body`` to ``url`` from ``connections`` keep-alive clients; returns the counts.

    A run bounded by ``max_requests`` always uses the Python generator (which
    sends exactly that many requests and stops at the last answer): wrk only
    stops at the end of its duration.
    """
    if generator_name() == "wrk" and not max_requests:
        return _wrk(url, body, token, connections, duration, max_requests)
    return asyncio.run(_python_closed_loop(url, body, token, connections, duration, max_requests))


def _wrk(url: str, body: str, token: str | None, connections: int, duration: float, limit: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    env = {
        **os.environ,
        "BENCH_BODY": body,
        "BENCH_AUTH": f"Bearer {token}" if token else "",
        "BENCH_MAX_REQUESTS": str(limit),
    }
    try:
        proc = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "30s",
                "-s",
                script.name,
                url,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        generator="wrk -t1",
        duration_s=data["duration_us"] / 1e6,
        statuses=Counter({int(k): v for k, v in data["statuses"][0].items()}),
        errors=data["errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


class HttpConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams (enough for these servers)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send a prepared request; returns ``(status, body)``. Reconnects once if closed."""
        for attempt in (1, 2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
            assert self._reader is not None
            try:
                self._writer.write(raw)
                await self._writer.drain()
                status_line = await self._reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed by server")
                status = int(status_line.split()[1])
                length, close = 0, False
                while (header := await self._reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    lname = name.strip().lower()
                    if lname == b"content-length":
                        length = int(value)
                    elif lname == b"connection" and value.strip().lower() == b"close":
                        close = True
                payload = await self._reader.readexactly(length) if length else b""
                if close:
                    self.close()
                return status, payload
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def post_request(url: str, body: str, token: str | None) -> bytes:
    """The raw bytes of ``POST url`` with a JSON body."""
    parts = urlsplit(url)
    data = body.encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _python_closed_loop(
    url: str, body: str, token: str | None, connections: int, duration: float, limit: int
) -> LoadResult:
    parts = urlsplit(url)
    raw = post_request(url, body, token)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    sent = 0
    started = time.perf_counter()
    deadline = started + duration

    async def client() -> None:
        nonlocal errors, sent
        conn = HttpConnection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            while time.perf_counter() < deadline and not (limit and sent >= limit):
                sent += 1
                t0 = time.perf_counter()
                try:
                    status, _ = await conn.request(raw)
                except OSError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(
        generator="python asyncio",
        duration_s=elapsed,
        statuses=statuses,
        errors=errors,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
    )
