"""Invoices of ERP orders: ``nfe.emit`` with ``order_id`` reads the ERP's view ``nfe_order_invoice``.

The ERP maps its orders to the :class:`~.invoice.Invoice` shape in a view of its own database::

    CREATE VIEW nfe_order_invoice AS
        SELECT tenant, order_id, jsonb_build_object('series', ..., 'issuer', ..., ...) AS invoice
        FROM ...;

The invoice read there is validated exactly like one submitted in the payload.
"""

from __future__ import annotations

from tornado_core import NonRetryable, TaskContext

from .invoice import Invoice, validate_invoice


def order_invoice(ctx: TaskContext, order_id: str) -> Invoice:
    """The invoice of an ERP order, from the ERP's view ``nfe_order_invoice``.

    Raises:
        NonRetryable: No such order for the tenant, or no such view.
        PayloadInvalid: The ERP's invoice breaks the rules (field-level).
    """
    with ctx.rds.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('nfe_order_invoice') IS NOT NULL")
        if not cur.fetchone()[0]:
            raise NonRetryable(
                "the ERP database has no view nfe_order_invoice (tenant, order_id, invoice jsonb)"
            )
        cur.execute(
            "SELECT invoice FROM nfe_order_invoice WHERE tenant = %s AND order_id = %s",
            (ctx.tenant, order_id),
        )
        row = cur.fetchone()
    if row is None:
        raise NonRetryable(f"order {order_id!r} of tenant {ctx.tenant!r} is not in nfe_order_invoice")
    return validate_invoice(row[0])
