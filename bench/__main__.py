"""Run every core benchmark on one local stack and print every table.

    .venv/bin/python -m bench [--quick] [--backend postgres|sqs] [--markdown FILE]

``--quick`` shortens every run (a smoke test of the benchmarks, not figures to
publish). ``--markdown`` also writes the tables to FILE. Takes about 8 minutes.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from bench import api_throughput, latency, worker_throughput
from bench._common import BACKENDS, bench_parser, local_stack, log, machine
from bench._loadgen import WRK_HINT


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="only this backend (repeatable)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    backends = args.backend or list(BACKENDS)
    if not shutil.which("wrk"):
        log(WRK_HINT)
    started = time.monotonic()
    command = " ".join(["python -m bench", *sys.argv[1:]])
    tables = [f"# Tornado core benchmarks\n\n`{command}` — {machine()}"]
    with local_stack() as stack:
        if args.quick:
            tables.append(
                api_throughput.run(stack, backends=backends, duration=3, sqs_jobs=100, sqs_repeats=1)
            )
            tables.append(
                worker_throughput.run(
                    stack, backends=backends, jobs=500, sqs_jobs=60, concurrencies=(4,), breakdown_jobs=300
                )
            )
            tables.append(
                latency.run(stack, backends=backends, rate=100, seconds=5, sqs_rate=10, sqs_seconds=4)
            )
        else:
            tables.append(api_throughput.run(stack, backends=backends))
            tables.append(worker_throughput.run(stack, backends=backends))
            tables.append(latency.run(stack, backends=backends))
    elapsed = time.monotonic() - started
    footer = f"\n_total {elapsed / 60:.1f} min_"
    print(footer)
    if args.markdown:
        args.markdown.write_text("\n".join(tables) + "\n" + footer + "\n")
        log(f"tables written to {args.markdown}")


if __name__ == "__main__":
    main()
