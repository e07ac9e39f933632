"""Structure checks: block order and line counts (:class:`Blocks`), the record hierarchy (:class:`Hierarchy`).

Rules (Guia Prático, Cap. II, Seção 1):

* Blocks come in the layout's order (``0 B C D E G H K 1 9``) and every block is present.
  A block opens with ``x001`` and closes with ``x990``, whose count is the block's lines
  (block 0 counts ``0000``; block 9 counts ``9999``). ``x001``'s indicator says whether the
  block has data.
* Within a block each parent is followed by its children, siblings in layout order; a child
  never appears without its parent; a parent has the children its occurrence requires.

Only the open parent chain is kept (a few frames), whatever the size of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from types import MappingProxyType

from .layout_specs import RecordSpec
from .layouts import Layout
from .model import Frame, Problem


class Blocks:
    """Block order, ``x001``/``x990`` placement, ``x990`` counts and ``x001`` indicators."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._order: Mapping[str, int] = MappingProxyType({b: i for i, b in enumerate(layout.blocks)})
        roots = [spec.name for spec in layout.records.values() if spec.parent is None]
        self._file_end = roots[-1]
        self._current = -1
        self._lines = 0
        self._closed = False
        self._file_closed = False
        self._opening: tuple[int, str, str, int] | None = None
        #: Blocks reported missing (their x001/x990 are not reported again).
        self.missing: set[str] = set()

    def count_line(self) -> None:
        """Count one more line (any line, even unreadable) in the current block."""
        self._lines += 1

    def enter(
        self, spec: RecordSpec, line: int, values: Mapping[str, str] | None
    ) -> Generator[Problem, None, bool]:
        """Check where ``spec`` falls; return whether the hierarchy should place it too."""
        if self._file_closed:
            yield Problem(line, spec.name, None, f"nothing may follow {self._file_end}")
            return False
        index = self._order[spec.block]
        if index < self._current:
            current = self._layout.blocks[self._current]
            order = " ".join(self._layout.blocks)
            yield Problem(
                line, spec.name, None, f"record of block {spec.block} inside block {current}: {order}"
            )
            return False
        if index > self._current:
            placed = yield from self._open(spec, line, index)
            if not placed:
                return False
        elif self._closed and spec.name != self._file_end:
            closing = self._layout.closing_record(spec.block)
            yield Problem(line, spec.name, None, f"{spec.name} after {closing}: the block is closed")
            return False
        yield from self._within(spec, line, values)
        return True

    def _open(self, spec: RecordSpec, line: int, index: int) -> Generator[Problem, None, bool]:
        if self._current >= 0 and not self._closed:
            block = self._layout.blocks[self._current]
            closing = self._layout.closing_record(block)
            yield Problem(
                line, spec.name, None, f"block {block} is not closed by {closing} before {spec.name}"
            )
        for skipped in self._layout.blocks[self._current + 1 : index]:
            yield Problem(line, spec.name, None, self._missing(skipped))
        self._current, self._lines, self._closed = index, 1, False
        opening = self._layout.opening_record(spec.block)
        if spec.parent is not None and spec.name != opening:
            yield Problem(line, spec.name, None, f"block {spec.block} must open with {opening}")
            return False
        return True

    def _missing(self, block: str) -> str:
        self.missing.add(block)
        first, last = self._layout.blocks[0], self._layout.blocks[-1]
        opening, closing = self._layout.opening_record(block), self._layout.closing_record(block)
        return f"block {block} is missing: blocks {first} to {last} are all required ({opening}...{closing})"

    def _within(self, spec: RecordSpec, line: int, values: Mapping[str, str] | None) -> Iterator[Problem]:
        block = spec.block
        if spec.name == self._file_end:
            self._file_closed = True
        elif spec.name == self._layout.opening_record(block) and values is not None:
            indicator = spec.fields[1].name
            self._opening = (line, indicator, values[indicator], self._lines)
        elif spec.name == self._layout.closing_record(block):
            self._closed = True
            if values is not None:
                yield from self._count(spec, line, values)
            yield from self._indicator(block)

    def _count(self, spec: RecordSpec, line: int, values: Mapping[str, str]) -> Iterator[Problem]:
        field = spec.fields[1].name
        declared = values[field]
        last = self._current == len(self._layout.blocks) - 1
        expected = self._lines + (1 if last else 0)
        if declared.isdigit() and int(declared) != expected:
            also = f" (with {self._file_end})" if last else ""
            yield Problem(
                line, spec.name, field, f"is {declared}, block {spec.block} has {expected} lines{also}"
            )

    def _indicator(self, block: str) -> Iterator[Problem]:
        if self._opening is None:
            return
        line, field, value, before = self._opening
        self._opening = None
        data = self._lines - before - 1
        opening = self._layout.opening_record(block)
        if value == "1" and data > 0:
            yield Problem(line, opening, field, f"is 1 (no data) but block {block} has {data} data line(s)")
        elif value == "0" and data == 0:
            yield Problem(line, opening, field, f"is 0 (data) but block {block} has no data line")

    def finish(self, last_line: int, last_record: str) -> Iterator[Problem]:
        """What the end of the file leaves wrong: an open block, missing blocks, no closing record."""
        if self._current >= 0 and not self._closed:
            block = self._layout.blocks[self._current]
            message = f"block {block} is not closed by {self._layout.closing_record(block)}"
            yield Problem(last_line, last_record, None, message)
        for block in self._layout.blocks[self._current + 1 :]:
            yield Problem(last_line, last_record, None, self._missing(block))
        if not self._file_closed:
            yield Problem(last_line, last_record, None, f"the file must end with {self._file_end}")


