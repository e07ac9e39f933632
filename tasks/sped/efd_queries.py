"""The SQL the EFD generator runs on the ERP tables (:mod:`.erp_schema`), as text.

``MOVEMENT``, ``LINES`` and ``INVENTORY`` select one company's period (parameters ``company``,
``start`` and ``end``); the others build on them. Every query that feeds the file has a total
``ORDER BY``, so the same data gives the same bytes. ``{part}`` in the block C queries takes a
condition narrowing the documents (a part of a split file, :mod:`.efd_parts`), empty otherwise.
"""

from __future__ import annotations

from .erp_schema import SUMMARY_AGGREGATES

C_MODELS = ("01", "1B", "04", "55", "65")
D_MODELS = ("57", "67")
#: Models whose C100 carries C170 lines (the NFC-e, 65, has C190 only).
LINE_MODELS = ("01", "1B", "04", "55")
#: COD_SIT of documents written with their key fields only and no child.
KEY_ONLY = ("02", "03", "04", "05")
MOVEMENT = """
  FROM erp_fiscal_document d
 WHERE d.company_id = %(company)s AND d.entry_exit_date BETWEEN %(start)s AND %(end)s"""
LINES = f"""
  FROM erp_fiscal_document_item i JOIN erp_fiscal_document d USING (document_id)
 WHERE d.company_id = %(company)s AND d.entry_exit_date BETWEEN %(start)s AND %(end)s
   AND d.model IN {LINE_MODELS} AND d.status NOT IN {KEY_ONLY}"""
#: The lines written as C170: not those of the filer's own NF-e, which the Guia wants as C100 and C190
#: only (Exceção 2 of C100; their items are then not referenced, so 0200 does not list them).
ITEM_LINES = f"""{LINES}
   AND NOT (d.issuer = 0 AND d.model = '55')"""
INVENTORY = """
  FROM erp_inventory v
 WHERE v.company_id = %(company)s AND v.inventory_date BETWEEN %(start)s AND %(end)s"""

PARTICIPANTS = f"""
SELECT code, name, country_code, cnpj, cpf, ie, city_code, suframa, address, address_number, complement,
       district
  FROM erp_participant
 WHERE company_id = %(company)s AND code IN (
       SELECT d.participant_code {MOVEMENT}
          AND d.status NOT IN {KEY_ONLY} AND d.model <> '65'
       UNION SELECT v.participant_code {INVENTORY} AND v.participant_code <> '')
 ORDER BY code"""
ITEM_CODES = f"SELECT i.item_code {ITEM_LINES} UNION SELECT v.item_code {INVENTORY}"
ITEMS = f"""
SELECT code, description, barcode, unit_code, item_type, ncm, ex_ipi, genre_code, service_code,
       icms_rate, cest
  FROM erp_item WHERE company_id = %(company)s AND code IN ({ITEM_CODES}) ORDER BY code"""
UNITS = f"""
SELECT code, description FROM erp_unit
 WHERE company_id = %(company)s AND code IN (
       SELECT i.unit_code {ITEM_LINES} UNION SELECT v.unit_code {INVENTORY}
       UNION SELECT unit_code FROM erp_item WHERE company_id = %(company)s AND code IN ({ITEM_CODES}))
 ORDER BY code"""
DOCUMENTS = """
SELECT d.document_id, d.direction, d.issuer, d.participant_code, d.model, d.status, d.series, d.number,
       d.access_key, d.issue_date, d.entry_exit_date, d.total_document, d.payment_type, d.discount,
       d.total_goods, d.freight_type, d.freight, d.insurance, d.other_expenses, d.icms_base, d.icms,
       d.icms_st_base, d.icms_st, d.ipi, d.pis, d.cofins, d.cte_type, d.origin_city_code,
       d.destination_city_code
  {movement} AND d.model IN {models}{part}
 ORDER BY d.entry_exit_date, d.document_id"""
ITEM_ROWS = f"""
SELECT d.document_id, i.line_number, i.item_code, i.complement, i.quantity, i.unit_code, i.value,
       i.discount, i.physical_movement, i.cst_icms, i.cfop, i.nature_code, i.icms_base, i.icms_rate,
       i.icms, i.icms_st_base, i.icms_st_rate, i.icms_st, i.ipi_cst, i.ipi_base, i.ipi_rate, i.ipi,
       i.pis_cst, i.pis_base, i.pis_rate, i.pis, i.cofins_cst, i.cofins_base, i.cofins_rate, i.cofins
  {ITEM_LINES}{{part}}
 ORDER BY d.entry_exit_date, d.document_id, i.line_number"""
SUMMARY_ROWS = f"""
SELECT d.document_id, i.cst_icms, i.cfop, i.icms_rate, {SUMMARY_AGGREGATES}
  FROM erp_fiscal_document d JOIN erp_fiscal_document_item i USING (document_id)
 WHERE d.company_id = %(company)s AND d.entry_exit_date BETWEEN %(start)s AND %(end)s
   AND d.model IN {{models}} AND d.status NOT IN {{key_only}}{{part}}
 GROUP BY d.entry_exit_date, d.document_id, i.cst_icms, i.cfop, i.icms_rate
 ORDER BY d.entry_exit_date, d.document_id, i.cst_icms, i.cfop, i.icms_rate"""
INVENTORY_ROWS = f"""
SELECT v.inventory_date, v.reason, v.item_code, v.unit_code, v.quantity, v.unit_value, v.value, v.ownership,
       v.participant_code
  {INVENTORY}
 ORDER BY v.inventory_date, v.item_code, v.ownership, v.participant_code"""
