"""How the NF-e tasks reach SEFAZ: read from the worker's environment, once per job.

Every variable is optional; the defaults are the safe ones (homologation, the official
endpoints, the system's trusted CAs).

=================================  ===========================================================
``TORNADO_NFE_ENVIRONMENT``         ``2`` homologation (default) or ``1`` production (tpAmb).
``TORNADO_NFE_SEFAZ_URL``           One base URL for every service of every UF (the local
                                    emulator, or a proxy); unset: the official table
                                    (:mod:`.endpoints`). Pointing at real homologation is
                                    unsetting it.
``TORNADO_NFE_TRUSTED_CA``          PEM file of the CAs that sign SEFAZ's server certificates
                                    (the emulator's test CA locally); unset: the system's.
``TORNADO_NFE_MASTER_KEY``          Base64 of 32 bytes: decrypts the tenants' A1 certificates in
                                    the object store (:mod:`.certificate_store`). A secret.
``TORNADO_NFE_TIMEOUT``             Seconds a SEFAZ call may take (default 20).
``TORNADO_NFE_SENDS_PER_SECOND``    Sends per (CNPJ, UF) and second across all workers (default
                                    5): SEFAZ answers 656 and blocks an issuer that hammers it.
``TORNADO_NFE_THROTTLE_DELAY``     Seconds an issuer waits after SEFAZ answered 656 (default 60).
``TORNADO_NFE_SYNCHRONOUS``         ``1`` (default) asks for a synchronous answer (indSinc=1);
                                    ``0`` always asynchronous (103, then the receipt is polled).
``TORNADO_NFE_CONTINGENCY_AFTER``   Consecutive unavailability failures of a UF's authority
                                    after which emission switches to its SVC (default 0: only an
                                    operator switches, ``tornado nfe contingency``).
``TORNADO_NFE_CONTINGENCY_PROBE``   Seconds between two questions to a UF's own status service
                                    while it is in an automatic contingency (default 60).
=================================  ===========================================================
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tornado_core import ConfigError

_T = TypeVar("_T")

PREFIX = "TORNADO_NFE_"
HOMOLOGATION = 2
PRODUCTION = 1


@dataclass(frozen=True, kw_only=True)
class NfeConfig:
    """The NF-e settings of this worker (see the module's table)."""

    environment: int = HOMOLOGATION
    sefaz_url: str | None = None
    trusted_ca: Path | None = None
    master_key: bytes | None = None
    timeout: float = 20.0
    sends_per_second: int = 5
    throttle_delay: float = 60.0
    synchronous: bool = True
    contingency_after: int = 0
    contingency_probe: float = 60.0

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> NfeConfig:
        """Read ``TORNADO_NFE_*`` from ``env`` (``os.environ`` in a worker).

        Raises:
            ConfigError: A value is malformed (naming the variable).
        """
        return cls(
            environment=_choice(env, "ENVIRONMENT", {"1": PRODUCTION, "2": HOMOLOGATION}, HOMOLOGATION),
            sefaz_url=(env.get(PREFIX + "SEFAZ_URL") or "").rstrip("/") or None,
            trusted_ca=Path(env[PREFIX + "TRUSTED_CA"]) if env.get(PREFIX + "TRUSTED_CA") else None,
            master_key=_master_key(env.get(PREFIX + "MASTER_KEY")),
            timeout=_number(env, "TIMEOUT", 20.0),
            sends_per_second=int(_number(env, "SENDS_PER_SECOND", 5)),
            throttle_delay=_number(env, "THROTTLE_DELAY", 60.0),
            synchronous=_choice(env, "SYNCHRONOUS", {"1": True, "0": False}, True),
            contingency_after=int(_number(env, "CONTINGENCY_AFTER", 0, allow_zero=True)),
            contingency_probe=_number(env, "CONTINGENCY_PROBE", 60.0, allow_zero=True),
        )

    def require_master_key(self) -> bytes:
        """The master key.

        Raises:
            ConfigError: It is not set.
        """
        if self.master_key is None:
            raise ConfigError(f"{PREFIX}MASTER_KEY is not set: the A1 certificates cannot be read")
        return self.master_key


def _choice(env: Mapping[str, str], name: str, allowed: Mapping[str, _T], default: _T) -> _T:
    raw = env.get(PREFIX + name)
    if not raw:
        return default
    if raw not in allowed:
        raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return allowed[raw]


def _number(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = env.get(PREFIX + name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, not {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{PREFIX}{name} must be {'zero or ' if allow_zero else ''}positive, not {raw!r}")
    return value


def _master_key(raw: str | None) -> bytes | None:
    if not raw:
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ConfigError(f"{PREFIX}MASTER_KEY must be base64") from None
    if len(key) != 32:
        raise ConfigError(f"{PREFIX}MASTER_KEY must hold 32 bytes, not {len(key)}")
    return key
