"""The console's SVG charts: well-formed, escaped, drawn to scale, and sane on awkward input."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from tornado_core.console.charts import bar_series, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def points(root: ET.Element) -> list[tuple[float, float]]:
    line = root.find(f"{SVG}polyline")
    assert line is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.attrib["points"].split())]


def test_a_sparkline_rises_where_its_values_rise_within_its_box() -> None:
    root = parse(sparkline([0, 5, 10, 5], width=100, height=20, title="waiting"))
    assert (root.attrib["width"], root.attrib["height"], root.attrib["role"]) == ("100", "20", "img")
    assert root.findtext(f"{SVG}title") == "waiting"
    drawn = points(root)
    assert len(drawn) == 4
    xs, ys = [x for x, _ in drawn], [y for _, y in drawn]
    assert xs == sorted(xs) and xs[0] >= 0 and xs[-1] <= 100
    assert ys[2] < ys[1] < ys[0] and ys[1] == ys[3]  # SVG's y grows downwards
    assert all(0 <= y <= 20 for y in ys)
    assert "last 5; highest 10" in (root.findtext(f"{SVG}desc") or "")


def test_titles_and_labels_are_escaped_so_nothing_can_be_injected() -> None:
    title = 'acme</title><script>alert("x")</script> & "q"'
    for svg in (sparkline([1, 2], title=title), bar_series([("<b>12:00</b>", 1, 2)], title=title)):
        root = parse(svg)
        assert "<script" not in svg
        assert root.findtext(f"{SVG}title") == title
        assert root.attrib["aria-label"] == title
        assert not list(root.iter(f"{SVG}script"))
    bars = parse(bar_series([("<b>12:00</b>", 1, 2)]))
    assert [t.text for t in bars.iter(f"{SVG}text") if t.text and "12:00" in t.text] == ["<b>12:00</b>"]


@pytest.mark.parametrize("values", [[], [math.nan, math.inf]], ids=["empty", "nothing-finite"])
def test_a_sparkline_without_values_is_a_dashed_base_line(values: list[float]) -> None:
    root = parse(sparkline(values, title="nothing yet"))
    assert root.find(f"{SVG}polyline") is None
    (line,) = root.iter(f"{SVG}line")
    assert line.attrib["stroke-dasharray"]
    assert root.findtext(f"{SVG}desc") == "no samples"


def test_one_value_is_a_level_line_and_equal_values_stay_inside() -> None:
    (left, right) = points(parse(sparkline([7], width=50)))
    assert left[1] == right[1] and left[0] < right[0]
    flat = points(parse(sparkline([3, 3, 3], height=30)))
    assert len({y for _, y in flat}) == 1 and 0 <= flat[0][1] <= 30


def test_many_values_are_reduced_to_the_width_keeping_the_peaks() -> None:
    values = [0.0] * 1000
    values[500] = 99.0
    drawn = points(parse(sparkline(values, width=60, height=20)))
    assert len(drawn) <= 60
    assert min(y for _, y in drawn) == pytest.approx(2.0)  # the peak reaches the top padding


def test_non_finite_values_are_left_out_of_the_line() -> None:
    assert len(points(parse(sparkline([1, math.nan, 2, math.inf, 3])))) == 3


def bars(root: ET.Element) -> list[tuple[str, float, float]]:
    """Each bar group's tooltip with its succeeded and failed heights."""
    found = []
    for group in root.iter(f"{SVG}g"):
        rects = {r.attrib["class"]: float(r.attrib["height"]) for r in group.iter(f"{SVG}rect")}
        found.append((group.findtext(f"{SVG}title") or "", rects["succeeded"], rects["failed"]))
    return found


def test_bars_stack_failed_on_succeeded_to_scale_with_a_labelled_axis() -> None:
    root = parse(bar_series([("10:00", 6, 2), ("10:05", 0, 0), ("10:10", 3, 1), ("10:15", 4, 0)], title="t"))
    drawn = bars(root)
    assert [title for title, _, _ in drawn] == [
        "10:00: 6 succeeded, 2 failed",
        "10:05: 0 succeeded, 0 failed",
        "10:10: 3 succeeded, 1 failed",
        "10:15: 4 succeeded, 0 failed",
    ]
    full = drawn[0][1] + drawn[0][2]  # the highest total (8) fills the plot
    assert drawn[0][1] == pytest.approx(full * 6 / 8, abs=0.1)
    assert drawn[2][1] + drawn[2][2] == pytest.approx(full / 2, abs=0.1)
    assert drawn[1][1:] == (0.0, 0.0)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"0", "8", "succeeded", "failed"} <= set(texts)
    assert [t for t in texts if t and ":" in t] == ["10:00", "10:10", "10:15"]  # first, middle, last


def test_bars_of_nothing_and_odd_counts_still_make_a_chart() -> None:
    empty = parse(bar_series([], title="no jobs"))
    assert bars(empty) == [] and empty.findtext(f"{SVG}title") == "no jobs"
    odd = bars(parse(bar_series([("a", -3, math.nan), ("b", 0, 0)])))
    assert [h for _, ok, bad in odd for h in (ok, bad)] == [0.0, 0.0, 0.0, 0.0]
    (single,) = bars(parse(bar_series([("only", 1.5, 0.5)])))
    assert single[0] == "only: 1.5 succeeded, 0.5 failed" and single[1] == pytest.approx(
        3 * single[2], abs=0.1
    )
