"""Run the SEFAZ emulator as a process: ``python -m tornado_tasks.nfe.emulator``.

Options::

    --host 127.0.0.1           address to listen on (loopback by default; keep it there)
    --port N                   TCP port; 0 picks a free one (the ready file says which)
    --tls-cert PEM --tls-key PEM
                               serve HTTPS with this certificate chain and key
    --client-ca PEM            require a client certificate signed by this CA (mutual TLS, as
                               SEFAZ does); needs --tls-cert
    --scenario NAME            default scenario at start and after a reset (authorize)
    --uf SP|35                 the emulated authoriser's UF (cUF of answers that name none)
    --cancel-window-hours H    how long after authorisation a cancellation is accepted (24)
    --ready-file PATH          once listening, write {"pid", "host", "port", "url", "tls",
                               "mutual_tls"} there (atomically; removed at exit)

Once it accepts connections it prints ``nfe-emulator ready <url> pid <pid>`` on stdout. TLS is
capped at 1.2, as SEFAZ's own servers, which also makes a missing client certificate fail
during the handshake. SIGTERM or SIGINT stop it: open connections are closed, held requests
dropped. Each request is logged (tornado's access log) on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import tornado.httpserver
import tornado.netutil

from ..access_key import UF_CODES
from .app import MAX_BODY, make_emulator_app
from .scenarios import Behaviour, Scenario, ScenarioInvalid
from .state import EmulatorState


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked (exits with status 2 on a mistake, as argparse does)."""
    parser = argparse.ArgumentParser(
        prog="python -m tornado_tasks.nfe.emulator",
        description="The local SEFAZ emulator (NF-e 4.00, SOAP 1.2).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--client-ca", type=Path)
    parser.add_argument("--scenario", default=Scenario.AUTHORIZE.value, choices=[s.value for s in Scenario])
    parser.add_argument("--uf", default="35")
    parser.add_argument("--cancel-window-hours", type=float, default=24.0)
    parser.add_argument("--ready-file", type=Path)
    options = parser.parse_args(argv)
    if (options.tls_cert is None) != (options.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if options.client_ca is not None and options.tls_cert is None:
        parser.error("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
    if not 0 <= options.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    uf = UF_CODES.get(options.uf.upper()) or (int(options.uf) if options.uf.isdigit() else None)
    if uf not in UF_CODES.values():
        parser.error(f"--uf must be a UF (SP) or its IBGE code (35), got {options.uf!r}")
    options.uf_code = uf
    return options


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2 server context; with ``client_ca``, a client certificate it signed is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


def write_ready_file(path: Path, info: dict[str, object]) -> None:
    """Write ``info`` as JSON to ``path`` atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(info))
    partial.replace(path)


async def serve(options: argparse.Namespace) -> None:
    """Listen until SIGTERM/SIGINT, announcing readiness once the port accepts connections."""
    state = EmulatorState(
        uf_code=options.uf_code,
        default=Behaviour.from_json({"scenario": options.scenario}),
        cancel_window=timedelta(hours=options.cancel_window_hours),
    )
    context = tls_context(options.tls_cert, options.tls_key, options.client_ca) if options.tls_cert else None
    server = tornado.httpserver.HTTPServer(
        make_emulator_app(state), ssl_options=context, max_body_size=MAX_BODY, xheaders=False
    )
    sockets = tornado.netutil.bind_sockets(options.port, address=options.host)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"{'https' if context else 'http'}://{host}:{port}"
    info = {
        "pid": os.getpid(),
        "host": options.host,
        "port": port,
        "url": url,
        "tls": context is not None,
        "mutual_tls": options.client_ca is not None,
    }
    try:
        if options.ready_file is not None:
            write_ready_file(options.ready_file, info)
        print(f"nfe-emulator ready {url} pid {os.getpid()}", flush=True)
        await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        if options.ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                options.ready_file.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    options = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(options))
    except (OSError, ssl.SSLError, ScenarioInvalid) as exc:
        print(f"nfe-emulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
