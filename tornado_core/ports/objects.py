"""The object-store port (S3): claim-checked payloads, results and task files."""

from __future__ import annotations

from typing import Protocol


class ObjectStorePort(Protocol):
    """Bytes by key in one bucket. Methods raise ``ObjectStoreError`` on failure."""

    bucket: str

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``, replacing any previous object."""

    def get(self, key: str) -> bytes:
        """Read an object; raises ``ObjectStoreError`` if it does not exist."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    def delete(self, key: str) -> None:
        """Delete ``key``; a missing key is not an error."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A link that lets whoever holds it read ``key`` for ``expires_in`` seconds (S3 presigned).

        Args:
            key: The object.
            expires_in: Seconds the link works.
            filename: Name a browser saves the download under (``Content-Disposition``).
        """
