"""How ``tornado release`` shows things: the status table and the drain progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from tornado_core.releases.queues import Backlog
from tornado_core.releases.view import VersionStatus

_COLUMNS = (
    ("VERSION", "version"),
    ("STATE", "state"),
    ("ROLE", "role"),
    ("RUNTIME", "runtime"),
    ("WORKERS", "workers"),
    ("VISIBLE", "visible"),
    ("IN FLIGHT", "in_flight"),
    ("DELAYED", "delayed"),
    ("DLQ", "dlq"),
    ("JOBS", "jobs"),
    ("SUCCESS", "success"),
    ("ERRORS", "errors"),
    ("DETAIL", "detail"),
)


def _cells(row: VersionStatus) -> dict[str, str]:
    data = row.to_json()

    def number(key: str) -> str:
        value = data[key]
        return "-" if value is None else str(value)

    finished = row.stats.succeeded + row.stats.dead
    return {
        "version": row.release.version,
        "state": str(row.release.state),
        "role": row.role or "-",
        "runtime": row.release.runtime,
        "workers": f"{row.healthy}/{row.release.replicas}",
        "visible": number("visible"),
        "in_flight": number("in_flight"),
        "delayed": number("delayed"),
        "dlq": number("dlq"),
        "jobs": str(row.stats.jobs),
        "success": f"{row.stats.success_rate:.1f}%" if finished else "-",
        "errors": f"{row.stats.error_rate:.1f}%" if row.stats.attempts else "-",
        "detail": row.release.detail,
    }


def status_table(rows: Sequence[VersionStatus]) -> str:
    """A plain-text table, one line per version (``WORKERS`` is healthy/wanted)."""
    cells = [_cells(row) for row in rows]
    widths = {key: max([len(title), *(len(c[key]) for c in cells)]) for title, key in _COLUMNS}
    lines = ["  ".join(title.ljust(widths[key]) for title, key in _COLUMNS).rstrip()]
    lines += ["  ".join(c[key].ljust(widths[key]) for _, key in _COLUMNS).rstrip() for c in cells]
    return "\n".join(lines)


@contextmanager
def backlog_bar(label: str) -> Iterator[Any]:
    """A progress bar on stderr fed with :class:`Backlog` values; yields the feeding function."""
    with click.progressbar(length=1, label=label, file=sys.stderr, show_pos=True) as bar:
        seen = {"peak": 0}

        def feed(backlog: Backlog) -> None:
            seen["peak"] = max(seen["peak"], backlog.remaining, 1)
            bar.length = seen["peak"]
            bar.label = f"{label} ({backlog.describe()})"
            bar.update(seen["peak"] - backlog.remaining - bar.pos)

        yield feed


def backlog_lines(label: str, every: float = 5.0) -> Callable[[Backlog], None]:
    """Feeds :class:`Backlog` values as a line at most every ``every`` seconds (for long runs)."""
    last = {"at": 0.0}

    def feed(backlog: Backlog) -> None:
        now = time.monotonic()
        if now - last["at"] >= every or not backlog.remaining:
            click.echo(f"  {label}: {backlog.remaining} left ({backlog.describe()})")
            last["at"] = now

    return feed
