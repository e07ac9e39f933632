"""Benchmark: the SPED EFD ICMS/IPI generator and validator -- lines per second and peak RSS by file size.

The issue: C170 item lines per second and peak RSS of the worker at 100 k, 1 M and 5 M lines,
memory flat as the file grows (target: 1 M C170 lines per minute per process, 16,667 lines/s, in
under 150 MB RSS); the validator's lines per second and peak RSS on the same files.

For each size, in a fresh ERP database of the local stack:

1. **Seed** (not measured): ``seed_erp`` with 2 companies (the second has no movement), 1-8 lines
   per document, January 2025; the document count is chosen so that the file has about the
   asked-for number of C170 lines (C170 per document measured first on a small pilot database,
   with the generator's own line filter: NFC-e, CT-e, cancelled documents and, since e6c2ae4,
   the filer's own NF-e have none). Its time is reported apart.
2. **Baselines of the generator**: a child process reads the same C170 rows through the
   generator's own server-side cursor (same query, same fetch size), without formatting them
   (the database floor); another runs the whole generator into a sink that discards the bytes
   (what the S3 upload costs, in time and memory).
3. **Generator ("the worker")**: a child process runs ``write_efd`` for the company streaming
   into ``S3ObjectStore.upload`` (multipart, 8 MiB parts) on the stack's moto endpoint, as the
   task ``sped.efd_icms_ipi`` does. C170 lines/s and all lines/s over the whole run (first query
   to completed upload), peak RSS of that process (VmHWM), and its VmRSS along the file.
4. The object is downloaded to a temp file; its SHA-256 must equal the generator's summary.
5. **Validator**: a child process runs ``validate_file`` on it: lines/s and peak RSS; it must
   find no problem. Baseline: the same file read and split on ``|`` (the I/O floor).

Ratios: generation against the target (16,667 C170 lines/s) and against the cursor floor (the
share of the time that is the database and driver); peak RSS against the first (smallest) size
(flatness, ~1.00 expected). Exit code 1 if a checksum differs or the validator finds problems.

    .venv/bin/python -m bench.sped                      # 100k, 1m and 5m C170 lines (~50 min)
    .venv/bin/python -m bench.sped --sizes 100k,1m      # quick (~7.5 min)
    .venv/bin/python -m bench.sped --sizes 100k,5m --no-null-sink   # the 5M file, ~30 min

Since the filer's own NF-e have no C170 (e6c2ae4), a file has ~3.6 lines per C170 line and the
database ~3.2 item lines per C170 line: 5M C170 lines are ~16M seeded lines and an ~2.2 GB file.

Uses ``$TORNADO_STATE_DIR``'s stack if set, else a temporary one (see bench/README.md). Every
database, object and temp file it creates is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tornado_tasks.sped.efd_writer import write_efd
from tornado_tasks.sped.seed import seed_erp

from bench._common import (
    REPO_ROOT,
    BenchStack,
    bench_parser,
    child_env,
    local_stack,
    log,
    machine,
    print_grid,
    ratio,
    stack_groups,
)
from bench._sped_support import Discard, StackCpu, download, source_version, temp_file
from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.postgres.pool import connect
from tornado_core.devstack import BUCKET, REGION, DevStack

PERIOD = (2025, 1)
START, END = date(2025, 1, 1), date(2025, 1, 31)
LINES_PER_DOCUMENT = range(1, 9)
#: Documents of the pilot seeding that measures C170 lines per document.
PILOT_DOCUMENTS = 4_000
TARGET_C170_PER_SECOND = 1_000_000 / 60
TARGET_RSS_MB = 150
MIB = 1024 * 1024
HEADER = ("C170 lines", "measure", "tornado", "baseline", "ratio", "target", "note")


def parse_size(text: str) -> int:
    """``100k`` / ``1m`` / ``5M`` / ``250000`` -> lines."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1_000}k"


@dataclass
class Seeded:
    dsn: str
    cnpj: str
    documents: int
    item_lines: int
    seconds: float


