"""The wheel cache is shared by concurrent builds (parallel test workers): no half-written file is read."""

from __future__ import annotations

from pathlib import Path

from tornado_core.adapters.runtimes.images.wheelhouse import _publish


def test_a_cached_wheel_appears_whole_under_its_name_or_not_at_all(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    during: list[tuple[bool, str]] = []

    def write(partial: Path) -> None:
        partial.write_bytes(b"PK" + b"\0" * 64)
        during.append((wheel.exists(), partial.suffix))

    _publish(wheel, write)

    assert during == [(False, ".partial")]  # pip's --find-links only looks at *.whl
    assert wheel.read_bytes() == b"PK" + b"\0" * 64
    assert [path.name for path in tmp_path.iterdir()] == [wheel.name]


def test_a_listing_is_replaced_whole(tmp_path: Path) -> None:
    listing = tmp_path / "resolved-abc.txt"
    listing.write_text("old-1.0-py3-none-any.whl\n")

    _publish(listing, lambda partial: partial.write_text("new-2.0-py3-none-any.whl\n"))

    assert listing.read_text() == "new-2.0-py3-none-any.whl\n"
    assert [path.name for path in tmp_path.iterdir()] == [listing.name]
