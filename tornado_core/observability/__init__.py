"""Observability: Prometheus metrics, OpenTelemetry traces and structured logs of the API and workers."""
