"""Sample NF-e material for the tests: a valid invoice payload, its key, A1 certificates and events.

Plain functions (no fixtures), so any test module can build what it needs. The invoice payload is
a copy of the one in ``tests/unit/test_nfe_invoice.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from nfelib.nfe_evento_cancel.bindings.v1_0.env_evento_canc_nfe_v1_00 import EnvEvento as CancelEnvelope
from nfelib.nfe_evento_cancel.bindings.v1_0.leiaute_evento_canc_nfe_v1_00 import Tevento as CancelEvent
from nfelib.nfe_evento_cce.bindings.v1_0.env_cce_v1_00 import EnvEvento as CorrectionEnvelope
from nfelib.nfe_evento_cce.bindings.v1_0.leiaute_cce_v1_00 import DetEventoXCondUso
from nfelib.nfe_evento_cce.bindings.v1_0.leiaute_cce_v1_00 import Tevento as CorrectionEvent
from tornado_tasks.nfe.access_key import AccessKey, build_access_key, random_code_for
from tornado_tasks.nfe.certificates import A1Certificate, TestAuthority, load_a1
from tornado_tasks.nfe.examples import EXAMPLE_ADDRESS, example_item, with_items
from tornado_tasks.nfe.invoice import Invoice, validate_invoice
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig

NFE_NS = "http://www.portalfiscal.inf.br/nfe"
ISSUER_CNPJ = "59594315000157"
A1_PASSWORD = "1234"
#: dhEmi of the samples: Brasília time.
ISSUED_AT = datetime(2026, 11, 20, 10, 30, 15, tzinfo=timezone(timedelta(hours=-3)))
ADDRESS = EXAMPLE_ADDRESS
item = example_item


def invoice_payload(items: int = 1) -> dict[str, Any]:
    """A valid payload with ``items`` identical items of 100.00 and totals that add up."""
    return with_items([item(i) for i in range(items)])


def sample_invoice(items: int = 1) -> Invoice:
    """The validated sample invoice."""
    return validate_invoice(invoice_payload(items))


def sample_key(
    invoice: Invoice, *, number: int = 1, emission_type: int = 1, issued_at: datetime = ISSUED_AT
) -> AccessKey:
    """The key the allocator would give ``invoice`` (SP, model 55) for ``number``."""
    return build_access_key(
        uf_code=35,
        year=issued_at.year,
        month=issued_at.month,
        issuer=invoice.issuer.cnpj,
        model=invoice.model,
        series=invoice.series,
        number=number,
        emission_type=emission_type,
        random_code=random_code_for(f"job-{number}", number=number),
    )


def new_a1(authority: TestAuthority, cnpj: str = ISSUER_CNPJ) -> A1Certificate:
    """A fresh A1 of ``authority`` for ``cnpj``, opened."""
    return load_a1(authority.issue_a1(cnpj, "Empresa Teste Ltda", password=A1_PASSWORD), A1_PASSWORD)


def cancellation_request(key: str, *, protocol: str = "135260000000001") -> bytes:
    """An unsigned ``envEvento`` cancelling NF-e ``key`` (event 110111), built with nfelib's bindings."""
    info = CancelEvent.InfEvento
    event = CancelEvent(
        versao="1.00",
        infEvento=info(
            **_event_head(key, "110111"),
            detEvento=info.DetEvento(
                versao="1.00",
                descEvento="Cancelamento",
                nProt=protocol,
                xJust="Pedido cancelado pelo cliente antes do envio",
            ),
        ),
    )
    return _render(CancelEnvelope(versao="1.00", idLote="1", evento=[event]))


def correction_request(key: str) -> bytes:
    """An unsigned ``envEvento`` with a carta de correção (event 110110) of NF-e ``key``."""
    info = CorrectionEvent.InfEvento
    event = CorrectionEvent(
        versao="1.00",
        infEvento=info(
            **_event_head(key, "110110"),
            detEvento=info.DetEvento(
                versao="1.00",
                descEvento="Carta de Correcao",
                xCorrecao="Corrige o complemento do endereco do destinatario",
                xCondUso=next(iter(DetEventoXCondUso)).value,
            ),
        ),
    )
    return _render(CorrectionEnvelope(versao="1.00", idLote="1", evento=[event]))


def _event_head(key: str, event_type: str) -> dict[str, str]:
    return {
        "Id": f"ID{event_type}{key}01",
        "cOrgao": key[:2],
        "tpAmb": "2",
        "CNPJ": key[6:20],
        "chNFe": key,
        "dhEvento": "2026-11-20T11:00:00-03:00",
        "tpEvento": event_type,
        "nSeqEvento": "1",
        "verEvento": "1.00",
    }


def _render(document: Any) -> bytes:
    serializer = XmlSerializer(config=SerializerConfig(indent="", xml_declaration=False))
    return str(serializer.render(document, ns_map={None: NFE_NS})).encode()
