"""Result references in a step's payload (``{"$result": "emit", "path": "key"}``), found and substituted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tornado_core.errors import StepInputMissing

#: The key that marks an object as a reference to another step's result.
RESULT_KEY = "$result"
_REFERENCE_KEYS = frozenset({RESULT_KEY, "path"})


@dataclass(frozen=True)
class Reference:
    """A reference found in a payload.

    Attributes:
        location: Where it sits in the payload (``numbers.0``; empty for the whole payload).
        step: The step whose result it takes.
        path: The field of that result (dot-separated keys or list indexes); empty for all of it.
        problem: Why it is malformed, if it is.
    """

    location: str
    step: Any
    path: Any = ""
    problem: str | None = None


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a ``{"$result": ...}`` object."""
    return isinstance(value, dict) and RESULT_KEY in value


def find_references(value: Any, location: str = "") -> Iterator[Reference]:
    """Every reference in ``value``, depth first, each with its location and any problem."""
    if is_reference(value):
        yield _reference(value, location)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from find_references(item, _join(location, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from find_references(item, _join(location, str(index)))


def substitute(value: Any, results: Mapping[str, Any]) -> Any:
    """``value`` with each reference replaced by the result (or result field) it names.

    Raises:
        StepInputMissing: A referred step has no result in ``results``, or its result no such field.
    """
    if is_reference(value):
        return _resolve(str(value[RESULT_KEY]), str(value.get("path", "")), results)
    if isinstance(value, dict):
        return {key: substitute(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, results) for item in value]
    return value


def _reference(value: dict[str, Any], location: str) -> Reference:
    step, path = value[RESULT_KEY], value.get("path", "")
    problem = None
    if set(value) - _REFERENCE_KEYS:
        problem = "a reference has only '$result' and 'path'"
    elif not isinstance(step, str) or not step:
        problem = "'$result' must name a step"
    elif not isinstance(path, str):
        problem = "'path' must be a string of dot-separated keys"
    return Reference(location, step, path, problem)


def _resolve(step: str, path: str, results: Mapping[str, Any]) -> Any:
    if step not in results:
        raise StepInputMissing(f"step {step!r} has no result")
    found = results[step]
    for key in (part for part in path.split(".") if part):
        if isinstance(found, dict) and key in found:
            found = found[key]
        elif isinstance(found, list) and key.isdigit() and int(key) < len(found):
            found = found[int(key)]
        else:
            raise StepInputMissing(f"the result of step {step!r} has no field {path!r}")
    return found


def _join(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key
