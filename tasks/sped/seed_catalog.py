"""What the ERP seeder (:mod:`.seed`) draws from: places, state registrations, goods and words.

* :data:`UFS`: the UFs the seeder places companies and participants in, each with its modal
  internal ICMS rate, phone area code, zip range, real IBGE city codes and the rule of its state
  registration (IE) check digits (Sintegra); :func:`ie_problem` checks an IE by that rule.
* :func:`interstate_rate`: 4 % for imported goods, 7 % from the South/Southeast (ES excepted) to
  the other regions and ES, 12 % otherwise.
* Goods: finished products, raw materials, goods for resale and consumables, each with an NCM,
  its unit, its ICMS treatment (taxed, reduced base, exempt, tax substitution with a CEST), an
  optional ICMS rate of its own, its IPI rate and a price range.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from ..nfe.documents import cnpj_check_digits, cpf_check_digits


@dataclass(frozen=True, slots=True)
class UfRule:
    """A UF as the seeder uses it.

    Attributes:
        code: Its two letters.
        rate: Modal internal ICMS rate, in basis points (1800 = 18 %).
        area: A phone area code (DDD).
        zips: First three digits of its zip codes, lowest and highest.
        ie_prefix: The digits its IEs start with.
        ie_length: Digits of an IE before its check digits (SP: the 10 around its first one).
        ie_weights: One weight vector per check digit, each over every digit before it.
        cities: IBGE codes of some of its cities.
    """

    code: str
    rate: int
    area: str
    zips: tuple[int, int]
    ie_prefix: str
    ie_length: int
    ie_weights: tuple[tuple[int, ...], ...]
    cities: tuple[str, ...]


_W92 = (9, 8, 7, 6, 5, 4, 3, 2)
UFS: Mapping[str, UfRule] = MappingProxyType({uf.code: uf for uf in (
    UfRule("SP", 1800, "11", (10, 199), "", 10, (), (
        "3550308", "3509502", "3548500", "3518800", "3543402", "3552205", "3549904", "3534401")),
    UfRule("RJ", 2000, "21", (200, 289), "", 7, ((2, 7, 6, 5, 4, 3, 2),), ("3304557", "3303302", "3301702")),
    UfRule("PR", 1950, "41", (800, 879), "", 8, ((3, 2, 7, 6, 5, 4, 3, 2), (4, 3, 2, 7, 6, 5, 4, 3, 2)),
           ("4106902", "4113700", "4115200")),
    UfRule("SC", 1700, "47", (880, 899), "", 8, (_W92,), ("4205407", "4209102", "4202404")),
    UfRule("RS", 1700, "51", (900, 999), "096", 9, ((2, 9, 8, 7, 6, 5, 4, 3, 2),), ("4314902", "4305108")),
    UfRule("ES", 1700, "27", (290, 299), "08", 8, (_W92,), ("3205309", "3205002", "3201308")),
    UfRule("CE", 2000, "85", (600, 639), "06", 8, (_W92,), ("2304400", "2307650")),
    UfRule("PE", 2050, "81", (500, 569), "0", 7, ((8, 7, 6, 5, 4, 3, 2), _W92), ("2611606", "2607901")),
    UfRule("GO", 1900, "62", (740, 767), "11", 8, (_W92,), ("5208707", "5201405")),
    UfRule("MS", 1700, "67", (790, 799), "28", 8, (_W92,), ("5002704", "5003702")),
    UfRule("MT", 1700, "65", (780, 788), "0013", 10, ((3, 2, 9, 8, 7, 6, 5, 4, 3, 2),),
           ("5103403", "5108402")),
    UfRule("DF", 2000, "61", (700, 727), "07", 11, (
        (4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)), ("5300108",)),
    UfRule("PA", 1900, "91", (660, 688), "15", 8, (_W92,), ("1501402", "1500800")),
)})  # fmt: skip
#: Where companies are placed, weighted by repetition.
#: The ICMS obligations of a UF's normal-regime filers: E116 COD_REC, the day of the next month it is
#: due, and E250 COD_REC of the ICMS ST due to the UF itself. São Paulo's are GARE codes 046-2 (ICMS,
#: regime periódico de apuração) and 063-2 (ICMS ST por apuração); the seeder knows no other UF's
#: table, so their companies get :data:`UNKNOWN_OBLIGATION` (an ERP has its own).
ICMS_OBLIGATIONS: Mapping[str, tuple[str, int, str]] = MappingProxyType({"SP": ("046-2", 20, "063-2")})
UNKNOWN_OBLIGATION = ("0", 10, "0")
COMPANY_UFS = ("SP", "SP", "PR", "RJ", "SC", "RS", "GO", "PE")
#: Origins whose goods pay 7 % ICMS to the North, Northeast, Centre-West and ES (12 % otherwise).
_SOUTH_SOUTHEAST = frozenset({"SP", "RJ", "MG", "PR", "SC", "RS"})
_SP_WEIGHTS = ((1, 3, 4, 5, 6, 7, 8, 10), (3, 2, 10, 9, 8, 7, 6, 5, 4, 3, 2))


def ie_problem(uf: str, ie: str) -> str | None:
    """Why ``ie`` is not a valid state registration of ``uf``, or ``None`` if it is.

    Covers the UFs of :data:`UFS`.
    """
    rule = UFS.get(uf)
    if rule is None:
        return f"no IE rule for UF {uf!r}"
    if not ie.isdigit():
        return f"an IE is digits only, not {ie!r}"
    base = ie[:8] + ie[9:11] if uf == "SP" else ie[: rule.ie_length]
    if len(base) != rule.ie_length:
        return f"an IE of {uf} has more than {rule.ie_length} digits, {ie!r} has {len(ie)}"
    expected = with_ie_digits(rule, base)
    if ie != expected:
        return f"{ie} is not a valid IE of {uf} (its check digits would make {expected})"
    return None


def with_ie_digits(rule: UfRule, base: str) -> str:
    """The IE made of ``base`` (``rule.ie_length`` digits) and its check digits."""
    if rule.code == "SP":  # 8 digits, check digit, 2 digits, check digit: the last digit of r % 11
        first = base[:8] + str(_weighted(base[:8], _SP_WEIGHTS[0]) % 11 % 10)
        middle = first + base[8:]
        return middle + str(_weighted(middle, _SP_WEIGHTS[1]) % 11 % 10)
    text = base
    for weights in rule.ie_weights:
        remainder = _weighted(text, weights) % 11
        text += "0" if remainder < 2 else str(11 - remainder)
    return text


def _weighted(digits: str, weights: Sequence[int]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True))


def interstate_rate(origin_uf: str, destination_uf: str, origin: int) -> int:
    """The interstate ICMS rate in basis points of goods of ``origin`` (Tabela A) between two UFs."""
    if origin in (1, 2, 3, 8):  # imported goods: Resolução do Senado 13/2012
        return 400
    return 700 if origin_uf in _SOUTH_SOUTHEAST and destination_uf not in _SOUTH_SOUTHEAST else 1200


class Product(NamedTuple):
    """Goods items are made from (one product gives many items, each with its own code).

    Attributes:
        stem: Start of the description.
        ncm: NCM code.
        unit: Unit code (one of :data:`UNITS`).
        icms: ``T`` taxed, ``R`` reduced base, ``I`` exempt, ``S`` tax substitution.
        cest: CEST code of goods under tax substitution.
        rate: Own internal ICMS rate in basis points, 0 for the UF's.
        ipi: IPI rate in basis points.
        low: Lowest unit price, cents.
        high: Highest unit price, cents.
    """

    stem: str
    ncm: str
    unit: str
    icms: str
    cest: str | None
    rate: int
    ipi: int
    low: int
    high: int


FINISHED = (
    Product("PARAFUSO SEXTAVADO AÇO", "73181500", "PC", "T", None, 0, 500, 50, 900),
    Product("ROLAMENTO DE ESFERAS", "84821010", "PC", "T", None, 0, 500, 1500, 25000),
    Product("DISCO DE FREIO VENTILADO", "87083090", "PC", "S", "0107400", 0, 500, 8000, 60000),
    Product("JUNTA DE VEDAÇÃO", "40169300", "PC", "S", "0100900", 0, 500, 300, 4000),
    Product("CABO ELÉTRICO FLEXÍVEL", "85444900", "M", "T", None, 0, 500, 150, 2500),
)
RAW_MATERIALS = (
    Product("CHAPA DE AÇO LAMINADA", "72085100", "KG", "T", None, 0, 0, 400, 1500),
    Product("RESINA DE POLIPROPILENO", "39021020", "KG", "T", None, 0, 325, 700, 2200),
    Product("FIO DE COBRE NU", "74081100", "KG", "T", None, 0, 500, 3500, 6500),
    Product("TINTA INDUSTRIAL EPÓXI", "32089010", "L", "R", None, 0, 500, 2500, 9000),
)
RESALE = (
    Product("ARROZ TIPO 1", "10063021", "KG", "R", None, 700, 0, 450, 900),
    Product("FEIJÃO CARIOCA", "07133399", "KG", "I", None, 0, 0, 600, 1200),
    Product("ÁGUA MINERAL 500ML", "22011000", "UN", "S", "0300100", 0, 0, 150, 400),
    Product("CERVEJA LATA 350ML", "22030000", "UN", "S", "0302100", 2500, 0, 300, 900),
    Product("BISCOITO RECHEADO", "19053100", "PCT", "T", None, 0, 0, 250, 800),
    Product("MEDICAMENTO GENÉRICO", "30049099", "CX", "S", "1300100", 0, 0, 800, 9000),
    Product("FILTRO DE ÓLEO", "84212300", "PC", "S", "0100300", 0, 0, 1800, 7000),
    Product("SABÃO EM PÓ", "34022000", "KG", "T", None, 0, 0, 900, 2500),
)
CONSUMABLES = (
    Product("PAPEL A4 RESMA", "48025610", "PCT", "T", None, 0, 0, 2200, 3500),
    Product("CANETA ESFEROGRÁFICA", "96081000", "UN", "T", None, 0, 0, 100, 400),
    Product("LUVA DE PROTEÇÃO", "40151900", "PC", "T", None, 0, 0, 300, 2500),
)
#: The freight a CT-e charges, booked as a one-line service item.
FREIGHT = Product("SERVIÇO DE TRANSPORTE DE CARGAS", "", "SV", "T", None, 1200, 0, 5000, 500000)
UNITS = (
    ("UN", "UNIDADE"), ("PC", "PEÇA"), ("KG", "QUILOGRAMA"), ("L", "LITRO"), ("M", "METRO"),
    ("CX", "CAIXA"), ("PCT", "PACOTE"), ("SV", "SERVIÇO"),
)  # fmt: skip
FRACTIONAL_UNITS = frozenset({"KG", "L", "M"})

NAMES = ("ALVORADA", "PRIMAVERA", "HORIZONTE", "ATLÂNTICO", "BANDEIRANTE", "CRUZEIRO", "PIONEIRA",
         "AURORA", "PLANALTO", "IPÊ", "JATOBÁ", "ARAUCÁRIA", "TUCANO", "CARNAÚBA", "SERRA AZUL")  # fmt: skip
TRADES = ("COMÉRCIO DE ALIMENTOS", "INDÚSTRIA METALÚRGICA", "DISTRIBUIDORA", "TRANSPORTES",
          "ATACADISTA", "AUTOPEÇAS", "MATERIAIS ELÉTRICOS", "EMBALAGENS", "FARMACÊUTICA")  # fmt: skip
SUFFIXES = ("LTDA", "S.A.", "LTDA ME", "LTDA EPP")
FIRST_NAMES = ("ANA", "JOÃO", "MARIA", "JOSÉ", "FRANCISCA", "ANTÔNIO", "LUCAS", "JULIANA", "PEDRO")
LAST_NAMES = ("SILVA", "SANTOS", "OLIVEIRA", "SOUZA", "RODRIGUES", "FERREIRA", "ALVES", "PEREIRA", "LIMA")
STREETS = ("RUA DAS FLORES", "AVENIDA BRASIL", "RUA XV DE NOVEMBRO", "RUA SETE DE SETEMBRO",
           "AVENIDA GETÚLIO VARGAS", "RUA TIRADENTES", "RODOVIA BR-101 KM 12",
           "RUA DA INDÚSTRIA")  # fmt: skip
DISTRICTS = ("CENTRO", "JARDIM AMÉRICA", "VILA NOVA", "DISTRITO INDUSTRIAL", "BELA VISTA", "SÃO JOSÉ")


# --- identifiers and small values drawn from a generator ----------------------------------------


def cnpj(rng: random.Random) -> str:
    """A head-office CNPJ (branch 0001) with its check digits."""
    body = f"{rng.randint(1_000_000, 99_999_999):08d}0001"
    return body + cnpj_check_digits(body)


def cpf(rng: random.Random) -> str:
    """A CPF with its check digits (never one repeated digit)."""
    body = f"{rng.randint(1_000_000, 999_999_998):09d}"
    return body + cpf_check_digits(body)


def ie(rng: random.Random, uf: UfRule) -> str:
    """A state registration of ``uf`` with its check digits."""
    digits = uf.ie_length - len(uf.ie_prefix)
    return with_ie_digits(uf, uf.ie_prefix + f"{rng.randrange(10**digits):0{digits}d}")


def gtin(rng: random.Random) -> str:
    """A GTIN-13 with the Brazilian prefix 789 and its check digit."""
    body = f"789{rng.randrange(10**9):09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str(-total % 10)


def address(rng: random.Random, uf: UfRule) -> tuple[str, str, int, str, str]:
    """Zip code (in ``uf``'s range), street, number, district and a phone with ``uf``'s area code."""
    zip_code = f"{rng.randint(*uf.zips):03d}{rng.randrange(100_000):05d}"
    street, number, district = rng.choice(STREETS), rng.randint(1, 4_000), rng.choice(DISTRICTS)
    return zip_code, street, number, district, f"{uf.area}{rng.randint(30_000_000, 39_999_999)}"


def person(rng: random.Random) -> str:
    """A person's name."""
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} {rng.choice(LAST_NAMES)}"
