"""``tornado newtask``: render an archetype into a standalone task project.

Rendering happens in memory (jinja2 with ``StrictUndefined``, so a missing
variable is an error, never an empty string); the files are then written to a
hidden temporary folder next to the destination, committed to a fresh git
repository there, and the folder is renamed into place. Any error leaves
nothing behind.

Archetypes live in ``archetypes/<name>/``; ``archetypes/_common/`` holds the
files every archetype shares (an archetype file of the same path wins).
Files ending in ``.j2`` are templates (the suffix is dropped); path segments
are templates too (``{{ package }}/task.py.j2``). ``partials/`` folders hold
included snippets and are not copied.
"""

from __future__ import annotations

import builtins
import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from tornado_core.errors import TornadoError

#: Archetype folder holding the files all archetypes share.
COMMON = "_common"
#: Folders of included snippets inside an archetype; never copied.
PARTIALS = "partials"
#: Version a new project starts at.
INITIAL_VERSION = "1.0.0"
#: The shared library (and tag) the generated Jenkinsfile loads.
JENKINS_LIBRARY = "tornado-pipeline@v1"
#: Image the generated Dockerfile builds on unless ``BASE_IMAGE`` is given.
DEFAULT_BASE_IMAGE = "tornado/python:3.11-bookworm"

_PART = r"[a-z][a-z0-9_]*"
_NAME = re.compile(rf"^{_PART}([.-]{_PART})+$")
#: Names the generated modules import or use; a handler must not shadow them.
_TEMPLATE_NAMES = frozenset({"annotations", "task", "ctx", "payload", "field", "csv", "io", "decimal"})
_RESERVED = frozenset(
    {"tornado_core", "tornado_cli", "tornado_tasks", "tasks", "cli", "tests", "test", "archetypes", "jenkins"}
)
NAME_RULE = (
    "use a dotted lower-case task name such as 'nfe.cancel' or 'sped.fiscal_export', "
    "or the same as a project name such as 'nfe-cancel': at least two parts, each starting "
    "with a letter and made of a-z, 0-9 and '_'"
)


class ScaffoldError(TornadoError):
    """A project could not be generated; nothing was written."""


@dataclass(frozen=True)
class ProjectNames:
    """The names a new project derives from the one the user typed.

    Attributes:
        task: Task name, ``nfe.cancel``.
        package: Python package, ``nfe_cancel``.
        project: Distribution and folder name, ``nfe-cancel``.
        model: Payload model class prefix, ``NfeCancel``.
        function: Handler function name (the last part), ``cancel``.
    """

    task: str
    package: str
    project: str
    model: str
    function: str


def parse_name(raw: str) -> ProjectNames:
    """Derive the project's names from ``nfe.cancel`` or ``nfe-cancel``.

    Raises:
        ScaffoldError: The name is not allowed (the message says what is).
    """
    name = raw.strip()
    if not _NAME.match(name) or "__" in name or len(name) > 64:
        raise ScaffoldError(f"invalid task name {raw!r}: {NAME_RULE}")
    parts = re.split(r"[.-]", name)
    package = "_".join(parts)
    if package in _RESERVED or package in sys.stdlib_module_names:
        raise ScaffoldError(f"invalid task name {raw!r}: {package!r} clashes with an existing module")
    return ProjectNames(
        task=".".join(parts),
        package=package,
        project="-".join(p.replace("_", "-") for p in parts),
        model="".join(w.capitalize() for p in parts for w in p.split("_")),
        function=_handler_name(parts[-1]),
    )


def _handler_name(action: str) -> str:
    """The handler function's name: the task's last part, unless that shadows something."""
    taken = keyword.iskeyword(action) or action in dir(builtins) or action in _TEMPLATE_NAMES
    return f"{action}_job" if taken else action


def archetypes_root() -> Path:
    """Where the archetypes are: the source tree, or the installed data files.

    Raises:
        ScaffoldError: No archetype folder can be found.
    """
    return _data_dir("archetypes")


def jenkins_library_root() -> Path:
    """Where the Jenkins shared library (``jenkins/``) is."""
    return _data_dir("jenkins")


