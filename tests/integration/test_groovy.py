"""Every Jenkinsfile and Groovy file parses with Groovy 2.4 (Jenkins' language level), the
declarative pipeline passes a structural check, and broken ones are caught.

All files are checked in one JVM run (``jenkins/tools/groovy_check.groovy``): Debian's
``groovy`` parses them at the CONVERSION phase, walks every ``pipeline { ... }`` block,
and compiles the shared library whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tornado_core.toolchain.pipeline import STAGES
from tornado_core.toolchain.scaffold import available_archetypes, parse_name, render_project
from tornado_core.toolchain.strict import strict_mode

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "jenkins"
CHECKER = LIBRARY / "tools" / "groovy_check.groovy"
PIPELINE = LIBRARY / "vars" / "tornadoPipeline.groovy"
SKIPPED_DIRS = {".git", ".venv", ".tornado", "node_modules", "__pycache__"}

BROKEN = {
    "unclosed.groovy": "pipeline {\n  agent none\n  stages {\n    stage('A') { steps { echo 'x' }\n  }\n",
    "quote.groovy": "pipeline {\n  agent any\n  stages { stage('A') { steps { echo 'x } } }\n}\n",
    "java8.groovy": "def twice = (int x) -> x * 2\n",
    "structure.groovy": (
        "pipeline {\n"
        "  stages {\n"
        "    stage('Build') {\n      stepz { sh 'make' }\n    }\n"
        "    stage('Test') {\n      steps { sh 'make test' }\n"
        "      stages { stage('Inner') { steps { echo 'x' } } }\n"
        "    }\n"
        "    stage('Gate') {\n      when { branchh 'main' }\n      input { ok 'Go' }\n"
        "      steps { echo 'go' }\n"
        "    }\n"
        "    stage('Build') {\n      agent { labell 'x' }\n      steps { echo 'again' }\n    }\n"
        "    stage('Chained') {\n      agent any steps { echo 'x' }\n    }\n"
        "    echo 'loose'\n"
        "  }\n"
        "  post { failed { echo 'no' } }\n"
        "  triggerz { cron('@daily') }\n"
        "}\n"
    ),
    "empty.groovy": "pipeline {\n  agent any\n  stages {\n    stage('Nothing') { steps { } }\n  }\n}\n",
}


def _java_home() -> str | None:
    candidates = [os.environ.get("JAVA_HOME"), "/usr/lib/jvm/java-17-openjdk-amd64"]
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*") if p.is_dir())
    for home in filter(None, candidates):
        if (Path(home) / "bin" / "java").exists():
            return home
    return None


def _repo_groovy_files() -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".tornado")]
        for name in names:
            if name.endswith(".groovy") or (name.startswith("Jenkinsfile") and not name.endswith(".j2")):
                found.append(Path(folder) / name)
    return sorted(found)


def _rendered_jenkinsfiles(folder: Path) -> list[Path]:
    paths = []
    for archetype in available_archetypes():
        for item in render_project(parse_name(f"acme.{archetype.replace('-', '_')}"), archetype):
            if item.path.name == "Jenkinsfile" or item.path.suffix == ".groovy":
                target = folder / archetype / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(item.content)
                paths.append(target)
    return paths


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Reports of the one JVM run, by file (absolute path) or library folder."""
    groovy = shutil.which("groovy")
    java_home = _java_home()
    if groovy is None or java_home is None:
        if strict_mode(os.environ):
            pytest.fail("groovy and a JDK are needed (bash .ci/bootstrap installs them as root)")
        pytest.skip("groovy or a JDK is not installed (apt-get install groovy)")
    folder = tmp_path_factory.mktemp("groovy")
    broken = folder / "broken"
    broken.mkdir()
    for name, text in BROKEN.items():
        (broken / name).write_text(text)
    files = [*_repo_groovy_files(), *_rendered_jenkinsfiles(folder / "rendered"), *sorted(broken.iterdir())]
    result = subprocess.run(
        [groovy, str(CHECKER), "--library", str(LIBRARY), *map(str, files)],
        env={**os.environ, "JAVA_HOME": java_home},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(files) + 1, result.stdout + result.stderr
    assert result.returncode == 1  # the broken files fail the run
    return {str(Path(r["file"]).resolve()): r for r in reports}


def test_every_groovy_file_and_jenkinsfile_in_the_repository_is_valid(checked: dict[str, Any]) -> None:
    repo = [str(p.resolve()) for p in _repo_groovy_files()]
    assert str(PIPELINE) in repo and len(repo) >= 4
    assert {path: checked[path]["errors"] for path in repo if not checked[path]["ok"]} == {}


def test_the_shared_library_compiles_whole(checked: dict[str, Any]) -> None:
    assert checked[str(LIBRARY)]["errors"] == []


def test_every_archetype_jenkinsfile_parses_and_calls_the_library(
    checked: dict[str, Any], tmp_path: Path
) -> None:
    rendered = [p for p in checked if "/rendered/" in p]
    assert sorted(Path(p).parts[-2] for p in rendered) == sorted(available_archetypes())
    for path in rendered:
        assert checked[path]["ok"], checked[path]["errors"]
        text = Path(path).read_text()
        assert re.search(r"^@Library\('tornado-pipeline@v1'\) _$", text, re.MULTILINE)
        assert re.search(r"^tornadoPipeline\(\n    task: 'acme\.[a-z_]+',", text, re.MULTILINE)


def test_the_library_pipeline_is_declarative_and_well_formed(checked: dict[str, Any]) -> None:
    report = checked[str(PIPELINE)]

    assert report["pipeline"] and report["ok"], report["errors"]
    text = PIPELINE.read_text()
    assert re.search(r"pipeline \{\n\s+agent none\n", text)
    assert 'lock(resource: "tornado-release-${cfg.task}")' in text
    assert re.search(r"when \{\s+beforeInput true\s+branch 'main'\s+\}\s+options .*\s+input \{", text)
    assert re.search(r"post \{\s+failure \{ script \{ tornado\.rollback\(env\.BRANCH_NAME\) \} \}", text)


def test_the_jenkins_stages_are_the_python_stage_list(checked: dict[str, Any]) -> None:
    stages = checked[str(PIPELINE)]["stages"]

    leaves = [tuple(s["path"]) for s in stages if s["leaf"]]
    assert leaves == [(s.group, s.name) for s in STAGES]
    groups = [s["name"] for s in stages if not s["leaf"]]
    assert groups == list(dict.fromkeys(s.group for s in STAGES))


def test_each_jenkins_stage_runs_its_python_stage() -> None:
    text = PIPELINE.read_text()
    pattern = r"stage\('([^']+)'\) \{(?:(?!stage\().)*?tornado\.run\('([^']+)'\)"
    runs = dict(re.findall(pattern, text, re.DOTALL))
    expected = {s.name: s.key for s in STAGES if s.key != "approve"}  # Jenkins' own input step
    assert runs == expected


def test_a_parse_error_is_caught_with_its_position(checked: dict[str, Any]) -> None:
    reports = {Path(p).name: r for p, r in checked.items() if "/broken/" in p}

    assert not reports["unclosed.groovy"]["ok"]
    unclosed = reports["unclosed.groovy"]["errors"][0]
    assert re.search(r"unclosed\.groovy:\d+:\d+: expecting '\}', found ''", unclosed)
    assert re.search(r"quote\.groovy:3:\d+: expecting ''', found '\\n'", reports["quote.groovy"]["errors"][0])
    assert "java8.groovy:1:" in reports["java8.groovy"]["errors"][0]  # Groovy 3 syntax, refused like Jenkins


def test_a_structural_error_is_caught_with_its_position(checked: dict[str, Any]) -> None:
    errors = next(r for p, r in checked.items() if p.endswith("/broken/structure.groovy"))["errors"]
    messages = [re.sub(r"^.*structure\.groovy:\d+:\d+: ", "", e) for e in errors]

    assert "pipeline has no 'agent' section" in messages
    assert any(m.startswith("unknown directive 'stepz' in stage 'Build'") for m in messages)
    assert "stage 'Build' needs exactly one of steps, stages, parallel, matrix (has none)" in messages
    assert "stage 'Test' needs exactly one of steps, stages, parallel, matrix (has steps, stages)" in messages
    assert any(m.startswith("unknown when condition 'branchh' in stage 'Gate'") for m in messages)
    assert "input of stage 'Gate' has no message" in messages
    assert "stage name 'Build' is used twice" in messages
    assert any(m.startswith("unknown directive 'labell' in agent of stage 'Build'") for m in messages)
    assert "only stage('...') { ... } may appear in stages, not 'echo'" in messages
    assert any(m.startswith("one directive per line in stage 'Chained'") for m in messages)
    assert any(m.startswith("unknown directive 'failed' in post of pipeline") for m in messages)
    assert any(m.startswith("unknown directive 'triggerz' in pipeline") for m in messages)
    assert all(re.match(r"^.*structure\.groovy:\d+:\d+: ", e) for e in errors)


def test_an_empty_steps_block_is_caught(checked: dict[str, Any]) -> None:
    errors = next(r for p, r in checked.items() if p.endswith("/broken/empty.groovy"))["errors"]
    assert [re.sub(r"^.*:\d+:\d+: ", "", e) for e in errors] == ["steps of stage 'Nothing' is empty"]
