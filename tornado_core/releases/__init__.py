"""The release control plane: deploy, promote, ramp, pin, drain, retire and roll back task versions.

``manager`` holds the operations (:class:`ReleaseManager`); ``context``, ``deploy`` and
``queues`` are their steps; ``rollout`` runs a whole blue/green or canary plan; ``smoke``
submits a version's smoke jobs; ``view`` reports a task's state. See docs/releases.md.
"""

from tornado_core.releases.manager import DeployRequest, ReleaseManager

__all__ = ["DeployRequest", "ReleaseManager"]
