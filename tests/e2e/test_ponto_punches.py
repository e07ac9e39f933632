"""Time-clock punches end to end over HTTP on the PostgreSQL queue: load, repeats, bad input, AFD, export."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from tornado_tasks.ponto.devices import make_punches

from tests.e2e.helpers import start_workers, wait_for_job, wait_ready, wait_until
from tests.e2e.ponto_support import (
    PontoTenant,
    assert_exactly_once_gap_free_and_chained,
    create_ponto_tenant,
    post,
    query,
    recorded,
    wait_recorded,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services


@pytest.fixture(scope="module")
def backend() -> str:
    """20,000 punches on moto's SQS would be slow (its cost grows with depth): PostgreSQL here."""
    return "postgres"


@pytest.fixture(scope="module")
def ponto(services: Services) -> PontoTenant:
    return create_ponto_tenant(services, reps=10)


@pytest.fixture(scope="module", autouse=True)
def ponto_workers(module_cluster: LocalCluster, api_launch: Future[str], ponto: PontoTenant) -> None:
    recorder = module_cluster.start_worker(
        "ponto.record", concurrency=8, extra=["--poll-wait", "1"], wait_ready=False
    )
    start_workers(
        module_cluster, ("ponto.afd", "ponto.export_redshift"), concurrency=1, extra=["--poll-wait", "1"]
    )
    wait_ready(recorder)