@dataclass
class SizeResult:
    size: int
    seeded: Seeded
    cursor: dict[str, Any]
    null: dict[str, Any] | None
    generate: dict[str, Any]
    validate: dict[str, Any]
    split: dict[str, Any]
    stack: StackCpu
    sha_ok: bool

    @property
    def c170(self) -> int:
        return int(self.generate["record_counts"].get("C170", 0))

    def rate(self, what: dict[str, Any], key: str = "lines") -> float:
        return float(what[key]) / what["seconds"] if what["seconds"] > 0 else 0.0


def _one(cur: Any) -> Any:
    """The first column of the one row a query answered."""
    row = cur.fetchone()
    assert row is not None
    return row[0]


def seed(stack: DevStack, size: int, c170_per_document: float) -> Seeded:
    """A fresh database with one company whose January has about ``size`` C170 lines."""
    dsn = stack.create_database()
    documents = max(1, round(size / c170_per_document))
    conn = connect(dsn)
    try:
        report = seed_erp(
            conn, companies=2, documents=documents, items_per_document=LINES_PER_DOCUMENT,
            period=PERIOD, seed=1,
        )  # fmt: skip
        conn.commit()
        company = next(c for c in report.company_ids if c != report.empty_company_id)
        with conn.cursor() as cur:
            cur.execute("SELECT cnpj FROM erp_company WHERE company_id = %s", (company,))
            cnpj = str(_one(cur))
        conn.commit()
    finally:
        conn.close()
    return Seeded(dsn, cnpj, report.documents, report.item_lines, report.elapsed)


