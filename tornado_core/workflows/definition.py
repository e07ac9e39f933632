"""A workflow's request body read and checked as one unit: steps, their order, references, tasks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tornado_core.errors import PayloadInvalid, TaskNotFound, TaskNotSubmittable, WorkflowInvalid
from tornado_core.ports.workflows import MAX_STEPS, StepSpec
from tornado_core.producer.submission import Submitter
from tornado_core.workflows.references import find_references

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_BODY_FIELDS = frozenset({"name", "steps"})
_STEP_FIELDS = frozenset({"name", "task", "payload", "after"})
_LONGEST_LABEL = 200
_LONGEST_TASK = 200

Problem = dict[str, str]


@dataclass(frozen=True)
class WorkflowDefinition:
    """A well-formed workflow: a label and its steps in declaration order."""

    name: str
    steps: tuple[StepSpec, ...]


def parse_workflow(body: Any) -> WorkflowDefinition:
    """The definition in a request body, checked for shape, names, order and references.

    Raises:
        WorkflowInvalid: Naming every offending field (``steps[3].after[0]``...).
    """
    if not isinstance(body, dict):
        raise WorkflowInvalid([{"field": "(body)", "message": "must be a JSON object"}])
    problems: list[Problem] = [
        {"field": k, "message": "unknown field"} for k in sorted(set(body) - _BODY_FIELDS)
    ]
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > _LONGEST_LABEL:
        problems.append(
            {"field": "name", "message": f"must be a string of at most {_LONGEST_LABEL} characters"}
        )
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list) or not 1 <= len(raw_steps) <= MAX_STEPS:
        problems.append({"field": "steps", "message": f"must be a list of 1 to {MAX_STEPS} steps"})
        raise WorkflowInvalid(problems)
    steps: list[StepSpec] = []
    ancestors: dict[str, set[str]] = {}
    for index, raw in enumerate(raw_steps):
        step_problems, step = _parse_step(raw, f"steps[{index}]", ancestors)
        problems.extend(step_problems)
        if step is not None:
            steps.append(step)
            ancestors[step.name] = set(step.after).union(*(ancestors[a] for a in step.after))
    if problems:
        raise WorkflowInvalid(problems)
    return WorkflowDefinition(name=name, steps=tuple(steps))


def check_tasks(
    definition: WorkflowDefinition, submitter: Submitter, tenant: str, *, internal_ok: bool = False
) -> None:
    """Check each step's task and payload as a submission would be (references stand for any value).

    Raises:
        WorkflowInvalid: Naming ``steps[i].task`` or ``steps[i].payload.<field>``.
    """
    problems: list[Problem] = []
    for index, step in enumerate(definition.steps):
        prefix = f"steps[{index}]"
        try:
            submitter.check(task=step.task, tenant=tenant, payload=step.payload, internal_ok=internal_ok)
        except TaskNotFound:
            problems.append({"field": f"{prefix}.task", "message": f"no task named {step.task!r}"})
        except TaskNotSubmittable:
            problems.append({"field": f"{prefix}.task", "message": f"{step.task} is internal"})
        except PayloadInvalid as exc:
            referred = [r.location for r in find_references(step.payload)]
            problems.extend(
                {"field": _payload_field(prefix, e["field"]), "message": e["message"]}
                for e in exc.errors
                if not _under_any(e["field"], referred)
            )
    if problems:
        raise WorkflowInvalid(problems)


def _parse_step(
    raw: Any, prefix: str, ancestors: dict[str, set[str]]
) -> tuple[list[Problem], StepSpec | None]:
    if not isinstance(raw, dict):
        return [{"field": prefix, "message": "must be a JSON object"}], None
    problems = [
        {"field": f"{prefix}.{k}", "message": "unknown field"} for k in sorted(set(raw) - _STEP_FIELDS)
    ]
    name, task, payload, after = (
        raw.get("name"),
        raw.get("task"),
        raw.get("payload", {}),
        raw.get("after", []),
    )
    if not isinstance(name, str) or not _NAME.match(name):
        message = "must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        problems.append({"field": f"{prefix}.name", "message": message})
    elif name in ancestors:
        problems.append({"field": f"{prefix}.name", "message": f"another step is named {name!r}"})
    if not isinstance(task, str) or not 1 <= len(task) <= _LONGEST_TASK:
        problems.append(
            {"field": f"{prefix}.task", "message": f"must be a string of 1 to {_LONGEST_TASK} characters"}
        )
    if not isinstance(payload, dict):
        problems.append({"field": f"{prefix}.payload", "message": "must be a JSON object"})
    problems.extend(_after_problems(after, prefix, ancestors))
    if problems:
        return problems, None
    problems.extend(_reference_problems(payload, prefix, str(name), after, ancestors))
    if problems:
        return problems, None
    return [], StepSpec(name=str(name), task=str(task), payload=payload, after=tuple(after))


def _after_problems(after: Any, prefix: str, ancestors: dict[str, set[str]]) -> list[Problem]:
    if not isinstance(after, list):
        return [{"field": f"{prefix}.after", "message": "must be a list of step names"}]
    problems: list[Problem] = []
    for position, earlier in enumerate(after):
        field = f"{prefix}.after[{position}]"
        if not isinstance(earlier, str) or earlier not in ancestors:
            problems.append({"field": field, "message": "must name a step declared before this one"})
        elif after.index(earlier) != position:
            problems.append({"field": field, "message": f"{earlier!r} is listed twice"})
    return problems


def _reference_problems(
    payload: dict[str, Any], prefix: str, name: str, after: list[str], ancestors: dict[str, set[str]]
) -> list[Problem]:
    reachable = set(after).union(*(ancestors[a] for a in after))
    problems: list[Problem] = []
    for ref in find_references(payload):
        field = _payload_field(prefix, ref.location)
        if ref.problem is not None:
            problems.append({"field": field, "message": ref.problem})
        elif ref.step not in reachable:
            problems.append({"field": field, "message": f"step {name!r} does not come after {ref.step!r}"})
    return problems


def _payload_field(prefix: str, location: str) -> str:
    inner = "" if location in ("", "(payload)") else f".{location}"
    return f"{prefix}.payload{inner}"


def _under_any(field: str, locations: Iterable[str]) -> bool:
    return any(loc == "" or field == loc or field.startswith(loc + ".") for loc in locations)