def send(api_url: str, tenant: PontoTenant, punches: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        api_url + "/v1/punches",
        data=json.dumps({"punches": punches}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_punch(api_url: str, tenant: PontoTenant, punch_id: str) -> dict[str, Any] | None:
    request = urllib.request.Request(
        api_url + f"/v1/punches/{punch_id}", headers={"Authorization": f"Bearer {tenant.token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        return None


def one(rep: str, **changes: Any) -> dict[str, Any]:
    punch = {
        "id": str(uuid.uuid4()),
        "cpf": "529.982.247-25",
        "rep": rep,
        "time": datetime.now(UTC).isoformat(),
    }
    punch.update(changes)
    return punch


def test_20000_punches_one_per_request_from_200_devices_are_recorded_exactly_once(
    api_url: str, services: Services, ponto: PontoTenant, api_client: Callable[[PontoTenant], TornadoClient]
) -> None:
    punches = make_punches(ponto.reps, 20_000, now=datetime.now(UTC), seed=20_000)
    run = post(api_url, ponto, punches, devices=200)
    assert len(run.accepted) == 20_000 and not run.rejected
    wait_recorded(services, ponto, 20_000)
    ids = {p["id"] for p in punches}
    assert_exactly_once_gap_free_and_chained(services, ponto, ids)

    repeats = punches[:300]  # devices that never saw their 202 send again
    again = post(api_url, ponto, repeats, devices=50)
    client = api_client(ponto)
    nsr_now = dict(
        query(services, "SELECT punch_id::text, nsr FROM ponto_punch WHERE tenant = %s", ponto.name)
    )
    for job_id in set(again.accepted.values()):
        job = client.wait(job_id, timeout=60)
        assert job["status"] == "succeeded"
        for entry in job["result"]["punches"]:
            assert entry["status"] == "duplicate" and entry["nsr"] == nsr_now[entry["id"]]
    assert recorded(services, ponto) == 20_000


@pytest.fixture(scope="module")
def api_client(api_url: str) -> Callable[[PontoTenant], TornadoClient]:
    return lambda tenant: TornadoClient(api_url, tenant.token)


def test_a_resent_uuid_gets_the_same_nsr_and_a_late_offline_punch_keeps_its_time(
    api_url: str, services: Services, ponto: PontoTenant, api_client: Callable[[PontoTenant], TornadoClient]
) -> None:
    rep = ponto.reps[0]
    first = one(rep)
    status, answer = send(api_url, ponto, [first])
    assert status == 202 and answer["results"][0]["status"] == "queued"
    shown = wait_until(lambda: get_punch(api_url, ponto, first["id"]), what="the punch to be recorded")
    assert isinstance(shown, dict)
    status, again = send(
        api_url, ponto, [{**first, "time": datetime.now(UTC).isoformat()}]
    )  # offline re-send
    assert status == 202
    job = api_client(ponto).wait(again["results"][0]["job_id"], timeout=30)
    assert job["result"]["punches"] == [
        {"id": first["id"], "status": "duplicate", "rep": rep, "nsr": shown["nsr"]}
    ]
    assert get_punch(api_url, ponto, first["id"]) == shown

    marked = datetime.now(UTC) - timedelta(hours=3)
    late = one(rep, time=marked.isoformat(), offline=True)
    assert send(api_url, ponto, [late])[0] == 202
    late_shown = wait_until(lambda: get_punch(api_url, ponto, late["id"]), what="the late punch")
    assert isinstance(late_shown, dict)
    assert late_shown["nsr"] > shown["nsr"] and late_shown["offline"] is True
    assert late_shown["marked_at"] == marked.isoformat()  # its own time, not the time it arrived
    assert (
        late_shown["marked_local"].endswith("-0300") and late_shown["recorded_at"] > late_shown["marked_at"]
    )


def test_bad_punches_get_per_punch_errors_while_the_good_ones_are_accepted(
    api_url: str, services: Services, ponto: PontoTenant
) -> None:
    rep = ponto.reps[1]
    good = [one(rep), one(rep, offline=True, geo={"lat": -23.56, "lon": -46.65})]
    bad = [
        one(rep, cpf="529.982.247-26"),  # wrong check digits
        {"id": str(uuid.uuid4()), "rep": rep},  # cpf and time missing
        one(rep, time=(datetime.now(UTC) + timedelta(days=1)).isoformat()),  # far in the future
        one("no-such-rep"),
    ]
    status, answer = send(api_url, ponto, [good[0], *bad, good[1]])
    assert status == 202 and (answer["accepted"], answer["rejected"]) == (2, 4)
    codes = [r.get("error", {}).get("code") for r in answer["results"]]
    assert codes == [None, "punch_invalid", "punch_invalid", "time_in_future", "rep_unknown", None]
    assert answer["results"][2]["error"]["fields"][0]["field"] == "punches[2].cpf"
    for punch in good:
        assert wait_until(lambda p=punch: get_punch(api_url, ponto, p["id"]), what="a good punch")
    status, answer = send(api_url, ponto, bad)
    assert status == 422 and answer["accepted"] == 0
    ids = [p.get("id") for p in bad]
    assert not query(services, "SELECT 1 FROM ponto_punch WHERE punch_id::text = ANY(%s)", ids)


def test_afd_job_writes_a_signed_afd_that_verify_afd_accepts_and_tampering_fails(
    api_url: str,
    services: Services,
    ponto: PontoTenant,
    api_client: Callable[[PontoTenant], TornadoClient],
    tornado_cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    rep = ponto.reps[2]
    assert send(api_url, ponto, [one(rep) for _ in range(5)])[0] == 202
    wait_until(
        lambda: query(services, "SELECT count(*) FROM ponto_punch WHERE rep_id = %s", rep)[0][0] >= 5,
        what="the punches",
    )
    today = datetime.now(UTC).astimezone().date()
    receipt = api_client(ponto).submit(
        "ponto.afd",
        {"rep": rep, "start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=1))},
    )
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=60)
    afd = tmp_path / Path(job.result["key"]).name
    afd.write_bytes(services.objects.get(job.result["key"]))
    (tmp_path / Path(job.result["signature_key"]).name).write_bytes(
        services.objects.get(job.result["signature_key"])
    )
    assert "OK" in tornado_cli("ponto", "audit", rep).stdout  # the nightly re-check of the whole chain
    checked = tornado_cli("ponto", "verify-afd", str(afd))
    assert "OK" in checked.stdout and "CAdES-BES" in checked.stdout
    text = afd.read_bytes()
    afd.write_bytes(text.replace(b"-0300", b"-0200", 1))
    assert tornado_cli("ponto", "verify-afd", str(afd), check=False).returncode == 1


def test_the_export_schedule_fired_by_the_scheduler_loads_each_punch_once_and_a_rerun_loads_nothing(
    api_url: str,
    services: Services,
    ponto: PontoTenant,
    api_client: Callable[[PontoTenant], TornadoClient],
    tornado_cli: Callable[..., Any],
    e2e_env: dict[str, str],
) -> None:
    auth = ("--api-url", api_url, "--token", ponto.token)
    shown = tornado_cli("ponto", "schedule", "--every", "300", *auth).stdout
    assert "ponto-redshift-export: ponto.export_redshift at '*/5 * * * *' America/Sao_Paulo" in shown
    assert "missed: catch_up" in shown
    client = api_client(ponto)
    stored = export_schedule(client)
    assert (stored["task"], stored["cron"], stored["timezone"], stored["missed"], stored["payload"]) == (
        "ponto.export_redshift", "*/5 * * * *", "America/Sao_Paulo", "catch_up", {},
    )  # fmt: skip
    assert stored["last_job_id"] is None
    # A scheduler pass with its clock moved just past the first occurrence stands for the wait.
    occurrence = datetime.fromisoformat(stored["next_run_at"])
    ahead = f"{(occurrence - datetime.now(UTC)).total_seconds() + 1:.3f}"
    tornado_cli("scheduler", "--once", "--clock-offset", ahead)
    fired = export_schedule(client)
    job_id = fired["last_job_id"]
    assert job_id is not None
    assert datetime.fromisoformat(fired["last_run_at"]) == occurrence
    assert datetime.fromisoformat(fired["next_run_at"]) == occurrence + timedelta(minutes=5)
    assert client.get(job_id)["task"] == "ponto.export_redshift"
    assert wait_for_job(services, job_id, JobStatus.SUCCEEDED, timeout=120).result["rows"] > 0
    tornado_cli("scheduler", "--once", "--clock-offset", ahead)  # the same occurrence: nothing new
    assert export_schedule(client)["last_job_id"] == job_id
    # --once still submits the current window's export by hand, one job however often it runs.
    window = ("ponto", "schedule", "--once", "--every", "3600", *auth)
    first = tornado_cli(*window)
    assert tornado_cli(*window).stdout == first.stdout
    rerun = first.stdout.split("job ")[1].split()[0]
    assert wait_for_job(services, rerun, JobStatus.SUCCEEDED, timeout=120).result["inserted"] == 0
    with psycopg2.connect(e2e_env["TORNADO_REDSHIFT_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT (rep_id, nsr)) FROM ponto.punches WHERE tenant = %s",
            (ponto.name,),
        )
        total, distinct = cur.fetchone()
    assert total == distinct == recorded(services, ponto)


def export_schedule(client: TornadoClient) -> dict[str, Any]:
    """The tenant's Redshift export schedule, as the API shows it."""
    return next(s for s in client.schedules() if s["name"] == "ponto-redshift-export")
