"""The OpenAPI description of the receipts' endpoints (merged into the punch endpoints' document)."""

from __future__ import annotations

from typing import Any

from tornado_core.extend import error_responses

#: Most entries per page of ``GET /v1/employee/receipts``.
MAX_PAGE = 500
#: Longest label of a receipt token.
MAX_LABEL = 200
_JSON = "application/json"
_REF = "#/components/schemas/"
#: What the API takes as a CPF's spelling (its check digits are checked apart).
CPF_PATTERN = r"[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}"
_CPF = {"type": "string", "pattern": f"^{CPF_PATTERN}$", "description": "CPF."}
_WHEN = {"type": "string", "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}
_EMPLOYEE_AUTH = "Bearer: the employee's receipt token (tpr_...), not a tenant token."


def _pdf(summary: str, operation_id: str, path_name: str, description: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "parameters": [{"name": path_name, "in": "path", "required": True, "schema": _UUID}],
        "responses": {
            "200": {
                "description": "The receipt: a PDF with a PAdES signature (a red band marks a test).",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
        | error_responses("400", "401", "404", "429", "503"),
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": _REF + schema}}}}


def _schemas() -> dict[str, Any]:
    token = {
        "type": "object",
        "required": ["token_id", "cpf", "label", "created_at", "revoked_at"],
        "properties": {
            "token_id": {"type": "integer"},
            "cpf": {"type": "string"},
            "label": {"type": "string"},
            "created_at": _WHEN,
            "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    issued = {
        "type": "object",
        "required": ["token_id", "token", "cpf", "label", "created_at"],
        "properties": {
            "token_id": {"type": "integer"},
            "token": {"type": "string", "description": "Shown once; only its SHA-256 is kept."},
            "cpf": {"type": "string"},
            "label": {"type": "string"},
            "created_at": _WHEN,
        },
    }
    request = {
        "type": "object",
        "required": ["cpf"],
        "additionalProperties": False,
        "properties": {"cpf": _CPF, "label": {"type": "string", "maxLength": MAX_LABEL}},
    }
    entry = {
        "type": "object",
        "required": ["punch_id", "rep", "nsr", "marked_at", "marked_local", "recorded_at", "offline", "hash"],
        "properties": {
            "punch_id": _UUID,
            "rep": {"type": "string"},
            "nsr": {"type": "integer"},
            "marked_at": _WHEN,
            "marked_local": {"type": "string"},
            "recorded_at": _WHEN,
            "offline": {"type": "boolean"},
            "hash": {"type": "string"},
        },
    }
    listing = {
        "type": "object",
        "required": ["tokens"],
        "properties": {"tokens": {"type": "array", "items": {"$ref": _REF + "ReceiptToken"}}},
    }
    page = {
        "type": "object",
        "required": ["receipts", "next_before"],
        "properties": {
            "receipts": {"type": "array", "items": {"$ref": _REF + "EmployeeReceipt"}},
            "next_before": {"type": ["string", "null"], "format": "uuid"},
        },
    }
    return {
        "ReceiptToken": token,
        "IssuedReceiptToken": issued,
        "ReceiptTokenRequest": request,
        "ReceiptTokens": listing,
        "EmployeeReceipt": entry,
        "EmployeeReceipts": page,
    }


def _tokens_path() -> dict[str, Any]:
    issue = {
        "summary": "Issue an employee's receipt token (their own access to their receipts)",
        "operationId": "issueReceiptToken",
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": {"$ref": _REF + "ReceiptTokenRequest"}}},
        },
        "responses": {"201": _json("The token (shown once).", "IssuedReceiptToken")}
        | error_responses("400", "401", "413", "415", "422", "429", "503"),
    }
    listing = {
        "summary": "The tenant's receipt tokens (never their secrets)",
        "operationId": "listReceiptTokens",
        "parameters": [{"name": "cpf", "in": "query", "schema": _CPF}],
        "responses": {"200": _json("The tokens, oldest first.", "ReceiptTokens")}
        | error_responses("400", "401", "429", "503"),
    }
    return {"post": issue, "get": listing}


def receipt_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI paths and schemas of the receipts' endpoints (every status they answer with)."""
    revoke = {
        "summary": "Revoke an employee's receipt token (effective on its next request)",
        "operationId": "revokeReceiptToken",
        "parameters": [
            {"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
        ],
        "responses": {"204": {"description": "Revoked."}}
        | error_responses("400", "401", "404", "429", "503"),
    }
    mine = {
        "summary": "The employee's own recorded punches, newest first, each with its receipt",
        "description": _EMPLOYEE_AUTH,
        "operationId": "listEmployeeReceipts",
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            },
            {"name": "before", "in": "query", "schema": _UUID},
        ],
        "responses": {"200": _json("A page.", "EmployeeReceipts")}
        | error_responses("400", "401", "429", "503"),
    }
    paths = {
        "/v1/punches/receipt-tokens": _tokens_path(),
        "/v1/punches/receipt-tokens/{token_id}": {"delete": revoke},
        "/v1/punches/{id}/receipt": {
            "get": _pdf(
                "A punch's signed receipt (comprovante de registro de ponto), for the employer",
                "getPunchReceipt",
                "id",
                "Made and signed on first request, then the same bytes; 404 until the punch is recorded.",
            )
        },
        "/v1/employee/receipts": {"get": mine},
        "/v1/employee/receipts/{id}": {
            "get": _pdf(
                "One of the employee's own receipts",
                "getEmployeeReceipt",
                "id",
                _EMPLOYEE_AUTH + " Another employee's punch answers 404, like an unknown one.",
            )
        },
    }
    return paths, _schemas()
