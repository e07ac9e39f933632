"""``release run``: a whole blue/green or canary release, gated on the job store's error rates.

Deploy, then route step by step (canary: ramp 10 %, 50 %, ..., promote at
100 %; blue/green: promote at once), watching each step: the new version's
error rate (failed attempts per finished attempt, over the step's jobs) must
not exceed the previous version's over the same window by more than
``max_error_rate`` points. A breach rolls back. After the last step the old
version is drained and retired. Re-running after a crash goes on from where
the route stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tornado_core.errors import ReleaseError
from tornado_core.ports.releases import ReleaseState, VersionStats
from tornado_core.ports.routes import RouteTable
from tornado_core.releases.manager import DeployRequest, ReleaseManager
from tornado_core.releases.queues import Backlog

Strategy = Literal["bluegreen", "canary"]


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """How ``release run`` rolls a version.

    Attributes:
        deploy: The deploy step.
        strategy: ``canary`` ramps through ``steps``; ``bluegreen`` promotes at once.
        steps: Ramp percentages; 100 (added if missing) means promote.
        max_error_rate: Percentage points the new version's error rate may exceed the old one's.
        step_wait: Seconds each step is watched at least (blue/green: the bake time).
        min_jobs: Finished attempts of the new version needed to judge a step.
        step_timeout: Seconds to wait for ``min_jobs`` before giving up (default ``10 * step_wait``, >= 60).
        drain_timeout: Seconds the old version may take to drain.
    """

    deploy: DeployRequest
    strategy: Strategy = "canary"
    steps: tuple[int, ...] = (10, 50, 100)
    max_error_rate: float = 2.0
    step_wait: float = 30.0
    min_jobs: int = 10
    step_timeout: float | None = None
    drain_timeout: float | None = 600.0

    def percentages(self) -> list[int]:
        """The steps to walk, ending with 100."""
        if self.strategy == "bluegreen":
            return [100]
        steps = sorted({min(max(p, 1), 100) for p in self.steps})
        return steps if steps and steps[-1] == 100 else [*steps, 100]


@dataclass(frozen=True)
class Verdict:
    """How one step went."""

    percent: int
    ok: bool
    new: VersionStats
    baseline: VersionStats
    reason: str


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What ``release run`` did.

    Attributes:
        outcome: ``released`` or ``rolled_back``.
        verdicts: One per watched step.
        retired: Old versions drained and retired.
    """

    outcome: Literal["released", "rolled_back"]
    verdicts: list[Verdict] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)


class Rollout:
    """Runs release plans.

    Args:
        manager: The release operations.
        note: Receives one line per step (for people).
        progress: Receives drain progress.
    """

    def __init__(
        self,
        manager: ReleaseManager,
        *,
        note: Callable[[str], None] = lambda _line: None,
        progress: Callable[[Backlog], None] = lambda _b: None,
    ) -> None:
        self._manager = manager
        self._note = note
        self._progress = progress

    def run(self, plan: RunPlan) -> RunResult:
        """Deploy, step, judge, then promote, drain and retire — or roll back.

        Raises:
            ReleaseError: Bad input, or too few jobs to judge a step (the route stays).
        """
        task, version = plan.deploy.task, plan.deploy.version
        with self._manager.exclusive(task):
            self._manager.deploy(plan.deploy)
            self._note(f"deployed {task} {version} ({plan.deploy.replicas} worker(s) healthy)")
            route = self._manager.store.route(task)
            verdicts: list[Verdict] = []
            if route is not None and route.current != version:
                for percent in _remaining(plan, route, version):
                    verdict = self._step(plan, route.current, percent)
                    verdicts.append(verdict)
                    if not verdict.ok:
                        self._roll_back(plan, verdict)
                        return RunResult(outcome="rolled_back", verdicts=verdicts)
            return RunResult(outcome="released", verdicts=verdicts, retired=self._clean_up(plan))

    def _step(self, plan: RunPlan, baseline: str, percent: int) -> Verdict:
        task, version = plan.deploy.task, plan.deploy.version
        if percent >= 100:
            self._manager.promote(task, version)
            self._note(f"promoted {version}: every new job goes to it")
        else:
            self._manager.ramp(task, version, percent)
            self._note(f"ramped {version} to {percent}% of new jobs")
        verdict = self._watch(plan, baseline, percent)
        self._note(
            f"  {version}: {verdict.new.error_rate:.1f}% errors over {verdict.new.attempts} attempt(s);"
            f" {baseline}: {verdict.baseline.error_rate:.1f}% — {verdict.reason}"
        )
        return verdict

    def _watch(self, plan: RunPlan, baseline: str, percent: int) -> Verdict:
        store, pace = self._manager.store, self._manager.pace
        task, version = plan.deploy.task, plan.deploy.version
        since = pace.clock()
        patience = plan.step_timeout if plan.step_timeout is not None else max(10 * plan.step_wait, 60.0)
        while True:
            new = store.stats(task, version, since=since)
            old = store.stats(task, baseline, since=since)
            finished = new.attempts - new.running
            limit = old.error_rate + plan.max_error_rate
            elapsed = pace.clock() - since
            if finished >= plan.min_jobs and new.error_rate > limit:
                reason = f"error rate above {limit:.1f}%: rolling back"
                return Verdict(percent, False, new, old, reason)
            if finished >= plan.min_jobs and elapsed >= plan.step_wait:
                return Verdict(percent, True, new, old, "within limits")
            if elapsed >= patience:
                raise ReleaseError(
                    f"only {finished} attempt(s) of {task} {version} finished in {patience:g}s"
                    f" (--min-jobs {plan.min_jobs}); the route stays at this step: re-run"
                    " `tornado release run` to go on, or `tornado release rollback`"
                )
            pace.sleep(pace.poll)

    def _roll_back(self, plan: RunPlan, verdict: Verdict) -> None:
        task, version = plan.deploy.task, plan.deploy.version
        self._note(f"rolling back {version}: {verdict.reason}")
        done = self._manager.rollback(task, version=version, on_progress=self._progress)
        self._note(f"rolled back: {done.detail}")

    def _clean_up(self, plan: RunPlan) -> list[str]:
        task = plan.deploy.task
        route = self._manager.store.route(task)
        routed = route.routed_versions() if route is not None else set()
        retired = []
        for release in self._manager.store.releases(task):
            if release.state is not ReleaseState.DRAINING:
                continue
            if release.version in routed:
                self._note(f"{release.version} is still {route and route.role_of(release.version)}: kept")
                continue
            self._note(f"draining {release.version}")
            self._manager.drain(task, release.version, timeout=plan.drain_timeout, on_progress=self._progress)
            self._manager.retire(task, release.version)
            self._note(f"retired {release.version}")
            retired.append(release.version)
        return retired


def _remaining(plan: RunPlan, route: RouteTable, version: str) -> list[int]:
    """The steps still to walk: a re-run resumes at the step the route is at."""
    steps = plan.percentages()
    if route.ramping == version:
        return [p for p in steps if p >= route.ramp_percent]
    return steps
