"""Reconciliations: parent totals against their children, summaries against their details, the apuração.

The rules are data (``reconciliations`` in the layout file):

* ``totals``: ``C100.VL_ICMS`` is the sum of its ``C190.VL_ICMS`` (and the other ICMS/IPI
  totals); ``E110.VL_ICMS_RECOLHER + DEB_ESP`` is the sum of its ``E116.VL_OR``. Checked when
  the parent closes, reported on the parent's line.
* ``groups``: in each ``C100``, a ``C190``'s ``VL_BC_ICMS``, ``VL_ICMS``, ``VL_BC_ICMS_ST``,
  ``VL_ICMS_ST`` and ``VL_IPI`` are the sums of the ``C170`` with the same ``CST_ICMS``,
  ``CFOP`` and ``ALIQ_ICMS``, when the document has items (own NF-e often has none). Checked on
  the ``C190`` line (the items come first); an item combination without its ``C190`` is
  reported on its first item when the document closes.
* ``apuracao``: see :mod:`.checks_apuracao`.

Sums live on the open document's frame and go with it. A value that cannot be read (already
reported as a format problem) suspends the comparison it feeds rather than adding a second,
misleading problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import TypeVar

from .checks_apuracao import Apuracao
from .checks_fields import Amounts, show_amount
from .layout_specs import GroupRule, RecordSpec, TotalRule
from .layouts import Layout
from .model import Frame, GroupKey, Problem

_Rule = TypeVar("_Rule", TotalRule, GroupRule)
_ZERO = Decimal(0)


def _index(rules: Iterable[_Rule], attribute: str) -> Mapping[str, tuple[_Rule, ...]]:
    index: dict[str, list[_Rule]] = {}
    for rule in rules:
        index.setdefault(str(getattr(rule, attribute)), []).append(rule)
    return MappingProxyType({name: tuple(items) for name, items in index.items()})


def _add(sums: dict[str, Decimal | None], name: str, value: Decimal | None) -> None:
    current = sums.get(name, _ZERO)
    sums[name] = None if current is None or value is None else current + value


def _label(rule: GroupRule, values: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {values[name] or '(empty)'}" for name in rule.key)


class Totals:
    """The reconciliation rules of one layout, applied as records arrive and as frames close."""

    def __init__(self, layout: Layout) -> None:
        self._by_parent = _index(layout.totals, "parent")
        self._by_detail = _index(layout.groups, "detail")
        self._by_summary = _index(layout.groups, "summary")
        self._by_scope = _index(layout.groups, "scope")
        self._feeds = MappingProxyType({
            child: tuple((rule.parent, name, f"{child}.{name}") for rule in rules for name in rule.fields)
            for child, rules in _index(layout.totals, "child").items()
        })  # fmt: skip
        self._amount = Amounts()
        self._apuracao = None if layout.apuracao is None else Apuracao(layout.apuracao, self._amount)
        feeding = [*self._feeds, *self._by_detail, *self._by_summary]
        if layout.apuracao is not None:
            rule = layout.apuracao
            feeding += [rule.period, rule.record, *(source.record for source in rule.sources)]
        #: The records :meth:`record` has something to do with.
        self.records = frozenset(feeding)
        #: The records :meth:`close` has something to do with.
        self.closing = frozenset([*self._by_parent, *self._by_scope])

    def record(
        self, parent: Frame | None, spec: RecordSpec, line: int, values: Mapping[str, str] | None
    ) -> Iterator[Problem]:
        """Feed one record (``parent`` is its parent's frame, ``None`` at the root or for an orphan)."""
        if self._apuracao is not None:
            yield from self._apuracao.record(parent, spec, line, values)
        if parent is None:
            return
        if values is None:
            parent.tainted = True
            return
        for parent_name, name, key in self._feeds.get(spec.name, ()):
            if parent.spec.name == parent_name:
                _add(parent.sums, key, self._amount(values[name]))
        for group in self._by_detail.get(spec.name, ()):
            if parent.spec.name == group.scope:
                self._add_detail(group, parent, line, values)
        for group in self._by_summary.get(spec.name, ()):
            if parent.spec.name == group.scope:
                yield from self._summary(group, parent, line, values)

    def _key(self, rule: GroupRule, values: Mapping[str, str]) -> GroupKey:
        parts = [rule.detail]
        for name in rule.key:
            number = self._amount(values[name])
            parts.append(values[name] if number is None else str(number.normalize()))
        return tuple(parts)

    def _add_detail(self, rule: GroupRule, scope: Frame, line: int, values: Mapping[str, str]) -> None:
        key = self._key(rule, values)
        sums = scope.groups.get(key)
        if sums is None:
            sums = scope.groups[key] = {}
            scope.group_lines[key] = (line, _label(rule, values))
        for name in rule.fields:
            _add(sums, name, self._amount(values[name]))

    def _summary(
        self, rule: GroupRule, scope: Frame, line: int, values: Mapping[str, str]
    ) -> Iterator[Problem]:
        key = self._key(rule, values)
        if key in scope.summarized:
            message = f"a second {rule.summary} for {_label(rule, values)} in this {rule.scope}"
            yield Problem(line, rule.summary, None, message)
            return
        scope.summarized.add(key)
        if scope.children[rule.detail] == 0 or scope.tainted:
            return
        sums = scope.groups.get(key)
        if sums is None:
            message = f"no {rule.detail} of this {rule.scope} has {_label(rule, values)}"
            yield Problem(line, rule.summary, None, message)
            return
        for name in rule.fields:
            expected, actual = sums.get(name), self._amount(values[name])
            if expected is not None and actual is not None and actual != expected:
                label = _label(rule, values)
                message = (
                    f"is {values[name]}, the {rule.detail} with {label} add up to {show_amount(expected)}"
                )
                yield Problem(line, rule.summary, name, message)

    def close(self, frame: Frame) -> Iterator[Problem]:
        """Compare the totals of a frame that just closed with its children's sums."""
        if frame.values is None or frame.tainted or frame.spec.name not in self.closing:
            return
        for total in self._by_parent.get(frame.spec.name, ()):
            yield from self._parent_total(total, frame, frame.values)
        for group in self._by_scope.get(frame.spec.name, ()):
            if frame.children[group.detail] == 0:
                continue
            for key, (line, label) in frame.group_lines.items():
                if key[0] == group.detail and key not in frame.summarized:
                    yield Problem(
                        line, group.detail, None, f"no {group.summary} in this {group.scope} for {label}"
                    )

    def _parent_total(self, rule: TotalRule, frame: Frame, values: Mapping[str, str]) -> Iterator[Problem]:
        if rule.skip_without_children and frame.children[rule.child] == 0:
            return
        for child_field, parent_fields in rule.fields.items():
            expected = frame.sums.get(f"{rule.child}.{child_field}", _ZERO)
            if rule.skip_without_children and not any(values[name] for name in parent_fields):
                continue
            total = self._sum(values, parent_fields)
            if expected is None or total is None or total == expected:
                continue
            if len(parent_fields) == 1:
                what = f"is {values[parent_fields[0]]}"
            else:
                what = f"{' + '.join(parent_fields)} is {show_amount(total)}"
            message = f"{what}, the {rule.child} {child_field} add up to {show_amount(expected)}"
            yield Problem(frame.line, frame.spec.name, parent_fields[0], message)

    def _sum(self, values: Mapping[str, str], names: tuple[str, ...]) -> Decimal | None:
        total = _ZERO
        for name in names:
            number = self._amount(values[name])
            if number is None:
                return None
            total += number
        return total
