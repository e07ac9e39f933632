"""The exact bytes of every NF-e document, sent and received, in the object store.

Keys are tenant-scoped and content-addressed::

    nfe/<tenant>/<access key>/<kind>-<sha256 of the bytes>.<ext>

so a stored file never changes (the same bytes give the same key; other bytes another key), a
redelivered job that stores the same document again writes nothing new, and a tenant's prefix
holds only its own documents. The key of each file is recorded in the ERP database next to the
document's status (``artifacts`` of :mod:`.emissions`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tornado_core import ObjectStorePort

#: Media types of the stored files, by extension.
CONTENT_TYPES = {"xml": "application/xml", "pdf": "application/pdf"}


@dataclass(frozen=True)
class Artifacts:
    """Stores one tenant's documents.

    Args:
        objects: The deployment's object store.
        tenant: The tenant the documents belong to.
    """

    objects: ObjectStorePort
    tenant: str

    def put(self, subject: str, kind: str, data: bytes, *, ext: str = "xml") -> str:
        """Store ``data`` under its content address; returns its key.

        Args:
            subject: What the file belongs to: an access key, or ``voiding/<job id>``.
            kind: What it is, e.g. ``nfe-signed``, ``autorizacao-request``, ``nfeProc``, ``danfe``.
            data: The exact bytes.
            ext: ``xml`` or ``pdf``.
        """
        key = artifact_key(self.tenant, subject, kind, data, ext=ext)
        # Storing the same bytes again under their own digest changes nothing: no need to ask first.
        self.objects.put(key, data, content_type=CONTENT_TYPES.get(ext, "application/octet-stream"))
        return key

    def get(self, key: str) -> bytes:
        """The bytes at ``key``, which must be one of this tenant's.

        Raises:
            PermissionError: ``key`` is not under this tenant's prefix.
        """
        if not key.startswith(tenant_prefix(self.tenant)):
            raise PermissionError(f"{key} is not a document of tenant {self.tenant!r}")
        return self.objects.get(key)


def tenant_prefix(tenant: str) -> str:
    """Where a tenant's NF-e files live."""
    return f"nfe/{tenant}/"


def artifact_key(tenant: str, subject: str, kind: str, data: bytes, *, ext: str = "xml") -> str:
    """The content-addressed key of ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{tenant_prefix(tenant)}{subject}/{kind}-{digest}.{ext}"
