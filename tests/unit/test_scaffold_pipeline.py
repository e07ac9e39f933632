"""The pipeline's stage list and what each stage runs (commands recorded, not run)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tornado_core.local_machine import tornado_argv
from tornado_core.toolchain.pipeline import (
    ACTIONS,
    ROLLBACK,
    STAGES,
    PipelineError,
    PipelineOptions,
    Project,
    StageContext,
    run_stage,
    run_stages,
    stage,
)
from tornado_core.toolchain.scaffold import plan_project, write_project

TORNADO = ("tornado",)


class Recorder:
    """A CommandRunner that records commands and answers `release status --json`."""

    def __init__(self, releases: list[dict[str, str]] | None = None, fail_on: str | None = None) -> None:
        self.commands: list[str] = []
        self.releases = releases or []
        self.fail_on = fail_on

    def __call__(self, argv: Sequence[str], *, cwd: Path, capture: bool = False) -> str:
        line = " ".join(argv)
        self.commands.append(line)
        if self.fail_on and self.fail_on in line:
            raise PipelineError(f"`{line}` exited with 1")
        if line.startswith("tornado release status"):
            return json.dumps({"task": "nfe.cancel", "versions": self.releases})
        if argv[:2] == ["git", "clone"]:
            return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout
        return "abc1234\n" if argv[:2] == ["git", "rev-parse"] else ""


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("projects")
    return write_project(plan_project("nfe.cancel", "worker", cwd=parent))


def _context(project_dir: Path, recorder: Recorder, lines: list[str], **options: object) -> StageContext:
    return StageContext(
        project=Project.load(project_dir),
        options=PipelineOptions(tornado=TORNADO, python="python", **options),  # type: ignore[arg-type]
        run=recorder,
        say=lines.append,
        home=project_dir,
    )


def test_the_stage_list_has_unique_keys_and_an_action_each() -> None:
    keys = [s.key for s in (*STAGES, ROLLBACK)]
    assert len(set(keys)) == len(keys)
    assert set(ACTIONS) == set(keys)
    assert [s.group for s in STAGES] == ["Build"] * 4 + ["Release"] * 5


def test_an_unknown_stage_is_a_clear_error() -> None:
    with pytest.raises(PipelineError, match="unknown pipeline stage 'deplyo'; the stages are: checkout, "):
        stage("deplyo")


def test_the_project_is_read_without_importing_it(project_dir: Path) -> None:
    project = Project.load(project_dir)

    assert (project.task, project.package, project.version) == ("nfe.cancel", "nfe_cancel", "1.0.0")
    assert project.smoke_payload == {"document_id": 1, "note": "smoke test", "dry_run": True}


def test_a_folder_that_is_no_task_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"is not a task project: pyproject.toml needs \[tool.tornado\]"):
        Project.load(tmp_path)


def test_a_local_docker_run_builds_tags_deploys_smokes_promotes_and_retires(project_dir: Path) -> None:
    recorder = Recorder(
        releases=[
            {"version": "0.9.0", "state": "draining", "role": None},
            {"version": "0.8.0", "state": "retired"},
            {"version": "0.9.5", "state": "deployed", "role": "pinned"},
            {"version": "1.0.0", "state": "current"},
        ]
    )
    lines: list[str] = []

    results = run_stages(_context(project_dir, recorder, lines))

    assert [r.status for r in results] == ["passed"] * len(STAGES)
    checkout = project_dir / ".tornado" / "pipeline" / "checkout"
    tornado = [c for c in recorder.commands if c.startswith(("tornado", "python", "docker"))]
    assert tornado == [
        "python -m pytest -q -p no:cacheprovider",
        f"tornado image build --task nfe.cancel --version 1.0.0 --context {checkout}"
        " --tag tornado/nfe.cancel:1.0.0",
        "docker tag tornado/nfe.cancel:1.0.0 localhost/tornado/nfe.cancel:1.0.0",
        "tornado release deploy nfe.cancel 1.0.0 --runtime docker --replicas 1"
        " --image localhost/tornado/nfe.cancel:1.0.0",
        "tornado release deploy nfe.cancel 1.0.0 --runtime docker --replicas 1"
        " --image localhost/tornado/nfe.cancel:1.0.0"
        ' --smoke --smoke-payload {"document_id": 1, "note": "smoke test", "dry_run": true}',
        "tornado release promote nfe.cancel 1.0.0",
        "tornado release status nfe.cancel --json",
        "tornado release drain nfe.cancel 0.9.0",
        "tornado release retire nfe.cancel 0.9.0",
    ]
    assert (checkout / "nfe_cancel" / "task.py").is_file()  # a clone of HEAD, as Jenkins checks out
    assert "local run: approved automatically (in Jenkins a person approves builds of main)" in lines


def test_the_process_runtime_deploys_a_snapshot_of_the_code(project_dir: Path) -> None:
    recorder = Recorder()
    ctx = _context(project_dir, recorder, [], runtime="process", replicas=2)

    for key in ("checkout", "build-image", "push-image", "deploy"):
        run_stage(key, ctx)

    snapshot = project_dir / ".tornado" / "pipeline" / "versions" / "1.0.0"
    assert (snapshot / "nfe_cancel" / "task.py").is_file()
    assert recorder.commands[-1] == (
        f"tornado release deploy nfe.cancel 1.0.0 --runtime process --replicas 2 --python-path {snapshot}"
        " --tasks-module nfe_cancel.task"
    )
    assert not any(c.startswith(("tornado image", "docker")) for c in recorder.commands)


def test_a_canary_ramps_through_the_release_run(project_dir: Path) -> None:
    recorder = Recorder()
    canary = {"strategy": "canary", "canary_steps": (5, 25, 100), "max_error_rate": 1.5}
    ctx = _context(project_dir, recorder, [], **canary)

    run_stage("promote", ctx)

    assert recorder.commands == [
        "tornado release run nfe.cancel 1.0.0 --strategy canary --steps 5,25,100 --max-error-rate 1.5"
    ]


def test_jenkins_pushes_to_the_registry(project_dir: Path) -> None:
    recorder = Recorder()
    registry = "123.dkr.ecr.sa-east-1.amazonaws.com"
    ctx = _context(project_dir, recorder, [], target="jenkins", registry=registry)

    run_stage("push-image", ctx)

    assert recorder.commands == [
        f"docker tag tornado/nfe.cancel:1.0.0 {registry}/tornado/nfe.cancel:1.0.0",
        f"docker push {registry}/tornado/nfe.cancel:1.0.0",
    ]


def test_a_failure_after_the_deploy_rolls_back_and_skips_the_rest(project_dir: Path) -> None:
    recorder = Recorder(releases=[{"version": "1.0.0", "state": "deployed"}], fail_on="--smoke")
    lines: list[str] = []

    results = run_stages(_context(project_dir, recorder, lines))

    assert [(r.stage.key, r.status) for r in results][4:] == [
        ("deploy", "passed"),
        ("smoke", "failed"),
        ("approve", "skipped"),
        ("promote", "skipped"),
        ("retire-old", "skipped"),
        ("rollback", "passed"),
    ]
    assert recorder.commands[-2:] == [
        "tornado release drain nfe.cancel 1.0.0",
        "tornado release retire nfe.cancel 1.0.0",
    ]
    assert any("Smoke test failed: `tornado release deploy" in line for line in lines)


def test_a_rollback_of_a_promoted_version_routes_back(project_dir: Path) -> None:
    recorder = Recorder(releases=[{"version": "1.0.0", "state": "current"}])

    run_stage("rollback", _context(project_dir, recorder, []))

    assert recorder.commands[-1] == "tornado release rollback nfe.cancel --version 1.0.0"


def test_a_failure_before_the_deploy_needs_no_rollback(project_dir: Path) -> None:
    recorder = Recorder(fail_on="-m pytest")

    results = run_stages(_context(project_dir, recorder, []))

    assert [r.status for r in results] == ["passed", "failed"] + ["skipped"] * (len(STAGES) - 2)
    assert not any("release" in c for c in recorder.commands)


def test_the_cli_lists_the_stages() -> None:
    result = subprocess.run(tornado_argv("pipeline", "stages"), capture_output=True, text=True, check=True)
    keys = [line.split("[")[1].split("]")[0] for line in result.stdout.splitlines()]
    assert keys == [s.key for s in STAGES]
