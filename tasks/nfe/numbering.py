"""Gap-free NF-e numbers (nNF): one counter per (issuer CNPJ, model, series) in the ERP database.

A series hands out 1 (or the first number of :func:`configure_series`) to 999,999,999 without
holes, in allocation order (tables: :func:`~.schema.ensure_schema`). :func:`allocate_number`,
in the caller's transaction:

1. checks its arguments (nothing touches the database when one is wrong);
2. returns the job's allocation if it has one (a redelivered job keeps its number and cNF);
3. locks the series row ``FOR UPDATE`` (created at first use), then looks for the job's
   allocation again (another delivery may have committed it while this one waited);
4. refuses past 999,999,999, inserts the allocation (``last + 1``, cNF derived from the job id)
   and moves the series head: a rollback undoes both, so no number is skipped (a ``SEQUENCE``
   would skip it).

The caller's order is **validate the invoice, then allocate**: an invalid invoice must never
take a number, which would then have to be burned and inutilizado for nothing. The series stays
locked until the transaction ends: allocate in a short transaction of its own and commit before
building, signing and sending. READ COMMITTED (psycopg2's default) is expected; under stricter
levels concurrent allocations fail with serialisation errors (safe to retry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from tornado_core import NonRetryable, Retry

from .access_key import MAX_NUMBER, MODELS, random_code_for
from .documents import cnpj_problem, normalize_document

MAX_SERIES = 999
#: One problem of the arguments: ``{"field": "cnpj", "message": "..."}``.
Problem = dict[str, str]


class Status(StrEnum):
    """Where an allocated number stands."""

    ALLOCATED = "allocated"
    AUTHORIZED = "authorized"
    REJECTED_BURNED = "rejected_burned"
    VOIDED = "voided"


_STATUS_VALUES = frozenset(s.value for s in Status)
#: The statuses each status may move to (a move to the current status is a no-op).
TRANSITIONS: Mapping[Status, frozenset[Status]] = MappingProxyType({
    Status.ALLOCATED: frozenset({Status.AUTHORIZED, Status.REJECTED_BURNED, Status.VOIDED}),
    Status.REJECTED_BURNED: frozenset({Status.VOIDED}),
    Status.AUTHORIZED: frozenset(),
    Status.VOIDED: frozenset(),
})  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Allocation:
    """One number allocated to one emission job.

    Attributes:
        job_id: The emission job holding the number.
        cnpj: The issuer's CNPJ, normalised (14 characters, may be alphanumeric).
        model: 55 (NF-e) or 65 (NFC-e).
        series: 0-999.
        number: nNF.
        random_code: cNF of the access key (:func:`~.access_key.random_code_for` of the job id).
        status: Where the number stands.
        allocated_at: When the number was allocated (the database clock).
        updated_at: When the status last changed (``allocated_at`` until then).
    """

    job_id: str
    cnpj: str
    model: int
    series: int
    number: int
    random_code: int
    status: Status
    allocated_at: datetime
    updated_at: datetime


class NumberingError(NonRetryable):
    """Base of the allocator's errors: none of them goes away on retry."""


class NumberingInvalid(NumberingError):
    """Arguments of the allocator are wrong (checked before any database access).

    Attributes:
        problems: One entry per problem, ``{"field": "cnpj", "message": "..."}``.
    """

    def __init__(self, problems: list[Problem]) -> None:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        super().__init__(f"invalid NF-e numbering request: {summary}")
        self.problems = problems


class SeriesExhausted(NumberingError):
    """Every number of the series, up to 999,999,999, has been allocated."""

    def __init__(self, cnpj: str, model: int, series: int) -> None:
        super().__init__(
            f"{_describe(cnpj, model, series)} is exhausted: every number up to {MAX_NUMBER:,} has "
            "been allocated; emit in another series"
        )
        self.cnpj, self.model, self.series = cnpj, model, series


class AllocationConflict(NumberingError):
    """The request contradicts what the database already holds (see the message)."""


