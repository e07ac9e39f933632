"""A task version's contract: what the API needs to accept its jobs without its code.

Stored by the release store, printed by ``tornado release describe``; the payload is checked
against the version's JSON Schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from tornado_core.errors import PayloadInvalid


@dataclass(frozen=True, kw_only=True)
class TaskVersion:
    """What the API needs to accept jobs of a task version it has no code for.

    Attributes:
        task: Task name.
        version: Task version.
        payload_schema: JSON Schema of the payload (draft 2020-12, as pydantic emits it).
        max_attempts: Attempts before the dead-letter queue (the queue's redrive count).
        visibility_timeout: Seconds a received message stays hidden between heartbeats.
        timeout: Seconds one attempt may run.
        description: One line for people.
    """

    task: str
    version: str
    payload_schema: dict[str, Any] = field(repr=False)
    max_attempts: int
    visibility_timeout: float
    timeout: float
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``tornado release describe`` prints)."""
        return {
            "task": self.task,
            "version": self.version,
            "payload_schema": self.payload_schema,
            "max_attempts": self.max_attempts,
            "visibility_timeout": self.visibility_timeout,
            "timeout": self.timeout,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> TaskVersion:
        """Parse :meth:`to_json` output (a dict or its JSON text).

        Raises:
            ValueError: Not a task version description.
        """
        raw = json.loads(data) if isinstance(data, str) else data
        try:
            return cls(
                task=str(raw["task"]),
                version=str(raw["version"]),
                payload_schema=dict(raw["payload_schema"]),
                max_attempts=int(raw["max_attempts"]),
                visibility_timeout=float(raw["visibility_timeout"]),
                timeout=float(raw["timeout"]),
                description=str(raw.get("description") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a task version description: {exc!r}") from exc

    @cached_property
    def _validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.payload_schema)

    def validate(self, payload: Any) -> None:
        """Check ``payload`` against the schema.

        Raises:
            PayloadInvalid: One ``{"field", "message"}`` per problem, fields named
                like pydantic's (``x.y``, ``items.0``; the web layer adds ``payload.``).
        """
        errors = sorted(self._validator.iter_errors(payload), key=lambda e: list(map(str, e.path)))
        problems: list[dict[str, str]] = []
        for error in errors:  # a ``required`` error per missing name repeats the others
            problems.extend(p for p in _problems(error) if p not in problems)
        if problems:
            raise PayloadInvalid(problems)


def _problems(error: ValidationError) -> list[dict[str, str]]:
    path = [str(part) for part in error.absolute_path]
    required, schema = error.validator_value, error.schema
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        missing = [name for name in required if name not in error.instance]
        return [{"field": ".".join([*path, name]), "message": "Field required"} for name in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(schema.get("properties", {})) if isinstance(schema, dict) else set()
        extra = [name for name in error.instance if name not in allowed]
        return [
            {"field": ".".join([*path, name]), "message": "Extra inputs are not permitted"} for name in extra
        ]
    return [{"field": ".".join(path) or "(payload)", "message": error.message}]
