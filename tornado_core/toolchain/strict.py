"""Strict test runs: where a missing service fails the run instead of skipping tests.

On a developer's machine a test that needs a service that cannot start (PostgreSQL, the SQS/S3
endpoint, Docker's engine, a JDK) is skipped with the reason. In CI that would let a broken
machine pass green, so there it fails: ``TORNADO_STRICT`` (set by ``.ci/run`` and the Jenkins
library) or the usual ``CI`` variable, with any truthy value, turns strict mode on, and a strict
run that skipped anything fails (Tornado's pytest plugin checks it at the end of the session).
"""

from __future__ import annotations

from collections.abc import Mapping

#: Variables that turn strict mode on, the explicit one first.
STRICT_VARIABLES = ("TORNADO_STRICT", "CI")
_TRUE = frozenset({"1", "true", "yes", "on"})


def strict_mode(env: Mapping[str, str]) -> bool:
    """Whether ``env`` asks for a strict run (``TORNADO_STRICT`` wins over ``CI`` when set)."""
    for name in STRICT_VARIABLES:
        value = env.get(name)
        if value is not None and value.strip() != "":
            return value.strip().lower() in _TRUE
    return False
