"""Python client of the Tornado HTTP API (standard library only), for ERP developers.

Part of the public surface: ``from tornado_core import TornadoClient, ApiError``.

Example::

    client = TornadoClient("http://127.0.0.1:8080", token="tnd_...")
    job = client.submit("demo.echo", {"message": "hi"})
    done = client.wait(job["id"], timeout=30)
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from tornado_core.errors import ApiError

__all__ = ["TERMINAL_STATUSES", "ApiError", "TornadoClient"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "dead"})
#: The API's default body limit (``Settings.max_body_bytes``).
DEFAULT_MAX_BODY = 8 * 1024 * 1024


class TornadoClient:
    """Submits jobs and reads their status over HTTP.

    Args:
        base_url: The API's address, e.g. ``http://127.0.0.1:8080``.
        token: The tenant's bearer token.
        timeout: Seconds per HTTP request.
        max_body_bytes: The API's body limit (``TORNADO_MAX_BODY_BYTES`` there): a larger request
            is refused here with the API's own 413, instead of being cut off mid-upload.
    """

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, max_body_bytes: int = DEFAULT_MAX_BODY
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._max_body = max_body_bytes

    def submit(
        self, task: str, payload: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Queue one job; returns ``{"id", "task", "version", "status"}``."""
        body: dict[str, Any] = {"task": task, "payload": payload}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", "/v1/jobs", body)

    def submit_batch(self, jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Queue up to 500 jobs (``{"task", "payload", "idempotency_key"?}`` each)."""
        return self._call("POST", "/v1/jobs:batch", {"jobs": list(jobs)})

    def get(self, job_id: str) -> dict[str, Any]:
        """One job's status, progress, result or error."""
        return self._call("GET", f"/v1/jobs/{urllib.parse.quote(job_id)}")

    def list(
        self,
        *,
        task: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of jobs, newest first: ``{"jobs": [...], "next_cursor": ...}``."""
        query = {
            k: v for k, v in {"task": task, "status": status, "limit": limit, "cursor": cursor}.items() if v
        }
        return self._call("GET", "/v1/jobs?" + urllib.parse.urlencode(query))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 60.0,
        poll: float = 0.2,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job succeeds, fails or is dead-lettered.

        Raises:
            TimeoutError: Still not finished after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_update is not None:
                on_update(job)
            if job.get("status") in TERMINAL_STATUSES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.get('status')} after {timeout:.0f}s")
            time.sleep(poll)

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        if data is not None and len(data) > self._max_body:
            # The API answers 413 from the headers and stops reading; urllib, which reads the answer
            # only after sending everything, would see a reset connection instead.
            raise ApiError(413, "body_too_large", f"the body exceeds {self._max_body} bytes (not sent)")
        request = urllib.request.Request(self._base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, "unreachable", f"cannot reach the Tornado API at {self._base}: {exc}") from None


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        error = json.loads(exc.read()).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    return ApiError(
        exc.code,
        error.get("code", "http_error"),
        error.get("message", exc.reason),
        fields=error.get("fields"),
        headers=dict(exc.headers.items()) if exc.headers else None,
    )
