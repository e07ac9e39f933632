"""Small server-side SVG charts for the console: a sparkline and stacked bars, no script, nothing fetched.

Every number written into a chart is formatted by this module and every text is escaped, so the
result can be embedded in a page as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

SUCCEEDED_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"
AXIS_COLOUR = "#888888"
_TEXT = 'font-family="sans-serif" font-size="10" fill="currentColor"'
_PAD = 2.0  # pixels kept free around a sparkline's line


def _num(value: float) -> str:
    """A coordinate: at most one decimal, no exponent, no ``-0``."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _count(value: float) -> str:
    """A value as people read it: ``12``, ``3.5``, ``1200``."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _svg(width: int, height: int, title: str, css_class: str, body: Sequence[str]) -> str:
    label = escape(title, quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{label}"><title>{label}</title>'
        + "".join(body)
        + "</svg>"
    )


def _downsample(values: Sequence[float], most: int) -> list[float]:
    """At most ``most`` values, each the highest of its share of ``values`` (peaks stay visible)."""
    if len(values) <= most:
        return list(values)
    size = len(values) / most
    return [max(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]) for i in range(most)]


def sparkline(values: Sequence[float], *, width: int = 160, height: int = 32, title: str = "") -> str:
    """A line of ``values`` from 0 (or their lowest, if below 0) to their highest, as an ``<svg>`` string.

    Non-finite values are left out; more values than pixels are reduced to the highest of each
    pixel's share. No value draws a dashed base line, one value a level line.

    Args:
        values: The series, oldest first.
        width: Pixels wide.
        height: Pixels high.
        title: What the line shows (the accessible name; escaped).

    Returns:
        An ``<svg>`` element with a ``<title>`` and a ``<desc>`` summing the values up.
    """
    width, height = max(int(width), 16), max(int(height), 8)
    points = _downsample([v for v in map(_finite, values) if v is not None], int(width - 2 * _PAD))
    if not points:
        base = _num(height - _PAD)
        line = f'<line x1="{_num(_PAD)}" y1="{base}" x2="{_num(width - _PAD)}" y2="{base}"'
        body = [f'{line} stroke="{AXIS_COLOUR}" stroke-dasharray="2 3"/>', "<desc>no samples</desc>"]
        return _svg(width, height, title, "sparkline", body)
    low, high = min(0.0, *points), max(points)
    span = (high - low) or 1.0
    xs = [_PAD + (width - 2 * _PAD) * i / max(len(points) - 1, 1) for i in range(len(points))]
    ys = [height - _PAD - (height - 2 * _PAD) * (v - low) / span for v in points]
    if len(points) == 1:
        xs, ys = [_PAD, width - _PAD], ys * 2
    coordinates = " ".join(f"{_num(x)},{_num(y)}" for x, y in zip(xs, ys, strict=True))
    desc = f"{len(points)} values; last {_count(points[-1])}; highest {_count(high)}"
    body = [
        f"<desc>{desc}</desc>",
        f'<polyline points="{coordinates}" fill="none" stroke="currentColor" stroke-width="1.5"/>',
        f'<circle cx="{_num(xs[-1])}" cy="{_num(ys[-1])}" r="2" fill="currentColor"/>',
    ]
    return _svg(width, height, title, "sparkline", body)


def _axis(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" stroke="{AXIS_COLOUR}"/>'


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" {_TEXT}>{escape(text)}</text>'


def _bar(x: float, width: float, label: str, ok: float, bad: float, base: float, scale: float) -> str:
    tip = escape(f"{label}: {_count(ok)} succeeded, {_count(bad)} failed")
    ok_h, bad_h = ok * scale, bad * scale
    rect = f'<rect x="{_num(x)}" width="{_num(width)}"'
    return (
        f"<g><title>{tip}</title>"
        f'{rect} y="{_num(base - ok_h)}" height="{_num(ok_h)}" class="succeeded" fill="{SUCCEEDED_COLOUR}"/>'
        f'{rect} y="{_num(base - ok_h - bad_h)}" height="{_num(bad_h)}" class="failed"'
        f' fill="{FAILED_COLOUR}"/></g>'
    )


def _drawn(value: float) -> float:
    """A bar's count: 0 for a negative or non-finite one."""
    return max(_finite(value) or 0.0, 0.0)


def _legend(width: int) -> list[str]:
    """Which colour is which, at the top right."""
    return [
        f'<rect x="{_num(width - 120)}" y="2" width="8" height="8" fill="{SUCCEEDED_COLOUR}"/>',
        _text(width - 109, 10, "succeeded"),
        f'<rect x="{_num(width - 52)}" y="2" width="8" height="8" fill="{FAILED_COLOUR}"/>',
        _text(width - 41, 10, "failed"),
    ]


def _x_labels(labels: Sequence[str], left: float, plot_w: float, y: float) -> list[str]:
    """The first, middle and last labels under their bars (one label: centred)."""
    if len(labels) <= 1:
        return [_text(left + plot_w / 2, y, label, "middle") for label in labels]
    middle = len(labels) // 2
    marks = {0: (left, "start"), len(labels) - 1: (left + plot_w, "end")}
    if len(labels) > 2:
        marks[middle] = (left + plot_w * (middle + 0.5) / len(labels), "middle")
    return [_text(x, y, labels[index], anchor) for index, (x, anchor) in sorted(marks.items())]


def bar_series(
    buckets: Sequence[tuple[str, float, float]], *, width: int = 480, height: int = 120, title: str = ""
) -> str:
    """Stacked bars, succeeded below and failed above, with a labelled axis, as an ``<svg>`` string.

    Args:
        buckets: ``(label, succeeded, failed)`` per interval, oldest first; labels (e.g. ``"14:05"``)
            are escaped, negative or non-finite counts drawn as 0.
        width: Pixels wide.
        height: Pixels high.
        title: What the chart shows (the accessible name; escaped).

    Returns:
        An ``<svg>`` element: a ``<title>``, the y axis labelled 0 and its highest total, the first,
        middle and last labels under the x axis, a legend, and one bar (with its own ``<title>``)
        per bucket.
    """
    width, height = max(int(width), 120), max(int(height), 60)
    left, right, top, bottom = 34.0, 4.0, 14.0, 16.0
    base, plot_w = height - bottom, width - left - right
    rows = [(label, _drawn(ok), _drawn(bad)) for label, ok, bad in buckets]
    highest = max((ok + bad for _, ok, bad in rows), default=0.0)
    scale = (base - top) / highest if highest else 0.0
    body = [
        _axis(left, top, left, base),
        _axis(left, base, width - right, base),
        _text(left - 3, base, "0", "end"),
    ]
    if highest:
        body.append(_text(left - 3, top + 8, _count(highest), "end"))
    body.extend(_legend(width))
    step = plot_w / len(rows) if rows else 0.0
    gap = 1.0 if step > 3 else 0.0
    for index, (label, ok, bad) in enumerate(rows):
        body.append(_bar(left + index * step + gap / 2, step - gap, label, ok, bad, base, scale))
    body.extend(_x_labels([label for label, _, _ in rows], left, plot_w, height - 4.0))
    return _svg(width, height, title, "bars", body)
