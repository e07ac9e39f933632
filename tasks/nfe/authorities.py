"""Per-UF contingency and the per-issuer send rate, shared by every worker through the ERP database.

*Contingency.* When a UF's SEFAZ is down, new NF-e of that UF go to its virtual contingency
authority (SVC-AN or SVC-RS, tpEmis 6 or 7) until it is back. An operator switches it (``tornado
nfe contingency``); with ``TORNADO_NFE_CONTINGENCY_AFTER=N`` the workers also switch a UF after N
consecutive unavailability failures (108/109, timeouts, 5xx), and switch it back once the UF's
own status service answers 107 again (asked at most every ``TORNADO_NFE_CONTINGENCY_PROBE``
seconds, by whichever worker emits first); an operator's switch stays until an operator undoes it.
An NF-e already sent keeps the authority it was sent to: its fate is asked there.

*Send rate.* SEFAZ answers 656 (consumo indevido) and blocks an issuer that calls too often;
:func:`take_send_slot` keeps every worker together under ``TORNADO_NFE_SENDS_PER_SECOND`` per
(CNPJ, UF).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado_core import TaskContext

#: How an automatic switch's reason starts (an operator's switch never goes back by itself).
AUTOMATIC = "automatic"
#: cStat of a status service that works.
SERVICE_RUNNING = 107
#: Emission types of the virtual contingency authorities (tpEmis).
EMISSION_TYPE = {"SVC-AN": 6, "SVC-RS": 7}


@dataclass(frozen=True)
class AuthorityState:
    """A UF's row: its contingency authority (``None``: normal), since when, why, failures in a row."""

    uf: str
    environment: int
    contingency: str | None
    since: datetime | None
    reason: str | None
    failures: int


_COLUMNS = "uf, environment, contingency, since, reason, failures"


def authority_state(conn: Any, uf: str, environment: int) -> AuthorityState:
    """Where the UF's NF-e go now."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM nfe_authority WHERE uf = %s AND environment = %s", (uf, environment)
        )
        row = cur.fetchone()
    if row is None:
        return AuthorityState(uf, environment, None, None, None, 0)
    return AuthorityState(*row)


def all_authority_states(conn: Any) -> list[AuthorityState]:
    """Every UF that has a row (a contingency now or failures recorded)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM nfe_authority ORDER BY environment, uf")
        return [AuthorityState(*row) for row in cur.fetchall()]


def set_contingency(
    conn: Any, uf: str, environment: int, contingency: str | None, reason: str
) -> AuthorityState:
    """Switch the UF to ``contingency`` (``"SVC-AN"``/``"SVC-RS"``) or back to normal (``None``)."""
    if contingency is not None and contingency not in EMISSION_TYPE:
        raise ValueError(f"contingency must be one of {', '.join(EMISSION_TYPE)}, not {contingency!r}")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO nfe_authority (uf, environment, contingency, since, reason)"
            " VALUES (%s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE clock_timestamp() END, %s)"
            " ON CONFLICT (uf, environment) DO UPDATE SET contingency = EXCLUDED.contingency,"
            " since = EXCLUDED.since, reason = EXCLUDED.reason, failures = 0, updated_at = clock_timestamp()",
            (uf, environment, contingency, contingency, reason),
        )
    return authority_state(conn, uf, environment)


def record_unavailable(
    conn: Any, uf: str, environment: int, *, switch_after: int, svc: str, reason: str
) -> AuthorityState:
    """One more unavailability failure of the UF's own authority; switch to ``svc`` at ``switch_after``."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO nfe_authority (uf, environment, failures, last_failure_at)"
            " VALUES (%s, %s, 1, clock_timestamp())"
            " ON CONFLICT (uf, environment) DO UPDATE SET failures = nfe_authority.failures + 1,"
            " last_failure_at = clock_timestamp(), updated_at = clock_timestamp()"
            " RETURNING failures, contingency",
            (uf, environment),
        )
        failures, contingency = cur.fetchone()
    if switch_after > 0 and failures >= switch_after and contingency is None:
        return set_contingency(conn, uf, environment, svc, f"{AUTOMATIC} after {failures} failures: {reason}")
    return authority_state(conn, uf, environment)


def record_available(conn: Any, uf: str, environment: int) -> None:
    """The UF's authority answered: its run of failures ends (the contingency, if any, stays)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE nfe_authority SET failures = 0, updated_at = clock_timestamp()"
            " WHERE uf = %s AND environment = %s AND failures > 0",
            (uf, environment),
        )


def take_send_slot(conn: Any, cnpj: str, uf: str, per_second: int) -> float:
    """Count one send of (CNPJ, UF) in the current second.

    Returns:
        0 if the send may go now (call it in its own short transaction and commit), else the
        seconds until the next second starts (nothing counted then: roll back or just wait).
    """
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO nfe_send_window AS w (cnpj, uf, second, sent)"
            " VALUES (%s, %s, date_trunc('second', clock_timestamp()), 1)"
            " ON CONFLICT (cnpj, uf) DO UPDATE SET second = EXCLUDED.second,"
            " sent = CASE WHEN w.second = EXCLUDED.second THEN w.sent + 1 ELSE 1 END"
            " RETURNING sent, extract(epoch FROM second + interval '1 second' - clock_timestamp())",
            (cnpj, uf),
        )
        sent, remaining = cur.fetchone()
    return 0.0 if sent <= per_second else max(float(remaining), 0.01)


def wait_for_send_slot(
    ctx: TaskContext, cnpj: str, uf: str, per_second: int, sleep: Callable[[float], None]
) -> None:
    """Wait until (CNPJ, UF) may send again (:func:`take_send_slot`), within the job's deadline.

    Raises:
        JobTimeout: The job's deadline passed while waiting.
    """
    while True:
        with ctx.rds.connection() as conn:
            wait = take_send_slot(conn, cnpj, uf, per_second)
        if wait == 0:
            return
        ctx.check_deadline()
        sleep(wait)


def recover_if_back(
    ctx: TaskContext, uf: str, environment: int, *, every: float, ask_status: Callable[[], int]
) -> bool:
    """End an automatic contingency of the UF once its own SEFAZ's status service answers 107.

    At most one worker asks, at most every ``every`` seconds (the row's ``updated_at`` is the
    claim). A failing or unreachable status service leaves the contingency as it is.

    Args:
        ctx: The job (its ERP database).
        uf: The UF.
        environment: 1 or 2.
        every: Seconds between two questions.
        ask_status: Asks the UF's own NFeStatusServico4; returns its cStat.

    Returns:
        Whether the UF is back to its own SEFAZ.
    """
    with ctx.rds.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE nfe_authority SET updated_at = clock_timestamp()"
            " WHERE uf = %s AND environment = %s AND contingency IS NOT NULL AND reason LIKE %s"
            " AND updated_at <= clock_timestamp() - make_interval(secs => %s) RETURNING contingency",
            (uf, environment, AUTOMATIC + "%", every),
        )
        due = cur.fetchone() is not None
    if not due:
        return False
    try:
        code = ask_status()
    except Exception as exc:
        ctx.logger.info("the status service of %s is still unusable: %s", uf, exc)
        return False
    if code != SERVICE_RUNNING:
        return False
    with ctx.rds.connection() as conn:
        set_contingency(conn, uf, environment, None, f"{AUTOMATIC}: its SEFAZ answers {code} again")
    ctx.logger.warning("%s is back to its own SEFAZ (status %s)", uf, code)
    return True
