"""Host-side wheelhouses for image builds: pip inside a build cannot reach PyPI here.

Local projects (tornado-core, a task package) are built fresh for every image;
their dependencies come from a cache folder first (offline), and from the
package index only when the cache lacks one, then join the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tornado_core.errors import RuntimeFailure

Log = Callable[[str], None]
#: Timestamp of every file in project wheels (1980-01-01, the zip format's epoch).
REPRODUCIBLE_EPOCH = "315532800"
#: Never copied from a project's folder before building its wheel.
SKIPPED = (
    ".git",
    ".venv",
    "venv",
    ".tornado",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
    "wheels",
    "deps",
)


class WheelhouseError(RuntimeFailure):
    """pip could not build or fetch a wheel for an image."""


def build_wheelhouse(
    context: Path,
    projects: Sequence[Path],
    *,
    cache: Path,
    log: Log | None = None,
    python: str = sys.executable,
) -> list[Path]:
    """Put the wheels of ``projects`` in ``context/wheels`` and of their dependencies in ``context/deps``.

    Two folders, so that a Dockerfile installs the dependencies in a layer of its
    own that stays cached while only the projects change. Project wheels are
    reproducible (``SOURCE_DATE_EPOCH``): unchanged sources give identical bytes.

    Args:
        context: The build context.
        projects: Source folders of local projects (each with setup.cfg or pyproject.toml).
        cache: Folder of dependency wheels kept between builds.
        log: Receives progress lines.
        python: Interpreter whose pip runs.

    Returns:
        Every wheel, projects first.

    Raises:
        WheelhouseError: A project does not build or a dependency cannot be found.
    """
    say = log or (lambda _line: None)
    own_dir, deps_dir = context / "wheels", context / "deps"
    for folder in (own_dir, deps_dir, cache):
        folder.mkdir(parents=True, exist_ok=True)
    say(f"building wheels of {', '.join(p.name for p in projects)}")
    with tempfile.TemporaryDirectory(prefix="tornado-wheels-") as scratch:
        sources = [_clean_copy(project, Path(scratch) / f"src{i}") for i, project in enumerate(projects)]
        _pip(python, ["wheel", "--no-deps", "--wheel-dir", str(own_dir), *map(str, sources)])
        own = sorted(own_dir.glob("*.whl"))
        resolved = Path(scratch) / "resolved"
        resolve = ["wheel", "--wheel-dir", str(resolved), "--find-links", str(cache), *map(str, own)]
        try:
            _pip(python, [*resolve, "--no-index"])
        except WheelhouseError:
            say("some dependencies are not cached yet: asking the package index")
            _pip(python, resolve)
        own_names = {wheel.name for wheel in own}
        for wheel in resolved.glob("*.whl"):
            if wheel.name not in own_names:
                shutil.copy2(wheel, deps_dir / wheel.name)
                if not (cache / wheel.name).exists():
                    shutil.copy2(wheel, cache / wheel.name)
    deps = sorted(deps_dir.glob("*.whl"))
    say(f"wheelhouse ready: {len(own)} project and {len(deps)} dependency wheels")
    return [*own, *deps]


def _clean_copy(project: Path, dest: Path) -> Path:
    """Copy a project's sources without build leftovers (a stale ``build/`` leaks into wheels)."""
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns(*SKIPPED), symlinks=True)
    return dest


def _pip(python: str, args: list[str]) -> None:
    command = [python, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    env = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        detail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise WheelhouseError(f"pip {args[0]} failed:\n{detail}")
