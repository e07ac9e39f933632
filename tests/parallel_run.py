"""How the parallel run (pytest-xdist: setup.cfg's ``-n 2 --dist loadfile``) shares the test files.

Each worker process takes whole files, so a module's fixtures are made once, and starts its own
local stack. The files that use Docker's engine go to one worker together: one engine loads or
builds the base image and the worker images (a minute and more on a machine whose image cache is
empty) instead of two.
"""

from __future__ import annotations

from typing import Any

import pytest

#: The test files that use Docker's engine (checked at collection: a new one must be listed here).
DOCKER_FILES = frozenset(
    {
        "tests/e2e/test_newtask.py",
        "tests/integration/test_docker_engine.py",
        "tests/integration/test_docker_images.py",
        "tests/integration/test_docker_runtime.py",
    }
)
#: The work unit those files make together.
DOCKER_GROUP = "docker-engine"


def file_of(nodeid: str) -> str:
    """The file part of a test's id (``tests/unit/test_x.py`` of ``tests/unit/test_x.py::test_y``)."""
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with the Docker files as one unit; other modes as pytest-xdist has them."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # only where pytest-xdist runs

    class FilesAndDockerTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = file_of(nodeid)
            return DOCKER_GROUP if path in DOCKER_FILES else path

    return FilesAndDockerTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a run in which a file uses Docker's engine without being in :data:`DOCKER_FILES`."""
    strays = sorted({file_of(i.nodeid) for i in items if "docker_engine" in i.fixturenames} - DOCKER_FILES)
    if strays:
        raise pytest.UsageError(f"add these files to DOCKER_FILES in tests/parallel_run.py: {strays}")
