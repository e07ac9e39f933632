"""Parsing and validation of request bodies and query strings (no I/O)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tornado_core.errors import ApiError
from tornado_core.job_ids import MAX_IDEMPOTENCY_KEY
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.schedules import MAX_SCHEDULE_AHEAD
from tornado_core.producer.submission import OrdinaryJob
from tornado_core.web.errors import FieldError, field_error

MAX_BATCH = 500
MAX_LIST_LIMIT = 500
DEFAULT_LIST_LIMIT = 50
MAX_CURSOR = 200
#: Deepest nesting of objects and arrays accepted in a request body (payloads included).
MAX_JSON_DEPTH = 64
_JOB_FIELDS = frozenset({"task", "payload", "idempotency_key", "delay", "run_at"})
#: Longest delay of a job, in seconds (a year and a day; beyond the queue's own 15 minutes a job
#: waits in the job store until a scheduler sends it).
MAX_DELAY = MAX_SCHEDULE_AHEAD
#: ``\\uD800`` to ``\\uDFFF`` in JSON text: the only way a decoded body can hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class JobRequest:
    """One job to submit, as the client sent it."""

    task: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class ListQuery:
    """Filters and paging of ``GET /v1/jobs``."""

    task: str | None
    status: JobStatus | None
    limit: int
    cursor: str | None


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object.

    Raises:
        ApiError: 400 ``json_invalid`` if it is not JSON, repeats a key in an object, or holds a
            lone UTF-16 surrogate (``"\\ud800"``); 422 if it is not an object or nests deeper
            than :data:`MAX_JSON_DEPTH` levels.
    """
    data = _quick_decode(body)
    if data is _UNSURE:
        data = _strict_decode(body)
    if not isinstance(data, dict):
        raise field_error(422, "request_invalid", "(body)", "must be a JSON object")
    return data


#: ``_quick_decode`` cannot tell (``None`` is JSON's ``null``).
_UNSURE = object()
#: Nineteen digits in a row: maybe an integer beyond 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"\d{19}")


def _quick_decode(body: bytes) -> Any:
    """orjson's reading of ``body`` where it is certainly the strict decoder's (twice as fast).

    Returns:
        The data, or ``_UNSURE`` for a body orjson refuses (not JSON, a lone surrogate, a NaN...)
        or may read otherwise (a repeated key, of which it keeps the last; a long integer): the
        strict decoder reads that one and says what is wrong.

    Raises:
        ApiError: 422 if the data nests deeper than :data:`MAX_JSON_DEPTH` levels.
    """
    outline = _outline(body)
    if _LONG_DIGITS.search(outline) is not None:
        return _UNSURE
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _UNSURE
    # Each key of the text is an emptied string before a colon: fewer in the data, one repeated.
    return data if _keys_within_depth(data) == outline.count(b'"":') else _UNSURE


def _outline(body: bytes) -> bytes:
    """The JSON text ``body`` with every string emptied and no whitespace (meaningful only for a
    body that is JSON): what is left is its structure, numbers and literals."""
    if b"\\" in body:  # escaped backslashes first: in ``\\"`` the quote ends a string
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    # With no escaped quote left, quotes alternate: every other piece is a string's content.
    return b'""'.join(body.split(b'"')[::2]).translate(None, b" \t\n\r")


def _keys_within_depth(data: Any) -> int:
    """The keys of every object in ``data``, counted level by level.

    Raises:
        ApiError: 422 if it nests deeper than :data:`MAX_JSON_DEPTH` levels.
    """
    containers = (dict, list)
    keys, level = 0, [data] if isinstance(data, containers) else []
    for _ in range(MAX_JSON_DEPTH):
        if not level:
            return keys
        keys += sum(len(value) for value in level if type(value) is dict)
        level = [
            child
            for value in level
            for child in (value.values() if type(value) is dict else value)
            if isinstance(child, containers)
        ]
    if level:
        raise _too_deep()
    return keys


def _strict_decode(body: bytes) -> Any:
    """``body`` read by the standard library's decoder, refusing what JSON does not allow.

    Raises:
        ApiError: As :func:`parse_json_object`.
    """
    try:
        text = body.decode("utf-8")
        data = _strict_decoder().decode(text)
    except RecursionError:
        raise _too_deep() from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "json_invalid", f"the request body is not valid JSON: {exc}") from None
    # Most bodies can hold neither problem: fewer brackets than the depth limit, no escaped surrogate.
    if _SURROGATE_ESCAPE.search(text) is not None:
        _check_structure(data)
    elif text.count("{") + text.count("[") > MAX_JSON_DEPTH:
        _keys_within_depth(data)  # the same walk as the quick path's, for its depth
    return data


@functools.cache
def _strict_decoder() -> json.JSONDecoder:
    """One decoder for every body (building one per call cost more than the decoding of a small body)."""
    return json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object from its pairs, refusing a repeated key (last-wins would hide one of them)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return data


