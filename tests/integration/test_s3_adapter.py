"""S3ObjectStore against the real S3-compatible endpoint the project starts."""

from __future__ import annotations

import pytest

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.errors import ObjectStoreError, TornadoError
from tornado_core.local_machine import free_port


@pytest.fixture
def store(aws_endpoint_url: str) -> S3ObjectStore:
    client = make_client("s3", region="us-east-1", endpoint_url=aws_endpoint_url)
    return S3ObjectStore(client, "tornado", upload_part_bytes=5 * 1024 * 1024)  # S3's smallest part


def test_put_get_exists_delete(store: S3ObjectStore, unique_prefix: str) -> None:
    key = f"{unique_prefix}/payloads/job-1.json"
    assert not store.exists(key)
    store.put(key, b'{"a": 1}', content_type="application/json")
    assert store.exists(key)
    assert store.get(key) == b'{"a": 1}'
    store.put(key, b"replaced")
    assert store.get(key) == b"replaced"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting a missing key is fine


def test_binary_and_empty_objects_round_trip(store: S3ObjectStore, unique_prefix: str) -> None:
    data = bytes(range(256)) * 1000
    store.put(f"{unique_prefix}/bin", data)
    store.put(f"{unique_prefix}/empty", b"")
    assert store.get(f"{unique_prefix}/bin") == data
    assert store.get(f"{unique_prefix}/empty") == b""


def test_list_is_sorted_and_limited_to_the_prefix(store: S3ObjectStore, unique_prefix: str) -> None:
    for name in ("b", "a", "c/d"):
        store.put(f"{unique_prefix}/{name}", b"x")
    store.put(f"{unique_prefix}x/other", b"x")
    assert store.list(f"{unique_prefix}/") == [f"{unique_prefix}/{n}" for n in ("a", "b", "c/d")]
    assert store.list(f"{unique_prefix}/zzz") == []


def test_list_follows_every_page(aws_endpoint_url: str, unique_prefix: str) -> None:
    client = make_client("s3", region="us-east-1", endpoint_url=aws_endpoint_url)
    store = S3ObjectStore(client, "tornado", list_page_size=2)
    for i in range(5):
        store.put(f"{unique_prefix}/k{i}", b"")
    assert store.list(f"{unique_prefix}/") == [f"{unique_prefix}/k{i}" for i in range(5)]


def test_missing_key_is_an_object_store_error(store: S3ObjectStore, unique_prefix: str) -> None:
    with pytest.raises(ObjectStoreError, match=f"s3://tornado/{unique_prefix}/nope does not exist"):
        store.get(f"{unique_prefix}/nope")


def test_missing_bucket_is_reported_and_ensure_bucket_creates_it(
    aws_endpoint_url: str, unique_prefix: str
) -> None:
    store = S3ObjectStore(make_client("s3", region="us-east-1", endpoint_url=aws_endpoint_url), unique_prefix)
    with pytest.raises(ObjectStoreError, match=f"bucket {unique_prefix} does not exist"):
        store.put("k", b"x")
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    store.put("k", b"x")
    assert store.list("") == ["k"]


def test_unreachable_endpoint_is_an_object_store_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = S3ObjectStore(make_client("s3", region="us-east-1", endpoint_url=dead), "tornado")
    for call in (
        lambda: store.put("k", b"x"),
        lambda: store.get("k"),
        lambda: store.exists("k"),
        lambda: store.list(""),
        lambda: store.delete("k"),
        store.ensure_bucket,
    ):
        with pytest.raises(ObjectStoreError, match="unreachable") as caught:
            call()
        assert isinstance(caught.value, TornadoError)


MIB = 1024 * 1024


def uploads_in_progress(store: S3ObjectStore, key: str) -> list[str]:
    listing = store._client.list_multipart_uploads(Bucket=store.bucket, Prefix=key)
    return [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == key]


def test_an_upload_streams_in_parts_and_appears_whole_at_the_end(
    store: S3ObjectStore, unique_prefix: str
) -> None:
    key = f"{unique_prefix}/big.txt"
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with store.upload(key, content_type="text/plain") as out:
        for n in range(11):
            out.write(chunk[n:] + chunk[:n])
        assert uploads_in_progress(store, key)  # two 5 MiB parts are up already...
        assert not store.exists(key)  # ...and nothing is visible
    assert store.get(key) == b"".join(chunk[n:] + chunk[:n] for n in range(11))
    assert uploads_in_progress(store, key) == []
    head = store._client.head_object(Bucket=store.bucket, Key=key)
    assert head["ContentType"] == "text/plain"


def test_a_small_upload_is_one_put(store: S3ObjectStore, unique_prefix: str) -> None:
    key = f"{unique_prefix}/small.txt"
    with store.upload(key) as out:
        out.write(b"0000|")
        out.write(b"")
    assert store.get(key) == b"0000|"
    with store.upload(f"{unique_prefix}/empty") as out:
        pass
    assert store.get(f"{unique_prefix}/empty") == b""


def test_a_failed_upload_leaves_the_previous_object_and_no_parts(
    store: S3ObjectStore, unique_prefix: str
) -> None:
    key = f"{unique_prefix}/report.txt"
    store.put(key, b"the previous file")
    with pytest.raises(RuntimeError, match="generator failed"), store.upload(key) as out:
        out.write(b"x" * (6 * MIB))
        assert uploads_in_progress(store, key)  # one part sent
        raise RuntimeError("generator failed")
    assert store.get(key) == b"the previous file"
    assert uploads_in_progress(store, key) == []


def test_an_upload_left_by_a_dead_writer_is_discarded_by_the_next(
    store: S3ObjectStore, unique_prefix: str
) -> None:
    key = f"{unique_prefix}/efd.txt"
    dead = store._client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    store._client.upload_part(Bucket=store.bucket, Key=key, UploadId=dead, PartNumber=1, Body=b"half a file")
    assert not store.exists(key)
    with store.upload(key) as out:
        out.write(b"the whole file")
    assert store.get(key) == b"the whole file"
    assert uploads_in_progress(store, key) == []


def test_an_object_is_read_in_chunks(store: S3ObjectStore, unique_prefix: str) -> None:
    key = f"{unique_prefix}/part.txt"
    data = bytes(range(256)) * 40
    store.put(key, data)
    chunks = list(store.read_chunks(key, chunk_bytes=4096))
    assert [len(c) for c in chunks] == [4096, 4096, 2048] and b"".join(chunks) == data
    with pytest.raises(ObjectStoreError, match="does not exist"):
        list(store.read_chunks(f"{unique_prefix}/missing"))
