"""Structured logs: the JSON line, the readable line, the bound fields and the format chosen."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tornado_core.errors import ConfigError
from tornado_core.message import Envelope
from tornado_core.observability.logs import (
    JsonFormatter,
    bind_log_fields,
    current_log_fields,
    job_log_fields,
    log_fields,
    log_handler,
    resolve_format,
    trace_id_of,
)
from tornado_core.task_context import job_logger

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def record(message: str = "hello %s", *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("tornado.worker", level, __file__, 1, message, args or ("world",), None)


def test_a_json_line_is_one_object_with_the_event() -> None:
    line = json.loads(JsonFormatter().format(record()))
    assert set(line) == {"ts", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "tornado.worker", "hello world")
    assert line["ts"].endswith("Z") and line["ts"][10] == "T"


def test_a_json_line_carries_the_bound_fields_in_their_order() -> None:
    with log_fields(job_id="j1", tenant="acme", trace_id="t" * 32, span_id=None):
        text = JsonFormatter().format(record())
    line = json.loads(text)
    assert list(line)[4:] == ["job_id", "tenant", "trace_id"]  # None values are not bound
    assert (line["job_id"], line["tenant"]) == ("j1", "acme")


def test_an_exception_stays_on_the_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "it broke", (), sys.exc_info())
    text = JsonFormatter().format(failed)
    assert "\n" not in text
    line = json.loads(text)
    assert line["exception"].startswith("Traceback") and "ValueError: bad\nvalue" in line["exception"]


def test_the_job_loggers_identity_fills_in_when_no_field_is_bound() -> None:
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    base = logging.getLogger("test_logs.job")
    base.addHandler(handler)
    base.propagate = False
    try:
        job_logger(base, job="j2", task="demo.echo", version="1.0.0").warning("retry in %.1fs", 2.0)
    finally:
        base.removeHandler(handler)
    line = json.loads(written.getvalue())
    assert (line["job_id"], line["task"], line["version"], line["level"]) == (
        "j2",
        "demo.echo",
        "1.0.0",
        "WARNING",
    )
    assert line["message"] == "retry in 2.0s"  # the tag of the text line is left to the fields


def test_a_jobs_fields_take_the_trace_from_its_envelope_when_not_traced_here() -> None:
    envelope = Envelope(
        job_id="j3", task="demo.echo", version="1.0.0", tenant="acme", traceparent=TRACEPARENT
    )
    with job_log_fields(envelope):
        fields = dict(current_log_fields())
    assert fields == {
        "job_id": "j3", "tenant": "acme", "task": "demo.echo", "version": "1.0.0",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }  # fmt: skip
    assert current_log_fields() == {}


def test_trace_ids_are_read_only_from_well_formed_traceparents() -> None:
    assert trace_id_of(TRACEPARENT) == "0af7651916cd43dd8448eb211c80319c"
    assert [trace_id_of(v) for v in (None, 42, "", "00-abc-def-01", f"00-{'0' * 32}-{'1' * 16}-01")] == [
        None
    ] * 5


def test_fields_bound_in_one_thread_are_not_seen_in_another() -> None:
    seen: list[dict[str, str]] = []
    with log_fields(job_id="mine"):
        thread = threading.Thread(target=lambda: seen.append(dict(current_log_fields())))
        thread.start()
        thread.join()
        assert current_log_fields() == {"job_id": "mine"}
    assert seen == [{}]


def test_bound_fields_add_up_and_a_reset_takes_them_back() -> None:
    with log_fields(tenant="acme"):
        with log_fields(job_id="j4", tenant=None):
            assert current_log_fields() == {"tenant": "acme", "job_id": "j4"}
        assert current_log_fields() == {"tenant": "acme"}
    assert current_log_fields() == {}


def test_fields_bound_in_a_context_without_a_reset_stay_in_it() -> None:
    def request() -> dict[str, str]:  # an API request's task binds and just ends
        bind_log_fields(tenant="acme", trace_id="t" * 32)
        return dict(current_log_fields())

    assert contextvars.copy_context().run(request) == {"tenant": "acme", "trace_id": "t" * 32}
    assert current_log_fields() == {}


def test_auto_is_text_in_a_terminal_and_json_elsewhere() -> None:
    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert (resolve_format("json", Terminal()), resolve_format("text", io.StringIO())) == ("json", "text")
    with pytest.raises(ConfigError, match="log format"):
        resolve_format("yaml", io.StringIO())


def test_the_text_line_is_the_readable_one() -> None:
    handler = log_handler("text", Terminal())
    assert handler.formatter is not None
    text = handler.formatter.format(record())
    assert text.endswith(" INFO tornado.worker hello world") and "{" not in text


@pytest.mark.parametrize(("chosen", "is_json"), [("json", True), ("text", False)])
def test_the_cli_option_picks_the_format_of_every_line(chosen: str, is_json: bool) -> None:
    code = (
        "import logging, sys\n"
        "from tornado_cli.main import cli\n"
        "@cli.command('say')\n"
        "def say():\n"
        "    logging.getLogger('tornado.test').warning('said %s', 'this')\n"
        "cli(prog_name='tornado', args=sys.argv[1:])\n"
    )
    args = [sys.executable, "-c", code, "--log-format", chosen, "say"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    if is_json:
        assert json.loads(line)["message"] == "said this"
    else:
        assert line.endswith("WARNING tornado.test said this")
