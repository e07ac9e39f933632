"""The HTTP ceiling: a trivial tornado POST handler (parse a small JSON body, answer 202 JSON).

python -m bench._hello --port 8081 [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.process import fork_processes


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok"})

    def post(self) -> None:
        data = json.loads(self.request.body or b"{}")
        self.set_status(202)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"id": "hello", "task": data.get("task"), "status": "queued"}))


async def _serve(sockets: list) -> None:  # type: ignore[type-arg]
    server = HTTPServer(tornado.web.Application([(r"/.*", Hello)], log_function=lambda _h: None))
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    sockets = bind_sockets(args.port, "127.0.0.1")
    if args.processes != 1:
        fork_processes(args.processes, max_restarts=0)
    asyncio.run(_serve(sockets))


if __name__ == "__main__":
    main()