def _check_structure(data: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_JSON_DEPTH` and strings that are not Unicode text."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        children: Iterable[Any] = value
        if isinstance(value, dict):
            for key in value:
                _check_text(key)
            children = value.values()
        stack.extend((child, depth + 1) for child in children if isinstance(child, str | dict | list))


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        message = "the request body is not valid JSON: a string holds a lone UTF-16 surrogate"
        raise ApiError(400, "json_invalid", message) from None


def _too_deep() -> ApiError:
    return field_error(422, "request_invalid", "(body)", f"nests deeper than {MAX_JSON_DEPTH} levels")


def parse_job_request(data: Any) -> JobRequest:
    """Validate the envelope of one job request (the payload itself is the task's business).

    Raises:
        ApiError: 422 ``request_invalid`` naming every offending field.
    """
    if not isinstance(data, dict):
        raise field_error(422, "request_invalid", "(item)", "must be a JSON object")
    problems, delay = _job_request_problems(data)
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ApiError(422, "request_invalid", summary, fields=problems)
    return JobRequest(data["task"], data["payload"], data.get("idempotency_key"), delay)


def _job_request_problems(data: dict[str, Any]) -> tuple[list[FieldError], float]:
    """Every offending field, and the request's delay in seconds (0 when it has a problem)."""
    problems: list[FieldError] = []
    task = data.get("task")
    if "task" not in data:
        problems.append({"field": "task", "message": "Field required"})
    elif not isinstance(task, str) or not task:
        problems.append({"field": "task", "message": "must be a non-empty string"})
    if "payload" not in data:
        problems.append({"field": "payload", "message": "Field required"})
    elif not isinstance(data["payload"], dict):
        problems.append({"field": "payload", "message": "must be a JSON object"})
    if "idempotency_key" in data:
        problem = _idempotency_key_problem(data["idempotency_key"])
        if problem:
            problems.append({"field": "idempotency_key", "message": problem})
    delay = _delay_of(data)
    if not isinstance(delay, float):
        problems.append(delay)
    for name in sorted(set(data) - _JOB_FIELDS):
        problems.append({"field": name, "message": "unknown field"})
    return problems, delay if isinstance(delay, float) else 0.0


def _delay_of(data: dict[str, Any]) -> float | FieldError:
    """Seconds from now until the job may run, or what is wrong with ``delay`` / ``run_at``.

    ``delay`` is seconds, ``run_at`` a date-time with its offset; at most :data:`MAX_DELAY` ahead.
    0 without either, or for a ``run_at`` in the past.
    """
    if "delay" in data and "run_at" in data:
        return {"field": "run_at", "message": "give delay or run_at, not both"}
    if "run_at" in data:
        when = _run_at(data["run_at"])
        if when is None:
            return {
                "field": "run_at",
                "message": "must be a date-time with its offset, e.g. 2026-11-30T08:00:00-03:00",
            }
        ahead = (when - datetime.now(UTC)).total_seconds()
        if ahead > MAX_DELAY:
            return {"field": "run_at", "message": f"must be at most {MAX_DELAY} seconds ahead"}
        return max(0.0, ahead)
    delay = data.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
        return {"field": "delay", "message": f"must be a number of seconds from 0 to {MAX_DELAY}"}
    return float(delay)


def _run_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _idempotency_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        return f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters"
    if "\0" in key:
        return "must not contain NUL characters"
    return None


#: The fields of an ordinary batch item: no delay, no run_at (:func:`ordinary_items`).
_ORDINARY_FIELDS = frozenset({"task", "payload", "idempotency_key"})


def ordinary_items(items: list[Any]) -> list[OrdinaryJob] | None:
    """``(task, payload, idempotency_key)`` of each item when every one is an ordinary, well-formed
    request (as :func:`parse_job_request` would accept it, without a delay); else ``None``, and
    each item goes through :func:`parse_job_request`, which says what is wrong.
    """
    jobs = []
    for item in items:
        if type(item) is not dict or not item.keys() <= _ORDINARY_FIELDS:
            return None
        task, payload, key = item.get("task"), item.get("payload"), item.get("idempotency_key")
        if type(task) is not str or not task or type(payload) is not dict:
            return None
        if "idempotency_key" in item and _idempotency_key_problem(key) is not None:
            return None
        jobs.append((task, payload, key))
    return jobs


def parse_batch(data: dict[str, Any]) -> list[Any]:
    """The ``jobs`` list of a batch request (items are validated one by one later).

    Raises:
        ApiError: 422 naming ``jobs`` (or an unknown top-level field).
    """
    extra = sorted(set(data) - {"jobs"})
    if extra:
        raise field_error(422, "request_invalid", extra[0], "unknown field")
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        message = "Field required" if "jobs" not in data else "must be a list"
        raise field_error(422, "request_invalid", "jobs", message)
    if not 1 <= len(jobs) <= MAX_BATCH:
        raise field_error(422, "request_invalid", "jobs", f"must hold 1 to {MAX_BATCH} jobs")
    return jobs


def parse_list_query(get: Callable[[str], str | None]) -> ListQuery:
    """Validate the query string of ``GET /v1/jobs``.

    Args:
        get: Returns a query argument or ``None``.

    Raises:
        ApiError: 400 ``parameter_invalid`` naming the parameter.
    """
    status_text = get("status")
    status: JobStatus | None = None
    if status_text is not None:
        try:
            status = JobStatus(status_text)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise _bad_parameter("status", f"must be one of {allowed}") from None
    cursor = get("cursor") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise _bad_parameter("cursor", "is not a cursor this API issued")
    return ListQuery(task=get("task") or None, status=status, limit=_limit(get("limit")), cursor=cursor)


def _limit(text: str | None) -> int:
    return parse_limit(text, default=DEFAULT_LIST_LIMIT, maximum=MAX_LIST_LIMIT)


def parse_limit(text: str | None, *, default: int, maximum: int) -> int:
    """A listing's ``limit`` query parameter: ``default`` when absent or empty.

    Raises:
        ApiError: 400 ``parameter_invalid`` unless it is a whole number from 1 to ``maximum``.
    """
    if text is None or text == "":
        return default
    limit = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0
    if not 1 <= limit <= maximum:
        raise _bad_parameter("limit", f"must be a whole number from 1 to {maximum}")
    return limit


def _bad_parameter(name: str, message: str) -> ApiError:
    return field_error(400, "parameter_invalid", name, message)
