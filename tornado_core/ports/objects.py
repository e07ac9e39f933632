"""The object-store port (S3): claim-checked payloads, results and task files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol


class ObjectUpload(Protocol):
    """Bytes being streamed into one object (see :meth:`ObjectStorePort.upload`)."""

    def write(self, data: bytes) -> int:
        """Append ``data``; returns its length (so the upload can stand for a binary file)."""


class ObjectStorePort(Protocol):
    """Bytes by key in one bucket. Methods raise ``ObjectStoreError`` on failure."""

    bucket: str

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``, replacing any previous object."""

    def get(self, key: str) -> bytes:
        """Read an object; raises ``ObjectStoreError`` if it does not exist."""

    def read_chunks(self, key: str, *, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """Read an object of any size piece by piece, with flat memory.

        Raises:
            ObjectStoreError: The key does not exist or the store failed (also midway).
        """

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

    def upload(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> AbstractContextManager[ObjectUpload]:
        """Stream an object of any size into ``key`` with flat memory (S3 multipart upload).

        The object becomes visible, whole, only when the ``with`` block ends without an error.
        If the block raises, the upload is abandoned; if the process dies, the unfinished upload
        stays invisible and the next upload to the same key discards it. Either way readers see
        the previous object under ``key`` (or none), never part of the new one.

        Args:
            key: Where the object goes.
            content_type: Its ``Content-Type``.
        """
