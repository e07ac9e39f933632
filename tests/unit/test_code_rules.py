"""The project's own rules, checked like any other behaviour (docs/architecture.md states them).

Each architecture rule runs on the real tree, and once on a planted violation in a temporary
tree, so a checker that stopped seeing anything would fail here.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tornado_core
from tests.unit.import_rules import (
    cycles,
    import_graph,
    ports_reaching_up,
    reaches_outside,
    room_graph,
    technology_offenders,
)
from tornado_core import extend

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "tornado_core"


def plant(root: Path, files: dict[str, str]) -> Path:
    """A small core tree under ``root``; returns its ``tornado_core`` folder."""
    for relative, text in files.items():
        path = root / "tornado_core" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "tornado_core"


# --- the technology ban -----------------------------------------------------------------------


def test_the_core_never_imports_boto3_psycopg2_docker_or_tornado() -> None:
    assert technology_offenders(CORE) == {}


def test_the_technology_ban_sees_a_planted_import(tmp_path: Path) -> None:
    core = plant(tmp_path, {
        "__init__.py": "", "adapters/__init__.py": "", "adapters/pg.py": "import psycopg2\n",
        "worker/__init__.py": "", "worker/loop.py": "def f():\n    from botocore import config\n",
    })  # fmt: skip
    assert technology_offenders(core) == {"worker/loop.py": ["botocore"]}


# --- the core never imports the CLI or the tasks -----------------------------------------------


def test_the_core_never_imports_tasks_or_cli() -> None:
    assert reaches_outside(CORE) == {}


def test_the_outside_rule_sees_a_planted_import(tmp_path: Path) -> None:
    core = plant(tmp_path, {
        "__init__.py": "", "web/__init__.py": "",
        "web/punches.py": "from tornado_tasks.ponto.intake import check_punch\n",
        "bootstrap.py": "import tornado_cli.main\n",
    })  # fmt: skip
    assert reaches_outside(core) == {"bootstrap.py": ["tornado_cli"], "web/punches.py": ["tornado_tasks"]}


# --- ports are the ground floor ----------------------------------------------------------------


def test_ports_import_nothing_above_them() -> None:
    assert ports_reaching_up(CORE) == {}


def test_the_ports_rule_sees_a_planted_import(tmp_path: Path) -> None:
    core = plant(tmp_path, {
        "__init__.py": "", "errors.py": "", "routing.py": "",
        "ports/__init__.py": "", "ports/queue.py": "from tornado_core.errors import TornadoError\n",
        "ports/releases.py": "from tornado_core.ports.queue import x\n"
                             "from tornado_core.routing import RouteTable\n",
    })  # fmt: skip
    assert list(ports_reaching_up(core)) == ["ports/releases.py"]


# --- no import cycle between rooms -------------------------------------------------------------


def test_no_import_cycle_between_rooms_or_modules() -> None:
    graph = import_graph(CORE)
    assert cycles(graph) == []
    assert cycles(room_graph(graph)) == []


def test_the_cycle_rule_sees_a_planted_cycle(tmp_path: Path) -> None:
    core = plant(tmp_path, {
        "__init__.py": "", "errors.py": "",
        "adapters/__init__.py": "", "adapters/aws.py": "",
        "adapters/tools.py": "from tornado_core.devstack.state import locked\n",
        "devstack/__init__.py": "", "devstack/state.py": "",
        "devstack/stack.py": "from ..adapters import aws\n",
    })  # fmt: skip
    graph = import_graph(core)
    assert cycles(graph) == []  # no module imports itself back, but the two rooms import each other:
    assert cycles(room_graph(graph)) == [["tornado_core.adapters", "tornado_core.devstack"]]
    (core / "devstack/state.py").write_text("from tornado_core.adapters.tools import x\n")
    assert cycles(import_graph(core)) == [["tornado_core.adapters.tools", "tornado_core.devstack.state"]]


# --- packaging ---------------------------------------------------------------------------------


def test_setup_cfg_lists_every_package() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    folders = {"tornado_core": CORE, "tornado_cli": ROOT / "cli", "tornado_tasks": ROOT / "tasks"}
    found = {
        ".".join((name, *init.parent.relative_to(folder).parts))
        for name, folder in folders.items()
        for init in folder.rglob("__init__.py")
    }
    assert listed == found


@pytest.mark.timeout(180)
def test_the_wheel_installs_no_generic_top_level_module(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    subprocess.run([*pip, "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("tornado_core-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        declared = archive.read(entry_points).decode()
    assert tops == {"tornado_core", "tornado_cli", "tornado_tasks"}
    assert "tornado = tornado_cli.main:main" in declared
    assert "ponto = tornado_tasks.ponto.api:punch_endpoints" in declared


# --- the public surface ------------------------------------------------------------------------

#: What ``tornado_core.__all__`` held before the rooms moved; it may only grow.
SURFACE_BEFORE_THE_ROOMS = {
    "ConfigError", "JobTimeout", "NonRetryable", "PayloadInvalid", "Retry", "RetryPolicy", "Settings",
    "TaskContext", "TaskNotFound", "TaskRegistry", "TaskSpec", "TornadoError", "VersionNotFound", "task",
}  # fmt: skip


@pytest.mark.parametrize("module", [tornado_core, extend], ids=lambda m: m.__name__)
def test_public_api_is_sorted_and_complete(module: object) -> None:
    exported = module.__all__
    assert exported == sorted(exported, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))
    assert all(hasattr(module, name) for name in exported)


def test_the_public_surface_only_grew() -> None:
    assert set(tornado_core.__all__) >= SURFACE_BEFORE_THE_ROOMS
    assert {"TornadoClient", "ApiError"} <= set(tornado_core.__all__)  # the README's client


def test_one_api_error_for_the_server_and_the_client() -> None:
    from tornado_core.client import ApiError as ClientError
    from tornado_core.web.errors import translate

    assert ClientError is tornado_core.ApiError is extend.ApiError
    assert issubclass(tornado_core.ApiError, tornado_core.TornadoError)
    assert type(translate(tornado_core.TaskNotFound("x"))) is tornado_core.ApiError


# --- hygiene -----------------------------------------------------------------------------------


def test_importing_the_core_starts_nothing_and_reads_no_environment() -> None:
    code = (
        "import os, sys, threading\n"
        "class Spy(dict):\n"
        "    def __getitem__(self, k):\n"
        "        assert not k.startswith('TORNADO'), f'import read {k}'\n"
        "        return super().__getitem__(k)\n"
        "    def get(self, k, d=None):\n"
        "        assert not k.startswith('TORNADO'), f'import read {k}'\n"
        "        return super().get(k, d)\n"
        "os.environ = Spy(os.environ)\n"
        "import tornado_core, tornado_core.worker, tornado_core.producer.submission, tornado_core.plugins\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_no_module_docstring_points_outside_the_repository() -> None:
    cited = [
        path.relative_to(ROOT).as_posix()
        for folder in (CORE, ROOT / "cli", ROOT / "tasks")
        for path in folder.rglob("*.py")
        if "DESIGN.md" in path.read_text()
    ]
    assert cited == []


def test_mypy_strict_passes_on_the_core_and_the_task_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "tornado_core", "tasks"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "tornado_core", "tasks", "cli", "tests", "bench"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
