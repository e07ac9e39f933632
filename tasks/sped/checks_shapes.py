"""A fast path for the field checks: one regular expression per record type matches a valid line.

Most lines of a real file are valid, and checking 38 fields one by one in Python is what costs.
:class:`RecordShape` compiles, for each record, a pattern that only a line with the right field
count, formats and sizes can match (it is never more lenient than :mod:`.checks_fields`, at
times stricter). A line that matches still gets the checks a pattern cannot do (allowed values,
real dates, check digits, conditional requirements, field groups); a line that does not match
goes through the field-by-field checks, which say what is wrong. The result is the same either
way, only faster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from .checks_fields import FieldIssue, field_problems, group_problems, value_problem
from .layout_specs import FieldSpec, RecordSpec
from .layouts import Layout


def _text_pattern(field: FieldSpec) -> str:
    if field.size is None:
        body = "[^|]+"
    elif field.exact:
        body = f"[^|]{{{field.size}}}"
    else:
        body = f"[^|]{{1,{field.size}}}"
    return f"(?! ){body}(?<! )"


def _number_pattern(field: FieldSpec) -> str:
    places = field.decimals
    if field.size is None:
        whole = "[0-9]+"
    elif field.exact and not places:
        whole = f"[0-9]{{{field.size}}}"
    else:
        whole = f"[0-9]{{1,{max(field.size - places, 1)}}}"
    return whole + (f"(?:,[0-9]{{1,{places}}})?" if places else "")


def field_pattern(field: FieldSpec) -> str:
    """The regular expression of a valid value of ``field`` (empty allowed unless it is required)."""
    if field.type == "C":
        body = _text_pattern(field)
    elif field.type == "N":
        body = _number_pattern(field)
    else:
        body = "[0-9]{8}" if field.type == "date" else "[0-9]{6}"
    return body if field.required else f"(?:{body})?"


def _needs_more(field: FieldSpec) -> bool:
    return bool(field.values or field.check or field.required_when) or field.type in ("date", "period")


class RecordShape:
    """The fast path of one record type."""

    def __init__(self, spec: RecordSpec) -> None:
        self.spec = spec
        self.pattern = re.compile(r"\|".join(field_pattern(field) for field in spec.fields))
        # REG needs nothing more: the record was found by it.
        self.extra = tuple(
            (index, field) for index, field in enumerate(spec.fields) if index and _needs_more(field)
        )

    def problems(
        self, text: str, values: Sequence[str], mapping: Mapping[str, str] | None
    ) -> Iterator[FieldIssue]:
        """The field problems of a line whose fields (``text`` joined by ``|``) are ``values``."""
        relaxed = mapping is not None and self.spec.relaxations and self.spec.relaxation(mapping) is not None
        if mapping is None or relaxed or self.pattern.fullmatch(text) is None:
            yield from field_problems(self.spec, values, mapping)
            return
        for index, field in self.extra:
            value = values[index]
            required = not value and field.required_when is not None and field.required_when.holds(mapping)
            message = value_problem(field, value, required=required)
            if message is not None:
                yield field.name, message
        if self.spec.one_of or self.spec.at_most_one:
            yield from group_problems(self.spec, mapping)


class FieldChecks:
    """The field checks of every record of a layout (compiled once per file)."""

    def __init__(self, layout: Layout) -> None:
        self._shapes = {name: RecordShape(spec) for name, spec in layout.records.items()}

    def problems(
        self, spec: RecordSpec, text: str, values: Sequence[str], mapping: Mapping[str, str] | None
    ) -> Iterator[FieldIssue]:
        """Every field problem of one record (see :func:`.checks_fields.field_problems`)."""
        yield from self._shapes[spec.name].problems(text, values, mapping)
