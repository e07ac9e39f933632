"""One frozen settings object, loaded once from the environment and an optional file.

Nothing here runs at import time: the composition root calls :meth:`Settings.load`
with the mapping it was given (``os.environ`` in the CLI, a dict in tests).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from tornado_core.errors import ConfigError

QueueBackendName = Literal["postgres", "sqs", "celery"]
#: The queue engines, as ``TORNADO_QUEUE`` (and ``tornado worker --engine``) name them.
QUEUE_BACKENDS: tuple[str, ...] = get_args(QueueBackendName)

#: Environment variable -> settings field.
ENV_VARS: dict[str, str] = {
    "TORNADO_QUEUE": "queue_backend",
    "TORNADO_BROKER_URL": "broker_url",
    "TORNADO_BROKER_MANAGEMENT_URL": "broker_management_url",
    "TORNADO_DATABASE_URL": "database_url",
    "TORNADO_ERP_DATABASE_URL": "erp_database_url",
    "TORNADO_REDSHIFT_URL": "redshift_url",
    "TORNADO_AWS_ENDPOINT_URL": "aws_endpoint_url",
    "TORNADO_AWS_REGION": "aws_region",
    "TORNADO_BUCKET": "bucket",
    "TORNADO_QUEUE_PREFIX": "queue_prefix",
    "TORNADO_SECRET_KEY": "secret_key",
    "TORNADO_CLAIM_CHECK_BYTES": "claim_check_bytes",
    "TORNADO_MAX_BODY_BYTES": "max_body_bytes",
    "TORNADO_REQUEST_DEADLINE": "request_deadline",
    "TORNADO_BODY_TIMEOUT": "body_timeout",
    "TORNADO_MAX_CONNECTIONS": "max_connections",
    "TORNADO_TENANT_REQUESTS_PER_SECOND": "tenant_requests_per_second",
    "TORNADO_DATABASE_PREPARED_STATEMENTS": "database_prepared_statements",
    "TORNADO_CONSOLE": "console",
    "TORNADO_CONSOLE_SECURE_COOKIES": "console_secure_cookies",
    "TORNADO_METRICS_PORT": "metrics_port",
    "TORNADO_METRICS_HOST": "metrics_host",
    "TORNADO_METRICS_TOKEN": "metrics_token",
    # OpenTelemetry's own names (docs/observability.md): traces are exported only when one is set.
    "OTEL_EXPORTER_OTLP_ENDPOINT": "otlp_endpoint",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "otlp_traces_endpoint",
    "OTEL_SERVICE_NAME": "otel_service_name",
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a Tornado process needs to find its services.

    Attributes:
        queue_backend: ``"postgres"`` (embedded default), ``"sqs"`` or ``"celery"`` (a Celery broker at
            ``broker_url``, docs/celery.md).
        broker_url: The Celery broker of ``queue_backend = "celery"``: ``redis://host:port/db`` or
            ``amqp://user:pass@host:port/vhost`` (RabbitMQ).
        broker_management_url: RabbitMQ's management HTTP API (``http://user:pass@host:15672``), read for
            in-flight counts; ``None``: port 15672 of the broker's host with the broker's credentials.
        database_url: libpq DSN of the job store (and of the PostgreSQL queue).
        erp_database_url: DSN of the ERP's database (RDS) handed to handlers;
            defaults to ``database_url``.
        redshift_url: DSN of Redshift; locally a PostgreSQL database.
        aws_endpoint_url: Override for SQS and S3 (the local moto endpoint);
            ``None`` means real AWS.
        aws_region: AWS region of SQS and S3.
        bucket: S3 bucket for claim-checked payloads, results and task files.
        queue_prefix: Prefix of every queue name, to share an account.
        secret_key: Signs job ids and idempotency keys; keep it secret and stable.
        claim_check_bytes: Payloads and results larger than this travel via S3.
        max_body_bytes: Largest HTTP request body the API accepts.
        request_deadline: Seconds an API request may wait on its backends (queue, job store,
            object store) before it is answered 503 with ``Retry-After``; also the read timeout
            of the calls it makes.
        body_timeout: Seconds a client may take to send a request's body (slow clients are cut off).
        max_connections: Client connections an API process holds at once; more are answered 503
            at once. 0 derives it from the open-files limit (raised to its hard limit at start).
        tenant_requests_per_second: API requests per second of a tenant without a quota of its
            own (``tornado tenants quota``); more get 429 with ``Retry-After``. 0: no quota.
        database_prepared_statements: Prepare the hot statements once per PostgreSQL connection
            (faster); turn it off behind a pooler in transaction mode (PgBouncer before 1.21),
            where a connection's prepared statements do not follow it.
        console: Serve the operations console at ``/console`` on the API (docs/console.md).
        console_secure_cookies: Mark the console's session cookie ``Secure`` on plain HTTP too
            (TLS ends at a proxy in front of the API); it always is on HTTPS.
        metrics_port: Port of a worker's Prometheus ``/metrics`` (``tornado worker --metrics-port``);
            0: not served (docs/metrics.md). The API serves ``GET /metrics`` on its own port.
        metrics_host: Interface a worker's ``/metrics`` listens on.
        metrics_token: When set, ``/metrics`` (API and workers) needs ``Authorization: Bearer <it>``.
        otlp_endpoint: Base URL of an OTLP/HTTP collector (``/v1/traces`` is appended);
            ``None`` with no ``otlp_traces_endpoint`` either: no traces are exported.
        otlp_traces_endpoint: Full URL traces are posted to; wins over ``otlp_endpoint``.
        otel_service_name: ``service.name`` of the exported spans.
    """

    queue_backend: QueueBackendName = "postgres"
    broker_url: str | None = None
    broker_management_url: str | None = None
    database_url: str
    erp_database_url: str | None = None
    redshift_url: str | None = None
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    bucket: str = "tornado"
    queue_prefix: str = "tornado"
    secret_key: str
    claim_check_bytes: int = 200_000
    max_body_bytes: int = 8 * 1024 * 1024
    request_deadline: float = 5.0
    body_timeout: float = 30.0
    max_connections: int = 0
    tenant_requests_per_second: float = 0.0
    database_prepared_statements: bool = True
    console: bool = True
    console_secure_cookies: bool = False
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    metrics_token: str | None = None
    otlp_endpoint: str | None = None
    otlp_traces_endpoint: str | None = None
    otel_service_name: str = "tornado"

    @property
    def traces_endpoint(self) -> str | None:
        """Where spans are posted (the traces URL, or the base URL plus ``/v1/traces``); ``None``: off."""
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @classmethod
    def load(cls, env: Mapping[str, str], file: Path | None = None) -> Settings:
        """Build settings from an optional TOML file, overridden by ``env``.

        Args:
            env: Usually ``os.environ``; only the keys of :data:`ENV_VARS` are read (``TORNADO_*``
                and OpenTelemetry's ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``..._TRACES_ENDPOINT``,
                ``OTEL_SERVICE_NAME``).
            file: A TOML file whose keys are the field names; defaults to
                ``env["TORNADO_SETTINGS_FILE"]`` when set.

        Raises:
            ConfigError: A required value is missing or a value is malformed.
        """
        values: dict[str, Any] = {}
        path = file or (Path(env["TORNADO_SETTINGS_FILE"]) if env.get("TORNADO_SETTINGS_FILE") else None)
        if path is not None:
            values.update(_read_file(path))
        for var, field_name in ENV_VARS.items():
            if env.get(var):
                values[field_name] = env[var]
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Validate and convert plain values (strings allowed for numbers).

        Raises:
            ConfigError: A required value is missing or a value is malformed.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for name, raw in values.items():
            converted[name] = _convert(name, raw, known[name].type)
        for required in ("database_url", "secret_key"):
            if not converted.get(required):
                var = next(k for k, v in ENV_VARS.items() if v == required)
                raise ConfigError(f"{required} is not set (set {var}, or run `tornado dev env`)")
        backend = converted.get("queue_backend", "postgres")
        if backend not in QUEUE_BACKENDS:
            raise ConfigError(
                f"queue_backend must be 'postgres' or 'sqs', not {backend!r} (or 'celery': a Celery broker)"
            )
        if backend == "celery" and not converted.get("broker_url"):
            raise ConfigError(
                "queue_backend 'celery' needs broker_url (set TORNADO_BROKER_URL=redis://host:port/0)"
            )
        return cls(**converted)

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        env: dict[str, str] = {}
        for var, field_name in ENV_VARS.items():
            value = getattr(self, field_name)
            if value is not None:
                env[var] = str(value)
        return env


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"settings file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc


