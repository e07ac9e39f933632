"""Queries over ``tornado_jobs`` by task, shaped for its lean queued rows (migration 0013).

A queued job is indexed by its id, its tenant and its status only: the task indexes
(``tornado_jobs_task_idx``, ``tornado_jobs_tenant_task_idx``, ``tornado_jobs_task_version_idx``)
are partial, ``WHERE status <> 'queued'``, so that an enqueue writes three index entries instead of
six. PostgreSQL uses a partial index only for a query whose condition implies the index's, so a
query by task that may match queued jobs runs in two parts: the jobs past ``queued`` through the
task indexes, and the queued ones through ``tornado_jobs_status_idx`` (the backlog, not the
table). Either way the rows are the same; only the plan differs.
"""

from __future__ import annotations

#: The condition of the partial task indexes.
PAST_QUEUED = "status <> 'queued'"


def waiting_split(where: str, *, by_task: bool, by_status: bool, alias: str = "") -> tuple[str, ...]:
    """The conditions to read ``where``'s jobs in: itself, or its jobs past ``queued`` and its queued ones.

    Args:
        where: A ``WHERE`` condition on ``tornado_jobs`` (``TRUE`` for every job).
        by_task: It filters by task or version (the columns of the partial indexes).
        by_status: It filters by status: it implies one side of the split already.
        alias: The table's alias with its dot (``"j."``), or ``""``.

    Returns:
        One condition, or two whose jobs together are exactly ``where``'s.
    """
    if not by_task or by_status:
        return (where,)
    return (f"{where} AND {alias}{PAST_QUEUED}", f"{where} AND {alias}status = 'queued'")


def newest_first(columns: str, source: str, parts: tuple[str, ...], *, alias: str = "") -> str:
    """``SELECT columns FROM source`` over the jobs of ``parts`` (see :func:`waiting_split`), newest
    first by id, at most ``%(limit)s`` rows: each part's newest, merged by PostgreSQL."""
    selects = [
        f"SELECT {columns} FROM {source} WHERE {part} ORDER BY {alias}job_id DESC LIMIT %(limit)s"
        for part in parts
    ]
    if len(selects) == 1:
        return selects[0]
    merged = " UNION ALL ".join(f"({select})" for select in selects)
    return f"SELECT * FROM ({merged}) AS parts ORDER BY job_id DESC LIMIT %(limit)s"


def rows_of(columns: str, source: str, parts: tuple[str, ...]) -> str:
    """``SELECT columns FROM source`` over the jobs of ``parts``, unordered: one ``UNION ALL``
    branch per part, to aggregate or count over (``SELECT ... FROM (<this>) AS parts``)."""
    return " UNION ALL ".join(f"SELECT {columns} FROM {source} WHERE {part}" for part in parts)
