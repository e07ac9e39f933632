"""The release pipeline of a task project: one stage list for Jenkins and for this machine.

``STAGES`` is the single source of truth: the Jenkins shared library
(``jenkins/vars/tornadoPipeline.groovy``) declares the same stages, in the same
groups, each running ``tornado pipeline step <key>`` (Tornado's tests compare the
two), and ``tornado pipeline run --local`` runs them here against the local stack
and Docker engine. A stage's work is a few ``tornado`` commands (image, release);
this module only decides which, in what order, and what to do when one fails.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tornado_core.errors import TornadoError

Target = Literal["local", "jenkins"]


class PipelineError(TornadoError):
    """A pipeline stage failed, or the project cannot be released."""


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes:
        key: What ``tornado pipeline step`` takes (``build-image``).
        name: The Jenkins stage name (``Build image``).
        group: The Jenkins parent stage: ``Build`` (any branch, one agent) or
            ``Release`` (release branches, under the per-task lock).
        summary: One line for people.
    """

    key: str
    name: str
    group: str
    summary: str


STAGES: tuple[Stage, ...] = (
    Stage("checkout", "Checkout", "Build", "take the committed code; read the task and its version"),
    Stage("test", "Test", "Build", "run the project's tests against the local stack"),
    Stage("build-image", "Build image", "Build", "build the worker image (a code snapshot for processes)"),
    Stage("push-image", "Push image", "Build", "push the image to ECR (locally: a local registry tag)"),
    Stage("deploy", "Deploy", "Release", "start the new version's workers next to the old ones"),
    Stage("smoke", "Smoke test", "Release", "run one job pinned to the new version; it must succeed"),
    Stage("approve", "Approve", "Release", "a person approves on main (locally: approved automatically)"),
    Stage("promote", "Promote", "Release", "route new jobs to the new version (or ramp it as a canary)"),
    Stage("retire-old", "Retire old version", "Release", "drain the old versions, then retire them"),
)
#: Run after a failed (or aborted) release: route back, then drain and retire the new version.
ROLLBACK = Stage("rollback", "Rollback", "post", "route back to the previous version; retire the new one")
#: Stages after which a failure needs a rollback (something of the new version runs).
_DEPLOYED_FROM = "deploy"


def stage(key: str) -> Stage:
    """The stage (or ``rollback``) called ``key``.

    Raises:
        PipelineError: No such stage.
    """
    for candidate in (*STAGES, ROLLBACK):
        if candidate.key == key:
            return candidate
    keys = ", ".join(s.key for s in (*STAGES, ROLLBACK))
    raise PipelineError(f"unknown pipeline stage {key!r}; the stages are: {keys}")


@dataclass(frozen=True, kw_only=True)
class Project:
    """What the pipeline releases, read from a task project (never imported).

    Attributes:
        root: The project folder.
        task: Task name (``[tool.tornado] task`` in pyproject.toml).
        package: Python package (``[tool.tornado] package``).
        version: ``__version__`` of the package.
        smoke_payload: Payload of the smoke job (``[tool.tornado] smoke_payload``).
    """

    root: Path
    task: str
    package: str
    version: str
    smoke_payload: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Project:
        """Read ``pyproject.toml`` and the package's ``__version__``.

        Raises:
            PipelineError: Not a task project made by ``tornado newtask`` (or like one).
        """
        try:
            config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["tornado"]
            task, package = str(config["task"]), str(config["package"])
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
            why = f"no {exc.args[0]!r} in it" if isinstance(exc, KeyError) else str(exc)
            raise PipelineError(
                f"{root} is not a task project: pyproject.toml needs [tool.tornado] task and package ({why})"
            ) from None
        init = root / package / "__init__.py"
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", _read(init), re.MULTILINE)
        if not found:
            raise PipelineError(f'{init} sets no __version__ = "..."')
        payload = config.get("smoke_payload", {})
        return cls(root=root, task=task, package=package, version=found.group(1), smoke_payload=payload)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise PipelineError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """How to run the stages.

    Attributes:
        target: ``local`` (this machine: push is a local tag, approval automatic)
            or ``jenkins``.
        runtime: Where workers run: ``docker``, ``process`` or ``ecs``.
        replicas: Workers of the new version.
        registry: Image registry (ECR host); locally ``localhost``.
        strategy: ``bluegreen`` (switch at once) or ``canary`` (ramp by ``canary_steps``).
        canary_steps: Percentages of a canary.
        max_error_rate: Percent of failed jobs that rolls a canary back.
        tornado: The command that runs the tornado CLI.
        python: The interpreter that runs the project's tests.
    """

    target: Target = "local"
    runtime: str = "docker"
    replicas: int = 1
    registry: str = "localhost"
    strategy: str = "bluegreen"
    canary_steps: tuple[int, ...] = (10, 50, 100)
    max_error_rate: float = 2.0
    tornado: tuple[str, ...] = (sys.executable, "-m", "tornado_cli")
    python: str = sys.executable