class AllocationNotFound(NumberingError):
    """No number is allocated to the job."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no NF-e number is allocated to job {job_id!r}")
        self.job_id = job_id


class IllegalTransition(NumberingError):
    """A status change the allocation's current status does not allow."""

    def __init__(self, allocation: Allocation, requested: Status) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[allocation.status])) or "nothing (final status)"
        super().__init__(
            f"number {allocation.number} of {_describe(allocation.cnpj, allocation.model, allocation.series)}"
            f" (job {allocation.job_id!r}) is {allocation.status!s} and cannot become {requested!s};"
            f" {allocation.status!s} may become: {allowed}"
        )
        self.allocation, self.requested = allocation, requested


_FIELDS = tuple(field.name for field in fields(Allocation))
_COLUMNS = ", ".join(_FIELDS)
_FIND = f"SELECT {_COLUMNS} FROM nfe_number WHERE job_id = %s"
_SERIES = "cnpj = %(cnpj)s AND model = %(model)s AND series = %(series)s"
_LOCK_SERIES = f"SELECT first_number, last_number FROM nfe_series WHERE {_SERIES} FOR UPDATE"
_CREATE_SERIES = """
INSERT INTO nfe_series (cnpj, model, series, first_number, last_number)
VALUES (%(cnpj)s, %(model)s, %(series)s, %(first)s, %(first)s - 1) ON CONFLICT DO NOTHING
"""
_INSERT = f"""
INSERT INTO nfe_number (job_id, cnpj, model, series, number, random_code, allocated_at, updated_at)
SELECT %(job_id)s, %(cnpj)s, %(model)s, %(series)s, %(number)s, %(random_code)s, now, now
FROM clock_timestamp() AS now
ON CONFLICT (job_id) DO NOTHING RETURNING {_COLUMNS}
"""
_ADVANCE = f"""
UPDATE nfe_series SET last_number = %(number)s, updated_at = clock_timestamp()
WHERE {_SERIES} AND last_number = %(number)s - 1
"""
_RESTART = f"""
UPDATE nfe_series SET first_number = %(first)s, last_number = %(first)s - 1, updated_at = clock_timestamp()
WHERE {_SERIES}
"""
_USED = f"SELECT count(*), max(number) FROM nfe_number WHERE {_SERIES}"
_MARK = f"""
UPDATE nfe_number SET status = %s, updated_at = clock_timestamp() WHERE job_id = %s RETURNING {_COLUMNS}
"""
_BURNED_RUNS = f"""
SELECT min(number), max(number)
FROM (SELECT number, number - row_number() OVER (ORDER BY number) AS run
      FROM nfe_number WHERE {_SERIES} AND status = 'rejected_burned') AS burned
GROUP BY run ORDER BY 1
"""


def allocate_number(conn: Any, *, job_id: str, cnpj: str, model: int, series: int) -> Allocation:
    """The job's number in the series: the next one, or the one it already holds.

    Call it only once the invoice passed validation, in a short transaction of its own.

    Args:
        conn: DB-API connection to the ERP database (the caller's transaction), e.g. from
            ``ctx.rds.connection()``; the tables of :func:`~.schema.ensure_schema` must exist.
        job_id: The emission job; a job holds at most one number, whichever worker runs it.
        cnpj: The issuer's CNPJ (numeric or alphanumeric), masked or not.
        model: 55 (NF-e) or 65 (NFC-e).
        series: 0-999.

    Returns:
        The allocation, status ``allocated`` when new; when the job already held a number, that
        allocation as it stands (its status may have moved since).

    Raises:
        NumberingInvalid: An argument is wrong (before any database access).
        AllocationConflict: The job already holds a number of another series.
        SeriesExhausted: The series has handed out 999,999,999.
    """
    key = _checked_series(cnpj, model, series, before=_job_problems(job_id))
    with conn.cursor() as cur:
        cur.execute(_FIND, (job_id,))
        row = cur.fetchone()
        if row is None:
            _, last = _lock_series(cur, key, create_at=1)
            cur.execute(_FIND, (job_id,))  # another delivery of the job may have committed meanwhile
            row = cur.fetchone()
            if row is None:
                return _allocate_next(cur, key, job_id, last)
        return _same_series(_allocation(row), key)


