"""`tornado newtask`: names, rendering, refusing to overwrite, nothing half-written."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from tornado_cli.main import cli

from tornado_core.toolchain import scaffold
from tornado_core.toolchain.scaffold import (
    ScaffoldError,
    archetypes_root,
    available_archetypes,
    parse_name,
    plan_project,
    render_project,
    write_project,
)

ROOT = Path(__file__).resolve().parents[2]
ARCHETYPES = ["batch", "file-report", "worker"]
EXPECTED_FILES = {
    ".dockerignore",
    ".gitignore",
    "Dockerfile",
    "Jenkinsfile",
    "README.md",
    "pyproject.toml",
    "setup.cfg",
    "tests/test_task.py",
    "nfe_cancel/__init__.py",
    "nfe_cancel/task.py",
}


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("raw", "task", "package", "project", "model", "function"),
    [
        ("nfe.cancel", "nfe.cancel", "nfe_cancel", "nfe-cancel", "NfeCancel", "cancel"),
        ("nfe-cancel", "nfe.cancel", "nfe_cancel", "nfe-cancel", "NfeCancel", "cancel"),
        (
            "sped.fiscal_export",
            "sped.fiscal_export",
            "sped_fiscal_export",
            "sped-fiscal-export",
            "SpedFiscalExport",
            "fiscal_export",
        ),
        (
            "ponto.afd.import",
            "ponto.afd.import",
            "ponto_afd_import",
            "ponto-afd-import",
            "PontoAfdImport",
            "import_job",
        ),
        ("reports.print", "reports.print", "reports_print", "reports-print", "ReportsPrint", "print_job"),
        ("jobs.task", "jobs.task", "jobs_task", "jobs-task", "JobsTask", "task_job"),
    ],
)
def test_a_name_gives_the_task_package_project_and_handler_names(
    raw: str, task: str, package: str, project: str, model: str, function: str
) -> None:
    assert parse_name(raw) == scaffold.ProjectNames(task, package, project, model, function)


@pytest.mark.parametrize(
    "raw",
    [
        "Nfe.Cancel",
        "cancel",
        "nfe.",
        ".nfe",
        "nfe..cancel",
        "1nfe.cancel",
        "nfe.1cancel",
        "nfe cancel",
        "nfe/cancel",
        "nfe.can-cel!",
        "nfe__x.cancel",
        "a." + "b" * 70,
        "",
    ],
)
def test_a_bad_name_is_refused_with_what_is_allowed(raw: str) -> None:
    allowed = r"invalid task name .*dotted lower-case task name such as 'nfe\.cancel'"
    with pytest.raises(ScaffoldError, match=allowed):
        parse_name(raw)


def test_a_name_that_would_shadow_a_module_is_refused() -> None:
    with pytest.raises(ScaffoldError, match="'tornado_core' clashes with an existing module"):
        parse_name("tornado.core")


def test_the_archetypes_are_found_in_the_source_tree() -> None:
    assert archetypes_root() == ROOT / "archetypes"
    assert available_archetypes() == ARCHETYPES


@pytest.mark.parametrize("archetype", ARCHETYPES)
def test_every_archetype_renders_a_complete_project(archetype: str) -> None:
    files = {str(f.path): f.content for f in render_project(parse_name("nfe.cancel"), archetype)}

    assert set(files) == EXPECTED_FILES
    for path, content in files.items():
        assert "{{" not in content and "{%" not in content, path
        if path.endswith(".py"):
            compile(content, path, "exec")
    setup = configparser.ConfigParser()
    setup.read_string(files["setup.cfg"])
    assert setup["options.entry_points"]["tornado.tasks"].strip() == "nfe_cancel = nfe_cancel.task"
    assert setup["metadata"]["version"] == "attr: nfe_cancel.__version__"
    config = tomllib.loads(files["pyproject.toml"])["tool"]["tornado"]
    assert config["task"] == "nfe.cancel" and config["package"] == "nfe_cancel"
    assert isinstance(config["smoke_payload"], dict)
    assert 'name="nfe.cancel"' in files["nfe_cancel/task.py"]
    assert "class NfeCancelPayload(BaseModel)" in files["nfe_cancel/task.py"]
    assert "ARG BASE_IMAGE=tornado/python:3.11-bookworm\n\n# Stage 1" in files["Dockerfile"]
    jenkinsfile = files["Jenkinsfile"]
    assert "@Library('tornado-pipeline@v1') _\n\ntornadoPipeline(\n    task: 'nfe.cancel'," in jenkinsfile
    assert "tornado submit nfe.cancel '{" in files["README.md"]


def test_the_rendered_projects_are_ruff_clean(tmp_path: Path) -> None:
    for archetype in ARCHETYPES:
        for item in render_project(parse_name(f"acme.{archetype.replace('-', '_')}"), archetype):
            target = tmp_path / archetype / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(item.content)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP,SIM,RUF", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_undefined_template_variable_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "README.md.j2").write_text("# {{ project }} by {{ author }}\n")

    with pytest.raises(ScaffoldError, match="'author' is undefined"):
        render_project(parse_name("nfe.cancel"), "plain", root=tmp_path)


def test_an_unknown_archetype_is_refused_with_the_choices(tmp_path: Path) -> None:
    choices = "unknown archetype 'cron'; choose one of: batch, file-report, worker"
    with pytest.raises(ScaffoldError, match=choices):
        plan_project("nfe.cancel", "cron", cwd=tmp_path)
    assert _tree(tmp_path) == []


def test_the_project_is_written_with_its_first_commit(tmp_path: Path) -> None:
    folder = write_project(plan_project("nfe.cancel", "worker", cwd=tmp_path))

    assert folder == tmp_path / "nfe-cancel"
    assert _tree(tmp_path) == ["nfe-cancel", *(f"nfe-cancel/{p}" for p in _tree(folder))]
    git = ["git", "-C", str(folder)]
    log = subprocess.run([*git, "log", "--format=%s"], capture_output=True, text=True, check=True).stdout
    assert log == "New task nfe.cancel from the worker archetype (tornado newtask)\n"
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == ""
    tracked = subprocess.run([*git, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    assert set(tracked) == EXPECTED_FILES


def test_an_existing_destination_is_never_touched(tmp_path: Path) -> None:
    (tmp_path / "nfe-cancel").mkdir()
    (tmp_path / "nfe-cancel" / "mine.txt").write_text("keep me")
    before = _tree(tmp_path)

    with pytest.raises(ScaffoldError, match="already exists; refusing to overwrite it"):
        plan_project("nfe.cancel", "worker", cwd=tmp_path)
    assert _tree(tmp_path) == before
    assert (tmp_path / "nfe-cancel" / "mine.txt").read_text() == "keep me"


def test_a_destination_that_appears_after_planning_is_not_overwritten(tmp_path: Path) -> None:
    plan = plan_project("nfe.cancel", "worker", dest=Path("here"), cwd=tmp_path)
    (tmp_path / "here").mkdir()

    with pytest.raises(ScaffoldError, match="already exists"):
        write_project(plan)
    assert _tree(tmp_path) == ["here"]


def test_a_failure_half_way_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_git(folder: Path, args: list[str]) -> None:
        raise ScaffoldError("git commit failed: simulated")

    monkeypatch.setattr(scaffold, "_git", broken_git)
    with pytest.raises(ScaffoldError, match="simulated"):
        write_project(plan_project("nfe.cancel", "worker", cwd=tmp_path))
    assert _tree(tmp_path) == []


def test_a_missing_parent_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"parent folder .*/nowhere does not exist"):
        plan_project("nfe.cancel", "worker", dest=Path("nowhere/nfe"), cwd=tmp_path)


def test_the_cli_dry_run_lists_the_files_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["newtask", "nfe.cancel", "--dry-run", "--dest", str(tmp_path / "p")])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"would create {tmp_path / 'p'} (nfe.cancel, worker archetype):"
    assert {line.strip() for line in result.output.splitlines()[1:]} == EXPECTED_FILES
    assert _tree(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name"], "Error: invalid task name 'Bad Name': use a dotted lower-case task name"),
        (["nfe.cancel", "--archetype", "cron"], "Error: unknown archetype 'cron'; choose one of:"),
        (["nfe.cancel", "--dest", "taken"], "already exists; refusing to overwrite it"),
    ],
)
def test_the_cli_refuses_with_a_clear_message_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    (tmp_path / "taken").mkdir()
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(cli, ["newtask", *args])

    assert _tree(tmp_path) == ["taken"]
    assert result.exit_code == 1
    assert message in result.output


def test_the_cli_creates_the_project_and_says_what_next(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["newtask", "sped.export", "--archetype", "file-report", "--dest", str(tmp_path / "sped")]
    )

    assert result.exit_code == 0, result.output
    assert f"Created {tmp_path / 'sped'}: task sped.export (file-report archetype), 10 files" in result.output
    assert "tornado pipeline run --local" in result.output
    assert (tmp_path / "sped" / "sped_export" / "task.py").is_file()


def test_setup_cfg_ships_every_archetype_and_jenkins_folder_in_the_wheel() -> None:
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / "setup.cfg")
    shipped = {
        source.strip().rsplit("/", 1)[0]
        for line in setup["options.data_files"].values()
        for source in line.split(",")
    }
    needed = {
        str(p.parent.relative_to(ROOT))
        for top in ("archetypes", "jenkins")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert needed <= shipped


def test_the_project_dockerfile_keeps_the_worker_image_contract() -> None:
    """The instructions docker/README.md makes the contract are the same as docker/worker/Dockerfile's."""
    files = render_project(parse_name("nfe.cancel"), "worker")
    rendered = next(f.content for f in files if f.path.name == "Dockerfile")
    worker = (ROOT / "docker" / "worker" / "Dockerfile").read_text()
    contract = ("ARG BASE_IMAGE=", "USER ", "STOPSIGNAL ", "ENTRYPOINT ", "CMD ", "  CMD ", "COPY deps/")

    def instructions(text: str) -> list[str]:
        return sorted({line.strip() for line in text.splitlines() if line.startswith(contract)})

    assert instructions(rendered) == instructions(worker)
    assert "ARG TASK=nfe.cancel\nARG TASK_VERSION=1.0.0\n" in rendered
    assert "/tmp/wheels/*.whl" in rendered and "PATH=/opt/venv/bin:" in rendered


def test_the_newtask_shortcut_is_tornado_newtask(tmp_path: Path) -> None:
    shortcut = Path(sys.executable).parent / "newtask"
    result = subprocess.run(
        [str(shortcut), "nfe.cancel", "--dry-run"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"would create {tmp_path / 'nfe-cancel'} (nfe.cancel, worker archetype):")
    assert _tree(tmp_path) == []
