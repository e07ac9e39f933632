"""SEFAZ web-service endpoints as data: which URL serves a service for a UF and environment.

The URLs live in ``endpoints.json`` next to this module (shipped as package data), not in code:
SEFAZ moves services, and a move is a data change. The file holds:

* ``ufs``: each of the 27 UFs with its normal authority (its own SEFAZ, ``SVAN`` or ``SVRS``) and
  its virtual contingency authority (``SVC-AN`` or ``SVC-RS``, used with ``tpEmis`` 6 or 7);
* ``authorities``: for each authority and environment (``"1"`` production, ``"2"``
  homologation) the URL of each service it offers. A service it does not offer is absent (the
  SVCs have no ``NFeInutilizacao4``), and resolving it is an error rather than a guess.

``_source`` in the file says where the URLs come from. :meth:`EndpointTable.with_override`
points everything at one base URL: that is how the local emulator and the tests are wired,
while a settings change is all it takes to talk to the real homologation servers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from tornado_core.errors import ConfigError

#: The services this table resolves (NF-e layout 4.00, one WSDL each).
SERVICES: tuple[str, ...] = (
    "NFeAutorizacao4",
    "NFeRetAutorizacao4",
    "NFeConsultaProtocolo4",
    "NFeStatusServico4",
    "NFeRecepcaoEvento4",
    "NFeInutilizacao4",
)
#: tpAmb: 1 production, 2 homologation.
ENVIRONMENTS: tuple[int, ...] = (1, 2)
#: The bundled data file, a resource of this package.
BUNDLED_FILE = "endpoints.json"
_PACKAGE = __name__.rpartition(".")[0]
_SCHEMES = ("http", "https")


class EndpointUnknown(ConfigError):
    """No endpoint is configured for the UF, environment or service asked for.

    Attributes:
        kind: What is unknown: ``"uf"``, ``"environment"`` or ``"service"``.
        value: The value that was asked for.
    """

    def __init__(self, kind: str, value: object, detail: str = "") -> None:
        message = f"unknown {kind} {value!r}" + (f": {detail}" if detail else "")
        super().__init__(message)
        self.kind = kind
        self.value = value


@dataclass(frozen=True)
class Endpoint:
    """Where one request goes.

    Attributes:
        url: The service's URL (HTTPS for SEFAZ; the emulator may be plain HTTP on loopback).
        authority: Who answers: a UF's own SEFAZ (``"SP"``), ``"SVAN"``, ``"SVRS"``,
            ``"SVC-AN"`` or ``"SVC-RS"``.
    """

    url: str
    authority: str


@dataclass(frozen=True)
class _UfRoute:
    authority: str
    contingency: str


class EndpointTable:
    """The UF -> authority -> URL table, immutable once built.

    Build it with :meth:`bundled` or :meth:`from_mapping`; the constructor is internal.
    """

    def __init__(self, ufs: Mapping[str, _UfRoute], urls: Mapping[tuple[str, int, str], str]) -> None:
        self._ufs: Mapping[str, _UfRoute] = MappingProxyType(dict(ufs))
        self._urls: Mapping[tuple[str, int, str], str] = MappingProxyType(dict(urls))

    @classmethod
    def bundled(cls) -> EndpointTable:
        """The table shipped with the package (``endpoints.json``).

        Returns:
            A new table; callers keep it (nothing is cached at module level).

        Raises:
            ConfigError: The bundled file is malformed.
        """
        text = files(_PACKAGE).joinpath(BUNDLED_FILE).read_text(encoding="utf-8")
        return cls.from_mapping(json.loads(text))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EndpointTable:
        """A table from a mapping shaped like ``endpoints.json`` (keys starting with ``_`` are notes).

        Args:
            data: ``{"ufs": {UF: {"authority": A, "contingency": C}}, "authorities": {A: {"1":
                {service: url}, "2": {...}}}}``.

        Returns:
            The table.

        Raises:
            ConfigError: The mapping is malformed: a missing section, an unknown environment or
                service, a URL that is not http(s), a UF routed to an authority that is not listed.
        """
        ufs_data = _section(data, "ufs")
        authorities_data = _section(data, "authorities")
        urls: dict[tuple[str, int, str], str] = {}
        for authority in authorities_data:
            by_environment = _section(authorities_data, authority)
            for environment_key in by_environment:
                environment = _environment_key(authority, environment_key)
                for service, url in _section(by_environment, environment_key).items():
                    if service not in SERVICES:
                        raise ConfigError(f"endpoint table: {authority} lists unknown service {service!r}")
                    urls[(authority, environment, service)] = _checked_url(url, f"{authority}/{service}")
        ufs: dict[str, _UfRoute] = {}
        for uf in ufs_data:
            entry = _section(ufs_data, uf)
            ufs[uf] = _UfRoute(
                authority=_listed(entry, "authority", uf, authorities_data),
                contingency=_listed(entry, "contingency", uf, authorities_data),
            )
        return cls(ufs, urls)

    @property
    def ufs(self) -> tuple[str, ...]:
        """The UFs the table routes, sorted."""
        return tuple(sorted(self._ufs))

    def authority_for(self, uf: str, *, contingency: bool = False) -> str:
        """The authority that serves ``uf``: its normal one, or its SVC when ``contingency``.

        Raises:
            EndpointUnknown: ``uf`` is not in the table.
        """
        route = self._ufs.get(uf.strip().upper())
        if route is None:
            raise EndpointUnknown("uf", uf, "not a federative unit this table routes")
        return route.contingency if contingency else route.authority

    def resolve(self, uf: str, environment: int, service: str, *, contingency: bool = False) -> Endpoint:
        """The endpoint of ``service`` for ``uf`` in ``environment``.

        Args:
            uf: The issuer's UF (``"SP"``; case and surrounding blanks are ignored).
            environment: ``1`` production or ``2`` homologation (``tpAmb``).
            service: One of :data:`SERVICES`, e.g. ``"NFeAutorizacao4"``.
            contingency: Resolve at the UF's virtual contingency authority (SVC-AN or SVC-RS)
                instead of its normal one.

        Returns:
            The URL and the authority that answers there.

        Raises:
            EndpointUnknown: The UF, environment or service is unknown, or the authority does
                not offer the service (for example ``NFeInutilizacao4`` at an SVC).
        """
        if environment not in ENVIRONMENTS or isinstance(environment, bool):
            raise EndpointUnknown("environment", environment, "expected 1 (production) or 2 (homologation)")
        if service not in SERVICES:
            raise EndpointUnknown("service", service, f"expected one of {', '.join(SERVICES)}")
        authority = self.authority_for(uf, contingency=contingency)
        url = self._urls.get((authority, environment, service))
        if url is None:
            raise EndpointUnknown(
                "service", service, f"{authority} has no endpoint for it in environment {environment}"
            )
        return Endpoint(url=url, authority=authority)

    def with_override(self, base_url: str) -> EndpointTable:
        """The same table with every URL at ``base_url + "/ws/<service lowercased>.asmx"``.

        Routing does not change: each UF keeps its authorities, and a service an authority does
        not offer stays unknown, so code run against the emulator meets the same gaps as in
        production.

        Args:
            base_url: ``http(s)://host[:port][/prefix]``, e.g. ``"http://127.0.0.1:8765"``.

        Returns:
            A new table; this one is unchanged.

        Raises:
            ConfigError: ``base_url`` is not an http(s) URL with a host, or carries a query or
                fragment.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in _SCHEMES or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"endpoint override {base_url!r} is not an http(s) base URL")
        base = base_url.rstrip("/")
        urls = {key: f"{base}/ws/{key[2].lower()}.asmx" for key in self._urls}
        return EndpointTable(self._ufs, urls)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"endpoint table: {key!r} must be an object")
    return {k: v for k, v in value.items() if not str(k).startswith("_")}


def _environment_key(authority: str, key: str) -> int:
    if key not in {str(e) for e in ENVIRONMENTS}:
        raise ConfigError(f"endpoint table: {authority} lists unknown environment {key!r}")
    return int(key)


def _checked_url(url: object, where: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES or not urlsplit(url).netloc:
        raise ConfigError(f"endpoint table: {where} is not an http(s) URL: {url!r}")
    return url


def _listed(entry: Mapping[str, Any], key: str, uf: str, authorities: Mapping[str, Any]) -> str:
    name = entry.get(key)
    if not isinstance(name, str) or name not in authorities:
        raise ConfigError(f"endpoint table: UF {uf} names {key} {name!r}, which is not under 'authorities'")
    return name
