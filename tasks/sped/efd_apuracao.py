"""Block E of the EFD ICMS/IPI: the ICMS apuração (E100/E110/E116), the ICMS ST apuração of each UF
with ICMS ST in the period (E200/E210/E250) and, for an industrial filer (0000 ``IND_ATIV`` 0), the
IPI apuração (E500/E510/E520).

The ICMS totals come from the analytic records C190/D190 as they are written
(:class:`IcmsApuracao`); the IPI consolidation from the period's C170 lines, grouped by CFOP and
CST_IPI in SQL; the ICMS ST from the period's lines by the UF they concern (the participant's, else
the filer's: Guia, E210 field 08), as :data:`ST_BY_UF` selects it. Exits (CFOP 5, 6, 7) are debits,
entries (CFOP 1, 2, 3) credits. Neither the
previous period's balance nor adjustments are known to the ERP tables, so they are written as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from .efd_records import EfdSink
from .erp_schema import OPERATION_VALUE

ZERO = Decimal(0)
EXITS, ENTRIES = "567", "123"
#: The IPI lines of the period by CFOP and CST_IPI (``{lines}`` is the period's C170 selection).
IPI_BY_CFOP = f"""
SELECT i.cfop, i.ipi_cst, sum({OPERATION_VALUE}), sum(i.ipi_base), sum(i.ipi)
  {{lines}} AND i.ipi_cst IS NOT NULL
 GROUP BY i.cfop, i.ipi_cst ORDER BY i.cfop, i.ipi_cst"""


@dataclass(frozen=True)
class Obligations:
    """Where the filer pays what block E finds due (from its ERP row).

    Attributes:
        uf: The filer's UF.
        icms: E116 COD_REC of its ICMS and the day of the next month it is due.
        st_own_uf: E250 COD_REC of the ICMS ST due to its own UF, and the due day.
    """

    uf: str
    icms: tuple[str, int]
    st_own_uf: tuple[str, int]


#: E250 of ICMS ST due to another UF: GNRE receipt 100099 (ICMS ST por apuração), due on the 9th of
#: the next month (Convênio ICMS 142/2018, cláusula décima quarta, for a substitute registered there).
ST_OTHER_UF = ("100099", 9)


#: The ICMS ST of the period's C documents by UF: retained on exits, on returns, refunds, other entries.
ST_BY_UF = """
SELECT coalesce(p.uf, %(uf)s) AS uf,
       sum(CASE WHEN left(i.cfop, 1) IN ('5', '6') THEN i.icms_st ELSE 0 END),
       sum(CASE WHEN i.cfop IN {returns} THEN i.icms_st ELSE 0 END),
       sum(CASE WHEN i.cfop IN ('1603', '2603') THEN i.icms_st ELSE 0 END),
       sum(CASE WHEN left(i.cfop, 1) IN ('1', '2') AND i.cfop NOT IN {returns}
                 AND i.cfop NOT IN ('1603', '2603') THEN i.icms_st ELSE 0 END)
  FROM erp_fiscal_document_item i JOIN erp_fiscal_document d USING (document_id)
  LEFT JOIN erp_participant p ON p.company_id = d.company_id AND p.code = d.participant_code
 WHERE d.company_id = %(company)s AND d.entry_exit_date BETWEEN %(start)s AND %(end)s
   AND d.model IN {models} AND d.status NOT IN {key_only} AND i.icms_st <> 0
 GROUP BY 1 ORDER BY 1"""
#: CFOP of returns whose ICMS ST is credited (Guia, E210 field 04).
ST_RETURNS = ("1410", "1411", "1414", "1415", "1660", "1661", "1662", "2410", "2411", "2414", "2415", "2660",
              "2661", "2662")  # fmt: skip


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
    sink: EfdSink, *, start: date, end: date, icms: IcmsApuracao, st_rows: list[tuple[Any, ...]],
    ipi_rows: list[tuple[Any, ...]] | None, obligations: Obligations,
) -> None:  # fmt: skip
    """Block E: E100/E110 (E116 when ICMS is due), an E200/E210 (E250) per UF of ``st_rows``, then
    E500/E510/E520 if ``ipi_rows`` is given.

    Args:
        sink: The file.
        start: First day of the period.
        end: Last day of the period.
        icms: The ICMS of the analytic records written.
        st_rows: Rows of :data:`ST_BY_UF`.
        ipi_rows: Rows of :data:`IPI_BY_CFOP` for an industrial filer, ``None`` for the others.
        obligations: Receipt codes and due days of what is due.
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
        receipt_code, due_day = obligations.icms
        sink.write("E116", {"COD_OR": "000", "VL_OR": to_pay, "DT_VCTO": _next_month(end, due_day),
                            "COD_REC": receipt_code, "MES_REF": end})  # fmt: skip
    for row in st_rows:
        _st(sink, start, end, row, obligations)
    if ipi_rows is not None:
        _ipi(sink, start, end, ipi_rows)
    sink.close_block("E")


def _st(sink: EfdSink, start: date, end: date, row: tuple[Any, ...], obligations: Obligations) -> None:
    uf, retained, returned, refunded, other_credits = row
    credits, debits = returned + refunded + other_credits, retained
    to_pay = max(debits - credits, ZERO)
    sink.write("E200", {"UF": uf, "DT_INI": start, "DT_FIN": end})
    sink.write("E210", {
        "IND_MOV_ST": "1", "VL_SLD_CRED_ANT_ST": ZERO, "VL_DEVOL_ST": returned, "VL_RESSARC_ST": refunded,
        "VL_OUT_CRED_ST": other_credits, "VL_AJ_CREDITOS_ST": ZERO, "VL_RETENCAO_ST": retained,
        "VL_OUT_DEB_ST": ZERO, "VL_AJ_DEBITOS_ST": ZERO, "VL_SLD_DEV_ANT_ST": to_pay, "VL_DEDUCOES_ST": ZERO,
        "VL_ICMS_RECOL_ST": to_pay, "VL_SLD_CRED_ST_TRANSPORTAR": max(credits - debits, ZERO),
        "DEB_ESP_ST": ZERO,
    })  # fmt: skip
    if to_pay > 0:
        own = uf == obligations.uf
        receipt_code, due_day = obligations.st_own_uf if own else ST_OTHER_UF
        sink.write("E250", {
            "COD_OR": "002" if own else "999", "VL_OR": to_pay, "DT_VCTO": _next_month(end, due_day),
            "COD_REC": receipt_code, "MES_REF": end,
        })  # fmt: skip


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
