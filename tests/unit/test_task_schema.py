"""TaskSchema: a task package's versioned DDL, run once (see the ponto and nfe integration tests)."""

from __future__ import annotations

from typing import Any

import pytest

from tornado_core import TaskSchema


class Recorder:
    """A DB-API connection that records statements; ``installed`` says what the version table holds."""

    def __init__(self, installed: int | None) -> None:
        self.installed = installed
        self.statements: list[str] = []
        self._last = ""

    def cursor(self) -> Recorder:
        return self

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def execute(self, sql: str, params: Any = None) -> None:
        self.statements.append(sql)
        self._last, self._params = sql, params

    def fetchone(self) -> tuple[Any, ...] | None:
        if "to_regclass" in self._last:
            return (self.installed is not None,)
        if "WHERE version" in self._last:
            return (1,) if self._params == (self.installed,) else None
        return None


SCHEMA = TaskSchema(version_table="acme_schema", version=2, lock_key=42, ddl="CREATE TABLE acme ...")


def test_the_ddl_runs_under_the_lock_when_the_version_is_missing() -> None:
    for installed in (None, 1):
        conn = Recorder(installed)
        SCHEMA.ensure(conn)
        assert conn.statements[0].startswith("SELECT pg_advisory_xact_lock")
        assert conn.statements[-1] == "CREATE TABLE acme ..."


def test_nothing_runs_once_the_version_is_in() -> None:
    conn = Recorder(2)
    SCHEMA.ensure(conn)
    assert "CREATE TABLE acme ..." not in conn.statements


def test_the_version_table_must_be_a_plain_name() -> None:
    with pytest.raises(ValueError, match="plain table name"):
        TaskSchema(version_table="x; DROP TABLE y", version=1, lock_key=1, ddl="")
