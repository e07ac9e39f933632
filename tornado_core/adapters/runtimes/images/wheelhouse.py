"""Host-side wheelhouses for image builds: pip inside a build cannot reach PyPI here.

Local projects (tornado-core, a task package) are built fresh for every image,
in a build env kept in the cache folder (no build isolation: no index query).
Their dependencies come from the cache: the resolution of the same requirements
is remembered; otherwise pip resolves offline against the cached wheels, and asks
the package index only when one is missing (it then joins the cache). Delete the
cache folder to pick up newer dependency releases.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tornado_core.errors import RuntimeFailure
from tornado_core.local_machine import locked

Log = Callable[[str], None]
#: Timestamp of every file in project wheels (1980-01-01, the zip format's epoch).
REPRODUCIBLE_EPOCH = "315532800"
#: What the cached build env holds: enough for setuptools projects (tornado-core, newtask projects).
BUILD_REQUIREMENTS = ("setuptools>=69", "wheel")
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
        _build_projects(sources, own_dir, cache=cache, python=python, say=say)
        own = sorted(own_dir.glob("*.whl"))
        for wheel in _dependencies(own, Path(scratch) / "resolved", cache=cache, python=python, say=say):
            shutil.copy2(wheel, deps_dir / wheel.name)
    deps = sorted(deps_dir.glob("*.whl"))
    say(f"wheelhouse ready: {len(own)} project and {len(deps)} dependency wheels")
    return [*own, *deps]


def _build_projects(sources: list[Path], dest: Path, *, cache: Path, python: str, say: Log) -> None:
    """Project wheels, without build isolation in a cached build env when setuptools is all they need."""
    args = ["wheel", "--no-deps", "--wheel-dir", str(dest), *map(str, sources)]
    builder = _build_env(cache, python)
    if builder is not None:
        try:
            _pip(builder, [*args, "--no-build-isolation"])
            return
        except WheelhouseError:
            say("building in isolation (a project needs more than setuptools and wheel)")
    _pip(python, args)


def _build_env(cache: Path, python: str) -> str | None:
    """A venv with :data:`BUILD_REQUIREMENTS` in ``cache``, made once; ``None`` if it cannot be."""
    env = cache / "build-env"
    ready, interpreter = env / ".ready", str(env / "bin" / "python")
    if ready.exists():
        return interpreter
    with locked(cache):
        if not ready.exists():
            try:
                subprocess.run([python, "-m", "venv", "--clear", str(env)], capture_output=True, check=True)
                _pip(interpreter, ["install", *BUILD_REQUIREMENTS])
            except (OSError, subprocess.CalledProcessError, WheelhouseError):
                return None
            ready.touch()
    return interpreter


def _dependencies(own: list[Path], scratch: Path, *, cache: Path, python: str, say: Log) -> list[Path]:
    """The dependency wheels of ``own``: the cached resolution of the same requirements, or pip's."""
    listing = cache / f"resolved-{_requirements_key(own)}.txt"
    if listing.exists():
        known = [cache / name for name in listing.read_text().split()]
        if all(wheel.exists() for wheel in known):
            return known
    resolve = ["wheel", "--wheel-dir", str(scratch), "--find-links", str(cache), *map(str, own)]
    try:
        _pip(python, [*resolve, "--no-index"])
    except WheelhouseError:
        say("some dependencies are not cached yet: asking the package index")
        _pip(python, resolve)
    own_names = {wheel.name for wheel in own}
    deps = sorted(w for w in scratch.glob("*.whl") if w.name not in own_names)
    # Other processes (parallel test workers, builds) read the cache meanwhile: a wheel or a listing
    # appears whole under its name or not at all.
    with locked(cache):
        for wheel in deps:
            if not (cache / wheel.name).exists():
                _publish(cache / wheel.name, functools.partial(shutil.copy2, wheel))
        text = "\n".join(wheel.name for wheel in deps) + "\n"
        _publish(listing, lambda part: part.write_text(text))
    return [cache / wheel.name for wheel in deps]


def _publish(path: Path, write: Callable[[Path], object]) -> None:
    """Make ``path`` by ``write``-ing a partial file beside it (a name pip's ``--find-links``
    ignores), then renaming it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write(partial)
    os.replace(partial, path)


def _requirements_key(wheels: list[Path]) -> str:
    """A hash of the wheels' names and ``Requires-Dist`` lines (and of this Python)."""
    digest = hashlib.sha256(sys.version.encode())
    for wheel in sorted(wheels):
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(metadata).decode(errors="replace").splitlines()
        digest.update(wheel.name.encode())
        digest.update("\n".join(sorted(line for line in lines if line.startswith("Requires-Dist:"))).encode())
    return digest.hexdigest()[:16]


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
