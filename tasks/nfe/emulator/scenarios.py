"""Scripted behaviours of the emulator: what it does with the next request, besides the natural rules.

A :class:`Behaviour` is a named scenario and its parameters. The :class:`ScenarioBook` holds a
default behaviour and queues of scripted ones, each for a CNPJ, a service, or both. A request
takes the head of the most specific non-empty queue that matches it, ``(cnpj, service)``, then
``(cnpj, any service)``, then ``(any CNPJ, service)``, and falls back to the default when all are
empty. Status requests carry no CNPJ, so only service queues and the default reach them.

Scenarios:

* ``authorize``: the natural behaviour (validation, state, ``indSinc`` honoured).
* ``async``: an authorisation lote is answered 103 with a receipt even when ``indSinc=1``; the
  receipt answers 105 for ``polls`` polls, then 104. Other services behave naturally.
* ``throttle``: cStat 656 (consumo indevido) on any service; nothing is recorded.
* ``unavailable``: cStat ``status`` (108 or 109) on any service, status included.
* ``slow``: waits ``delay`` seconds (without blocking the loop), then behaves naturally; a
  client that gave up meanwhile still had its request processed.
* ``timeout``: holds the request for ``delay`` seconds or until the client disconnects, then
  drops the connection unanswered; nothing is processed.
* ``server_error``: HTTP 500 with a SOAP Fault (``Receiver``); nothing is processed.
* ``reject``: the NF-e of an authorisation lote is refused with cStat ``status``: 225 (the lote's
  schema), 297 (signature) or 301 (denied: irregularity of the issuer); nothing is authorised.
* ``lost_answer``: processes the request naturally (an NF-e gets authorised and recorded), then
  loses the answer: drops the connection (``lost="drop"``) or answers HTTP 502 as a broken
  proxy would (``lost="http_502"``). A later NFeConsultaProtocolo4 shows the outcome.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from tornado_core.errors import TornadoError

from ..soap import SERVICES
from .codes import SCRIPTED_REJECTIONS


class Scenario(StrEnum):
    """The named behaviours (see the module docstring)."""

    AUTHORIZE = "authorize"
    ASYNC = "async"
    THROTTLE = "throttle"
    UNAVAILABLE = "unavailable"
    SLOW = "slow"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    LOST_ANSWER = "lost_answer"
    REJECT = "reject"


#: How ``lost_answer`` loses the answer.
LOST_MODES = ("drop", "http_502")
#: Seconds ``slow`` waits and ``timeout`` holds, when not given.
DEFAULT_DELAY: Mapping[Scenario, float] = MappingProxyType({Scenario.SLOW: 2.0, Scenario.TIMEOUT: 120.0})
#: The longest ``delay`` accepted, so a typo cannot park a request for days.
MAX_DELAY = 3600.0
MAX_POLLS = 100
MAX_SCRIPTED = 10_000


class ScenarioInvalid(TornadoError):
    """A behaviour or script request names an unknown scenario, service or parameter value."""


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """A scenario and its parameters.

    Attributes:
        scenario: What to do.
        delay: Seconds ``slow`` waits before answering, and ``timeout`` holds before dropping.
        polls: How many times a receipt answers 105 before 104 (``async``, and ``authorize``
            with ``indSinc=0``).
        status: The cStat of ``unavailable``: 108 (paralisado momentaneamente) or 109 (sem
            previsão).
        lost: How ``lost_answer`` loses the answer: ``"drop"`` or ``"http_502"``.
    """

    scenario: Scenario = Scenario.AUTHORIZE
    delay: float = 0.0
    polls: int = 1
    status: int = 108
    lost: str = "drop"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Behaviour:
        """A behaviour from the admin API's JSON (``{"scenario": "slow", "delay": 1.5}``).

        Raises:
            ScenarioInvalid: Unknown scenario, unknown key, or a value out of range.
        """
        known = {"scenario", "delay", "polls", "status", "lost"}
        unknown = set(data) - known - {"count", "cnpj", "service"}
        if unknown:
            raise ScenarioInvalid(f"unknown field(s) {sorted(unknown)}; a behaviour has {sorted(known)}")
        try:
            scenario = Scenario(data.get("scenario", Scenario.AUTHORIZE))
        except ValueError:
            names = ", ".join(s.value for s in Scenario)
            raise ScenarioInvalid(f"unknown scenario {data.get('scenario')!r}; known: {names}") from None
        delay = _number(data.get("delay", DEFAULT_DELAY.get(scenario, 0.0)), "delay", 0.0, MAX_DELAY)
        polls = int(_number(data.get("polls", 1), "polls", 0, MAX_POLLS, integer=True))
        status = _status(scenario, data.get("status"))
        lost = data.get("lost", "drop")
        if lost not in LOST_MODES:
            raise ScenarioInvalid(f"lost must be one of {list(LOST_MODES)}, got {lost!r}")
        return cls(scenario=scenario, delay=delay, polls=polls, status=status, lost=lost)

    def to_json(self) -> dict[str, Any]:
        """The JSON form the admin API shows."""
        return {**asdict(self), "scenario": self.scenario.value}


def _status(scenario: Scenario, value: Any) -> int:
    if scenario is Scenario.REJECT:
        allowed = sorted(SCRIPTED_REJECTIONS)
        if value not in allowed or isinstance(value, bool):
            raise ScenarioInvalid(f"status of reject must be one of {allowed}, got {value!r}")
        return int(value)
    return int(_number(108 if value is None else value, "status", 108, 109, integer=True))


def _number(value: Any, name: str, low: float, high: float, *, integer: bool = False) -> float:
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if integer:
        valid = valid and float(value).is_integer()
    if not valid or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ScenarioInvalid(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return float(value)


@dataclass
class ScenarioBook:
    """The default behaviour and the scripted queues.

    Attributes:
        default: What requests no script matches get.
    """

    default: Behaviour = field(default_factory=Behaviour)
    _queues: dict[tuple[str | None, str | None], deque[Behaviour]] = field(default_factory=dict)

    def script(
        self, behaviour: Behaviour, count: int, *, cnpj: str | None = None, service: str | None = None
    ) -> None:
        """Queue ``count`` answers of ``behaviour`` for a CNPJ, a service, or both.

        Raises:
            ScenarioInvalid: Neither target given, unknown service, or a bad count.
        """
        if cnpj is None and service is None:
            raise ScenarioInvalid(
                "a script targets a cnpj, a service or both; otherwise set the default scenario"
            )
        if service is not None and service not in SERVICES:
            raise ScenarioInvalid(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SCRIPTED:
            raise ScenarioInvalid(f"count must be an integer from 1 to {MAX_SCRIPTED}, got {count!r}")
        self._queues.setdefault((cnpj, service), deque()).extend([behaviour] * count)

    def next_for(self, service: str, cnpj: str | None) -> Behaviour:
        """The behaviour of a request to ``service`` from ``cnpj``, consuming a scripted one."""
        targets: list[tuple[str | None, str | None]] = [(None, service)]
        if cnpj is not None:
            targets[:0] = [(cnpj, service), (cnpj, None)]
        for target in targets:
            queue = self._queues.get(target)
            if queue:
                return queue.popleft()
        return self.default

    def scripts(self) -> list[dict[str, Any]]:
        """The pending scripts, for the admin API: target, and behaviours in order."""
        return [
            {"cnpj": cnpj, "service": service, "pending": [b.to_json() for b in queue]}
            for (cnpj, service), queue in self._queues.items()
            if queue
        ]

    def clear(self, default: Behaviour) -> None:
        """Forget every script and set the default."""
        self._queues.clear()
        self.default = default
