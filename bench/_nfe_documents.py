"""NF-e material for ``bench.nfe``: an invoice payload, an issuer CNPJ, a test A1, timed document stages.

The invoice payload is the package's example (:mod:`tornado_tasks.nfe.examples`, as the tests
use it): ``items`` identical items of 100.00, ICMS 00, PIS and COFINS 01, totals that add up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from nfelib.nfe.bindings.v4_0.nfe_v4_00 import Nfe
from tornado_tasks.nfe.access_key import AccessKey, build_access_key, random_code_for
from tornado_tasks.nfe.certificates import A1Certificate, TestAuthority, load_a1
from tornado_tasks.nfe.documents import cnpj_check_digits
from tornado_tasks.nfe.examples import EXAMPLE_CNPJ as ISSUER_CNPJ
from tornado_tasks.nfe.examples import example_invoice
from tornado_tasks.nfe.invoice import Invoice, validate_invoice
from tornado_tasks.nfe.signing import sign_enveloped
from tornado_tasks.nfe.xml_builder import build_nfe
from tornado_tasks.nfe.xsd import require_schema_valid

SOFTWARE_VERSION = "tornado-nfe"
HOMOLOGATION = 2


def new_cnpj(rng: random.Random | None = None) -> str:
    """A random CNPJ (branch 0001) with valid check digits."""
    body = f"{(rng or random).randrange(10**7, 10**8)}0001"
    return body + cnpj_check_digits(body)


def invoice_payload(items: int = 1, cnpj: str = ISSUER_CNPJ) -> dict[str, Any]:
    """A valid invoice of ``items`` items issued by ``cnpj``, totals and payment computed."""
    return example_invoice(items, cnpj=cnpj)


def new_a1(authority: TestAuthority, cnpj: str = ISSUER_CNPJ) -> A1Certificate:
    """A fresh test A1 (RSA-2048) of ``authority`` for ``cnpj``, opened."""
    return load_a1(authority.issue_a1(cnpj, "Empresa Teste Ltda", password="bench"), "bench")


@dataclass(frozen=True)
class Document:
    """One invoice and what the pipeline stages need for it."""

    items: int
    invoice: Invoice
    key: AccessKey
    issued_at: datetime
    certificate: A1Certificate

    def build(self) -> bytes:
        """The unsigned NF-e, as ``nfe.emit`` builds it."""
        return build_nfe(
            self.invoice,
            key=self.key,
            issued_at=self.issued_at,
            environment=HOMOLOGATION,
            software_version=SOFTWARE_VERSION,
        )

    def whole(self) -> bytes:
        """Build, sign and check against the XSD: ``Emitter._signed``."""
        signed = sign_enveloped(self.build(), self.certificate)
        require_schema_valid(signed, "the NF-e")
        return signed


def document(items: int, certificate: A1Certificate) -> Document:
    """The sample invoice with ``items`` items, its key (number 1) and dhEmi now."""
    invoice = validate_invoice(invoice_payload(items))
    issued_at = datetime.now(UTC).replace(microsecond=0)
    key = build_access_key(
        uf_code=35, year=issued_at.year, month=issued_at.month, issuer=invoice.issuer.cnpj,
        model=invoice.model, series=invoice.series, number=1, emission_type=1,
        random_code=random_code_for("bench-nfe", number=1),
    )  # fmt: skip
    return Document(items, invoice, key, issued_at, certificate)


@dataclass(frozen=True)
class Timing:
    """``count`` calls of one stage in ``seconds`` of wall time and ``cpu`` CPU seconds of this process."""

    stage: str
    count: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        """Calls per wall second."""
        return self.count / self.seconds

    @property
    def ms(self) -> float:
        """Wall milliseconds per call."""
        return 1000 * self.seconds / self.count

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per call."""
        return 1000 * self.cpu / self.count


def timed(stage: str, call: Callable[[], object], seconds: float) -> Timing:
    """Count calls of ``call`` for ``seconds`` of wall time (the clock is read after every call)."""
    count, cpu0, start = 0, time.process_time(), time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        call()
        count += 1
        now = time.perf_counter()
    return Timing(stage, count, now - start, time.process_time() - cpu0)


def measure(
    calls: dict[str, Callable[[], object]], seconds: float, rounds: int = 5, warm_up: float = 0.2
) -> dict[str, Timing]:
    """Each call timed for ``seconds`` in all, in ``rounds`` interleaved slices; the median slice.

    Every call first runs ``warm_up`` seconds. Interleaving the stages spreads a burst of other
    load on the machine over all of them, and the median slice (by CPU per call) leaves it out.
    """
    for name, call in calls.items():
        timed(name, call, warm_up)
    slices: dict[str, list[Timing]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            slices[name].append(timed(name, call, seconds / rounds))
    return {name: sorted(found, key=lambda t: t.cpu_ms)[len(found) // 2] for name, found in slices.items()}


def first_xsd_ms(doc: Document) -> float:
    """Milliseconds of this process's first XSD check (it compiles and caches the NF-e schema)."""
    signed = sign_enveloped(doc.build(), doc.certificate)
    start = time.perf_counter()
    require_schema_valid(signed, "the NF-e")
    return 1000 * (time.perf_counter() - start)


def stage_calls(doc: Document) -> dict[str, Callable[[], object]]:
    """The calls timed for one document: the stages, the whole, and the two baselines.

    Each stage works on the output of the one before it, computed once beforehand: ``sign``
    on the unsigned document, ``xsd`` on the signed one.
    """
    unsigned = doc.build()
    signed = sign_enveloped(unsigned, doc.certificate)
    bindings = Nfe.from_xml(unsigned.decode())
    key = doc.certificate.private_key
    return {
        "build": doc.build,
        "sign": lambda: sign_enveloped(unsigned, doc.certificate),
        "xsd": lambda: require_schema_valid(signed, "the NF-e"),
        "whole": doc.whole,
        "nfelib to_xml()": lambda: bindings.to_xml(indent=""),
        "RSA-SHA1 sign": lambda: key.sign(unsigned, padding.PKCS1v15(), hashes.SHA1()),
    }
