"""The types the validator's checks share: a :class:`Problem` and a :class:`Frame` of the parent chain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .layout_specs import RecordSpec

#: A group key: the detail record's name, then the key fields' values (normalised).
GroupKey = tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file.

    Attributes:
        line: 1-based line number (0 when the file is empty).
        record: The line's record type (``C170``), or ``""`` when the line has none.
        field: The field at fault, or ``None`` for the whole record.
        message: What is wrong, in words.
    """

    line: int
    record: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.record}.{self.field}" if self.field else self.record or "(no record)"
        return f"line {self.line}, {where}: {self.message}"


@dataclass(eq=False)
class Frame:
    """An open record of the current parent chain (``0000`` > ``C001`` > ``C100``) and its running sums.

    Only the chain is kept, never the file: a frame is dropped when a record that is not its
    descendant arrives.

    Attributes:
        spec: The record's layout.
        line: Where it is.
        values: Its fields by name, or ``None`` when the field count was wrong.
        parent: The enclosing frame (``None`` at the root).
        no_children: A layout exception forbids children (a cancelled document).
        children: How many children of each type it has had so far.
        watermark: Layout order of the latest child, so siblings stay in layout order.
        watermark_name: That child's record name, for the message.
        tainted: A child could not be read, so sums over the children are not compared.
        sums: Sums of child fields, by ``"CHILD.FIELD"``; ``None`` once a value was unreadable.
        groups: Sums of detail fields by group key (C170 by CST, CFOP and rate).
        group_lines: First line and label of each group key.
        summarized: The group keys a summary record (C190) has covered.
    """

    spec: RecordSpec
    line: int
    values: Mapping[str, str] | None
    parent: Frame | None = None
    no_children: bool = False
    children: Counter[str] = field(default_factory=Counter)
    watermark: int = -1
    watermark_name: str = ""
    tainted: bool = False
    sums: dict[str, Decimal | None] = field(default_factory=dict)
    groups: dict[GroupKey, dict[str, Decimal | None]] = field(default_factory=dict)
    group_lines: dict[GroupKey, tuple[int, str]] = field(default_factory=dict)
    summarized: set[GroupKey] = field(default_factory=set)
