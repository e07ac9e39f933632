"""What the emulated SEFAZ remembers, all inside one :class:`EmulatorState` the app owns.

Authorised NF-e (key, protocol, the number they used in their series), receipts of
asynchronous lotes and the polls they still answer 105 to, registered events, inutilised
ranges, the scenario book, the clock offset, and the last requests received (bounded).

Nothing here is thread-safe: the emulator's handlers all run on one IOLoop, and nothing awaits
between reading and updating the state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .scenarios import Behaviour, ScenarioBook

#: Brasília time, the offset SEFAZ writes its timestamps in.
BRASILIA = timezone(timedelta(hours=-3))
#: ``verAplic`` of every answer.
APP_VERSION = "TORNADO-EMU-1.0"
DEFAULT_CANCEL_WINDOW = timedelta(hours=24)
DEFAULT_HISTORY = 1000
#: How much of each request and answer the history keeps (SEFAZ's lote limit is 500 KB).
MAX_KEPT_XML = 512 * 1024


def sefaz_time(moment: datetime) -> str:
    """``moment`` as SEFAZ writes it: Brasília time, seconds, ``-03:00`` (``TDateTimeUTC``)."""
    return moment.astimezone(BRASILIA).strftime("%Y-%m-%dT%H:%M:%S-03:00")


@dataclass(frozen=True, kw_only=True)
class RegisteredEvent:
    """An event registered against an NF-e (135).

    Attributes:
        key: chNFe.
        event_type: tpEvento (``110111`` cancellation, ``110110`` CC-e).
        sequence: nSeqEvento.
        protocol: The event's nProt.
        registered_at: dhRegEvento.
        proc_xml: ``procEventoNFe``: the signed ``evento`` as received and the ``retEvento``.
    """

    key: str
    event_type: str
    sequence: int
    protocol: str
    registered_at: datetime
    proc_xml: bytes


@dataclass(kw_only=True)
class Authorization:
    """An authorised NF-e (100).

    Attributes:
        key: chNFe.
        cnpj: The issuer (``emit/CNPJ`` or the zero-padded CPF, as in the key).
        model: mod.
        series: serie.
        number: nNF.
        protocol: nProt.
        received_at: dhRecbto.
        digest: digVal, the DigestValue of the NF-e's signature.
        prot_xml: The ``protNFe`` answered.
        events: Registered events, in order.
    """

    key: str
    cnpj: str
    model: int
    series: int
    number: int
    protocol: str
    received_at: datetime
    digest: str
    prot_xml: bytes
    events: list[RegisteredEvent] = field(default_factory=list)

    @property
    def cancellation(self) -> RegisteredEvent | None:
        """The registered cancellation (110111), if any."""
        return next((e for e in self.events if e.event_type == "110111"), None)


@dataclass(kw_only=True)
class Receipt:
    """An asynchronous lote (103) and what NFeRetAutorizacao4 answers for it.

    Attributes:
        number: nRec.
        cnpj: The issuer of the lote's first NF-e (for per-CNPJ scripts).
        uf_code: cUF of the answers.
        environment: tpAmb.
        keys: The lote's keys, in order.
        polls_left: How many more polls answer 105.
        protocols: The ``protNFe`` of each NF-e, answered with 104.
        cstats: The cStat of each ``protNFe``.
    """

    number: str
    cnpj: str | None
    uf_code: str
    environment: str
    keys: list[str]
    polls_left: int
    protocols: list[bytes]
    cstats: list[int]


@dataclass(frozen=True, kw_only=True)
class InutilizedRange:
    """A range of numbers inutilised (102)."""

    cnpj: str
    model: int
    series: int
    first: int
    last: int
    protocol: str
    received_at: datetime

    def overlaps(self, first: int, last: int) -> bool:
        """Whether ``first..last`` shares a number with this range."""
        return first <= self.last and self.first <= last


@dataclass(kw_only=True)
class ReceivedRequest:
    """One request, as the admin API shows it.

    Attributes:
        seq: 1, 2, ... in arrival order (never reused, even after the history drops old ones).
        received_at: When it arrived (emulator clock, ISO 8601).
        path: The URL path.
        service: The service, once known (``None`` if the envelope was unreadable).
        cnpj: The CNPJ the request is about, if any.
        keys: The access keys it carries (or is about), in order.
        scenario: The behaviour applied.
        outcome: ``pending``, ``answered``, ``fault`` (SOAP Fault), ``refused`` (404/405),
            ``dropped`` (connection closed unanswered), ``http_502``, or ``abandoned`` (the
            client had left when the answer was ready, e.g. during ``slow``).
        http_status: The HTTP status sent, if any.
        cstat: The message-level cStat answered (``retEnviNFe/cStat``...).
        document_cstats: Per document (``protNFe``, ``retEvento``) cStats, in order.
        payload: The NF-e message received (its first :data:`MAX_KEPT_XML` bytes), for the
            admin API's ``?xml=1``.
        answer: The NF-e message answered, if any (idem).
    """

    seq: int
    received_at: str
    path: str
    service: str | None = None
    cnpj: str | None = None
    keys: list[str] = field(default_factory=list)
    scenario: str | None = None
    outcome: str = "pending"
    http_status: int | None = None
    cstat: str | None = None
    document_cstats: list[str] = field(default_factory=list)
    payload: bytes = b""
    answer: bytes | None = None

    def to_json(self, *, with_xml: bool = False) -> dict[str, Any]:
        """The admin API's JSON; the XML only when asked."""
        data: dict[str, Any] = {
            "seq": self.seq,
            "received_at": self.received_at,
            "path": self.path,
            "service": self.service,
            "cnpj": self.cnpj,
            "keys": list(self.keys),
            "scenario": self.scenario,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "cStat": self.cstat,
            "document_cStats": list(self.document_cstats),
        }
        if with_xml:
            data["payload"] = self.payload.decode("utf-8", "replace")
            data["answer"] = None if self.answer is None else self.answer.decode("utf-8", "replace")
        return data


