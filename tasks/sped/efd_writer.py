"""The EFD ICMS/IPI generator: one company's period, streamed from the ERP database to a file.

:func:`write_efd` reads the tables of :mod:`.erp_schema` with server-side (named) cursors, so
memory stays flat whatever the number of documents, and writes the blocks in the mandatory order
``0 B C D E G H K 1 9`` through :class:`~.efd_records.EfdSink` (field order and formats from the
layout of the period, :class:`~.layouts.LayoutRegistry`). Two passes over the movement:

1. the codes the movement references (participants of C100/D100, items and units of C170/H010)
   are selected by SQL (``SELECT DISTINCT`` over the period) and streamed into 0150/0190/0200,
   so block 0 lists exactly them;
2. the documents, their lines and their analytic groups (summed from the period's lines) are
   streamed together, merged by document, into C100/C170/C190 and D100/D190; the ICMS of each
   analytic record feeds the E110 totals, and block E adds the ICMS ST by UF and the IPI by CFOP
   (:mod:`.efd_apuracao`).

Every query has a total ``ORDER BY``: the same data gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from .efd_apuracao import IPI_BY_CFOP, ST_BY_UF, ST_RETURNS, IcmsApuracao, Obligations, write_block_e
from .efd_queries import (
    C_MODELS,
    D_MODELS,
    DOCUMENTS,
    INVENTORY,
    INVENTORY_ROWS,
    ITEM_ROWS,
    ITEMS,
    KEY_ONLY,
    LINES,
    MOVEMENT,
    PARTICIPANTS,
    SUMMARY_ROWS,
    UNITS,
)
from .efd_records import ByteStream, EfdSink, EfdSummary, Value, write_block_9
from .layouts import LayoutRegistry

__all__ = ["BlockCWriter", "EfdSummary", "UnknownCompany", "write_efd"]

FETCH = 2000
#: About how many times block C reports its progress.
PROGRESS_STEPS = 50
#: D100 IND_FRT when the ERP has none (its CT-e rows carry no freight type): 1, by the recipient.
CTE_FREIGHT = 1
ZERO = Decimal(0)
#: The 1010 flags, all ``N`` (none of the obligations they announce is generated).
FLAGS_1010 = (
    "IND_EXP", "IND_CCRF", "IND_COMB", "IND_USINA", "IND_VA", "IND_EE", "IND_CART", "IND_FORM", "IND_AER",
    "IND_GIAF1", "IND_GIAF3", "IND_GIAF4", "IND_REST_RESSARC_COMPL_ICMS",
)  # fmt: skip

#: Hears the fraction of a piece of work done.
Progress = Callable[[float], None]
#: Writes block C into the sink (``C001`` to ``C990``), adds the ICMS of its C190 to the apuração and
#: reports the fraction done.
BlockCWriter = Callable[[EfdSink, IcmsApuracao, Progress], None]


class UnknownCompany(LookupError):
    """No ``erp_company`` has the CNPJ asked for."""


def write_efd(
    conn: Any,
    *,
    cnpj: str,
    start: date,
    end: date,
    cod_fin: int,
    out: ByteStream,
    progress: Callable[[float], None] | None = None,
    block_c: BlockCWriter | None = None,
) -> EfdSummary:
    """Write the EFD ICMS/IPI file of the company ``cnpj`` for ``start``..``end`` to ``out``.

    Runs in the caller's transaction (named cursors need one: not in autocommit).

    Args:
        conn: A psycopg2 connection to the ERP database.
        cnpj: The establishment's CNPJ (14 digits).
        start: First day of the period (0000 DT_INI).
        end: Last day of the period (0000 DT_FIN), which chooses the layout.
        cod_fin: 0 original file, 1 substitute (retification).
        out: Binary stream the file is written to.
        progress: Called with the fraction done after each block.
        block_c: Writes block C instead of reading it from the database (a split file's parts,
            :mod:`.efd_parts`); it must leave in the :class:`IcmsApuracao` the ICMS of its C190.

    Raises:
        UnknownCompany: No company has that CNPJ.
        LayoutUnknown: No layout covers the period.
    """
    report = progress or (lambda _fraction: None)
    layout = LayoutRegistry.bundled().for_period(end)
    company = find_company(conn, cnpj)
    params = {"company": company["company_id"], "start": start, "end": end}
    plan_for_every_row(conn)
    sink = EfdSink(layout, out)
    _block_0(conn, sink, company, params, layout.cod_ver, cod_fin)
    report(0.2)
    sink.empty_block("B")
    apuracao = IcmsApuracao()
    write_c = block_c or (lambda c_sink, icms, done: _block_c(conn, c_sink, params, icms, done))
    write_c(sink, apuracao, lambda done: report(0.2 + 0.6 * done))
    _block_d(conn, sink, params, apuracao)
    report(0.85)
    ipi_rows = _rows(conn, IPI_BY_CFOP.format(lines=LINES), params) if company["activity"] == 0 else None
    st_sql = ST_BY_UF.format(returns=ST_RETURNS, models=C_MODELS, key_only=KEY_ONLY)
    st_rows = _rows(conn, st_sql, {**params, "uf": company["uf"]})
    obligations = Obligations(
        uf=company["uf"], icms=(company["icms_receipt_code"], company["icms_due_day"]),
        st_own_uf=(company["icms_st_receipt_code"], company["icms_due_day"]),
    )  # fmt: skip
    write_block_e(
        sink, start=start, end=end, icms=apuracao, st_rows=st_rows, ipi_rows=ipi_rows, obligations=obligations
    )
    sink.empty_block("G")
    _block_h(conn, sink, params)
    report(0.9)
    sink.empty_block("K")
    _block_1(sink)
    write_block_9(sink)
    report(1.0)
    return sink.summary()


def plan_for_every_row(conn: Any) -> None:
    """Tell PostgreSQL that every cursor of the transaction is read to its end (not the first 10 %)."""
    with conn.cursor() as cur:
        cur.execute("SET LOCAL cursor_tuple_fraction = 1.0")


def find_company(conn: Any, cnpj: str) -> dict[str, Any]:
    """The ``erp_company`` row of ``cnpj``, by column name.

    Raises:
        UnknownCompany: There is none.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM erp_company WHERE cnpj = %s", (cnpj,))
        row = cur.fetchone()
        if row is None:
            raise UnknownCompany(f"no company with CNPJ {cnpj} in the ERP database")
        return dict(zip([c[0] for c in cur.description], row, strict=True))


