"""The receipts' endpoints: the employee's own (their ``tpr_`` token), the employer's, and the tokens.

Employer (tenant token): ``GET /v1/punches/{id}/receipt`` (a punch's signed PDF),
``POST|GET /v1/punches/receipt-tokens`` and ``DELETE /v1/punches/receipt-tokens/{token_id}``
(an employee's access). Employee (receipt token): ``GET /v1/employee/receipts`` (their punches,
newest first) and ``GET /v1/employee/receipts/{id}`` (the PDF). A receipt that is not the caller's
answers 404 exactly like one that does not exist. Served through ``punch_endpoints`` (``api.py``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from tornado_core.errors import ObjectStoreError
from tornado_core.extend import (
    ApiContext,
    ApiError,
    AuthenticatedHandler,
    JsonBodyHandler,
    Route,
    field_error,
    unavailable,
)

from .identity import cpf_problem, digits_only
from .receipt import ReceiptFields, receipt_of_punch
from .receipt_access import Employee, employee_of, employee_receipts, issue_token, list_tokens, revoke_token
from .receipt_openapi import CPF_PATTERN, MAX_LABEL, MAX_PAGE
from .receipt_store import Signers, stored_receipt
from .rep_signer import SignerError
from .schema import ensure_schema

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
#: SQLSTATEs of a database whose ponto tables predate the receipts (brought up, then read again).
_OLD_SCHEMA = frozenset({"42703", "42P01"})
_NOT_FOUND = "no recorded punch with this id"
#: Seconds an API process keeps the signer it read (a newly installed one signs within this time).
SIGNER_MAX_AGE = 60.0
_NOT_A_CPF = "must be a CPF (11 digits, punctuation optional)"


def _uuid(text: str, name: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        raise field_error(400, "parameter_invalid", name, "must be a UUID") from None


def _read(api: ApiContext, read: Callable[[Any], _T]) -> _T:
    """``read(conn)`` on the ERP database; tables older than this code are brought up first."""
    db = api.services.rds
    try:
        with db.connection() as conn:
            return read(conn)
    except Exception as exc:  # the driver's error type stays in the adapters; its SQLSTATE tells
        if getattr(exc, "pgcode", None) not in _OLD_SCHEMA:
            raise
    with db.connection() as conn:
        ensure_schema(conn)
    with db.connection() as conn:
        return read(conn)


class _Handler(AuthenticatedHandler):
    signers: Signers

    def initialize(self, api: ApiContext, signers: Signers, **_: Any) -> None:  # type: ignore[override]
        """Receive the API's shared state and the process's signers."""
        super().initialize(api)
        self.signers = signers


async def _send_receipt(handler: _Handler, fields: ReceiptFields | None) -> None:
    """Answer with the receipt's PDF (made and stored on first request); 404 without one."""
    if fields is None:
        raise ApiError(404, "receipt_not_found", _NOT_FOUND)
    objects, tenant = handler.api.services.objects, handler.tenant
    try:
        pdf = await handler.run_blocking(stored_receipt, objects, tenant, fields, handler.signers)
    except (ObjectStoreError, SignerError) as exc:  # the detail names keys and certificates: logged only
        _log.warning("receipt of %s NSR %d not served: %s", fields.rep_id, fields.nsr, exc)
        raise unavailable("receipt_unavailable", "the receipt cannot be made now; retry later") from exc
    handler.set_header("Content-Type", "application/pdf")
    handler.set_header(
        "Content-Disposition", f'inline; filename="comprovante-{fields.rep_id}-{fields.nsr:09d}.pdf"'
    )
    handler.finish(pdf)


class PunchReceiptHandler(_Handler):
    """``GET /v1/punches/{id}/receipt``: the signed receipt of one of the tenant's punches."""

    async def get(self, punch_id: str) -> None:
        """The PDF; 404 ``receipt_not_found`` while the punch is not recorded."""
        pid, tenant = _uuid(punch_id, "id"), self.tenant
        fields = await self.run_blocking(_read, self.api, lambda conn: receipt_of_punch(conn, tenant, pid))
        await _send_receipt(self, fields)


def _token_request(body: dict[str, Any]) -> tuple[str, str]:
    """The CPF (its digits) and label of a request to issue a token.

    Raises:
        ApiError: 422 ``request_invalid`` naming the field.
    """
    extra = sorted(set(body) - {"cpf", "label"})
    if extra:
        raise field_error(422, "request_invalid", extra[0], "unknown field")
    cpf, label = body.get("cpf"), body.get("label", "")
    if not isinstance(cpf, str):
        raise field_error(
            422, "request_invalid", "cpf", "Field required" if cpf is None else "must be a string"
        )
    problem = cpf_problem(cpf) if re.fullmatch(CPF_PATTERN, cpf) else _NOT_A_CPF
    if problem:
        raise field_error(422, "request_invalid", "cpf", problem)
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise field_error(
            422, "request_invalid", "label", f"must be a string of at most {MAX_LABEL} characters"
        )
    return digits_only(cpf), label


