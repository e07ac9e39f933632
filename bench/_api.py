"""The Tornado API pre-forked: ``serve(factory, processes=N)`` for the benchmarks.

``bench.punches`` starts its API with it. It does what ``tornado api --processes N``
does (settings from the environment, queues provisioned, then ``serve``) with a services
factory, so each process opens its own connections after ``fork``, but without the console,
and it routes every job to the newest registered version (the default resolver).

    python -m bench._api --port 8080 --processes 2
"""

from __future__ import annotations

import argparse
import logging
import os

from tornado_core.bootstrap import build_services, provision_queues, services_from
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.web import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("TORNADO_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = Settings.load(os.environ)
    with services_from(settings) as services:
        provision_queues(services)

    def factory() -> Services:
        return build_services(settings)[0]

    serve(factory, host="127.0.0.1", port=args.port, processes=args.processes, grace=5.0)


if __name__ == "__main__":
    main()
