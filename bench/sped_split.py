"""Benchmark: a large SPED file in one piece against the same file split in K parallel parts.

``sped.efd_icms_ipi`` with ``parts = K`` has K ``sped.efd_part`` jobs write block C's documents in
parallel, then concatenates them in order (docs/sped.md). This measures what that buys on this
machine, without queues in between: one fresh ERP database, one company; the file in one piece
(``write_efd`` in one child process); then for each K, K child processes writing their part of
block C to a temp file at once (``write_part``), and the file assembled from them (``write_efd``
with ``block_c_from``) in one more. Wall time of each way, lines per second, and the ratio
against the one-piece run; every assembled file must have the one-piece file's SHA-256 (exit 1
otherwise). The bytes go to a discarding sink: the S3 upload is the same either way.

    .venv/bin/python -m bench.sped_split [--documents 150000] [--parts 2,4]

Uses ``$TORNADO_STATE_DIR``'s stack if set, else a temporary one (see bench/README.md).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from tornado_tasks.sped.efd_parts import DocumentRange, PartFile, block_c_from, document_ranges, write_part
from tornado_tasks.sped.efd_writer import write_efd
from tornado_tasks.sped.seed import seed_erp

from bench._common import bench_parser, local_stack, log, machine, print_grid, ratio
from tornado_core.adapters.postgres.pool import connect
from tornado_core.devstack import DevStack

START, END = date(2025, 1, 1), date(2025, 1, 31)


class _Hashing:
    """Discards the bytes, keeping their SHA-256 and size."""

    def __init__(self) -> None:
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def one_piece(dsn: str, cnpj: str) -> tuple[float, int, str]:
    """The whole file in this process: (seconds, lines, sha256)."""
    started, conn = time.perf_counter(), connect(dsn)
    try:
        summary = write_efd(conn, cnpj=cnpj, start=START, end=END, cod_fin=0, out=_Hashing())
    finally:
        conn.close()
    return time.perf_counter() - started, summary.lines, summary.sha256


def one_part(dsn: str, cnpj: str, after: Any, through: Any, path: str) -> dict[str, Any]:
    """One part of block C to ``path``; its :class:`PartFile` as a dict."""
    conn = connect(dsn)
    try:
        with open(path, "wb") as out:
            part = write_part(
                conn, cnpj=cnpj, start=START, end=END, document_range=DocumentRange(after, through), out=out,
                key=path, progress=lambda done: None,
            )  # fmt: skip
    finally:
        conn.close()
    return part.as_result()


def assemble(dsn: str, cnpj: str, results: list[dict[str, Any]]) -> tuple[float, int, str]:
    """The file with block C from the parts: (seconds, lines, sha256)."""
    parts = [PartFile.from_result(result) for result in results]
    started, conn = time.perf_counter(), connect(dsn)
    try:
        summary = write_efd(
            conn, cnpj=cnpj, start=START, end=END, cod_fin=0, out=_Hashing(),
            block_c=block_c_from(parts, lambda key: iter([Path(key).read_bytes()])),
        )  # fmt: skip
    finally:
        conn.close()
    return time.perf_counter() - started, summary.lines, summary.sha256


def split(dsn: str, cnpj: str, parts: int, folder: str) -> tuple[float, float, float, int, str]:
    """The file in ``parts`` parallel parts: (wall, parts' wall, assembly, lines, sha256)."""
    started = time.perf_counter()
    conn = connect(dsn)
    try:
        ranges = document_ranges(conn, cnpj=cnpj, start=START, end=END, parts=parts)
    finally:
        conn.close()
    with ProcessPoolExecutor(max_workers=parts) as pool:
        futures = [
            pool.submit(one_part, dsn, cnpj, r.after, r.through, f"{folder}/part-{parts}-{i}.txt")
            for i, r in enumerate(ranges)
        ]
        results = [future.result() for future in futures]
        parts_done = time.perf_counter() - started
        seconds, lines, sha = pool.submit(assemble, dsn, cnpj, results).result()
    return time.perf_counter() - started, parts_done, seconds, lines, sha


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--documents", type=int, default=150_000, help="documents of the company")
    parser.add_argument("--parts", default="2,4", help="part counts to try (default: %(default)s)")
    args = parser.parse_args()
    counts = [int(n) for n in args.parts.split(",")]
    at_start = machine()
    with local_stack() as stack:
        dev = DevStack(stack.state_dir)
        dsn = dev.create_database()
        try:
            conn = connect(dsn)
            report = seed_erp(conn, companies=1, documents=args.documents, items_per_document=range(1, 9),
                              period=(2025, 1), seed=3)  # fmt: skip
            conn.commit()
            with conn.cursor() as cur:
                cur.execute("SELECT cnpj FROM erp_company")
                (cnpj,) = cur.fetchone()
            conn.close()
            log(f"sped_split: seeded {report.item_lines:,} item lines")
            with ProcessPoolExecutor(max_workers=1) as pool:
                whole, lines, sha = pool.submit(one_piece, dsn, cnpj).result()
            log(f"sped_split: one piece {lines:,} lines in {whole:.1f}s")
            rows = [["1 (one piece)", f"{whole:.1f}", f"{lines / whole:,.0f}", "1.00", "", "reference"]]
            failed = False
            with tempfile.TemporaryDirectory() as folder:
                for parts in counts:
                    wall, parts_done, assembly, split_lines, split_sha = split(dsn, cnpj, parts, folder)
                    same = split_sha == sha and split_lines == lines
                    failed |= not same
                    timing = f"{parts_done:.1f}s parts + {assembly:.1f}s assembly"
                    log(f"sped_split: {parts} parts in {wall:.1f}s ({timing})")
                    rows.append([
                        str(parts), f"{wall:.1f}", f"{lines / wall:,.0f}", ratio(whole, wall),
                        f"{parts_done:.1f} + {assembly:.1f}", "same SHA-256" if same else "DIFFERENT FILE",
                    ])  # fmt: skip
        finally:
            dev.drop_database(dsn)
    notes = [
        f"one company, {report.documents:,} documents, {report.item_lines:,} item lines, January 2025; "
        f"{lines:,} file lines; bytes hashed and discarded",
        "speed-up = one-piece wall time / split wall time; parts + assembly = the parts' wall time "
        "(in parallel) and the assembly (block 0, the parts copied in order, blocks D to 9)",
        f"`.venv/bin/python -m bench.sped_split {' '.join(sys.argv[1:])}`; at the start: {at_start}",
    ]
    header = ("parts", "wall s", "file lines/s", "speed-up", "parts + assembly s", "check")
    print_grid("SPED: one piece against parallel parts", header, rows, notes)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