class CommandRunner(Protocol):
    """Runs one command; raises :class:`PipelineError` if it fails; returns its standard output."""

    def __call__(self, argv: Sequence[str], *, cwd: Path, capture: bool = False) -> str:
        """Run ``argv`` in ``cwd``."""


@dataclass(kw_only=True)
class StageContext:
    """What a stage works with.

    Attributes:
        project: The project as checked out (for local runs: a clone of HEAD).
        options: How the pipeline runs.
        run: Runs commands.
        say: Prints a line for people.
        home: The project folder the pipeline was started in; ``tornado`` commands
            run there (the process runtime keeps its state in ``./.tornado``).
    """

    project: Project
    options: PipelineOptions
    run: CommandRunner
    say: Callable[[str], None]
    home: Path

    @property
    def workspace(self) -> Path:
        """Folder that outlives a run: the local checkout, code snapshots of the process runtime."""
        return self.home / ".tornado" / "pipeline"

    def tornado(self, *args: str, capture: bool = False) -> str:
        """Run ``tornado ARGS`` in :attr:`home`."""
        return self.run([*self.options.tornado, *args], cwd=self.home, capture=capture)

    @property
    def image(self) -> str:
        """The image the build stage makes (``tornado/<task>:<version>``)."""
        return f"tornado/{self.project.task}:{self.project.version}"

    @property
    def pushed_image(self) -> str:
        """Where the push stage puts it, and what the workers run."""
        return f"{self.options.registry}/{self.image}"

    @property
    def snapshot(self) -> Path:
        """The code of this version for the process runtime (kept while its workers run)."""
        return self.workspace / "versions" / self.project.version

    def releases(self) -> list[dict[str, Any]]:
        """The task's versions as ``tornado release status --json`` lists them."""
        out = self.tornado("release", "status", self.project.task, "--json", capture=True)
        status = json.loads(out or "{}")
        return list(status.get("versions") or [])


def checkout(ctx: StageContext) -> None:
    """Take the committed code (Jenkins has checked it out; a local run clones HEAD)."""
    if ctx.options.target == "local":
        source = ctx.workspace / "checkout"
        shutil.rmtree(source, ignore_errors=True)
        source.parent.mkdir(parents=True, exist_ok=True)
        ctx.run(["git", "clone", "-q", str(ctx.project.root), str(source)], cwd=source.parent)
        if ctx.run(["git", "status", "--porcelain"], cwd=ctx.project.root, capture=True).strip():
            ctx.say("note: uncommitted changes are not part of this build (as in Jenkins); commit them first")
        ctx.project = Project.load(source)
    commit = ctx.run(["git", "rev-parse", "--short", "HEAD"], cwd=ctx.project.root, capture=True).strip()
    ctx.say(f"{ctx.project.task} {ctx.project.version} at commit {commit}")


