"""Signed receipts kept in the object store: made on first request, the same bytes ever after; and in bulk.

Nothing is rendered on the punch's path: ``ponto.record`` only writes the ledger row. The first
request for a receipt (the employee's, the employer's, or the ``ponto.receipts`` job) renders and
signs it and stores it under :func:`~tornado_tasks.ponto.receipt.receipt_key`; every later request
gets those bytes. Two first requests racing may both sign, and the later write wins: both receipts
carry the same fields and verify, and from then on one is served.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tornado_core import NonRetryable, TaskContext
from tornado_core.errors import ObjectStoreError
from tornado_core.ports.objects import ObjectStorePort, ObjectUpload

from .receipt import ReceiptFields, receipt_key, receipts_of_period
from .receipt_pdf import make_receipt
from .rep_signer import TEST_SIGNATURE_NOTICE, SignerError, load_rep_signer
from .schema import ensure_schema
from .signing import Signer

#: Most days one ``ponto.receipts`` job covers.
MAX_PERIOD_DAYS = 62
_PDF = "application/pdf"


class ReceiptsPayload(BaseModel):
    """Payload of ``ponto.receipts``: the receipts of a REP's punches recorded in a period (local dates)."""

    model_config = ConfigDict(extra="forbid")

    rep: str = Field(min_length=1, max_length=64, description="The REP (of the caller's tenant).")
    start: date = Field(description="First day of gravação, in the establishment's zone.")
    end: date = Field(description="Last day of gravação (inclusive).")

    @model_validator(mode="after")
    def _period(self) -> ReceiptsPayload:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        if (self.end - self.start).days >= MAX_PERIOD_DAYS:
            raise ValueError(f"a period covers at most {MAX_PERIOD_DAYS} days")
        return self


class Signers:
    """The REP-P signer for registered and for unregistered REPs, each read when first needed.

    Reading one costs more than a receipt (the object store, and parsing an RSA key takes ~35 ms),
    so the API keeps them ``max_age`` seconds (a newly installed signer signs within that time);
    a job keeps them for its whole run (``max_age=None``).
    """

    def __init__(
        self,
        objects: ObjectStorePort,
        *,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._objects = objects
        self._max_age = max_age
        self._clock = clock
        self._loaded: dict[bool, tuple[Signer, float]] = {}

    def __call__(self, registered: bool) -> Signer:
        """The signer of a REP that is (or is not) registered at INPI (see ``load_rep_signer``)."""
        now = self._clock()
        kept = self._loaded.get(registered)
        if kept is None or (self._max_age is not None and now - kept[1] >= self._max_age):
            kept = (load_rep_signer(self._objects, registered=registered), now)
            self._loaded[registered] = kept
        return kept[0]


def stored_receipt(
    objects: ObjectStorePort, tenant: str, fields: ReceiptFields, signer: Callable[[bool], Signer]
) -> bytes:
    """The signed receipt of a punch: the stored one, else one made, stored and returned.

    Args:
        objects: The object store (receipts and the signer's PEM).
        tenant: Whose punch (part of the key).
        fields: The receipt's content, from the ledger.
        signer: Gives the signer for ``fields.registered`` (called only if the receipt is made).

    Raises:
        ObjectStoreError: The store failed (a receipt is never signed anew while one may exist).
        SignerError: No usable signer is installed.
    """
    key = receipt_key(tenant, fields.rep_id, fields.nsr)
    try:
        return objects.get(key)
    except ObjectStoreError:
        if objects.exists(key):  # the read failed, not a miss: never replace the receipt given out
            raise
    pdf = make_receipt(fields, signer(fields.registered))
    objects.put(key, pdf, content_type=_PDF)
    return pdf


class _Sink(io.RawIOBase):
    """The object upload as the unseekable binary file ``zipfile`` writes to."""

    def __init__(self, upload: ObjectUpload) -> None:
        super().__init__()
        self._upload = upload

    def writable(self) -> bool:
        """Always: it is written to only."""
        return True

    def write(self, data: Any) -> int:
        """Append ``data`` to the upload."""
        return self._upload.write(bytes(data))


def bulk_key(tenant: str, payload: ReceiptsPayload) -> str:
    """Object-store key of the zip of a REP's receipts for a period."""
    return f"ponto/receipts/{tenant}/{payload.rep}/{payload.start}_{payload.end}/comprovantes.zip"


def write_receipts(ctx: TaskContext, payload: ReceiptsPayload) -> dict[str, Any]:
    """The ``ponto.receipts`` job: one zip of the period's signed receipts (each one also kept alone).

    Returns:
        The zip's key, how many receipts it holds, their NSR range and whether they are test receipts.

    Raises:
        NonRetryable: No such REP for the tenant, or no usable signer.
    """
    with ctx.rds.connection() as conn:
        ensure_schema(conn)  # receipts read columns of version 3
        try:
            receipts = list(receipts_of_period(conn, ctx.tenant, payload.rep, payload.start, payload.end))
        except LookupError as exc:
            raise NonRetryable(str(exc)) from exc
    key, signers = bulk_key(ctx.tenant, payload), Signers(ctx.s3)
    with (
        ctx.s3.upload(key, content_type="application/zip") as upload,
        zipfile.ZipFile(_Sink(upload), "w", zipfile.ZIP_STORED) as archive,  # PDFs are compressed already
    ):
        for n, fields in enumerate(receipts, 1):
            try:
                pdf = stored_receipt(ctx.s3, ctx.tenant, fields, signers)
            except SignerError as exc:
                raise NonRetryable(str(exc)) from exc
            archive.writestr(f"{fields.rep_id}_{fields.nsr:09d}_{fields.cpf}.pdf", pdf)
            if n % 200 == 0:
                ctx.progress(n / len(receipts), f"{n} of {len(receipts)} receipts")
    result: dict[str, Any] = {
        "key": key,
        "receipts": len(receipts),
        "first_nsr": receipts[0].nsr if receipts else None,
        "last_nsr": receipts[-1].nsr if receipts else None,
        "test": any(r.test for r in receipts),
    }
    if result["test"]:
        result["notice"] = TEST_SIGNATURE_NOTICE
    return result
