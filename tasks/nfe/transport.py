"""SOAP 1.2 calls to SEFAZ over mutual TLS, with the issuer's A1 certificate.

One :class:`SefazClient` per job: it builds its TLS context once (the A1 key is written to a
private temporary directory only for the moment :meth:`ssl.SSLContext.load_cert_chain` reads it),
and each :meth:`~SefazClient.call` returns the exact bytes sent and received, so the caller can
store them. What could not be answered raises :class:`SefazUnreachable`, which says whether the
request may have reached SEFAZ (then the caller must ask for the protocol before sending again).
"""

from __future__ import annotations

import functools
import http.client
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tornado_core import Retry

from . import soap
from .certificates import A1Certificate
from .config import NfeConfig
from .endpoints import Endpoint, EndpointTable


class SefazUnreachable(Retry):
    """No usable answer: connection refused, TLS failure, timeout, HTTP 5xx or a SOAP fault.

    Attributes:
        maybe_delivered: The request may have reached SEFAZ (it was sent in full): the document
            may be authorised, so ask for its protocol before sending it again.
        endpoint: Where the call went.
    """

    def __init__(self, message: str, *, endpoint: Endpoint, maybe_delivered: bool) -> None:
        super().__init__(f"{endpoint.authority} ({endpoint.url}): {message}")
        self.endpoint = endpoint
        self.maybe_delivered = maybe_delivered


@dataclass(frozen=True)
class Exchange:
    """One call: what went out, what came back, and the answer's NF-e message."""

    endpoint: Endpoint
    request: bytes
    response: bytes
    answer: bytes


class SefazClient:
    """Calls the services of the authority that serves a UF.

    Args:
        config: This worker's NF-e settings (endpoint override, trusted CAs, timeout).
        certificate: The issuer's A1 (the TLS client certificate).
        endpoints: The UF -> URL table (the official one unless ``config.sefaz_url`` is set).
    """

    def __init__(self, config: NfeConfig, certificate: A1Certificate, endpoints: EndpointTable) -> None:
        self._config = config
        self._endpoints = endpoints.with_override(config.sefaz_url) if config.sefaz_url else endpoints
        self._tls = _client_context(certificate, config.trusted_ca)

    def endpoint(self, uf: str, service: str, *, contingency: str | None = None) -> Endpoint:
        """Where ``service`` of ``uf`` is, at its own authority or at ``contingency`` (an SVC)."""
        return self._endpoints.resolve(
            uf, self._config.environment, service, contingency=contingency is not None
        )

    def call(
        self,
        uf: str,
        service: str,
        message: bytes,
        *,
        contingency: str | None = None,
        timeout: float | None = None,
    ) -> Exchange:
        """Send ``message`` (an ``enviNFe``, ``consSitNFe``...) to ``service`` for ``uf``.

        Args:
            uf: The issuer's UF.
            service: A service name of :data:`.soap.SERVICES`.
            message: The NF-e message, signed where it must be.
            contingency: ``"SVC-AN"``/``"SVC-RS"`` to go to the virtual contingency authority.
            timeout: Seconds for this call (at most the configured timeout).

        Raises:
            SefazUnreachable: No usable answer (see its ``maybe_delivered``).
        """
        endpoint = self.endpoint(uf, service, contingency=contingency)
        request = soap.wrap(service, message)
        seconds = min(timeout, self._config.timeout) if timeout is not None else self._config.timeout
        response = self._post(endpoint, service, request, max(seconds, 0.5))
        try:
            answer = soap.unwrap_response(response, expect=service)
        except soap.SoapError as exc:
            raise SefazUnreachable(
                f"unusable answer: {exc}", endpoint=endpoint, maybe_delivered=True
            ) from None
        return Exchange(endpoint=endpoint, request=request, response=response, answer=answer)

    def _post(self, endpoint: Endpoint, service: str, request: bytes, timeout: float) -> bytes:
        url = urlsplit(endpoint.url)
        if url.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        sent = False
        try:
            conn.putrequest("POST", url.path or "/")
            conn.putheader("Content-Type", soap.content_type(service))
            conn.putheader("Content-Length", str(len(request)))
            conn.endheaders(request)
            sent = True
            answer = conn.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise SefazUnreachable(_describe(exc, sent), endpoint=endpoint, maybe_delivered=sent) from None
        finally:
            conn.close()
        if answer.status >= 500 and not body.lstrip().startswith(b"<"):
            raise SefazUnreachable(f"HTTP {answer.status}", endpoint=endpoint, maybe_delivered=True)
        if answer.status >= 400 and b"Fault" not in body:
            raise SefazUnreachable(
                f"HTTP {answer.status}", endpoint=endpoint, maybe_delivered=answer.status >= 500
            )
        return body


def _describe(exc: BaseException, sent: bool) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer before the timeout" if sent else "timed out connecting"
    what = "the answer was lost" if sent else "could not send"
    return f"{what}: {type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=64)
def _client_context(certificate: A1Certificate, trusted_ca: Path | None) -> ssl.SSLContext:
    """The TLS context of an opened certificate (memoised per process; a context is thread-safe)."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(trusted_ca) if trusted_ca else None
    )
    directory = Path(tempfile.mkdtemp(prefix="tornado-nfe-tls-"))
    try:
        chain, key = certificate.client_tls_files(directory)
        context.load_cert_chain(chain, key)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context
