"""The local stack's error."""

from __future__ import annotations

from tornado_core.errors import TornadoError


class DevStackError(TornadoError):
    """A local service could not be installed, started, stopped or reached."""
