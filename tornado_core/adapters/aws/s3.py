"""The Amazon S3 object-store adapter (also runs against the local moto endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tornado_core.adapters.aws.errors import error_code
from tornado_core.adapters.aws.s3_upload import PART_BYTES, MultipartUpload
from tornado_core.errors import ObjectStoreError

_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou"})


class S3ObjectStore:
    """:class:`tornado_core.ports.objects.ObjectStorePort` on one S3 bucket.

    Args:
        client: A boto3 S3 client (see :func:`tornado_core.adapters.aws.clients.make_client`).
        bucket: The bucket every key lives in.
        list_page_size: Keys per ListObjectsV2 call (S3 returns at most 1000).
        upload_part_bytes: Size of the parts :meth:`upload` sends (S3's minimum is 5 MiB).
    """

    def __init__(
        self, client: Any, bucket: str, *, list_page_size: int = 1000, upload_part_bytes: int = PART_BYTES
    ) -> None:
        self._client = client
        self.bucket = bucket
        self._page_size = list_page_size
        self._part_bytes = upload_part_bytes

    def ensure_bucket(self) -> None:
        """Create the bucket in the client's region unless it exists already."""
        region = self._client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            with self._call("create bucket", ""):
                self._client.create_bucket(**kwargs)
        except ObjectStoreError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and error_code(cause) in _BUCKET_EXISTS_CODES):
                raise

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``, replacing any previous object."""
        with self._call("put", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    @contextmanager
    def upload(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> Iterator[MultipartUpload]:
        """Stream an object into ``key`` (multipart); visible only if the block ends without an error.

        Unfinished uploads to ``key`` left by a writer that died are aborted first.
        """
        upload = MultipartUpload(
            self._client,
            self.bucket,
            key,
            content_type=content_type,
            part_bytes=self._part_bytes,
            guard=self._call,
        )
        upload.discard_unfinished()
        try:
            yield upload
        except BaseException:
            with suppress(ObjectStoreError):  # the next upload to the key discards it anyway
                upload.abort()
            raise
        upload.complete()

    def get(self, key: str) -> bytes:
        """Read an object.

        Raises:
            ObjectStoreError: The key does not exist or S3 failed.
        """
        with self._call("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            return bytes(response["Body"].read())

    def read_chunks(self, key: str, *, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object's body, ``chunk_bytes`` at a time.

        Raises:
            ObjectStoreError: The key does not exist or S3 failed (also midway).
        """
        with self._call("get", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                yield from body.iter_chunks(chunk_bytes)
            finally:
                body.close()

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        try:
            with self._call("head", key):
                self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectStoreError as exc:
            if isinstance(exc.__cause__, ClientError) and error_code(exc.__cause__) in _MISSING_KEY_CODES:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        """Delete ``key``; a missing key is not an error."""
        with self._call("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A presigned GET of ``key``, valid for ``expires_in`` seconds (no request to S3 is made)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        with self._call("presign", key):
            url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        keys: list[str] = []
        with self._call("list", prefix):
            paginator = self._client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        return sorted(keys)

    @contextmanager
    def _call(self, action: str, key: str) -> Iterator[None]:
        """Translate botocore failures into :class:`ObjectStoreError`."""
        where = f"s3://{self.bucket}/{key}"
        try:
            yield
        except ClientError as exc:
            if error_code(exc) in _MISSING_KEY_CODES:
                raise ObjectStoreError(f"{where} does not exist") from exc
            if error_code(exc) == "NoSuchBucket":
                raise ObjectStoreError(f"bucket {self.bucket} does not exist") from exc
            error = exc.response.get("Error", {})
            raise ObjectStoreError(
                f"S3 refused {action} {where}: {error.get('Code')}: {error.get('Message', '')}"
            ) from exc
        except BotoCoreError as exc:
            raise ObjectStoreError(f"S3 is unreachable ({action} {where}): {exc}") from exc