def _data_dir(name: str) -> Path:
    source_root = Path(__file__).resolve().parents[2]  # tornado_core/toolchain/scaffold.py
    candidates = [source_root / name, Path(sys.prefix) / "share" / "tornado-core" / name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ScaffoldError(f"cannot find the {name}/ folder (looked in {', '.join(map(str, candidates))})")


def available_archetypes(root: Path | None = None) -> list[str]:
    """Names of the archetypes, sorted."""
    root = root or archetypes_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


@dataclass(frozen=True)
class RenderedFile:
    """One file of the generated project, in memory."""

    path: PurePosixPath
    content: str
    executable: bool = False


@dataclass(frozen=True)
class ProjectPlan:
    """What ``newtask`` will write, before anything is written."""

    names: ProjectNames
    archetype: str
    destination: Path
    files: Sequence[RenderedFile] = field(repr=False)


def template_context(names: ProjectNames, archetype: str) -> dict[str, Any]:
    """The variables every template sees."""
    return {
        "task": names.task,
        "package": names.package,
        "project": names.project,
        "model": names.model,
        "function": names.function,
        "archetype": archetype,
        "version": INITIAL_VERSION,
        "tornado_version": _tornado_version(),
        "jenkins_library": JENKINS_LIBRARY,
        "base_image": DEFAULT_BASE_IMAGE,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def _tornado_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tornado-core")
    except PackageNotFoundError:
        return "0.1.0"


def render_project(
    names: ProjectNames, archetype: str, *, root: Path | None = None, extra: Mapping[str, Any] | None = None
) -> list[RenderedFile]:
    """Render an archetype (plus the common files) in memory.

    Raises:
        ScaffoldError: Unknown archetype, or a template failed to render.
    """
    root = root or archetypes_root()
    known = available_archetypes(root)
    if archetype not in known:
        raise ScaffoldError(f"unknown archetype {archetype!r}; choose one of: {', '.join(known)}")
    layers = [root / archetype, root / COMMON]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in layers if p.is_dir()]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    context = {**template_context(names, archetype), **(extra or {})}
    sources: dict[PurePosixPath, Path] = {}
    for layer in reversed(layers):  # the archetype's own files win over the common ones
        sources.update(_template_files(layer))
    try:
        return [_render_one(environment, context, rel, src) for rel, src in sorted(sources.items())]
    except jinja2.TemplateError as exc:
        raise ScaffoldError(f"archetype {archetype!r} failed to render: {exc}") from exc


def _template_files(layer: Path) -> dict[PurePosixPath, Path]:
    if not layer.is_dir():
        return {}
    found = {}
    for path in layer.rglob("*"):
        rel = PurePosixPath(path.relative_to(layer).as_posix())
        if path.is_file() and PARTIALS not in rel.parts and "__pycache__" not in rel.parts:
            found[rel] = path
    return found


def _render_one(
    environment: jinja2.Environment, context: Mapping[str, Any], rel: PurePosixPath, src: Path
) -> RenderedFile:
    parts = [environment.from_string(part).render(context) for part in rel.parts]
    target = PurePosixPath(*parts)
    if target.suffix == ".j2":
        content = environment.get_template(rel.as_posix()).render(context)
        target = target.with_suffix("")
    else:
        content = src.read_text()
    return RenderedFile(path=target, content=content, executable=os.access(src, os.X_OK))


def plan_project(
    name: str, archetype: str, dest: Path | None = None, *, cwd: Path | None = None
) -> ProjectPlan:
    """Validate everything and render in memory; nothing is written.

    Args:
        name: ``nfe.cancel`` or ``nfe-cancel``.
        archetype: One of :func:`available_archetypes`.
        dest: The project folder to create (default ``./<project>``); must not exist.
        cwd: Base of a relative ``dest``.

    Raises:
        ScaffoldError: Bad name, unknown archetype, existing destination, missing parent.
    """
    names = parse_name(name)
    destination = ((cwd or Path.cwd()) / (dest or Path(names.project))).absolute()
    _check_destination(destination)
    files = render_project(names, archetype)
    return ProjectPlan(names=names, archetype=archetype, destination=destination, files=files)


def _check_destination(destination: Path) -> None:
    if destination.exists() or destination.is_symlink():
        raise ScaffoldError(f"{destination} already exists; refusing to overwrite it (choose another --dest)")
    if not destination.parent.is_dir():
        raise ScaffoldError(f"the parent folder {destination.parent} does not exist")


def write_project(plan: ProjectPlan) -> Path:
    """Write the plan's files, make the first git commit, then move the folder into place.

    Returns:
        The project folder.

    Raises:
        ScaffoldError: Anything failed; nothing is left behind.
    """
    _check_destination(plan.destination)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.names.project}.", dir=plan.destination.parent))
    try:
        for item in plan.files:
            target = staging / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(item.content)
            if item.executable:
                target.chmod(0o755)
        staging.chmod(0o755)
        _first_commit(staging, plan)
        _check_destination(plan.destination)
        staging.rename(plan.destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return plan.destination


def _first_commit(folder: Path, plan: ProjectPlan) -> None:
    message = f"New task {plan.names.task} from the {plan.archetype} archetype (tornado newtask)"
    identity = (
        []
        if _git_identity_known(folder)
        else [
            "-c",
            "user.name=tornado newtask",
            "-c",
            "user.email=newtask@tornado.invalid",
        ]
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-q", "-m", message]):
        _git(folder, args)


def _git_identity_known(folder: Path) -> bool:
    probe = subprocess.run(
        ["git", "config", "user.email"], cwd=folder, capture_output=True, text=True, check=False
    )
    return probe.returncode == 0 and bool(probe.stdout.strip())


def _git(folder: Path, args: Sequence[str]) -> None:
    try:
        result = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ScaffoldError("git is not installed; newtask needs it for the project's repository") from None
    if result.returncode != 0:
        raise ScaffoldError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
