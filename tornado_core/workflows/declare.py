"""Declaring a workflow in Python: steps, chains, fan-out/fan-in and result references, as the API's body.

Example::

    flow = Workflow("nfe-123")
    flow.chain(
        ("emit", "nfe.emit", {"invoice": 123}),
        ("danfe", "nfe.danfe", {"key": result_of("emit", "key")}),
        ("mail", "mail.send", {"attachment": result_of("danfe", "url")}),
    )
    client.submit_workflow(flow)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tornado_core.workflows.references import RESULT_KEY

#: A step as ``(name, task, payload)``.
StepTuple = tuple[str, str, dict[str, Any]]


def result_of(step: str, path: str = "") -> dict[str, str]:
    """A payload value standing for the result of ``step`` (or its field ``path``, dot-separated),
    filled in when the step holding it is submitted."""
    return {RESULT_KEY: step, "path": path} if path else {RESULT_KEY: step}


class Workflow:
    """A workflow being declared; :meth:`to_json` is the body of ``POST /v1/workflows``.

    Args:
        name: A label for people (shown in listings).
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._steps: list[dict[str, Any]] = []

    def step(
        self, name: str, task: str, payload: dict[str, Any] | None = None, *, after: Iterable[str] = ()
    ) -> str:
        """Add a step that runs once every step in ``after`` (declared before it) succeeded; its name."""
        self._steps.append({"name": name, "task": task, "payload": payload or {}, "after": list(after)})
        return name

    def chain(self, *steps: StepTuple, after: Iterable[str] = ()) -> str:
        """Add steps each running after the one before (the first after ``after``); the last's name."""
        previous = list(after)
        for name, task, payload in steps:
            previous = [self.step(name, task, payload, after=previous)]
        return previous[-1] if previous else ""

    def fan_out(self, steps: Sequence[StepTuple], *, after: Iterable[str] = ()) -> list[str]:
        """Add independent steps, all after ``after``; their names (a fan-in step comes after them)."""
        earlier = list(after)
        return [self.step(name, task, payload, after=earlier) for name, task, payload in steps]

    def batch(self, steps: Sequence[StepTuple], callback: StepTuple, *, after: Iterable[str] = ()) -> str:
        """Add independent steps and a callback step that runs once all of them succeeded."""
        names = self.fan_out(steps, after=after)
        name, task, payload = callback
        return self.step(name, task, payload, after=names)

    def to_json(self) -> dict[str, Any]:
        """The body of ``POST /v1/workflows``."""
        body: dict[str, Any] = {"steps": [dict(step) for step in self._steps]}
        if self.name:
            body["name"] = self.name
        return body


def chain(*steps: StepTuple, name: str = "") -> Workflow:
    """A workflow of steps each running after the one before."""
    flow = Workflow(name)
    flow.chain(*steps)
    return flow


def fan_out(steps: Sequence[StepTuple], fan_in: StepTuple | None = None, *, name: str = "") -> Workflow:
    """A workflow of independent steps, and an optional step after all of them (fan-in, callback)."""
    flow = Workflow(name)
    if fan_in is None:
        flow.fan_out(steps)
    else:
        flow.batch(steps, fan_in)
    return flow