class ReceiptTokensHandler(JsonBodyHandler):
    """``POST /v1/punches/receipt-tokens`` (issue an employee's token) and ``GET`` (list them)."""

    def initialize(self, api: ApiContext, **_: Any) -> None:
        """Receive the API's shared state."""
        super().initialize(api)

    async def post(self) -> None:
        """201 with the token, shown this once: ``{"token_id", "token", "cpf", "label", "created_at"}``."""
        cpf, label = _token_request(self.json_body())
        tenant = self.tenant

        def issue(conn: Any) -> dict[str, Any]:
            ensure_schema(conn)
            return issue_token(conn, tenant=tenant, cpf=cpf, label=label).to_json()

        self.write_json(await self.run_blocking(_read, self.api, issue), 201)

    async def get(self) -> None:
        """``{"tokens": [...]}`` (never the secrets), ``?cpf=`` for one employee's."""
        text, tenant = self.query_argument("cpf"), self.tenant
        if text is not None and not re.fullmatch(CPF_PATTERN, text):
            raise field_error(400, "parameter_invalid", "cpf", _NOT_A_CPF)
        cpf = None if text is None else digits_only(text)  # a filter: a CPF no one has matches nothing
        tokens = await self.run_blocking(
            _read, self.api, lambda conn: list_tokens(conn, tenant=tenant, cpf=cpf)
        )
        self.write_json({"tokens": tokens})


class ReceiptTokenHandler(_Handler):
    """``DELETE /v1/punches/receipt-tokens/{token_id}``: revoke an employee's token."""

    async def delete(self, token_id: str) -> None:
        """204; 404 ``token_not_found`` for no live token of the tenant with this id."""
        if not token_id.isascii() or not token_id.isdigit() or int(token_id) < 1:
            raise field_error(400, "parameter_invalid", "token_id", "must be a token id (a positive integer)")
        number, tenant = int(token_id), self.tenant
        revoked = number < 2**63 and await self.run_blocking(  # bigint: a larger id names no token
            _read, self.api, lambda conn: revoke_token(conn, tenant=tenant, token_id=number)
        )
        if not revoked:
            raise ApiError(404, "token_not_found", "no live receipt token with this id")
        self.set_status(204)
        self.finish()


class EmployeeHandler(_Handler):
    """A request of an employee: ``Authorization: Bearer tpr_...`` (their receipt token), not a tenant's."""

    employee: Employee

    async def prepare(self) -> None:
        """Authenticate the employee's token (one indexed query); 401 for anything else."""
        self.refuse_unknown_method()
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("missing bearer token (Authorization: Bearer <receipt token>)")
        employee = await self.run_blocking(_read, self.api, lambda conn: employee_of(conn, token))
        if employee is None:
            raise _unauthorized("unknown or revoked receipt token (ask your employer for one)")
        self.employee, self.tenant = employee, employee.tenant
        wait = self.api.quotas.take(f"{employee.tenant}/employees", None)  # a bucket apart from the ERP's
        if wait > 0:
            raise ApiError(
                429, "rate_limited", "too many receipt requests of this employer's employees; retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )  # fmt: skip


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="tornado"'})


class EmployeeReceiptsHandler(EmployeeHandler):
    """``GET /v1/employee/receipts``: the employee's recorded punches, newest marcação first."""

    async def get(self) -> None:
        """``{"receipts": [...], "next_before": punch id | null}``; ``?limit=`` and ``?before=`` page."""
        text = self.query_argument("limit")
        if text is not None and not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PAGE):
            raise field_error(400, "parameter_invalid", "limit", f"must be an integer from 1 to {MAX_PAGE}")
        limit = 50 if text is None else int(text)
        before = self.query_argument("before")
        before = None if before is None else _uuid(before, "before")
        employee = self.employee
        rows = await self.run_blocking(
            _read, self.api, lambda conn: employee_receipts(conn, employee, limit=limit, before=before)
        )
        last = rows[-1]["punch_id"] if len(rows) == limit else None
        self.write_json({"receipts": rows, "next_before": last})


class EmployeeReceiptHandler(EmployeeHandler):
    """``GET /v1/employee/receipts/{id}``: the signed receipt of one of the employee's own punches."""

    async def get(self, punch_id: str) -> None:
        """The PDF; 404 ``receipt_not_found`` for a punch that is not theirs, or not recorded."""
        pid, who = _uuid(punch_id, "id"), self.employee
        fields = await self.run_blocking(
            _read, self.api, lambda conn: receipt_of_punch(conn, who.tenant, pid, cpf=who.cpf)
        )
        await _send_receipt(self, fields)


def receipt_routes(api: ApiContext) -> list[Route]:
    """The receipts' routes (before ``/v1/punches/{id}``, which would match the tokens' path)."""
    args = {"api": api, "signers": Signers(api.services.objects, max_age=SIGNER_MAX_AGE)}
    return [
        (r"/v1/punches/receipt-tokens", ReceiptTokensHandler, args),
        (r"/v1/punches/receipt-tokens/([^/]+)", ReceiptTokenHandler, args),
        (r"/v1/punches/([^/]+)/receipt", PunchReceiptHandler, args),
        (r"/v1/employee/receipts", EmployeeReceiptsHandler, args),
        (r"/v1/employee/receipts/([^/]+)", EmployeeReceiptHandler, args),
    ]