class Hierarchy:
    """The open parent chain: parents before children, siblings in order, occurrences.

    Args:
        layout: The file's layout.
        on_close: Called with each frame as it closes (the reconciliations of its children).
        missing_blocks: Blocks already reported missing, whose records are not asked for again.
    """

    def __init__(
        self,
        layout: Layout,
        on_close: Callable[[Frame], Iterator[Problem]],
        missing_blocks: set[str],
    ) -> None:
        self._children = MappingProxyType({name: layout.children(name) for name in layout.records})
        # A record without children in the layout never opens a frame: nothing can hang from it.
        self._parents = frozenset(spec.parent for spec in layout.records.values() if spec.parent is not None)
        self._on_close = on_close
        self._missing_blocks = missing_blocks
        self._stack: list[Frame] = []
        self._roots: set[str] = set()
        #: The values of the file's first record (``0000``), which some requirements depend on.
        self._file: Mapping[str, str] = MappingProxyType({})

    def enter(
        self, spec: RecordSpec, line: int, values: Mapping[str, str] | None
    ) -> Generator[Problem, None, Frame | None]:
        """Place ``spec``; return its parent's frame (``None`` at the root or when the parent is missing)."""
        if spec.parent is None:
            if spec.name in self._roots:
                yield Problem(line, spec.name, None, f"only one {spec.name} per file")
                return None
            if not self._roots and values is not None:
                self._file = values
            self._roots.add(spec.name)
            yield from self._close_down_to(0)
            self._push(spec, line, values, None)
            return None
        index = self._find(spec.parent)
        if index is None:
            yield Problem(line, spec.name, None, f"{spec.name} without its parent {spec.parent}")
            return None
        yield from self._close_down_to(index + 1)
        parent = self._stack[index]
        yield from self._check_place(parent, spec, line)
        self._push(spec, line, values, parent)
        return parent

    def _find(self, name: str) -> int | None:
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index].spec.name == name:
                return index
        return None

    def _push(
        self, spec: RecordSpec, line: int, values: Mapping[str, str] | None, parent: Frame | None
    ) -> None:
        if spec.name not in self._parents:
            return
        relaxed = None if values is None else spec.relaxation(values)
        frame = Frame(spec, line, values, parent, no_children=relaxed is not None and relaxed.no_children)
        self._stack.append(frame)

    def _check_place(self, parent: Frame, spec: RecordSpec, line: int) -> Iterator[Problem]:
        name, parent_name = spec.name, parent.spec.name
        if parent.no_children:
            yield Problem(
                line, name, None, f"the {parent_name} of line {parent.line} may have no child record"
            )
        if spec.level > 1 and spec.order < parent.watermark:
            yield Problem(
                line, name, None, f"{name} must come before {parent.watermark_name} in its {parent_name}"
            )
        elif spec.order > parent.watermark:
            parent.watermark, parent.watermark_name = spec.order, name
        parent.children[name] += 1
        if spec.at_most_once and parent.children[name] > 1:
            yield Problem(line, name, None, f"only one {name} per {parent_name}")

    def _close_down_to(self, depth: int) -> Iterator[Problem]:
        while len(self._stack) > depth:
            frame = self._stack.pop()
            yield from self._required_children(frame)
            yield from self._on_close(frame)

    def _required_children(self, frame: Frame) -> Iterator[Problem]:
        if frame.no_children:
            return
        for child in self._children[frame.spec.name]:
            # Block openings and closings (level 1) are the block check's business.
            if child.level == 1 or child.block in self._missing_blocks:
                continue
            if frame.children[child.name]:
                continue
            name, when = frame.spec.name, child.required_when_file
            if child.at_least_one:
                yield Problem(frame.line, name, None, f"{name} must have a {child.name}")
            elif when is not None and when.holds(self._file):
                because = f"0000 {when.field} is {self._file.get(when.field)}"
                yield Problem(frame.line, name, None, f"{name} must have a {child.name} ({because})")

    def finish(self) -> Iterator[Problem]:
        """Close every open frame (the end of the file)."""
        yield from self._close_down_to(0)