class EmulatorState:
    """Everything the emulator knows; :meth:`reset` returns it to how it started.

    Args:
        uf_code: cUF of the emulated authoriser, used when a request names none (35, SP).
        default: The default behaviour at start and after :meth:`reset`.
        cancel_window: How long after dhRecbto a cancellation is accepted (24 h).
        history_limit: How many requests :attr:`history` keeps.
        average_seconds: tMed answered with receipts and status.
        clock: The real clock (UTC); tests may inject one. The offset applies on top.
    """

    def __init__(
        self,
        *,
        uf_code: int = 35,
        default: Behaviour | None = None,
        cancel_window: timedelta = DEFAULT_CANCEL_WINDOW,
        history_limit: int = DEFAULT_HISTORY,
        average_seconds: int = 1,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.uf_code = f"{uf_code:02d}"
        self.initial_default = default or Behaviour()
        self.initial_cancel_window = cancel_window
        self.initial_average = average_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self.history: deque[ReceivedRequest] = deque(maxlen=history_limit)
        self.scenarios = ScenarioBook(default=self.initial_default)
        self._sequence = 0
        # Protocol and receipt numbers survive resets: SEFAZ never hands out the same one twice.
        self._protocols = 0
        self._receipt_numbers = 0
        self._reset_documents()

    def _reset_documents(self) -> None:
        self.authorizations: dict[str, Authorization] = {}
        self.numbers: dict[tuple[str, int, int], dict[int, str]] = {}
        self.receipts: dict[str, Receipt] = {}
        self.inutilized: list[InutilizedRange] = []
        self.clock_offset = timedelta(0)
        self.cancel_window = self.initial_cancel_window
        self.average_seconds = self.initial_average

    def reset(self) -> None:
        """Forget documents, scripts, requests, the clock offset and settings; back to the initial default.

        Request seqs, nProt and nRec keep counting, so nothing issued before a reset is issued again.
        """
        self._reset_documents()
        self.scenarios.clear(self.initial_default)
        self.history.clear()

    # --- clock and numbers -----------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's time: the real clock plus :attr:`clock_offset` (aware, UTC)."""
        return self._clock() + self.clock_offset

    def next_protocol(self, uf_code: str) -> str:
        """A new 15-digit nProt: ``1``, cUF, the year's two digits and a 10-digit sequence."""
        self._protocols += 1
        return f"1{uf_code}{self.now().astimezone(BRASILIA):%y}{self._protocols:010d}"

    def next_receipt(self, uf_code: str) -> str:
        """A new 15-digit nRec: cUF, ``1`` and a 12-digit sequence."""
        self._receipt_numbers += 1
        return f"{uf_code}1{self._receipt_numbers:012d}"

    # --- documents ---------------------------------------------------------------------------------

    def authorize(self, authorization: Authorization) -> None:
        """Record an authorised NF-e and the number it used."""
        self.authorizations[authorization.key] = authorization
        series = (authorization.cnpj, authorization.model, authorization.series)
        self.numbers.setdefault(series, {})[authorization.number] = authorization.key

    def key_using(self, cnpj: str, model: int, series: int, number: int) -> str | None:
        """The key of the authorised NF-e that used this number, if any."""
        return self.numbers.get((cnpj, model, series), {}).get(number)

    def used_numbers(self, cnpj: str, model: int, series: int, first: int, last: int) -> list[int]:
        """Numbers of ``first..last`` used by authorised NF-e of that series, ascending."""
        used: Iterable[int] = self.numbers.get((cnpj, model, series), {})
        return sorted(n for n in used if first <= n <= last)

    def inutilized_overlapping(
        self, cnpj: str, model: int, series: int, first: int, last: int
    ) -> list[InutilizedRange]:
        """Inutilised ranges of that series sharing a number with ``first..last``."""
        return [
            r
            for r in self.inutilized
            if (r.cnpj, r.model, r.series) == (cnpj, model, series) and r.overlaps(first, last)
        ]

    # --- requests ----------------------------------------------------------------------------------

    def receive(self, path: str) -> ReceivedRequest:
        """Start the record of a request that just arrived."""
        self._sequence += 1
        record = ReceivedRequest(seq=self._sequence, received_at=self.now().isoformat(), path=path)
        self.history.append(record)
        return record

    def documents_json(self) -> dict[str, Any]:
        """Authorised NF-e, receipts and inutilised ranges, for the admin API."""
        return {
            "authorized": [_authorization_json(a) for a in self.authorizations.values()],
            "receipts": [
                {"nRec": r.number, "cnpj": r.cnpj, "keys": r.keys, "polls_left": r.polls_left}
                for r in self.receipts.values()
            ],
            "inutilized": [
                {
                    "cnpj": r.cnpj, "model": r.model, "series": r.series, "first": r.first, "last": r.last,
                    "nProt": r.protocol, "received_at": sefaz_time(r.received_at),
                }
                for r in self.inutilized
            ],
        }  # fmt: skip


def _authorization_json(authorization: Authorization) -> dict[str, Any]:
    return {
        "chNFe": authorization.key,
        "cnpj": authorization.cnpj,
        "model": authorization.model,
        "series": authorization.series,
        "number": authorization.number,
        "nProt": authorization.protocol,
        "dhRecbto": sefaz_time(authorization.received_at),
        "digVal": authorization.digest,
        "cancelled": authorization.cancellation is not None,
        "events": [
            {"tpEvento": e.event_type, "nSeqEvento": e.sequence, "nProt": e.protocol}
            for e in authorization.events
        ],
    }
