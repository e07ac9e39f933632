"""The local stack's error."""

from __future__ import annotations

from tornado_core.errors import TornadoError


class DevStackError(TornadoError):
    """A local service could not be installed, started, stopped or reached."""


class PortTaken(DevStackError):
    """Another program listens on the port a local service was to use."""

    def __init__(self, port: int, keeps: str) -> None:
        super().__init__(
            f"port {port} on 127.0.0.1 is taken by another program; stop it or "
            f"use another state dir ({keeps} keeps the port chosen at the first `up`)"
        )
        self.port = port
