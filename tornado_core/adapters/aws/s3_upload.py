"""An object streamed into S3 in parts (multipart upload), visible only once it is complete."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

#: Bytes of a part: S3 refuses parts under 5 MiB (except the last) and more than 10,000 parts.
PART_BYTES = 8 * 1024 * 1024

#: How the store wraps an S3 call so that botocore failures become ``ObjectStoreError``.
CallGuard = Callable[[str, str], AbstractContextManager[None]]


class MultipartUpload:
    """Buffers at most one part in memory; an object smaller than a part is put in one request.

    Args:
        client: A boto3 S3 client.
        bucket: The bucket.
        key: The object's key.
        content_type: Its ``Content-Type``.
        part_bytes: Size a part is sent at (at least 5 MiB on real S3).
        guard: Translates botocore failures (the store's ``_call``).
    """

    def __init__(
        self, client: Any, bucket: str, key: str, *, content_type: str, part_bytes: int, guard: CallGuard
    ) -> None:
        self._client = client
        self._target = {"Bucket": bucket, "Key": key}
        self._content_type = content_type
        self._part_bytes = part_bytes
        self._guard = guard
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None

    def write(self, data: bytes) -> int:
        """Append ``data``; a full part is sent at once."""
        self._buffer += data
        if len(self._buffer) >= self._part_bytes:
            self._send_part()
        return len(data)

    def discard_unfinished(self) -> None:
        """Abort the uploads to this key that were begun and never completed (a dead writer's)."""
        with self._guard("list uploads", self._target["Key"]):
            listing = self._client.list_multipart_uploads(
                Bucket=self._target["Bucket"], Prefix=self._target["Key"]
            )
        for upload in listing.get("Uploads", []):
            if upload["Key"] == self._target["Key"]:
                with self._guard("abort upload", self._target["Key"]):
                    self._client.abort_multipart_upload(**self._target, UploadId=upload["UploadId"])

    def complete(self) -> None:
        """Make the object visible: one ``PutObject`` if it fits in a part, else the last part and
        ``CompleteMultipartUpload``."""
        if self._upload_id is None:
            with self._guard("put", self._target["Key"]):
                self._client.put_object(
                    **self._target, Body=bytes(self._buffer), ContentType=self._content_type
                )
            return
        if self._buffer:
            self._send_part()
        with self._guard("complete upload", self._target["Key"]):
            self._client.complete_multipart_upload(
                **self._target, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )

    def abort(self) -> None:
        """Give the upload up: nothing becomes visible and S3 frees the parts sent."""
        self._buffer.clear()
        if self._upload_id is not None:
            with self._guard("abort upload", self._target["Key"]):
                self._client.abort_multipart_upload(**self._target, UploadId=self._upload_id)

    def _send_part(self) -> None:
        key = self._target["Key"]
        if self._upload_id is None:
            with self._guard("begin upload", key):
                begun = self._client.create_multipart_upload(**self._target, ContentType=self._content_type)
            self._upload_id = str(begun["UploadId"])
        number = len(self._parts) + 1
        with self._guard(f"upload part {number} of", key):
            sent = self._client.upload_part(
                **self._target, UploadId=self._upload_id, PartNumber=number, Body=bytes(self._buffer)
            )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})
        self._buffer.clear()
