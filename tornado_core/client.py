"""Python client of the Tornado HTTP API (the standard library's HTTP, orjson), for ERP developers.

Part of the public surface: ``from tornado_core import TornadoClient, ApiError``.

Example::

    client = TornadoClient("http://127.0.0.1:8080", token="tnd_...")
    job = client.submit("demo.echo", {"message": "hi"})
    done = client.wait(job["id"], timeout=30)
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from tornado_core.errors import ApiError
from tornado_core.jsontext import compact

__all__ = ["TERMINAL_STATUSES", "ApiError", "TornadoClient"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "dead", "cancelled"})
#: Most jobs in one ``POST /v1/jobs:batch`` (the API's limit).
MAX_BATCH = 500
#: What a kept-alive connection the server has closed meanwhile looks like: nothing was processed.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
#: The API's default body limit (``Settings.max_body_bytes``).
DEFAULT_MAX_BODY = 8 * 1024 * 1024


class TornadoClient:
    """Submits jobs and reads their status over HTTP.

    Each thread keeps its own connection alive between calls (one TCP and HTTP set-up per
    thread, not per call); a connection the API closed while idle is reopened once, silently.

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
        parts = urllib.parse.urlsplit(self._base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path
        self._token = token
        self._timeout = timeout
        self._max_body = max_body_bytes
        self._local = threading.local()

    def submit(
        self,
        task: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        """Queue one job; returns ``{"id", "task", "version", "status"}``.

        ``delay``: seconds (at most 900) before it may run. ``"existing": true`` in the answer
        means nothing was queued: the job returned holds the task's uniqueness key.
        """
        body: dict[str, Any] = {"task": task, "payload": payload}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if delay is not None:
            body["delay"] = delay
        return self._call("POST", "/v1/jobs", body)

    def submit_batch(self, jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Queue up to 500 jobs (``{"task", "payload", "idempotency_key"?}`` each)."""
        return self._call("POST", "/v1/jobs:batch", {"jobs": list(jobs)})

    def submit_many(
        self, jobs: Sequence[dict[str, Any]], *, chunk: int = MAX_BATCH, parallel: int = 1
    ) -> list[dict[str, Any]]:
        """Queue any number of jobs, ``chunk`` per request; one result per job, in order.

        Each result is a receipt ``{"index", "id", "task", "version", "status"}`` or
        ``{"index", "error": {...}}`` for a job the API refused; ``index`` counts from 0
        across the whole list.

        Args:
            jobs: The jobs, as :meth:`submit_batch` takes them.
            chunk: Jobs per request (at most the API's batch limit).
            parallel: Requests in flight at once, each on a connection of its own: while some
                wait for the queue's commit, the API reads the next, and the more wait, the more
                jobs share a commit. 8 to 16 keep one API process busy (docs/benchmarks.md).

        Raises:
            ApiError: A whole request was refused (the jobs of the other chunks may be queued;
                submit them with idempotency keys to make a retry safe).
        """
        size = max(1, min(chunk, MAX_BATCH))
        starts = range(0, len(jobs), size)

        def send(start: int) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = self.submit_batch(jobs[start : start + size])["results"]
            if start:
                for item in results:  # fresh from the answer: counted across the whole list in place
                    item["index"] = start + int(item["index"])
            return results

        if parallel <= 1 or len(starts) <= 1:
            return [result for start in starts for result in send(start)]
        # The pool's threads end with the call, and their connections (thread-local) with them.
        answers: list[dict[str, Any]] = []
        with ThreadPoolExecutor(min(parallel, len(starts)), thread_name_prefix="tornado-client") as pool:
            for results in pool.map(send, starts):
                answers.extend(results)
        return answers

    def close(self) -> None:
        """Close this thread's connection (others close with their threads or the process)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def get(self, job_id: str) -> dict[str, Any]:
        """One job's status, progress, result or error."""
        return self._call("GET", f"/v1/jobs/{urllib.parse.quote(job_id)}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job: ``{"id", "status", "cancel_requested"}``.

        A waiting job comes back ``cancelled``; a running one ``running`` with
        ``cancel_requested`` true until its worker stops it.

        Raises:
            ApiError: 404 for no such job of this tenant; 409 (``job_finished``) if it had finished.
        """
        return self._call("POST", f"/v1/jobs/{urllib.parse.quote(job_id, safe='')}:cancel")

    def put_schedule(
        self,
        name: str,
        task: str,
        payload: dict[str, Any],
        *,
        cron: str,
        timezone: str = "UTC",
        missed: str = "skip",
        paused: bool = False,
    ) -> dict[str, Any]:
        """Create or replace this tenant's periodic schedule ``name``: one job of ``task`` per
        occurrence of ``cron`` in ``timezone`` (``missed``: ``skip`` or ``catch_up``).

        Raises:
            ApiError: 422 naming the offending field (cron, timezone, task, payload...).
        """
        body = {"task": task, "payload": payload, "cron": cron, "timezone": timezone, "missed": missed}
        return self._call(
            "PUT", f"/v1/schedules/{urllib.parse.quote(name, safe='')}", {**body, "paused": paused}
        )

    def schedules(self) -> list[dict[str, Any]]:
        """This tenant's periodic schedules, by name."""
        return list(self._call("GET", "/v1/schedules")["schedules"])

    def remove_schedule(self, name: str) -> None:
        """Remove a periodic schedule (the jobs it queued stay).

        Raises:
            ApiError: 404 if there is none of that name.
        """
        self._call("DELETE", f"/v1/schedules/{urllib.parse.quote(name, safe='')}")

    def submit_workflow(self, workflow: Any) -> dict[str, Any]:
        """Submit a workflow (a ``tornado_core.workflows.declare.Workflow`` or its JSON body) as one
        unit: ``{"id", "status": "running", "steps": [...]}``, the steps after none already queued.

        Raises:
            ApiError: 422 naming each offending field (``steps[3].task``...); nothing was created.
        """
        body = workflow.to_json() if hasattr(workflow, "to_json") else workflow
        return self._call("POST", "/v1/workflows", body)

    def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        """A workflow: status, progress, failure (the failing step and its error), each step and its job."""
        return self._call("GET", f"/v1/workflows/{urllib.parse.quote(workflow_id, safe='')}")

    def cancel_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Cancel a workflow: its waiting steps never run, its running steps' jobs are asked to stop."""
        return self._call("POST", f"/v1/workflows/{urllib.parse.quote(workflow_id, safe='')}:cancel")

    def workflows(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """This tenant's workflows, newest first."""
        query = urllib.parse.urlencode({k: v for k, v in {"status": status, "limit": limit}.items() if v})
        return list(self._call("GET", "/v1/workflows?" + query)["workflows"])

    def wait_workflow(self, workflow_id: str, *, timeout: float = 60.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll until the workflow succeeded, failed or was cancelled.

        Raises:
            TimeoutError: Still running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.get_workflow(workflow_id)
            if found.get("status") != "running":
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflow {workflow_id} is still running after {timeout:.0f}s")
            time.sleep(poll)

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
        data = None if body is None else compact(body).encode()
        if data is not None and len(data) > self._max_body:
            # The API answers 413 from the headers and stops reading; a client that reads the answer
            # only after sending everything would see a reset connection instead.
            raise ApiError(413, "body_too_large", f"the body exceeds {self._max_body} bytes (not sent)")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            status, answer, response_headers = self._exchange(method, self._prefix + path, data, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, "unreachable", f"cannot reach the Tornado API at {self._base}: {exc}") from None
        if status >= 400:
            raise _api_error(status, answer, response_headers)
        return dict(orjson.loads(answer or b"{}"))

    def _exchange(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        """One request on this thread's connection; a stale kept-alive connection is reopened once."""
        reused = getattr(self._local, "connection", None) is not None
        try:
            return self._send(method, path, data, headers)
        except _STALE_CONNECTION:
            self.close()
            if not reused:
                raise
            return self._send(method, path, data, headers)

    def _send(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, answer, dict(response.getheaders())


def _api_error(status: int, answer: bytes, headers: dict[str, str]) -> ApiError:
    try:
        error = orjson.loads(answer).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    return ApiError(
        status,
        error.get("code", "http_error"),
        error.get("message", f"HTTP {status}"),
        fields=error.get("fields"),
        headers=headers,
    )
