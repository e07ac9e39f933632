"""Rules the tests themselves keep: behaviour in tests, speed in bench/ (a static look at tests/).

* No assertion compares a measured duration with a bound (``time.monotonic() - started < 2``,
  ``elapsed < 0.01``, ``(end - start).total_seconds() > x``): a loaded machine breaks them, and
  they prove speed, which benchmarks measure. Waiting for a condition under a generous deadline
  (``assert time.monotonic() < deadline`` in a polling loop) is fine.
* No sleep stands in for a condition: a ``sleep`` alone in a test (not in a polling loop, not in
  a fake that simulates a slow backend) hopes that something happened by then.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
CLOCK_CALLS = frozenset({"monotonic", "time", "perf_counter", "total_seconds"})
DURATION_NAMES = ("elapsed", "took", "duration", "gap", "latency")
SLEEPS = frozenset({"sleep"})


def _method_call(node: ast.AST | None, names: frozenset[str]) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names


def _clock_call(node: ast.AST) -> bool:
    return _method_call(node, CLOCK_CALLS)


def _duration(node: ast.AST) -> bool:
    """A measured duration: a clock reading minus something, ``x.total_seconds()``, ``elapsed``..."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        return _clock_call(node.left) or _clock_call(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "total_seconds"
    return isinstance(node, ast.Name) and any(word in node.id.lower() for word in DURATION_NAMES)


def timed_assertions(source: str) -> list[int]:
    """Lines of asserts that compare a measured duration with something (None aside)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            sides = [compare.left, *compare.comparators]
            against_none = any(isinstance(s, ast.Constant) and s.value is None for s in sides)
            if not against_none and any(_duration(side) for side in sides):
                found.append(node.lineno)
                break
    return found


def lone_sleeps(source: str) -> list[int]:
    """Lines of sleeps in test functions and fixtures that are neither in a loop nor in a fake class."""
    found: list[int] = []

    def visit(node: ast.AST, in_loop: bool, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            loop = in_loop or isinstance(child, ast.While | ast.For | ast.AsyncFor)
            fake = in_class or (isinstance(child, ast.ClassDef) and not child.name.startswith("Test"))
            call = child.value if isinstance(child, ast.Expr) else None
            if isinstance(call, ast.Await):
                call = call.value
            if _method_call(call, SLEEPS) and not (in_loop or in_class):
                found.append(child.lineno)
            visit(child, loop, fake)

    visit(ast.parse(source), False, False)
    return found


def _test_sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "data" not in p.relative_to(TESTS).parts)


@pytest.mark.parametrize("check", [timed_assertions, lone_sleeps], ids=lambda c: c.__name__)
def test_no_test_times_behaviour_or_sleeps_for_a_condition(check: object) -> None:
    offenders = {
        str(path.relative_to(TESTS)): lines
        for path in _test_sources()
        if (lines := check(path.read_text()))  # type: ignore[operator]
    }
    assert offenders == {}


PLANTED = """
import asyncio, time

class SlowStore:
    def write(self):
        time.sleep(0.05)          # a fake simulating a slow backend: fine

def test_speed():
    started = time.monotonic()
    do()
    assert time.monotonic() - started < 2
    elapsed = 3
    assert elapsed < 0.01
    assert (end - start).total_seconds() > 4
    assert took is not None       # not a measurement

def test_waiting():
    time.sleep(1.5)               # hopes the duplicate arrived by then
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.05)          # polling: fine

async def test_async():
    await asyncio.sleep(0.01)     # the first flush is "now" in flight
"""


def test_the_checks_see_planted_timings_and_sleeps() -> None:
    assert timed_assertions(PLANTED) == [11, 13, 14]
    assert lone_sleeps(PLANTED) == [18, 25]
