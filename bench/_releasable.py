"""``demo.release`` as the release benchmark uses it: where its code is, its ERP table, its load payload.

The task's code is the test fixture ``tests/data/releasable`` (one package per
version, deployed with ``--python-path``), used as files on disk: the benchmark
never imports ``tests``. The workers that run it import it, as the release tests do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT

TASK = "demo.release"
#: One directory per major version (``v1``, ``v2``) holding the ``releasable`` package.
RELEASABLE = REPO_ROOT / "tests" / "data" / "releasable"
#: The module the versions' packages declare the task with (``declare``).
RELEASABLE_BASE = REPO_ROOT / "tests" / "data" / "releasable_base.py"
#: The ERP table ``demo.release`` counts its runs in (``record_effect``); as in ``RELEASABLE_BASE``.
EFFECTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS release_effects ("
    " job_id text PRIMARY KEY, version text NOT NULL, runs int NOT NULL DEFAULT 1)"
)


def code_dir(version: str) -> Path:
    """The ``--python-path`` of ``demo.release`` ``version`` (its package is ``releasable``)."""
    return RELEASABLE / f"v{version[0]}"


def task_project(version: str, folder: Path) -> Path:
    """A minimal task project of ``demo.release`` ``version`` (entry point ``tornado.tasks``).

    The code is that of ``tests/data/releasable/vN`` with ``tests/data/releasable_base.py``
    copied into the package, since ``tests`` is no part of an image.
    """
    project = folder / f"releasable-{version}"
    package = project / "releasable"
    package.mkdir(parents=True)
    source = (code_dir(version) / "releasable" / "__init__.py").read_text()
    base_import = "from tests.data.releasable_base import declare"
    if base_import not in source:
        raise RuntimeError(f"unexpected {code_dir(version)}: no {base_import!r}")
    (package / "__init__.py").write_text(source.replace(base_import, "from releasable._base import declare"))
    shutil.copy2(RELEASABLE_BASE, package / "_base.py")
    (project / "setup.cfg").write_text(
        "[metadata]\n"
        "name = tornado-bench-releasable\n"
        f"version = {version}\n\n"
        "[options]\npackages = releasable\ninstall_requires =\n    tornado-core\n\n"
        "[options.entry_points]\ntornado.tasks =\n    releasable = releasable\n"
    )
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61", "wheel"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    return project


def release_payload(n: int) -> dict[str, Any]:
    """Job ``n`` of the load: a short run whose effect is counted in ``release_effects``."""
    return {"n": n, "seconds": 0.02, "record_effect": True}