def configure_series(conn: Any, *, cnpj: str, model: int, series: int, first_number: int) -> None:
    """Make ``first_number`` the first number a series hands out (e.g. a series moved from another ERP).

    Idempotent: setting the first number a series already has is a no-op. A series that has
    allocated nothing yet may be given another first number; once it has allocated one, it
    cannot. A series that was never configured starts at 1 on its first allocation.

    Args:
        conn: DB-API connection to the ERP database (the caller's transaction).
        cnpj: The issuer's CNPJ (numeric or alphanumeric), masked or not.
        model: 55 or 65.
        series: 0-999.
        first_number: The first number to hand out, 1-999,999,999.

    Raises:
        NumberingInvalid: An argument is wrong (before any database access).
        AllocationConflict: The series has already allocated numbers from another first number.
    """
    key = _checked_series(
        cnpj, model, series, after=_range_problems("first_number", first_number, 1, MAX_NUMBER)
    )
    with conn.cursor() as cur:
        current_first, _ = _lock_series(cur, key, create_at=first_number)
        if current_first == first_number:
            return
        cur.execute(_USED, key)
        count, highest = cur.fetchone()
        if count:
            raise AllocationConflict(
                f"{_describe(**key)} starts at {current_first} and has allocated {count} number(s), up to"
                f" {highest}; its first number can no longer become {first_number}"
            )
        cur.execute(_RESTART, {**key, "first": first_number})


def find_allocation(conn: Any, job_id: str) -> Allocation | None:
    """The number allocated to ``job_id``, or ``None``.

    Raises:
        NumberingInvalid: ``job_id`` is not a non-empty string.
    """
    _raise_problems(_job_problems(job_id))
    with conn.cursor() as cur:
        cur.execute(_FIND, (job_id,))
        row = cur.fetchone()
    return None if row is None else _allocation(row)


def mark(conn: Any, job_id: str, status: Status | str) -> Allocation:
    """Move the job's allocation to ``status`` (see :data:`TRANSITIONS`); the same status is a no-op.

    Args:
        conn: DB-API connection to the ERP database (the caller's transaction); the allocation
            row stays locked until it ends.
        job_id: The emission job holding the number.
        status: ``authorized``, ``rejected_burned`` or ``voided`` (a :class:`Status` or its value).

    Returns:
        The allocation after the change.

    Raises:
        NumberingInvalid: ``job_id`` or ``status`` is wrong (before any database access).
        AllocationNotFound: The job holds no number.
        IllegalTransition: The current status does not allow the change.
    """
    problems = _job_problems(job_id)
    if not isinstance(status, str) or status not in _STATUS_VALUES:
        allowed = ", ".join(s.value for s in Status)
        problems.append({"field": "status", "message": f"must be one of {allowed}, got {status!r}"})
    _raise_problems(problems)
    target = Status(status)
    with conn.cursor() as cur:
        cur.execute(f"{_FIND} FOR UPDATE", (job_id,))
        row = cur.fetchone()
        if row is None:
            raise AllocationNotFound(job_id)
        current = _allocation(row)
        if current.status == target:
            return current
        if target not in TRANSITIONS[current.status]:
            raise IllegalTransition(current, target)
        cur.execute(_MARK, (target.value, job_id))
        return _allocation(cur.fetchone())


def burned_numbers(conn: Any, cnpj: str, model: int, series: int) -> list[tuple[int, int]]:
    """The runs of consecutive burned numbers of a series, ready for inutilização.

    Only numbers whose status is ``rejected_burned`` count; once inutilizado, mark them
    ``voided`` and they leave this list.

    Args:
        conn: DB-API connection to the ERP database.
        cnpj: The issuer's CNPJ (numeric or alphanumeric), masked or not.
        model: 55 or 65.
        series: 0-999.

    Returns:
        ``(first, last)`` pairs, inclusive, in ascending order: burned 3, 4, 5 and 9 give
        ``[(3, 5), (9, 9)]``.

    Raises:
        NumberingInvalid: An argument is wrong (before any database access).
    """
    key = _checked_series(cnpj, model, series)
    with conn.cursor() as cur:
        cur.execute(_BURNED_RUNS, key)
        return [(int(first), int(last)) for first, last in cur.fetchall()]


