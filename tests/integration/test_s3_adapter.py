"""S3ObjectStore against the real S3-compatible endpoint the project starts."""

from __future__ import annotations

import pytest

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.errors import ObjectStoreError, TornadoError
from tornado_core.local_machine import free_port


@pytest.fixture
def store(aws_endpoint_url: str) -> S3ObjectStore:
    return S3ObjectStore(make_client("s3", region="us-east-1", endpoint_url=aws_endpoint_url), "tornado")


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