def _stream(conn: Any, name: str, sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` through a server-side cursor, ``FETCH`` at a time."""
    with conn.cursor(name=f"efd_{name}") as cur:
        cur.itersize = FETCH
        cur.execute(sql, params)
        yield from cur


def _has_rows(conn: Any, sql: str, params: dict[str, Any]) -> bool:
    with conn.cursor() as cur:
        cur.execute(f"SELECT EXISTS (SELECT 1 {sql})", params)
        return bool(cur.fetchone()[0])


def _rows(conn: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def count_rows(conn: Any, sql: str, params: dict[str, Any]) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) {sql}", params)
        return int(cur.fetchone()[0])


def _block_0(
    conn: Any, sink: EfdSink, company: dict[str, Any], params: dict[str, Any], cod_ver: str, cod_fin: int
) -> None:
    c = company
    sink.write("0000", {
        "COD_VER": cod_ver, "COD_FIN": cod_fin, "DT_INI": params["start"], "DT_FIN": params["end"],
        "NOME": c["name"], "CNPJ": c["cnpj"], "UF": c["uf"], "IE": c["ie"], "COD_MUN": c["city_code"],
        "IM": c["im"], "SUFRAMA": c["suframa"], "IND_PERFIL": c["profile"], "IND_ATIV": c["activity"],
    })  # fmt: skip
    sink.open_block("0", True)
    sink.write("0005", {
        "FANTASIA": c["trade_name"] or c["name"], "CEP": c["zip_code"], "END": c["address"],
        "NUM": c["address_number"], "COMPL": c["complement"], "BAIRRO": c["district"], "FONE": c["phone"],
        "EMAIL": c["email"],
    })  # fmt: skip
    sink.write("0100", {
        "NOME": c["accountant_name"], "CPF": c["accountant_cpf"], "CRC": c["accountant_crc"],
        "CNPJ": c["accountant_cnpj"], "CEP": c["accountant_zip_code"], "END": c["accountant_address"],
        "NUM": c["accountant_number"], "BAIRRO": c["accountant_district"], "FONE": c["accountant_phone"],
        "EMAIL": c["accountant_email"], "COD_MUN": c["accountant_city_code"],
    })  # fmt: skip
    names = ("COD_PART", "NOME", "COD_PAIS", "CNPJ", "CPF", "IE", "COD_MUN", "SUFRAMA", "END", "NUM")
    for row in _stream(conn, "participants", PARTICIPANTS, params):
        sink.write("0150", {**dict(zip(names, row[:10], strict=True)), "COMPL": row[10], "BAIRRO": row[11]})
    for code, description in _stream(conn, "units", UNITS, params):
        sink.write("0190", {"UNID": code, "DESCR": description})
    item_names = (
        "COD_ITEM",
        "DESCR_ITEM",
        "COD_BARRA",
        "UNID_INV",
        "TIPO_ITEM",
        "COD_NCM",
        "EX_IPI",
        "COD_GEN",
    )
    for row in _stream(conn, "items", ITEMS, params):
        values: dict[str, Value] = dict(zip(item_names, row[:8], strict=True))
        values["TIPO_ITEM"] = f"{row[4]:02d}"
        sink.write("0200", {**values, "COD_LST": row[8], "ALIQ_ICMS": row[9], "CEST": row[10]})
    sink.close_block("0", extra=1)  # 0990 also counts 0000


def _merged(
    documents: Iterator[tuple[Any, ...]], *children: Iterator[tuple[Any, ...]]
) -> Iterator[tuple[tuple[Any, ...], list[list[tuple[Any, ...]]]]]:
    """Each document with its rows of every child stream (all ordered the same, by document)."""
    groups = [groupby(child, key=lambda row: row[0]) for child in children]
    pending: list[tuple[Any, list[tuple[Any, ...]]] | None] = [None] * len(children)
    for document in documents:
        rows: list[list[tuple[Any, ...]]] = []
        for index, group in enumerate(groups):
            if pending[index] is None:
                head = next(group, None)
                pending[index] = None if head is None else (head[0], list(head[1]))
            current = pending[index]
            if current is not None and current[0] == document[0]:
                rows.append(current[1])
                pending[index] = None
            else:
                rows.append([])
        yield document, rows


def _block_c(
    conn: Any, sink: EfdSink, params: dict[str, Any], apuracao: IcmsApuracao, progress: Progress
) -> None:
    """Block C, all of it from the database; ``progress`` hears the fraction of its documents written."""
    total = count_rows(conn, f"{MOVEMENT} AND d.model IN {C_MODELS}", params)
    sink.open_block("C", total > 0)
    if total:
        write_c_documents(conn, sink, params, apuracao, progress, total=total)
    sink.close_block("C")


def write_c_documents(
    conn: Any, sink: EfdSink, params: dict[str, Any], apuracao: IcmsApuracao, progress: Progress,
    *, total: int, part: str = "",
) -> None:  # fmt: skip
    """The C100/C170/C190 of the period's documents (those ``part`` selects), in file order.

    Args:
        conn: The ERP database.
        sink: Where the records go.
        params: ``company``, ``start``, ``end`` and the parameters of ``part``.
        apuracao: Receives the ICMS of each C190.
        progress: Hears the fraction of the ``total`` documents written, about 50 times.
        total: How many documents ``part`` selects.
        part: An SQL condition on ``d`` narrowing the documents (a range of a split file).
    """
    step = max(total // PROGRESS_STEPS, 1)
    documents_sql = DOCUMENTS.format(movement=MOVEMENT, models=C_MODELS, part=part)
    documents = _stream(conn, "c100", documents_sql, params)
    lines = _stream(conn, "c170", ITEM_ROWS.format(part=part), params)
    summaries = _stream(
        conn, "c190", SUMMARY_ROWS.format(models=C_MODELS, key_only=KEY_ONLY, part=part), params
    )
    for done, (document, (items, groups)) in enumerate(_merged(documents, lines, summaries), 1):
        _c100(sink, document)
        for item in items:
            _c170(sink, item)
        for group in groups:
            _analytic(sink, "C190", group, apuracao)
        if done % step == 0:
            progress(done / total)


def _c100(sink: EfdSink, d: tuple[Any, ...]) -> None:
    key_only = d[5] in KEY_ONLY
    values: dict[str, Value] = {
        "IND_OPER": d[1], "IND_EMIT": d[2], "COD_MOD": d[4], "COD_SIT": d[5], "SER": d[6], "NUM_DOC": d[7],
        "CHV_NFE": None if d[5] == "05" else d[8],
    }  # fmt: skip
    if not key_only:
        values.update({
            "COD_PART": None if d[4] == "65" else d[3], "DT_DOC": d[9], "DT_E_S": d[10],
            "VL_DOC": d[11], "IND_PGTO": d[12], "VL_DESC": d[13], "VL_ABAT_NT": ZERO, "VL_MERC": d[14],
            "IND_FRT": d[15], "VL_FRT": d[16], "VL_SEG": d[17], "VL_OUT_DA": d[18], "VL_BC_ICMS": d[19],
            "VL_ICMS": d[20], "VL_BC_ICMS_ST": d[21], "VL_ICMS_ST": d[22], "VL_IPI": d[23],
            "VL_PIS": d[24], "VL_COFINS": d[25], "VL_PIS_ST": ZERO, "VL_COFINS_ST": ZERO,
        })  # fmt: skip
    sink.write("C100", values)


def _c170(sink: EfdSink, i: tuple[Any, ...]) -> None:
    sink.write("C170", {
        "NUM_ITEM": i[1], "COD_ITEM": i[2], "DESCR_COMPL": i[3], "QTD": i[4], "UNID": i[5], "VL_ITEM": i[6],
        "VL_DESC": i[7], "IND_MOV": i[8], "CST_ICMS": i[9], "CFOP": i[10], "COD_NAT": i[11],
        "VL_BC_ICMS": i[12], "ALIQ_ICMS": i[13], "VL_ICMS": i[14], "VL_BC_ICMS_ST": i[15],
        "ALIQ_ST": i[16], "VL_ICMS_ST": i[17], "IND_APUR": None if i[18] is None else 0, "CST_IPI": i[18],
        "VL_BC_IPI": i[19], "ALIQ_IPI": i[20], "VL_IPI": i[21], "CST_PIS": i[22], "VL_BC_PIS": i[23],
        "ALIQ_PIS": i[24], "VL_PIS": i[25], "CST_COFINS": i[26], "VL_BC_COFINS": i[27],
        "ALIQ_COFINS": i[28], "VL_COFINS": i[29],
    })  # fmt: skip


def _analytic(sink: EfdSink, record: str, s: tuple[Any, ...], apuracao: IcmsApuracao) -> None:
    values: dict[str, Value] = {
        "CST_ICMS": s[1], "CFOP": s[2], "ALIQ_ICMS": s[3], "VL_OPR": s[4], "VL_BC_ICMS": s[5],
        "VL_ICMS": s[6], "VL_RED_BC": s[9],
    }  # fmt: skip
    if record == "C190":
        values.update({"VL_BC_ICMS_ST": s[7], "VL_ICMS_ST": s[8], "VL_IPI": s[10]})
    sink.write(record, values)
    apuracao.add(s[2], s[6])


def _block_d(conn: Any, sink: EfdSink, params: dict[str, Any], apuracao: IcmsApuracao) -> None:
    has_data = _has_rows(conn, f"{MOVEMENT} AND d.model IN {D_MODELS}", params)
    sink.open_block("D", has_data)
    if has_data:
        documents = _stream(
            conn, "d100", DOCUMENTS.format(movement=MOVEMENT, models=D_MODELS, part=""), params
        )
        summary_sql = SUMMARY_ROWS.format(models=D_MODELS, key_only=KEY_ONLY, part="")
        summaries = _stream(conn, "d190", summary_sql, params)
        for document, (groups,) in _merged(documents, summaries):
            _d100(sink, document)
            for group in groups:
                _analytic(sink, "D190", group, apuracao)
    sink.close_block("D")


def _d100(sink: EfdSink, d: tuple[Any, ...]) -> None:
    values: dict[str, Value] = {
        "IND_OPER": d[1], "IND_EMIT": d[2], "COD_MOD": d[4], "COD_SIT": d[5], "SER": d[6], "NUM_DOC": d[7],
        "CHV_CTE": None if d[5] == "05" else d[8],
    }  # fmt: skip
    if d[5] not in KEY_ONLY:
        values.update({
            "COD_PART": d[3], "DT_DOC": d[9], "DT_A_P": d[10], "TP_CT-e": d[26],
            "VL_DOC": d[11], "VL_DESC": d[13], "IND_FRT": CTE_FREIGHT if d[15] is None else d[15],
            "VL_SERV": d[14], "VL_BC_ICMS": d[19], "VL_ICMS": d[20], "VL_NT": ZERO, "COD_MUN_ORIG": d[27],
            "COD_MUN_DEST": d[28],
        })  # fmt: skip
    sink.write("D100", values)


def _block_h(conn: Any, sink: EfdSink, params: dict[str, Any]) -> None:
    has_data = _has_rows(conn, INVENTORY, params)
    sink.open_block("H", has_data)
    if has_data:
        with conn.cursor() as cur:
            cur.execute(f"SELECT v.inventory_date, min(v.reason), sum(v.value) {INVENTORY}"
                        " GROUP BY v.inventory_date ORDER BY v.inventory_date", params)  # fmt: skip
            totals = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        for day, rows in groupby(_stream(conn, "h010", INVENTORY_ROWS, params), key=lambda row: row[0]):
            reason, total = totals[day]
            sink.write("H005", {"DT_INV": day, "VL_INV": total, "MOT_INV": reason})
            for r in rows:
                sink.write("H010", {
                    "COD_ITEM": r[2], "UNID": r[3], "QTD": r[4], "VL_UNIT": r[5], "VL_ITEM": r[6],
                    "IND_PROP": r[7], "COD_PART": r[8] or None,
                })  # fmt: skip
    sink.close_block("H")


def _block_1(sink: EfdSink) -> None:
    sink.open_block("1", True)
    sink.write("1010", dict.fromkeys(FLAGS_1010, "N"))
    sink.close_block("1")