def test(ctx: StageContext) -> None:
    """The project's own tests (Tornado's pytest plugin brings the fixtures)."""
    ctx.run([ctx.options.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ctx.project.root)


def build_image(ctx: StageContext) -> None:
    """The worker image; for the process runtime a snapshot of the code instead."""
    if ctx.options.runtime == "process":
        _snapshot(ctx)
        return
    ctx.tornado(
        "image",
        "build",
        "--task",
        ctx.project.task,
        "--version",
        ctx.project.version,
        "--context",
        str(ctx.project.root),
        "--tag",
        ctx.image,
    )


def _snapshot(ctx: StageContext) -> None:
    target = ctx.snapshot
    if target.exists():
        ctx.say(f"code of {ctx.project.version} already in {target} (its workers may be using it)")
        return
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(ctx.project.root / ctx.project.package, staging / ctx.project.package)
    staging.rename(target)
    ctx.say(f"process runtime: code snapshot in {target}")


def push_image(ctx: StageContext) -> None:
    """Push the image to the registry; a local run only tags it as if pushed.

    In Jenkins the agent's Docker must be logged in to ECR (the ECR credential
    helper, or ``aws ecr get-login-password | docker login``).
    """
    if ctx.options.runtime == "process":
        ctx.say("process runtime: nothing to push")
        return
    ctx.run(["docker", "tag", ctx.image, ctx.pushed_image], cwd=ctx.home)
    if ctx.options.target == "local":
        ctx.say(f"local run: tagged {ctx.pushed_image} instead of pushing it")
        return
    ctx.run(["docker", "push", ctx.pushed_image], cwd=ctx.home)


def _deploy(ctx: StageContext, *extra: str) -> None:
    where = (
        ["--python-path", str(ctx.snapshot), "--tasks-module", f"{ctx.project.package}.task"]
        if ctx.options.runtime == "process"
        else ["--image", ctx.pushed_image]
    )
    ctx.tornado(
        "release",
        "deploy",
        ctx.project.task,
        ctx.project.version,
        "--runtime",
        ctx.options.runtime,
        "--replicas",
        str(ctx.options.replicas),
        *where,
        *extra,
    )


def deploy(ctx: StageContext) -> None:
    """Start the new version's workers next to the old ones; no job is routed to it yet."""
    _deploy(ctx)


def smoke(ctx: StageContext) -> None:
    """One job pinned to the new version, with the project's smoke payload; it must succeed.

    ``release deploy`` is idempotent: run again with ``--smoke`` it only checks the
    workers, then submits the smoke job (once: a re-run waits for the same job).
    """
    _deploy(ctx, "--smoke", "--smoke-payload", json.dumps(dict(ctx.project.smoke_payload)))


def approve(ctx: StageContext) -> None:
    """Jenkins asks a person on main; a local run approves by itself."""
    ctx.say("local run: approved automatically (in Jenkins a person approves builds of main)")


def promote(ctx: StageContext) -> None:
    """Route every new job to the new version, at once or as a canary."""
    task, version = ctx.project.task, ctx.project.version
    if ctx.options.strategy == "canary":
        steps = ",".join(str(p) for p in ctx.options.canary_steps)
        ctx.tornado(
            "release",
            "run",
            task,
            version,
            "--strategy",
            "canary",
            "--steps",
            steps,
            "--max-error-rate",
            str(ctx.options.max_error_rate),
        )
        return
    ctx.tornado("release", "promote", task, version)


#: Release states of versions that are no longer routed but not retired yet.
_OLD_STATES = frozenset({"deployed", "draining", "drained"})


def retire_old(ctx: StageContext) -> None:
    """Drain every other unrouted version (its queued and running jobs finish), then retire it."""
    olds = [
        row["version"]
        for row in ctx.releases()
        if row.get("version") != ctx.project.version
        and row.get("state") in _OLD_STATES
        and not row.get("role")
    ]
    if not olds:
        ctx.say("no old version to retire")
    for version in olds:
        ctx.tornado("release", "drain", ctx.project.task, version)
        ctx.tornado("release", "retire", ctx.project.task, version)


def rollback(ctx: StageContext) -> None:
    """Undo a failed release: route back if the new version gets jobs, then retire it."""
    try:
        rows = ctx.releases()
    except PipelineError:
        ctx.say(f"no release state of {ctx.project.task} to go back to (see above): nothing rolled back")
        return
    mine = {row.get("version"): row for row in rows}.get(ctx.project.version)
    if mine is None or mine.get("state") in {"retired", "rolled_back"}:
        ctx.say(f"{ctx.project.version} is not deployed: nothing to roll back")
        return
    if mine.get("state") in {"current", "ramping", "rolling_back"}:
        ctx.tornado("release", "rollback", ctx.project.task, "--version", ctx.project.version)
        return
    ctx.tornado("release", "drain", ctx.project.task, ctx.project.version)
    ctx.tornado("release", "retire", ctx.project.task, ctx.project.version)


ACTIONS: dict[str, Callable[[StageContext], None]] = {
    "checkout": checkout,
    "test": test,
    "build-image": build_image,
    "push-image": push_image,
    "deploy": deploy,
    "smoke": smoke,
    "approve": approve,
    "promote": promote,
    "retire-old": retire_old,
    "rollback": rollback,
}


def run_stage(key: str, ctx: StageContext) -> None:
    """Run one stage (what ``tornado pipeline step KEY`` does).

    Raises:
        PipelineError: Unknown stage, or one of its commands failed.
    """
    ACTIONS[stage(key).key](ctx)


@dataclass(frozen=True)
class StageResult:
    """How one stage of a run ended."""

    stage: Stage
    status: Literal["passed", "failed", "skipped"]
    seconds: float = 0.0
    error: str = ""


def run_stages(ctx: StageContext, stages: Sequence[Stage] = STAGES) -> list[StageResult]:
    """Run the stages in order; after a failure past ``deploy``, roll back.

    Returns:
        One result per stage (and a last one for the rollback, if it ran).
    """
    results: list[StageResult] = []
    deployed = False
    for number, current in enumerate(stages, start=1):
        if results and results[-1].status != "passed":
            results.append(StageResult(current, "skipped"))
            continue
        ctx.say(f"==> [{number}/{len(stages)}] {current.name}: {current.summary}")
        deployed = deployed or current.key == _DEPLOYED_FROM
        results.append(_timed(current, ctx))
    if deployed and any(r.status == "failed" for r in results):
        ctx.say(f"==> {ROLLBACK.name}: {ROLLBACK.summary}")
        results.append(_timed(ROLLBACK, ctx))
    return results


def _timed(current: Stage, ctx: StageContext) -> StageResult:
    started = time.monotonic()
    try:
        run_stage(current.key, ctx)
    except TornadoError as exc:
        ctx.say(f"    {current.name} failed: {exc}")
        return StageResult(current, "failed", time.monotonic() - started, str(exc))
    return StageResult(current, "passed", time.monotonic() - started)
