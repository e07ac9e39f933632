"""ECS task scale-in protection while a worker runs jobs.

On ECS, scaling a service in (or a deployment replacing its tasks) may pick any
task; a protected one is left alone. The worker protects its task when it starts
working and clears the protection once idle, through the ECS container agent's
endpoint ``$ECS_AGENT_URI/task-protection/v1/state``. Used only when
``ECS_AGENT_URI`` is set (inside an ECS task); see :func:`protection_from_env`.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("tornado.ecs.protection")

#: Minutes a protection lasts unless cleared (ECS allows 1 to 2880).
DEFAULT_EXPIRES_MINUTES = 120

Opener = Callable[..., Any]


class TaskProtection:
    """A worker's ``on_busy_change`` hook that sets and clears the task's protection.

    Failures are logged, never raised: protection is a courtesy to the scheduler,
    and a job must not fail because the agent did not answer.

    Args:
        agent_uri: The value of ``ECS_AGENT_URI``.
        expires_minutes: How long a protection lasts if never cleared (a stuck worker).
        timeout: Seconds per call to the agent.
        opener: ``urllib.request.urlopen`` or a stand-in (tests).
    """

    def __init__(
        self,
        agent_uri: str,
        *,
        expires_minutes: int = DEFAULT_EXPIRES_MINUTES,
        timeout: float = 2.0,
        opener: Opener = urllib.request.urlopen,
    ) -> None:
        self.url = agent_uri.rstrip("/") + "/task-protection/v1/state"
        self._expires = min(max(int(expires_minutes), 1), 2880)
        self._timeout = timeout
        self._open = opener

    def __call__(self, busy: bool) -> None:
        """Protect the task (``busy``) or clear its protection."""
        body: dict[str, Any] = {"ProtectionEnabled": busy}
        if busy:
            body["ExpiresInMinutes"] = self._expires
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._open(request, timeout=self._timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except (OSError, ValueError) as exc:
            logger.warning("could not %s task protection: %s", "set" if busy else "clear", exc)
            return
        if isinstance(answer, dict) and answer.get("failure"):
            logger.warning("the ECS agent refused task protection: %s", answer["failure"])


def protection_from_env(env: Mapping[str, str]) -> TaskProtection | None:
    """A :class:`TaskProtection` when running in an ECS task (``ECS_AGENT_URI`` set), else ``None``.

    ``TORNADO_ECS_PROTECTION_MINUTES`` sets how long a protection lasts at most.
    """
    uri = env.get("ECS_AGENT_URI", "").strip()
    if not uri:
        return None
    minutes = env.get("TORNADO_ECS_PROTECTION_MINUTES", "").strip()
    return TaskProtection(uri, expires_minutes=int(minutes) if minutes.isdigit() else DEFAULT_EXPIRES_MINUTES)
