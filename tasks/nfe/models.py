"""Payloads of the NF-e tasks: what the ERP submits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .invoice import Invoice, invoice_problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmitPayload(_Strict):
    """``nfe.emit``: the invoice itself, or the id of an order the ERP database turns into one.

    With ``order_id`` the task reads the invoice from the ERP's view ``nfe_order_invoice
    (tenant, order_id, invoice jsonb)`` (the ERP maps its orders to :class:`Invoice` there).
    """

    invoice: Invoice | None = Field(default=None, description="The invoice (amounts as decimal strings).")
    order_id: str | None = Field(default=None, min_length=1, max_length=100, description="An ERP order id.")

    @model_validator(mode="after")
    def _one_source(self) -> EmitPayload:
        if (self.invoice is None) == (self.order_id is None):
            raise ValueError("send either invoice or order_id, not both and not neither")
        return self

    def payload_problems(self) -> list[dict[str, str]]:
        """The invoice's business rules (totals, CST by CRT, payments), checked at submission."""
        if self.invoice is None:
            return []
        return [{**p, "field": f"invoice.{p['field']}"} for p in invoice_problems(self.invoice)]


class CancelPayload(_Strict):
    """``nfe.cancel``: cancel an authorised NF-e (event 110111), within the legal window."""

    access_key: str = Field(pattern=r"^[0-9]{6}[0-9A-Z]{12}[0-9]{26}$", description="The 44-character key.")
    reason: str = Field(min_length=15, max_length=255, description="xJust: why, 15 to 255 characters.")


class CorrectionPayload(_Strict):
    """``nfe.correct``: a correction letter (CC-e, event 110110) on an authorised NF-e."""

    access_key: str = Field(pattern=r"^[0-9]{6}[0-9A-Z]{12}[0-9]{26}$", description="The 44-character key.")
    correction: str = Field(min_length=15, max_length=1000, description="xCorrecao, 15 to 1000 characters.")


class VoidPayload(_Strict):
    """``nfe.void``: inutilização of a range of numbers that were never authorised."""

    cnpj: str = Field(min_length=14, max_length=18, description="The issuer's CNPJ (masked or not).")
    uf: str = Field(pattern=r"^[A-Z]{2}$", description="The issuer's UF.")
    model: int = Field(default=55, ge=55, le=65)
    series: int = Field(ge=0, le=999)
    first_number: int = Field(ge=1, le=999_999_999)
    last_number: int = Field(ge=1, le=999_999_999)
    reason: str = Field(min_length=15, max_length=255, description="xJust, 15 to 255 characters.")

    @model_validator(mode="after")
    def _ordered(self) -> VoidPayload:
        if self.last_number < self.first_number:
            raise ValueError("last_number must not be below first_number")
        return self
