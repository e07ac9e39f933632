"""The in-memory object store keeps the port's promises that unit tests rely on."""

from __future__ import annotations

import pytest

from tornado_core.adapters.memory.stores import MemoryObjectStore


def test_an_upload_appears_whole_when_its_block_ends() -> None:
    objects = MemoryObjectStore()
    with objects.upload("sped/a.txt") as out:
        out.write(b"0000|")
        assert not objects.exists("sped/a.txt")
        out.write(b"9999|")
    assert objects.get("sped/a.txt") == b"0000|9999|"


def test_a_failed_upload_leaves_the_previous_object() -> None:
    objects = MemoryObjectStore()
    objects.put("sped/a.txt", b"before")
    with pytest.raises(RuntimeError), objects.upload("sped/a.txt") as out:
        out.write(b"half")
        raise RuntimeError("writer failed")
    assert objects.get("sped/a.txt") == b"before"


def test_an_object_is_read_in_chunks() -> None:
    objects = MemoryObjectStore()
    objects.put("a", b"0123456789")
    assert list(objects.read_chunks("a", chunk_bytes=4)) == [b"0123", b"4567", b"89"]