def run_child(stack: BenchStack, mode: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """``python -m bench._sped_child MODE ARGS``; its JSON answer (or an error with its output)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench._sped_child", mode, json.dumps(arguments)],
        env=child_env(stack.info.env(), TORNADO_LOG_LEVEL="WARNING"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def c170_per_document(stack: DevStack) -> float:
    """C170 lines per seeded document: a small pilot database generated to nowhere, then dropped.

    The generator decides which lines are C170 (not the NFC-e's, the CT-e's, cancelled documents'
    nor the filer's own NF-e's), so its own count is used.
    """
    pilot = seed(stack, PILOT_DOCUMENTS, 1.0)
    try:
        conn = connect(pilot.dsn)
        try:
            summary = write_efd(conn, cnpj=pilot.cnpj, start=START, end=END, cod_fin=0, out=Discard())
        finally:
            conn.close()
    finally:
        stack.drop_database(pilot.dsn)
    return int(summary.record_counts.get("C170", 0)) / pilot.documents


def measure_size(stack: BenchStack, size: int, c170_per_document: float, *, null_sink: bool) -> SizeResult:
    """Seed, baseline, generate, check, validate one size; drop its database and object."""
    dev = DevStack(stack.state_dir)
    log(f"sped {label(size)}: seeding ({round(size / c170_per_document):,} documents)")
    seeded = seed(dev, size, c170_per_document)
    client = make_client(
        "s3", region=REGION, endpoint_url=stack.info.aws_endpoint_url, credentials=("test", "test")
    )
    key = f"bench/sped/{uuid.uuid4().hex}/efd-{label(size)}.txt"
    common = {"dsn": seeded.dsn, "cnpj": seeded.cnpj, "start": START.isoformat(), "end": END.isoformat()}
    try:
        log(
            f"sped {label(size)}: seeded {seeded.item_lines:,} item lines in {seeded.seconds:.0f}s;"
            " cursor baseline"
        )
        cursor = run_child(stack, "cursor", common)
        null = None
        if null_sink:
            log(f"sped {label(size)}: generating into a null sink")
            null = run_child(stack, "generate", common)
        log(f"sped {label(size)}: generating into s3://{BUCKET}/{key}")
        cpu = StackCpu(stack_groups(stack)).start()
        generated = run_child(
            stack, "generate", {**common, "key": key, "endpoint": stack.info.aws_endpoint_url}
        )
        cpu.stop()
        with temp_file(".txt") as path:
            log(f"sped {label(size)}: downloading {generated['bytes'] / 1e6:,.0f} MB")
            sha, length = download(client, key, path)
            sha_ok = sha == generated["sha256"] and length == generated["bytes"]
            if not sha_ok:
                log(f"sped {label(size)}: CHECKSUM MISMATCH: object {sha} ({length} B), summary "
                    f"{generated['sha256']} ({generated['bytes']} B)")  # fmt: skip
            log(f"sped {label(size)}: validating")
            split = run_child(stack, "split", {"path": str(path)})
            validated = run_child(stack, "validate", {"path": str(path)})
    finally:
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=BUCKET, Key=key)
        dev.drop_database(seeded.dsn)
    return SizeResult(size, seeded, cursor, null, generated, validated, split, cpu, sha_ok)


def _rss_halves(samples: list[list[float]]) -> str:
    """Highest VmRSS in the first and in the second half of block C (progress 0.2-0.5, 0.5-0.8)."""
    first = [rss for fraction, rss in samples if 0.2 <= fraction < 0.5]
    second = [rss for fraction, rss in samples if 0.5 <= fraction <= 0.8]
    return f"{max(first, default=0):.0f} / {max(second, default=0):.0f}"


def rows_of(result: SizeResult, first: SizeResult) -> list[tuple[str, ...]]:
    """The table lines of one size; RSS ratios against ``first`` (the smallest size)."""
    r, g, n, v = result, result.generate, result.null, result.validate
    size = f"{r.c170:,}"
    c170_rate, all_rate = r.c170 / g["seconds"], r.rate(g)
    cursor_rate = r.rate(r.cursor, "rows")
    seed = r.seeded
    rows: list[tuple[str, ...]] = [
        (size, "seed (not measured)", f"{seed.item_lines / seed.seconds:,.0f} lines/s", "", "", "",
         f"{seed.documents:,} documents, {seed.item_lines:,} item lines in {seed.seconds:.0f}s"),
        (size, "**generate -> S3: C170 lines/s**", f"{c170_rate:,.0f}", f"{TARGET_C170_PER_SECOND:,.0f}",
         ratio(c170_rate, TARGET_C170_PER_SECOND), ">= 1.00 (1M/min)",
         f"{g['seconds']:.1f}s; all {g['lines']:,} lines {all_rate:,.0f}/s; {g['bytes'] / 1e6:,.1f} MB; "
         f"generator {g['cpu_seconds'] / g['seconds']:.2f} cores, {r.stack.note(g['seconds'])}; sha256 "
         f"{'ok' if r.sha_ok else 'MISMATCH'}"),
        (size, "generate -> S3 vs cursor floor", f"{c170_rate:,.0f}", f"{cursor_rate:,.0f}",
         ratio(c170_rate, cursor_rate), "",
         f"floor: same C170 query + cursor, rows unformatted ({r.cursor['seconds']:.1f}s, peak "
         f"{r.cursor['peak_rss_mib']:.0f} MiB)"),
        (size, "**generate -> S3: peak RSS MiB**", f"{g['peak_rss_mib']:.1f}",
         f"{first.generate['peak_rss_mib']:.1f}", ratio(g["peak_rss_mib"], first.generate["peak_rss_mib"]),
         f"< {TARGET_RSS_MB} MB; ~1.00",
         f"{g['rss_start_mib']:.0f} MiB before write_efd; highest VmRSS in 1st / 2nd half of block C: "
         f"{_rss_halves(g['rss_samples'])} MiB"),
        (size, "**validate: lines/s**", f"{r.rate(v):,.0f}", f"{r.rate(r.split):,.0f}",
         ratio(r.rate(v), r.rate(r.split)), "",
         f"{v['seconds']:.1f}s, {v['lines']:,} lines, {v['problems']} problems; baseline: read + "
         f"split on '|' ({r.split['seconds']:.1f}s)"),
        (size, "**validate: peak RSS MiB**", f"{v['peak_rss_mib']:.1f}",
         f"{first.validate['peak_rss_mib']:.1f}", ratio(v["peak_rss_mib"], first.validate["peak_rss_mib"]),
         "~1.00",
         f"{v['rss_start_mib']:.0f} MiB before validate_file; split baseline peak "
         f"{r.split['peak_rss_mib']:.0f} MiB"),
    ]  # fmt: skip
    if n is not None and first.null is not None:
        null_rate = r.c170 / n["seconds"]
        rows.insert(2, (
            size, "generate -> null sink: C170 lines/s", f"{null_rate:,.0f}", f"{c170_rate:,.0f}",
            ratio(null_rate, c170_rate), "",
            f"{n['seconds']:.1f}s, no S3 (baseline: the S3 run); peak {n['peak_rss_mib']:.1f} MiB, "
            f"{n['peak_rss_mib'] / first.null['peak_rss_mib']:.2f} x the smallest size's",
        ))  # fmt: skip
    return rows


NOTES = (
    "one fresh database per size; 2 companies seeded (company 2 has no movement), 1-8 lines per "
    "document, January 2025, seed 1; the row label is the C170 count of the generated file",
    "generate -> S3: one child process, write_efd streamed into S3ObjectStore.upload (8 MiB parts) on "
    "moto, timed from the first query to the completed upload; peak RSS = VmHWM of that process "
    "(Python, psycopg2, boto3 included); cores = CPU seconds / wall seconds of the child, of PostgreSQL "
    "(its backends included) and of moto during that run; machine busy = all CPUs (other jobs included)",
    "generate -> null sink (unless --no-null-sink): the same in another child, bytes discarded (no S3 "
    "client): what the upload costs",
    "cursor floor: the generator's own C170 query and server-side cursor (2,000 rows per fetch), rows "
    "read and dropped: how much of the time is the database and the driver",
    "validate: validate_file on the downloaded object (page-cached temp file), one child process; "
    "baseline: the same file read in binary, each line split on '|'",
    "RSS ratio: against the same measure at the smallest size (flat memory: ~1.00); MiB = 2^20 bytes",
)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--sizes", default="100k,1m,5m", help="C170 lines per file, e.g. 100k,1m (default: %(default)s)"
    )
    parser.add_argument(
        "--no-null-sink", action="store_true", help="skip the generation into a null sink (halves the time)"
    )
    parser.add_argument("--markdown", type=Path, help="also append the table to this file")
    args = parser.parse_args()
    sizes = sorted(parse_size(s) for s in args.sizes.split(",") if s.strip())
    command = " ".join([".venv/bin/python -m bench.sped", *sys.argv[1:]])
    load_before, version_before = machine(), source_version()
    started = time.monotonic()
    results: list[SizeResult] = []
    with local_stack() as stack:
        per_document = c170_per_document(DevStack(stack.state_dir))
        log(f"sped: {per_document:.2f} C170 lines per seeded document (pilot of {PILOT_DOCUMENTS:,})")
        for size in sizes:
            r = measure_size(stack, size, per_document, null_sink=not args.no_null_sink)
            results.append(r)
            g, v = r.generate, r.validate
            log(
                f"sped {label(size)}: {r.c170:,} C170 in {g['seconds']:.1f}s "
                f"({r.c170 / g['seconds']:,.0f}/s, "
                f"{g['lines']:,} lines), peak {g['peak_rss_mib']:.1f} MiB; validator {v['seconds']:.1f}s, "
                f"peak {v['peak_rss_mib']:.1f} MiB, {v['problems']} problems"
            )
    rows = [row for result in results for row in rows_of(result, results[0])]
    version = source_version()
    if version != version_before:
        version = f"{version_before} at the start, {version} at the end (edited during the run)"
    notes = [
        *NOTES,
        f"`{command}`, {time.monotonic() - started:.0f}s in all; at the start: {load_before}; "
        f"code: {version}; {per_document:.2f} C170 lines per seeded document",
    ]
    text = print_grid("SPED EFD ICMS/IPI: generator and validator by file size", HEADER, rows, notes)
    if args.markdown:
        with args.markdown.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
    failed = [label(r.size) for r in results if not r.sha_ok or r.validate["problems"]]
    for result in results:
        for problem in result.validate["first_problems"]:
            log(f"sped {label(result.size)}: validator: {problem}")
    if failed:
        log(f"sped: FAILED for {', '.join(failed)} (checksum mismatch or validator problems)")
        sys.exit(1)


if __name__ == "__main__":
    main()
