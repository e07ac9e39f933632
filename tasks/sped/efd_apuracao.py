"""Block E of the EFD ICMS/IPI: the ICMS apuração (E100/E110/E116) and, for an industrial filer
(0000 ``IND_ATIV`` 0), the IPI apuração (E500/E510/E520).

The ICMS totals come from the analytic records C190/D190 as they are written
(:class:`IcmsApuracao`); the IPI consolidation from the period's C170 lines, grouped by CFOP and
CST_IPI in SQL. Exits (CFOP 5, 6, 7) are debits, entries (CFOP 1, 2, 3) credits. Neither the
previous period's balance nor adjustments are known to the ERP tables, so they are written as 0.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from .efd_records import EfdSink

ZERO = Decimal(0)
EXITS, ENTRIES = "567", "123"
#: The IPI lines of the period by CFOP and CST_IPI (``{lines}`` is the period's C170 selection).
IPI_BY_CFOP = """
SELECT i.cfop, i.ipi_cst,
       sum(i.value - i.discount + i.freight + i.insurance + i.other_expenses + i.icms_st + i.ipi),
       sum(i.ipi_base), sum(i.ipi)
  {lines} AND i.ipi_cst IS NOT NULL
 GROUP BY i.cfop, i.ipi_cst ORDER BY i.cfop, i.ipi_cst"""


class IcmsApuracao:
    """Running ICMS debits (exits) and credits (entries) of the analytic records."""

    def __init__(self) -> None:
        self.debits = ZERO
        self.credits = ZERO

    def add(self, cfop: str, icms: Decimal) -> None:
        """Count one analytic record's ICMS."""
        if cfop[:1] in EXITS:
            self.debits += icms
        elif cfop[:1] in ENTRIES:
            self.credits += icms


def write_block_e(
    sink: EfdSink, *, start: date, end: date, icms: IcmsApuracao, ipi_rows: list[tuple[Any, ...]] | None,
    obligation: tuple[str, int],
) -> None:  # fmt: skip
    """Block E: E100/E110 (and E116 when ICMS is due), then E500/E510/E520 if ``ipi_rows`` is given.

    Args:
        sink: The file.
        start: First day of the period.
        end: Last day of the period.
        icms: The ICMS of the analytic records written.
        ipi_rows: Rows of :data:`IPI_BY_CFOP` for an industrial filer, ``None`` for the others.
        obligation: The UF's receipt code of the ICMS due (E116 COD_REC) and the day of the next
            month it is due (DT_VCTO).
    """
    sink.open_block("E", True)
    sink.write("E100", {"DT_INI": start, "DT_FIN": end})
    balance = icms.debits - icms.credits
    to_pay = max(balance, ZERO)
    sink.write("E110", {
        "VL_TOT_DEBITOS": icms.debits, "VL_AJ_DEBITOS": ZERO, "VL_TOT_AJ_DEBITOS": ZERO,
        "VL_ESTORNOS_CRED": ZERO, "VL_TOT_CREDITOS": icms.credits, "VL_AJ_CREDITOS": ZERO,
        "VL_TOT_AJ_CREDITOS": ZERO, "VL_ESTORNOS_DEB": ZERO, "VL_SLD_CREDOR_ANT": ZERO,
        "VL_SLD_APURADO": to_pay, "VL_TOT_DED": ZERO, "VL_ICMS_RECOLHER": to_pay,
        "VL_SLD_CREDOR_TRANSPORTAR": max(-balance, ZERO), "DEB_ESP": ZERO,
    })  # fmt: skip
    if to_pay > 0:
        receipt_code, due_day = obligation
        sink.write("E116", {"COD_OR": "000", "VL_OR": to_pay, "DT_VCTO": _next_month(end, due_day),
                            "COD_REC": receipt_code, "MES_REF": end})  # fmt: skip
    if ipi_rows is not None:
        _ipi(sink, start, end, ipi_rows)
    sink.close_block("E")


def _ipi(sink: EfdSink, start: date, end: date, rows: list[tuple[Any, ...]]) -> None:
    sink.write("E500", {"IND_APUR": "0", "DT_INI": start, "DT_FIN": end})
    debits = credits = ZERO
    for cfop, cst, accounted, base, ipi in rows:
        sink.write("E510", {"CFOP": cfop, "CST_IPI": cst, "VL_CONT_IPI": accounted, "VL_BC_IPI": base,
                            "VL_IPI": ipi})  # fmt: skip
        if cfop[:1] in EXITS:
            debits += ipi
        elif cfop[:1] in ENTRIES:
            credits += ipi
    balance = debits - credits
    sink.write("E520", {
        "VL_SD_ANT_IPI": ZERO, "VL_DEB_IPI": debits, "VL_CRED_IPI": credits, "VL_OD_IPI": ZERO,
        "VL_OC_IPI": ZERO, "VL_SC_IPI": max(-balance, ZERO), "VL_SD_IPI": max(balance, ZERO),
    })  # fmt: skip


def _next_month(day: date, day_of_month: int) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, day_of_month)
