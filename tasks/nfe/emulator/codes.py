"""The cStat codes the emulator answers, with SEFAZ's wording.

Most come from the MOC 7.0 table of codes as quoted by nfelib's and erpbrasil.edoc's fixtures
and the integrators' pages cited in the domain reference (§1.4); the CT-e table, which shares
the numbering, confirmed 206, 215, 222, 224, 225 and 227. Where the reference says
**[verify]** or cites nothing, the choice is ours and written here:

* 106 unknown receipt: "Lote não localizado" (reference: [verify]).
* 108 / 109 service stopped, 656 consumo indevido (reference: [verify]).
* 236 malformed or wrong check digit in a consulted key (consSitNFe); a key the XSD already
  refuses gets 215 first.
* 241 inutilização of a range holding an authorised number ("Um número da faixa já foi
  utilizado"); 563 for the very same range inutilised before (a retry), 256 for a range that
  overlaps another inutilised one; 224 when nNFIni > nNFFin; 227 when ``infInut/@Id`` is not the
  concatenation of its fields.
* 452 a synchronous lote (``indSinc=1``) with more than one NF-e (retEnviNFe holds one protNFe).
* 493 an event whose ``detEvento`` breaks its own schema (e110111/e110110: descEvento, nProt,
  xJust 15-255, xCorrecao 15-1000), or whose ``@Id`` is not ``ID`` + tpEvento + chNFe +
  nSeqEvento; 491 an event type the emulator does not handle (only 110111 and 110110).
* 494 an event for a key the emulator never authorised; 574 when the event's author is not the
  key's issuer; 580 a CC-e for an NF-e already cancelled ("O evento exige uma NF-e autorizada").
* 573 a second cancellation of the same NF-e, and a CC-e whose nSeqEvento is not above the last
  one registered ("Duplicidade de Evento").
* 206 an NF-e whose number was inutilised.
* 214 an ``enviNFe`` above 500 KB (SEFAZ's limit for a lote), before any other check.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Lote / service level.
AUTHORIZED = 100
CANCELLED = 101
INUTILIZED = 102
LOT_RECEIVED = 103
LOT_PROCESSED = 104
LOT_PROCESSING = 105
LOT_NOT_FOUND = 106
SERVICE_RUNNING = 107
EVENT_LOT_PROCESSED = 128
EVENT_REGISTERED = 135
# Rejections.
DUPLICATE = 204
TOO_LARGE = 214
NUMBER_INUTILIZED = 206
SCHEMA = 215
NOT_FOUND = 217
PROTOCOL_DIFFERS = 222
RANGE_INVERTED = 224
LOT_SCHEMA = 225
ID_COMPOSITION = 227
KEY_INVALID = 236
RANGE_USED = 241
RANGE_OVERLAPS_INUTILIZED = 256
SIGNATURE = 297
SYNC_MULTIPLE = 452
EVENT_TYPE_INVALID = 491
EVENT_SCHEMA = 493
EVENT_KEY_UNKNOWN = 494
CANCEL_WINDOW = 501
KEY_MISMATCH = 502
DUPLICATE_OTHER_KEY = 539
RANGE_ALREADY_INUTILIZED = 563
DUPLICATE_EVENT = 573
EVENT_AUTHOR = 574
EVENT_NEEDS_AUTHORIZED = 580
THROTTLED = 656
DENIED_ISSUER = 301
#: What the ``reject`` scenario may answer: a lote schema failure, a bad signature, a denial.
SCRIPTED_REJECTIONS = frozenset({LOT_SCHEMA, SIGNATURE, DENIED_ISSUER})

REASONS: Mapping[int, str] = MappingProxyType({
    AUTHORIZED: "Autorizado o uso da NF-e",
    CANCELLED: "Cancelamento de NF-e homologado",
    INUTILIZED: "Inutilização de número homologado",
    LOT_RECEIVED: "Lote recebido com sucesso",
    LOT_PROCESSED: "Lote processado",
    LOT_PROCESSING: "Lote em processamento",
    LOT_NOT_FOUND: "Lote não localizado",
    SERVICE_RUNNING: "Serviço em Operação",
    108: "Serviço Paralisado Momentaneamente (curto prazo)",
    109: "Serviço Paralisado sem Previsão",
    EVENT_LOT_PROCESSED: "Lote de Evento Processado",
    EVENT_REGISTERED: "Evento registrado e vinculado a NF-e",
    DUPLICATE: "Rejeição: Duplicidade de NF-e",
    TOO_LARGE: "Rejeição: Tamanho da mensagem excedeu o limite estabelecido",
    NUMBER_INUTILIZED: "Rejeição: NF-e já está inutilizada na Base de dados da SEFAZ",
    SCHEMA: "Rejeição: Falha no schema XML",
    NOT_FOUND: "Rejeição: NF-e não consta na base de dados da SEFAZ",
    PROTOCOL_DIFFERS: "Rejeição: Protocolo de Autorização de Uso difere do cadastrado",
    RANGE_INVERTED: "Rejeição: A faixa inicial é maior que a faixa final",
    LOT_SCHEMA: "Rejeição: Falha no Schema XML do lote de NFe",
    ID_COMPOSITION: "Rejeição: Erro na composição do Campo ID",
    KEY_INVALID: "Rejeição: Chave de Acesso com dígito verificador inválido",
    RANGE_USED: "Rejeição: Um número da faixa já foi utilizado",
    RANGE_OVERLAPS_INUTILIZED: "Rejeição: Uma NF-e da faixa já está inutilizada na Base de dados da SEFAZ",
    SIGNATURE: "Rejeição: Assinatura difere do calculado",
    SYNC_MULTIPLE: "Rejeição: Solicitada resposta síncrona para Lote com mais de uma NF-e (indSinc=1)",
    EVENT_TYPE_INVALID: "Rejeição: O tpEvento informado inválido",
    EVENT_SCHEMA: "Rejeição: Evento não atende o Schema XML específico",
    EVENT_KEY_UNKNOWN: "Rejeição: Chave de Acesso inexistente",
    CANCEL_WINDOW: "Rejeição: Prazo de cancelamento superior ao previsto na Legislação",
    KEY_MISMATCH: "Rejeição: Erro na Chave de Acesso - Campo Id não corresponde à concatenação dos campos "
    "correspondentes",
    DUPLICATE_OTHER_KEY: "Rejeição: Duplicidade de NF-e, com diferença na Chave de Acesso",
    RANGE_ALREADY_INUTILIZED: "Rejeição: Já existe pedido de Inutilização com a mesma faixa de inutilização",
    DUPLICATE_EVENT: "Rejeição: Duplicidade de Evento",
    EVENT_AUTHOR: "Rejeição: O autor do evento diverge do emissor da NF-e",
    EVENT_NEEDS_AUTHORIZED: "Rejeição: O evento exige uma NF-e autorizada",
    THROTTLED: "Rejeição: Consumo Indevido",
    DENIED_ISSUER: "Uso Denegado: Irregularidade fiscal do emitente",
})  # fmt: skip
