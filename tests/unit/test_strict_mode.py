"""Strict runs (CI): a missing service fails instead of skipping, and a run with skips fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tornado_core.toolchain.strict import strict_mode

A_SUITE_WITH_A_SKIP = """
import pytest

def test_ok():
    pass

def test_needs_a_service():
    pytest.skip("PostgreSQL is not installed")
"""


@pytest.mark.parametrize(
    ("env", "strict"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "True"}, True),
        ({"CI": "1"}, True),
        ({"CI": "yes"}, True),
        ({"CI": "false"}, False),
        ({"CI": "0"}, False),
        ({"TORNADO_STRICT": "1"}, True),
        ({"TORNADO_STRICT": "0", "CI": "true"}, False),  # the explicit setting wins
        ({"TORNADO_STRICT": "", "CI": "on"}, True),
    ],
)
def test_strict_mode_reads_the_usual_truthy_values(env: dict[str, str], strict: bool) -> None:
    assert strict_mode(env) is strict


def run_suite(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(A_SUITE_WITH_A_SKIP)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "TORNADO_STRICT")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py"],
        cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_run_with_a_skip_passes_on_a_developer_machine(tmp_path: Path) -> None:
    result = run_suite(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout


@pytest.mark.parametrize("env", [{"TORNADO_STRICT": "1"}, {"CI": "true"}, {"CI": "yes"}])
def test_a_strict_run_with_a_skip_fails_naming_it(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_suite(tmp_path, **env)
    assert result.returncode == 1, result.stdout
    said = "1 test(s) skipped, which fails the run; first: test_suite.py::test_needs_a_service"
    assert said in result.stdout


def test_ci_sets_strict_mode_and_the_jenkins_library_does_too() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "export TORNADO_STRICT=1" in (root / ".ci" / "run").read_text()
    library = root / "jenkins" / "src" / "io" / "tornado" / "jenkins" / "TornadoCli.groovy"
    assert '"TORNADO_STRICT=1"' in library.read_text()
