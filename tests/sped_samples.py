"""Small VALID EFD ICMS/IPI files built in memory, for the SPED validator tests.

The builder writes the records of blocks 0 to 1 from a :class:`Company` (participants, items,
NF-e exits and entries with their C170 items, CT-e entries) and :func:`finish` adds what a
writer computes: every ``x990`` count, block 9 (one ``9900`` per record type, ``9990``,
``9999``). The C190 and D190 totals, the C100 totals and E110/E116 are computed from the
documents. So a test can plant ONE defect in the records (before :func:`finish`, the counts
follow it) or in the encoded lines (after, they do not) and expect only that defect back.

The field names of each record are copied here from the Guia Prático, independently of the
layout JSON files the validator reads.

    records = list(body(movement_company()))
    lines = encode(finish(records))            # list of b"|0000|...|\\r\\n"
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from tornado_tasks.nfe.access_key import build_access_key, random_code_for
from tornado_tasks.nfe.documents import cnpj_check_digits, mod11_digit

COMPANY_CNPJ = "59594315000157"
ACCOUNTANT_CPF = "12345678909"
DT_INI, DT_FIN = "01012025", "31012025"
ZERO = "0,00"
CENT = Decimal("0.01")
BLOCK_9_TAIL = ("9900", "9990", "9999")
#: The first records, as in the reference's tested prototype (a company in São Paulo, perfil A).
HEADER = (
    f"0000|019|0|{DT_INI}|{DT_FIN}|EMPRESA TESTE LTDA|{COMPANY_CNPJ}||SP|111111111111|3550308|||A|1",
    "0001|0",
    "0005|TESTE|01001000|RUA A|1||CENTRO|1130000000||a@b.com",
    f"0100|CONTADOR|{ACCOUNTANT_CPF}|SP123456||01001000|RUA A|1||CENTRO|1130000000||c@b.com|3550308",
)

FIELDS: dict[str, tuple[str, ...]] = {
    "0150": ("COD_PART", "NOME", "COD_PAIS", "CNPJ", "CPF", "IE", "COD_MUN", "SUFRAMA", "END", "NUM",
             "COMPL", "BAIRRO"),
    "0190": ("UNID", "DESCR"),
    "0200": ("COD_ITEM", "DESCR_ITEM", "COD_BARRA", "COD_ANT_ITEM", "UNID_INV", "TIPO_ITEM", "COD_NCM",
             "EX_IPI", "COD_GEN", "COD_LST", "ALIQ_ICMS", "CEST"),
    "C100": ("IND_OPER", "IND_EMIT", "COD_PART", "COD_MOD", "COD_SIT", "SER", "NUM_DOC", "CHV_NFE",
             "DT_DOC", "DT_E_S", "VL_DOC", "IND_PGTO", "VL_DESC", "VL_ABAT_NT", "VL_MERC", "IND_FRT",
             "VL_FRT", "VL_SEG", "VL_OUT_DA", "VL_BC_ICMS", "VL_ICMS", "VL_BC_ICMS_ST", "VL_ICMS_ST",
             "VL_IPI", "VL_PIS", "VL_COFINS", "VL_PIS_ST", "VL_COFINS_ST"),
    "C170": ("NUM_ITEM", "COD_ITEM", "DESCR_COMPL", "QTD", "UNID", "VL_ITEM", "VL_DESC", "IND_MOV",
             "CST_ICMS", "CFOP", "COD_NAT", "VL_BC_ICMS", "ALIQ_ICMS", "VL_ICMS", "VL_BC_ICMS_ST",
             "ALIQ_ST", "VL_ICMS_ST", "IND_APUR", "CST_IPI", "COD_ENQ", "VL_BC_IPI", "ALIQ_IPI", "VL_IPI",
             "CST_PIS", "VL_BC_PIS", "ALIQ_PIS", "QUANT_BC_PIS", "ALIQ_PIS_QUANT", "VL_PIS", "CST_COFINS",
             "VL_BC_COFINS", "ALIQ_COFINS", "QUANT_BC_COFINS", "ALIQ_COFINS_QUANT", "VL_COFINS", "COD_CTA",
             "VL_ABAT_NT"),
    "C190": ("CST_ICMS", "CFOP", "ALIQ_ICMS", "VL_OPR", "VL_BC_ICMS", "VL_ICMS", "VL_BC_ICMS_ST",
             "VL_ICMS_ST", "VL_RED_BC", "VL_IPI", "COD_OBS"),
    "D100": ("IND_OPER", "IND_EMIT", "COD_PART", "COD_MOD", "COD_SIT", "SER", "SUB", "NUM_DOC", "CHV_CTE",
             "DT_DOC", "DT_A_P", "TP_CT-e", "CHV_CTE_REF", "VL_DOC", "VL_DESC", "IND_FRT", "VL_SERV",
             "VL_BC_ICMS", "VL_ICMS", "VL_NT", "COD_INF", "COD_CTA", "COD_MUN_ORIG", "COD_MUN_DEST"),
    "D190": ("CST_ICMS", "CFOP", "ALIQ_ICMS", "VL_OPR", "VL_BC_ICMS", "VL_ICMS", "VL_RED_BC", "COD_OBS"),
    "E100": ("DT_INI", "DT_FIN"),
    "E110": ("VL_TOT_DEBITOS", "VL_AJ_DEBITOS", "VL_TOT_AJ_DEBITOS", "VL_ESTORNOS_CRED", "VL_TOT_CREDITOS",
             "VL_AJ_CREDITOS", "VL_TOT_AJ_CREDITOS", "VL_ESTORNOS_DEB", "VL_SLD_CREDOR_ANT",
             "VL_SLD_APURADO", "VL_TOT_DED", "VL_ICMS_RECOLHER", "VL_SLD_CREDOR_TRANSPORTAR", "DEB_ESP"),
    "E116": ("COD_OR", "VL_OR", "DT_VCTO", "COD_REC", "NUM_PROC", "IND_PROC", "PROC", "TXT_COMPL",
             "MES_REF"),
}  # fmt: skip


def rec(name: str, **values: str) -> list[str]:
    """A record as its list of fields, ``REG`` first, the fields not given left empty."""
    names = FIELDS[name]
    unknown = set(values) - set(names)
    assert not unknown, f"{name} has no field {unknown}"
    return [name, *(values.get(field_name, "") for field_name in names)]


def money(value: Decimal, places: int = 2) -> str:
    """``Decimal("12.5")`` as ``"12,50"``."""
    return f"{value:.{places}f}".replace(".", ",")


def cnpj(body: str) -> str:
    """A valid CNPJ from its first 12 digits."""
    return body + cnpj_check_digits(body)


def cte_key(issuer: str, number: int) -> str:
    """A valid 44-digit CT-e key (model 57) of ``issuer``, January 2025, SP."""
    base = f"352501{issuer}57001{number:09d}1{number * 7 % 10**8:08d}"
    return base + str(mod11_digit(base))


@dataclass(frozen=True)
class Participant:
    """A 0150."""

    code: str
    name: str
    cnpj: str


@dataclass(frozen=True)
class Item:
    """One C170 line: quantity x price, taxed at ``rate`` percent."""

    code: str
    unit: str
    quantity: Decimal
    price: Decimal
    cfop: str
    rate: Decimal = Decimal(18)
    cst: str = "000"

    @property
    def value(self) -> Decimal:
        return (self.quantity * self.price).quantize(CENT)

    @property
    def base(self) -> Decimal:
        return self.value if self.rate else Decimal(0)

    @property
    def icms(self) -> Decimal:
        return (self.base * self.rate / 100).quantize(CENT)


@dataclass(frozen=True)
class Document:
    """An NF-e (C100): an exit of our own or an entry from a supplier."""

    participant: Participant
    number: int
    items: tuple[Item, ...]
    exit: bool
    day: int = 15


@dataclass(frozen=True)
class Freight:
    """A CT-e entry (D100 with one D190)."""

    carrier: Participant
    number: int
    value: Decimal
    rate: Decimal = Decimal(12)

    @property
    def icms(self) -> Decimal:
        return (self.value * self.rate / 100).quantize(CENT)


@dataclass
class Company:
    """What the file describes; ``documents`` may be a one-shot generator (large files)."""

    participants: tuple[Participant, ...] = ()
    items: tuple[tuple[str, str, str], ...] = ()
    units: tuple[tuple[str, str], ...] = ()
    documents: Iterable[Document] = ()
    freights: tuple[Freight, ...] = ()
    debits: Decimal = field(default=Decimal(0))
    credits: Decimal = field(default=Decimal(0))

    @property
    def moves(self) -> bool:
        return bool(self.participants)


CLIENT = Participant("P001", "CLIENTE BOM LTDA", cnpj("112223330001"))
SUPPLIER = Participant("P002", "AÇÚCAR E ÁLCOOL SÃO JOÃO LTDA", cnpj("123456780001"))
CARRIER = Participant("P003", "TRANSPORTES RÁPIDO LTDA", cnpj("987654320001"))
ONE_TIME = Participant("P004", "FORNECEDOR ÚNICO LTDA", cnpj("456789010001"))


def movement_company() -> Company:
    """Two exits, two entries and a CT-e; every participant, item and unit used."""
    q = Decimal
    exits = (
        Document(CLIENT, 1, (Item("PROD1", "UN", q(10), q("150.00"), "5102"),
                             Item("PROD2", "UN", q(2), q("50.00"), "5102"),
                             Item("PROD3", "PC", q(1), q("30.00"), "5102", rate=q(0), cst="040")), exit=True),
        Document(CLIENT, 2, (Item("PROD1", "UN", q(5), q("15.00"), "6102", rate=q(12)),), exit=True),
    )  # fmt: skip
    entries = (
        Document(SUPPLIER, 7001, (Item("PROD2", "UN", q(20), q("20.00"), "1102"),
                                  Item("PROD3", "PC", q(10), q("10.00"), "1102")), exit=False, day=10),
        Document(ONE_TIME, 88, (Item("PROD1", "UN", q(1), q("10.00"), "1102"),), exit=False, day=20),
    )  # fmt: skip
    return Company(
        participants=(CLIENT, SUPPLIER, CARRIER, ONE_TIME),
        items=(
            ("PROD1", "NOTEBOOK 14 POLEGADAS", "UN"),
            ("PROD2", "MOUSE ÓPTICO", "UN"),
            ("PROD3", "CABO", "PC"),
        ),
        units=(("UN", "UNIDADE"), ("PC", "PEÇA")),
        documents=(*exits, *entries),
        freights=(Freight(CARRIER, 501, Decimal("100.00")),),
    )


def empty_company() -> Company:
    """A company without movement: the minimum records only."""
    return Company()


def body(company: Company) -> Iterator[list[str]]:
    """The records of blocks 0 to 1, without the ``x990`` (see :func:`finish`)."""
    yield from _block_0(company)
    yield ["B001", "1"]
    yield ["C001", "0" if company.moves else "1"]
    for document in company.documents:
        yield from _c100(company, document)
    yield ["D001", "0" if company.freights else "1"]
    for freight in company.freights:
        yield from _d100(company, freight)
    yield from _block_e(company)
    for block in "GHK":
        yield [f"{block}001", "1"]
    yield ["1001", "0"]
    yield ["1010", *("N" * 13)]


def _block_0(company: Company) -> Iterator[list[str]]:
    for line in HEADER:
        yield line.split("|")
    for p in company.participants:
        address = {"END": "AVENIDA PAULISTA", "NUM": "1000", "BAIRRO": "BELA VISTA", "COD_MUN": "3550308"}
        yield rec("0150", COD_PART=p.code, NOME=p.name, COD_PAIS="01058", CNPJ=p.cnpj, **address)
    for unit, description in company.units:
        yield rec("0190", UNID=unit, DESCR=description)
    for code, description, unit in company.items:
        item = {"TIPO_ITEM": "00", "COD_NCM": "84713012", "ALIQ_ICMS": "18,00"}
        yield rec("0200", COD_ITEM=code, DESCR_ITEM=description, UNID_INV=unit, **item)


def zeros(*names: str) -> dict[str, str]:
    """``0,00`` for each of ``names``."""
    return dict.fromkeys(names, ZERO)


def total(values: Iterable[Decimal]) -> str:
    """The sum of ``values``, written as a number field."""
    return money(sum(values, Decimal(0)))


def _c100(company: Company, document: Document) -> Iterator[list[str]]:
    items = document.items
    issuer = COMPANY_CNPJ if document.exit else document.participant.cnpj
    code = random_code_for(f"sped-{document.number}", number=document.number)
    key = build_access_key(uf_code=35, year=2025, month=1, issuer=issuer, model=55, series=1,
                           number=document.number, emission_type=1, random_code=code)  # fmt: skip
    icms = sum((item.icms for item in items), Decimal(0))
    if document.exit:
        company.debits += icms
    else:
        company.credits += icms
    day = f"{document.day:02d}012025"
    head = {"IND_OPER": "1" if document.exit else "0", "IND_EMIT": "0" if document.exit else "1",
            "COD_PART": document.participant.code, "COD_MOD": "55", "COD_SIT": "00", "SER": "1",
            "NUM_DOC": str(document.number), "CHV_NFE": key.text, "DT_DOC": day, "DT_E_S": day}  # fmt: skip
    value = total(i.value for i in items)
    yield rec("C100", **head, VL_DOC=value, IND_PGTO="1", VL_MERC=value, IND_FRT="9",
              VL_BC_ICMS=total(i.base for i in items), VL_ICMS=money(icms),
              **zeros("VL_DESC", "VL_ABAT_NT", "VL_FRT", "VL_SEG", "VL_OUT_DA", "VL_BC_ICMS_ST", "VL_ICMS_ST",
                      "VL_IPI"))  # fmt: skip
    for number, item in enumerate(items, start=1):
        yield rec("C170", NUM_ITEM=str(number), COD_ITEM=item.code, QTD=money(item.quantity, 5),
                  UNID=item.unit, VL_ITEM=money(item.value), IND_MOV="0", CST_ICMS=item.cst, CFOP=item.cfop,
                  VL_BC_ICMS=money(item.base), ALIQ_ICMS=money(item.rate), VL_ICMS=money(item.icms),
                  **zeros("VL_DESC", "VL_BC_ICMS_ST", "ALIQ_ST", "VL_ICMS_ST", "VL_IPI"))  # fmt: skip
    for (cst, cfop, rate), group in _groups(items).items():
        sums = {"VL_OPR": total(i.value for i in group), "VL_BC_ICMS": total(i.base for i in group),
                "VL_ICMS": total(i.icms for i in group)}  # fmt: skip
        yield rec("C190", CST_ICMS=cst, CFOP=cfop, ALIQ_ICMS=money(rate), **sums,
                  **zeros("VL_BC_ICMS_ST", "VL_ICMS_ST", "VL_RED_BC", "VL_IPI"))  # fmt: skip


def _groups(items: Iterable[Item]) -> dict[tuple[str, str, Decimal], list[Item]]:
    groups: dict[tuple[str, str, Decimal], list[Item]] = {}
    for item in items:
        groups.setdefault((item.cst, item.cfop, item.rate), []).append(item)
    return groups


def _d100(company: Company, freight: Freight) -> Iterator[list[str]]:
    company.credits += freight.icms
    value, icms = money(freight.value), money(freight.icms)
    key = cte_key(freight.carrier.cnpj, freight.number)
    yield rec("D100", IND_OPER="0", IND_EMIT="1", COD_PART=freight.carrier.code, COD_MOD="57", COD_SIT="00",
              SER="1", NUM_DOC=str(freight.number), CHV_CTE=key, DT_DOC="12012025", DT_A_P="12012025",
              **{"TP_CT-e": "0"}, VL_DOC=value, IND_FRT="1", VL_SERV=value, VL_BC_ICMS=value, VL_ICMS=icms,
              COD_MUN_ORIG="3550308", COD_MUN_DEST="3304557", **zeros("VL_DESC", "VL_NT"))  # fmt: skip
    yield rec("D190", CST_ICMS="000", CFOP="1353", ALIQ_ICMS=money(freight.rate), VL_OPR=value,
              VL_BC_ICMS=value, VL_ICMS=icms, VL_RED_BC=ZERO)  # fmt: skip


def _block_e(company: Company) -> Iterator[list[str]]:
    balance = company.debits - company.credits
    due = max(balance, Decimal(0))
    yield ["E001", "0"]
    yield rec("E100", DT_INI=DT_INI, DT_FIN=DT_FIN)
    adjustments = zeros("VL_AJ_DEBITOS", "VL_TOT_AJ_DEBITOS", "VL_ESTORNOS_CRED", "VL_AJ_CREDITOS",
                        "VL_TOT_AJ_CREDITOS", "VL_ESTORNOS_DEB", "VL_SLD_CREDOR_ANT", "VL_TOT_DED",
                        "DEB_ESP")  # fmt: skip
    yield rec("E110", VL_TOT_DEBITOS=money(company.debits), VL_TOT_CREDITOS=money(company.credits),
              VL_SLD_APURADO=money(due), VL_ICMS_RECOLHER=money(due),
              VL_SLD_CREDOR_TRANSPORTAR=money(max(-balance, Decimal(0))), **adjustments)  # fmt: skip
    if due:
        yield rec(
            "E116", COD_OR="000", VL_OR=money(due), DT_VCTO="10022025", COD_REC="046-2", MES_REF="012025"
        )


def finish(records: Iterable[list[str]]) -> Iterator[list[str]]:
    """``records`` (blocks 0 to 1, no ``x990``) with every ``x990`` and block 9, counted as they stream."""
    counts: Counter[str] = Counter()
    block, in_block = "", 0
    for record in records:
        if record[0][0] != block:
            if block:
                counts[f"{block}990"] += 1
                yield [f"{block}990", str(in_block + 1)]
            block, in_block = record[0][0], 0
        counts[record[0]] += 1
        in_block += 1
        yield record
    counts[f"{block}990"] += 1
    yield [f"{block}990", str(in_block + 1)]
    counts["9001"] += 1
    yield ["9001", "0"]
    types = [*counts, *BLOCK_9_TAIL]
    tail = {"9900": len(types), "9990": 1, "9999": 1}
    for name in types:
        yield ["9900", name, str(tail.get(name, counts[name]))]
    yield ["9990", str(len(types) + 3)]
    yield ["9999", str(sum(counts.values()) + len(types) + 2)]


def encode_record(record: list[str]) -> bytes:
    """One record as a Latin-1 line ending with CR LF."""
    return ("|" + "|".join(record) + "|\r\n").encode("latin-1")


def encode(records: Iterable[list[str]]) -> list[bytes]:
    """Every record encoded."""
    return [encode_record(record) for record in records]


def sample_lines(company: Company | None = None) -> list[bytes]:
    """The valid file of ``company`` (default: :func:`movement_company`)."""
    return encode(finish(body(company or movement_company())))


def line_of(lines: list[bytes], record: str, nth: int = 0) -> int:
    """The 1-based line number of the ``nth`` line of ``record``."""
    found = [number for number, line in enumerate(lines, start=1) if line.startswith(f"|{record}|".encode())]
    return found[nth]


def index_of(records: list[list[str]], record: str, nth: int = 0) -> int:
    """The list index of the ``nth`` record named ``record``."""
    return [index for index, fields in enumerate(records) if fields[0] == record][nth]


def large_file(documents: int) -> Iterator[bytes]:
    """A valid file of ``documents`` one-item exits (3 lines each), streamed line by line.

    The documents are paper notas (model 01, no access key): the run measures the validator,
    not the NF-e key parser. The three records are built once and only their number changes.
    """
    company = movement_company()
    item = Item("PROD1", "UN", Decimal(2), Decimal("10.00"), "5102")
    template = list(_c100(company, Document(CLIENT, 1, (item,), exit=True)))
    template[0][FIELDS["C100"].index("COD_MOD") + 1] = "01"
    template[0][FIELDS["C100"].index("CHV_NFE") + 1] = ""
    number = FIELDS["C100"].index("NUM_DOC") + 1
    company = Company(
        participants=(CLIENT,),
        items=(("PROD1", "NOTEBOOK", "UN"),),
        units=(("UN", "UNIDADE"),),
        documents=(),
        debits=item.icms * documents,
    )

    def records() -> Iterator[list[str]]:
        for record in body(company):
            yield record
            if record[0] == "C001":
                for document in range(1, documents + 1):
                    template[0][number] = str(document)
                    yield from template

    for record in finish(records()):
        yield encode_record(record)
