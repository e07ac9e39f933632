"""Job ids: recognised without the database, tenant-bound, stable for an idempotency key."""

from __future__ import annotations

import base64
import hashlib
import hmac

from tornado_core.job_ids import JobIds

SECRET = "test-secret"


def sha256_tagged(body: str, tenant: str) -> str:
    """An id as the API issued it before 2026-11-29 (HMAC-SHA256 tag)."""
    key = hashlib.sha256(SECRET.encode()).digest()
    digest = hmac.new(key, f"id\0{body}\0{tenant}".encode(), hashlib.sha256).digest()
    return body + base64.b32encode(digest).decode().lower()[:10]


def test_a_new_id_is_recognised_for_its_tenant_only() -> None:
    ids = JobIds(SECRET)
    job_id = ids.new("acme")
    assert len(job_id) == 36 and ids.belongs_to(job_id, "acme")
    assert not ids.belongs_to(job_id, "globex")
    assert not JobIds("another-secret").belongs_to(job_id, "acme")
    assert not ids.belongs_to(job_id[:-1] + ("a" if job_id[-1] != "a" else "b"), "acme")


def test_new_ids_sort_by_time() -> None:
    ids = JobIds(SECRET)
    assert ids.new("acme", now=1_700_000_000.0) < ids.new("acme", now=1_700_000_000.001)


def test_ids_issued_before_the_tag_changed_are_still_recognised() -> None:
    ids = JobIds(SECRET)
    old = sha256_tagged(ids.new("acme")[:26], "acme")
    assert ids.belongs_to(old, "acme") and not ids.belongs_to(old, "globex")


def test_an_idempotency_key_gives_the_id_it_always_gave() -> None:
    ids = JobIds(SECRET)
    job_id = ids.for_idempotency_key("acme", "nfe.emit\0pedido-42")
    assert job_id == ids.for_idempotency_key("acme", "nfe.emit\0pedido-42")
    assert job_id == sha256_tagged(job_id[:26], "acme")  # the same tag as before the change
    assert job_id != ids.for_idempotency_key("globex", "nfe.emit\0pedido-42")


def blake2b_tagged(body: str, tenant: str) -> str:
    """An id as the API has issued it since 2026-11-29 (keyed BLAKE2b tag, RFC 4648 base32)."""
    mac = hashlib.blake2b(key=hashlib.sha256(SECRET.encode()).digest(), digest_size=16)
    mac.update(f"id\0{body}\0{tenant}".encode())
    return body + base64.b32encode(mac.digest()).decode().lower()[:10]


def test_a_new_id_carries_the_documented_tag_so_every_api_process_agrees() -> None:
    ids = JobIds(SECRET)
    for _ in range(200):
        job_id = ids.new("acme")
        assert job_id == blake2b_tagged(job_id[:26], "acme")
        assert set(job_id[:26]) <= set("0123456789abcdefghjkmnpqrstvwxyz")


def test_the_first_ten_digits_are_the_milliseconds() -> None:
    job_id = JobIds(SECRET).new("acme", now=1_700_000_000.0)
    assert (
        int(
            job_id[:10].translate(
                str.maketrans("0123456789abcdefghjkmnpqrstvwxyz", "0123456789ABCDEFGHIJKLMNOPQRSTUV")
            ),
            32,
        )
        == 1_700_000_000_000
    )


def test_an_idempotency_key_gives_the_same_id_across_releases() -> None:
    # Computed by the release of 2026-11-28; a change here would duplicate re-submitted jobs.
    assert (
        JobIds(SECRET).for_idempotency_key("acme", "nfe.emit\0pedido-42")
        == "7pagdtwsjcxds1sdgs08a5brhkpbns2booor"
    )


def test_ids_issued_in_bulk_are_distinct_ids_of_the_tenant_with_the_documented_tag() -> None:
    ids = JobIds(SECRET)
    issued = ids.new_many("acme", 500)
    assert len(set(issued)) == 500
    assert all(job_id == blake2b_tagged(job_id[:26], "acme") for job_id in issued)
    assert all(ids.belongs_to(job_id, "acme") for job_id in issued)
    assert not any(ids.belongs_to(job_id, "globex") for job_id in issued)
    digits = set("0123456789abcdefghjkmnpqrstvwxyz")
    assert all(set(job_id[:26]) <= digits for job_id in issued)  # Crockford digits, as new() writes
    assert ids.new("acme", now=1.0) < issued[0]  # time-ordered with the ids new() gives