def _convert(name: str, raw: Any, annotation: Any) -> Any:
    """Accept the field's type, or a string for numbers and switches (environment variables are strings)."""
    if "bool" in str(annotation):
        return _to_bool(name, raw)
    if "float" in str(annotation):
        return _to_number(name, raw, positive=name in _POSITIVE)
    wants_int = "int" in str(annotation)
    if wants_int and isinstance(raw, str):
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from exc
    if wants_int and (not isinstance(raw, int) or isinstance(raw, bool)):
        raise ConfigError(f"{name} must be a whole number, not {raw!r}")
    if not wants_int and raw is not None and not isinstance(raw, str):
        raise ConfigError(f"{name} must be text, not {raw!r}")
    return raw


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def _to_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, str) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), not {raw!r}")


#: Numeric settings that must be above zero (durations); the others may be zero.
_POSITIVE = frozenset({"request_deadline", "body_timeout"})


def _to_number(name: str, raw: Any, *, positive: bool) -> float:
    try:
        value = float(raw) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else None
    except ValueError:
        value = None
    low_ok = value is not None and (value > 0 if positive else value >= 0)
    if value is None or not low_ok or value >= 1e9:
        bound = "above 0" if positive else "of 0 or more"
        raise ConfigError(f"{name} must be a number {bound}, not {raw!r}")
    return value
