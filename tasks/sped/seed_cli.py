"""``seed-erp``: fill the ERP database (``TORNADO_ERP_DATABASE_URL``) with a month of fiscal data.

A click command for the ``tornado sped`` group (``tornado sped seed-erp``)::

    tornado sped seed-erp --companies 3 --documents 10000 --items-per-document 1-10 --period 2025-01 --seed 1

It creates the tables if missing (:mod:`.erp_schema`), writes the rows of :func:`.seed.seed_erp`
in one transaction, and prints what it wrote and how long it took.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date, timedelta

import click

from tornado_core.extend import command_services

_LINES = re.compile(r"(\d+)(?:-(\d+))?")
_PERIOD = re.compile(r"(\d{4})-(\d{2})")


def _lines(_ctx: click.Context, _param: click.Parameter, value: str) -> int | range:
    """``"5"`` gives 5, ``"1-10"`` gives ``range(1, 11)``."""
    match = _LINES.fullmatch(value.strip())
    if not match or (match[2] and int(match[2]) < int(match[1])):
        raise click.BadParameter(f"expected N or MIN-MAX (e.g. 1-10), not {value!r}")
    low = int(match[1])
    return range(low, int(match[2]) + 1) if match[2] else low


def _period(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int]:
    """``"2025-01"`` gives ``(2025, 1)``; none gives the month before this one."""
    if value is None:
        previous = date.today().replace(day=1) - timedelta(days=1)
        return previous.year, previous.month
    match = _PERIOD.fullmatch(value.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise click.BadParameter(f"expected YYYY-MM (e.g. 2025-01), not {value!r}")
    return int(match[1]), int(match[2])


@click.command("seed-erp")
@click.option("--companies", type=click.IntRange(1, 10_000), default=3, show_default=True, help="Companies.")
@click.option(
    "--documents",
    type=click.IntRange(0),
    default=1_000,
    show_default=True,
    help="Documents per company with movement (the second company has none).",
)
@click.option(
    "--items-per-document",
    "lines",
    default="1-10",
    show_default=True,
    callback=_lines,
    help="Lines per document: N, or MIN-MAX to draw each document's count from.",
)
@click.option("--period", default=None, callback=_period, help="YYYY-MM [default: last month].")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed writes the same rows.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print what was seeded as JSON (companies with their CNPJ)."
)
def seed_erp_command(
    companies: int, documents: int, lines: int | range, period: tuple[int, int], seed: int, as_json: bool
) -> None:
    """Write realistic, valid ERP fiscal data (companies, registers, NF-e/NFC-e/CT-e) for a month."""
    from .seed import seed_erp

    started = time.perf_counter()
    with command_services() as services:
        try:
            with services.rds.connection() as conn:
                report = seed_erp(
                    conn,
                    companies=companies,
                    documents=documents,
                    items_per_document=lines,
                    period=period,
                    seed=seed,
                )
            with services.rds.connection() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT company_id, cnpj FROM erp_company WHERE company_id IN %s", (report.company_ids,)
                )
                cnpjs = dict(cur.fetchall())
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps({
            "period": f"{period[0]}-{period[1]:02d}", "seed": seed, "documents": report.documents,
            "lines": report.item_lines, "seconds": round(elapsed, 2),
            "companies": [
                {"id": cid, "cnpj": cnpjs[cid], "movement": cid != report.empty_company_id}
                for cid in report.company_ids
            ],
        }))  # fmt: skip
        return
    first, last = report.company_ids[0], report.company_ids[-1]
    empty = f"; company {report.empty_company_id} has no movement" if report.empty_company_id else ""
    click.echo(f"seeded {period[0]}-{period[1]:02d} with seed {seed} in {elapsed:.1f} s (committed)")
    click.echo(f"  companies     {len(report.company_ids)} (ids {first}-{last}{empty})")
    click.echo(
        f"  registers     {report.participants:,} participants, {report.units:,} units,"
        f" {report.items:,} items, {report.inventory_rows:,} inventory rows"
    )
    click.echo(f"  documents     {report.documents:,} (total value {report.total_documents_value:,})")
    click.echo(
        f"  lines         {report.item_lines:,} ({report.item_lines / max(elapsed, 1e-9):,.0f} lines/s)"
    )
