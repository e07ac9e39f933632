"""The project's own rules, checked like any other behaviour."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tornado_core

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "tornado_core"
TECHNOLOGIES = {"boto3", "botocore", "psycopg2", "docker", "tornado", "moto"}
#: Only these may import the technologies: adapters, the web adapter, and the composition root.
ALLOWED = ("adapters/", "web/", "bootstrap.py")


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_core_never_imports_boto3_psycopg2_docker_or_tornado() -> None:
    offenders = {}
    for path in CORE.rglob("*.py"):
        relative = path.relative_to(CORE).as_posix()
        if relative.startswith(ALLOWED):
            continue
        bad = imported_roots(path) & TECHNOLOGIES
        if bad:
            offenders[relative] = sorted(bad)
    assert offenders == {}


def test_public_api_is_sorted_and_complete() -> None:
    exported = tornado_core.__all__
    assert exported == sorted(exported)
    assert all(hasattr(tornado_core, name) for name in exported)


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
        "import tornado_core, tornado_core.worker, tornado_core.producer.submission\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_mypy_strict_passes_on_the_core() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "tornado_core"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "tornado_core", "tasks", "cli", "tests", "bench"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
