"""A local SEFAZ for NF-e 4.00: the six web services over SOAP 1.2, with scripted misbehaviour.

The emulator answers the way a SEFAZ authoriser does, from what it was sent and what it
remembers: it validates every document against the XSD, verifies its signature and its key,
authorises (100 with nProt and digVal) or rejects (204, 539, 225, 297, 502...), serves
asynchronous lotes by receipt (103, 105, 104), consults (100, 101, 217), registers
cancellations and CC-e (135, 501, 573...) and inutilizações (102, 241...). On top of that it
plays named scenarios (``throttle``, ``unavailable``, ``slow``, ``timeout``, ``server_error``,
``lost_answer``, ``async``), as the default or scripted per CNPJ and/or service, and keeps
what it received for tests to inspect.

Modules: ``app`` (:func:`make_emulator_app`, the SOAP routes), ``admin`` (the JSON API under
``/emulator/``), ``scenarios``, ``state``, ``services`` and ``events`` (the natural rules),
``answers`` (the ``ret*`` XML), ``codes`` (the cStat table and our choices), ``checks``,
``facts`` and ``base`` (shared pieces), ``__main__`` (the process:
``python -m tornado_tasks.nfe.emulator``).
"""

from .app import make_emulator_app
from .checks import Checks
from .scenarios import Behaviour, Scenario, ScenarioBook, ScenarioInvalid
from .state import EmulatorState

__all__ = [
    "Behaviour",
    "Checks",
    "EmulatorState",
    "Scenario",
    "ScenarioBook",
    "ScenarioInvalid",
    "make_emulator_app",
]
