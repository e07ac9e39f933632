"""Re-checking what a REP recorded: the NSR sequence and the whole hash chain (the nightly audit)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from .afd import render_afd
from .afd_source import load_afd_source
from .verify import Report, verify_afd

_NSRS = """
SELECT nsr FROM ponto_punch WHERE rep_id = %(rep)s
UNION ALL SELECT nsr FROM ponto_event WHERE rep_id = %(rep)s
ORDER BY 1
"""


def rep_nsrs(conn: Any, rep: str) -> list[int]:
    """Every NSR the REP used (punches and other records), in order."""
    with conn.cursor() as cur:
        cur.execute(_NSRS, {"rep": rep})
        return [int(row[0]) for row in cur.fetchall()]


def audit_rep(conn: Any, rep: str) -> Report:
    """Render the REP's whole history as an AFD and verify it (NSRs 1..n, CRCs, the full chain).

    Raises:
        LookupError: No such REP.
    """
    source = load_afd_source(
        conn, rep=rep, start=date(2000, 1, 1), end=date(9998, 12, 31), generated_at=datetime.now(UTC)
    )
    report = verify_afd(render_afd(source.header, source.records))
    if source.records and source.records[0].nsr != 1:
        report.add(0, f"the REP's first record has NSR {source.records[0].nsr}, not 1")
    return report