def _checked_series(
    cnpj: Any, model: Any, series: Any, *, before: Sequence[Problem] = (), after: Sequence[Problem] = ()
) -> dict[str, Any]:
    """The series as query parameters (CNPJ normalised), or :class:`NumberingInvalid` with every problem.

    ``before`` and ``after`` are the problems of the other arguments, reported around the series'.
    """
    problems = list(before)
    normalized = normalize_document(cnpj) if isinstance(cnpj, str) else None
    cnpj_message = "must be a string" if normalized is None else cnpj_problem(normalized)
    if cnpj_message:
        problems.append({"field": "cnpj", "message": f"{cnpj_message}, got {cnpj!r}"})
    if not _is_int(model) or model not in MODELS:
        problems.append({"field": "model", "message": f"must be one of {sorted(MODELS)}, got {model!r}"})
    _raise_problems([*problems, *_range_problems("series", series, 0, MAX_SERIES), *after])
    return {"cnpj": normalized, "model": model, "series": series}


def _job_problems(job_id: Any) -> list[Problem]:
    if not isinstance(job_id, str) or not job_id.strip():
        return [{"field": "job_id", "message": f"must be a non-empty string, got {job_id!r}"}]
    return []


def _raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise NumberingInvalid(problems)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_problems(field: str, value: Any, low: int, high: int) -> list[Problem]:
    if _is_int(value) and low <= value <= high:
        return []
    return [{"field": field, "message": f"must be an integer from {low} to {high}, got {value!r}"}]


def _lock_series(cur: Any, key: Mapping[str, Any], *, create_at: int) -> tuple[int, int]:
    """Lock the series row, creating it (first number ``create_at``) if missing: (first, last).

    Two creators race harmlessly: the second waits for the first's row, then does nothing.
    """
    cur.execute(_LOCK_SERIES, key)
    row = cur.fetchone()
    if row is None:
        cur.execute(_CREATE_SERIES, {**key, "first": create_at})
        cur.execute(_LOCK_SERIES, key)
        row = cur.fetchone()
    return int(row[0]), int(row[1])


def _allocate_next(cur: Any, key: Mapping[str, Any], job_id: str, last: int) -> Allocation:
    """Allocate ``last + 1`` to the job, the series locked at ``last``, and move the series head."""
    if last >= MAX_NUMBER:
        raise SeriesExhausted(key["cnpj"], key["model"], key["series"])
    number = last + 1
    params = {**key, "job_id": job_id, "number": number}
    cur.execute(_INSERT, {**params, "random_code": random_code_for(job_id, number=number)})
    inserted = cur.fetchone()
    if inserted is None:  # the same job, committed meanwhile under another series
        cur.execute(_FIND, (job_id,))
        return _same_series(_allocation(cur.fetchone()), key)
    cur.execute(_ADVANCE, params)
    if cur.rowcount != 1:  # never seen: would mean a broken lock; the rollback undoes the insert
        raise Retry(f"{_describe(**key)} moved while locked at {last}; retrying the allocation", delay=1.0)
    return _allocation(inserted)


def _same_series(allocation: Allocation, key: Mapping[str, Any]) -> Allocation:
    """``allocation`` if it belongs to the series ``key``, else :class:`AllocationConflict`."""
    held = (allocation.cnpj, allocation.model, allocation.series)
    if held != (key["cnpj"], key["model"], key["series"]):
        raise AllocationConflict(
            f"job {allocation.job_id!r} already holds number {allocation.number} of"
            f" {_describe(*held)}; it cannot also take a number of {_describe(**key)}"
        )
    return allocation


def _allocation(row: Any) -> Allocation:
    values = dict(zip(_FIELDS, row, strict=True))
    return Allocation(**{**values, "status": Status(values["status"])})


def _describe(cnpj: str, model: int, series: int) -> str:
    return f"series {series} of model {model} of CNPJ {cnpj}"
