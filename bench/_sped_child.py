"""The measured side of ``bench.sped``: one measurement per process, so its peak RSS is its own.

    python -m bench._sped_child MODE '<json arguments>'

Modes (each prints one JSON object on its last stdout line):

- ``generate``: :func:`write_efd` of one company-month streamed into an S3 multipart upload
  (``S3ObjectStore.upload``, as ``sped.efd_icms_ipi`` does), timed from the first query to the
  completed upload; VmRSS sampled at each progress report. Without ``key`` in the arguments,
  into a sink that discards the bytes (no S3 client is made).
- ``cursor``: the C170 rows of the same period read through a server-side cursor as the generator
  reads them (its query ``efd_queries.ITEM_ROWS`` for the whole file, its fetch size), not
  formatted: the database-and-driver floor.
- ``validate``: :func:`validate_file` on a local copy of the file.
- ``split``: the same file read line by line and split on ``|``: the I/O-and-parsing floor.

Peak RSS is VmHWM from ``/proc/self/status`` (see :func:`peak_rss_mib`); ``rss_start_mib`` is
VmRSS once the imports are done and the connection is open (what the measured work adds is the
difference).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from tornado_tasks.sped.efd_queries import ITEM_ROWS
from tornado_tasks.sped.efd_records import ByteStream, EfdSummary
from tornado_tasks.sped.efd_writer import FETCH, write_efd
from tornado_tasks.sped.validator import validate_file

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres.pool import connect
from tornado_core.devstack import BUCKET, REGION

CONTENT_TYPE = "text/plain; charset=iso-8859-1"


def _status_mib(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def vm_rss_mib() -> float:
    """This process's resident set size now (VmRSS), in MiB."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (VmHWM), in MiB.

    Not ``ru_maxrss``: Linux carries the parent's high-water mark over ``fork`` + ``execve``
    into it, so a child started by a bigger parent reports the parent's peak.
    """
    return _status_mib("VmHWM")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work``; its result plus seconds, CPU seconds, RSS at start and peak RSS."""
    rss_start = vm_rss_mib()
    cpu0, started = cpu_seconds(), time.perf_counter()
    result = work()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu0
    return {
        **result,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_start_mib": rss_start,
        "peak_rss_mib": peak_rss_mib(),
    }


class _NullSink:
    """Discards the bytes (the generator alone, without the upload)."""

    def write(self, data: bytes, /) -> int:
        return len(data)


def generate(args: dict[str, Any]) -> dict[str, Any]:
    """The file streamed into S3 under ``args["key"]`` (or discarded if there is no key).

    Returns the summary, the timings and VmRSS at each progress report.
    """
    conn = connect(args["dsn"])
    store = None
    if args.get("key"):  # made before the clock starts: a worker has its client already
        client = make_client("s3", region=REGION, endpoint_url=args["endpoint"], credentials=("test", "test"))
        store = S3ObjectStore(client, BUCKET)
    samples: list[tuple[float, float]] = []

    def progress(fraction: float) -> None:
        samples.append((round(fraction, 3), round(vm_rss_mib(), 1)))

    def run(out: ByteStream) -> EfdSummary:
        return write_efd(
            conn, cnpj=args["cnpj"], start=date.fromisoformat(args["start"]),
            end=date.fromisoformat(args["end"]), cod_fin=0, out=out, progress=progress,
        )  # fmt: skip

    def work() -> dict[str, Any]:
        if store is not None:
            with store.upload(args["key"], content_type=CONTENT_TYPE) as out:
                summary = run(out)
        else:
            summary = run(_NullSink())
        return {
            "lines": summary.lines,
            "bytes": summary.bytes,
            "sha256": summary.sha256,
            "record_counts": dict(summary.record_counts),
            "cod_ver": summary.cod_ver,
            "rss_samples": samples,
        }

    try:
        return _timed(work)
    finally:
        conn.rollback()
        conn.close()


def cursor(args: dict[str, Any]) -> dict[str, Any]:
    """The generator's C170 query through its own named cursor, rows counted and dropped."""
    conn = connect(args["dsn"])
    with conn.cursor() as cur:
        cur.execute("SET LOCAL cursor_tuple_fraction = 1.0")  # as write_efd
        cur.execute("SELECT company_id FROM erp_company WHERE cnpj = %s", (args["cnpj"],))
        row = cur.fetchone()
        assert row is not None, f"no company {args['cnpj']}"
        company = row[0]
    params = {
        "company": company,
        "start": date.fromisoformat(args["start"]),
        "end": date.fromisoformat(args["end"]),
    }

    def work() -> dict[str, Any]:
        rows = 0
        with conn.cursor(name="bench_c170") as named:  # as efd_writer streams it
            named.itersize = FETCH
            named.execute(ITEM_ROWS.format(part=""), params)
            for _row in named:
                rows += 1
        return {"rows": rows}

    try:
        return _timed(work)
    finally:
        conn.rollback()
        conn.close()


def validate(args: dict[str, Any]) -> dict[str, Any]:
    """:func:`validate_file` on the local copy; line and problem counts, the first problems."""

    def work() -> dict[str, Any]:
        report = validate_file(args["path"], keep=5)
        return {
            "lines": report.line_count,
            "problems": report.problem_count,
            "first_problems": [str(problem) for problem in report.problems],
        }

    return _timed(work)


def split(args: dict[str, Any]) -> dict[str, Any]:
    """Every line of the local copy read in binary and split on ``|`` (what any parser must do)."""

    def work() -> dict[str, Any]:
        lines = fields = 0
        with open(args["path"], "rb") as stream:
            for line in stream:
                lines += 1
                fields += len(line.split(b"|"))
        return {"lines": lines, "fields": fields}

    return _timed(work)


MODES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": generate,
    "cursor": cursor,
    "validate": validate,
    "split": split,
}


def main() -> None:
    mode, arguments = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(MODES[mode](arguments)), flush=True)


if __name__ == "__main__":
    main()
