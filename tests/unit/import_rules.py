"""The checkers behind the architecture rules (tests/unit/test_code_rules.py).

Each reads a source tree as text (no import), so the rules can also be run on a planted
violation in a temporary folder and be seen to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Third-party technologies the core may import only in its adapters, web layer and composition root.
TECHNOLOGIES = frozenset({"boto3", "botocore", "psycopg2", "docker", "tornado", "moto"})
TECHNOLOGY_PLACES = ("adapters/", "web/", "bootstrap/")
#: Import names of the CLI and task packages (installed names and the folders' names).
OUTSIDE_THE_CORE = frozenset({"tornado_cli", "tornado_tasks", "cli", "tasks"})


def module_name(path: Path, root: Path) -> str:
    """``tornado_core/web/app.py`` -> ``tornado_core.web.app`` (``__init__`` names its package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (lazy imports included), relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same tree it imports."""
    root = package_dir.parent
    modules = {module_name(p, root): p for p in sorted(package_dir.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {target for target in imports_of(path, root) if target in modules and target != name}
    return graph


def technology_offenders(core: Path) -> dict[str, list[str]]:
    """Core files outside adapters/, web/ and bootstrap/ that import a banned technology."""
    offenders: dict[str, list[str]] = {}
    for path in sorted(core.rglob("*.py")):
        relative = path.relative_to(core).as_posix()
        if relative.startswith(TECHNOLOGY_PLACES):
            continue
        bad = {name.split(".")[0] for name in imports_of(path, core.parent)} & TECHNOLOGIES
        if bad:
            offenders[relative] = sorted(bad)
    return offenders


def reaches_outside(core: Path) -> dict[str, list[str]]:
    """Core files that import the CLI or a task package."""
    offenders: dict[str, list[str]] = {}
    for path in sorted(core.rglob("*.py")):
        bad = {name.split(".")[0] for name in imports_of(path, core.parent)} & OUTSIDE_THE_CORE
        if bad:
            offenders[path.relative_to(core).as_posix()] = sorted(bad)
    return offenders


def ports_reaching_up(core: Path) -> dict[str, list[str]]:
    """Port modules importing core modules other than ports and the error tree."""
    prefix = core.name
    allowed = (f"{prefix}.ports", f"{prefix}.errors")
    offenders: dict[str, list[str]] = {}
    for path in sorted((core / "ports").rglob("*.py")):
        above = sorted(
            name
            for name in imports_of(path, core.parent)
            if name.split(".")[0] == prefix and not name.startswith(allowed) and name != prefix
        )
        # ``from tornado_core.ports import x`` also names ``tornado_core.ports``: fine.
        if above:
            offenders[path.relative_to(core).as_posix()] = above
    return offenders


def room_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The import graph folded onto rooms, edges inside a room dropped.

    A room is a package (its ``__init__`` and its modules); each module at the top of the core
    (the kernel: errors, settings, task...) is a room of its own.
    """
    packages = {module for module in graph if any(other.startswith(module + ".") for other in graph)}

    def room(module: str) -> str:
        parent = module.rpartition(".")[0]
        return module if module in packages or "." not in parent else parent

    rooms: dict[str, set[str]] = {room(module): set() for module in graph}
    for source, targets in graph.items():
        rooms[room(source)].update(room(target) for target in targets if room(target) != room(source))
    return rooms


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
