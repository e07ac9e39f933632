"""Receipts over HTTP on a real PostgreSQL: they verify and match the ledger (and the AFD), employees
fetch only their own with their own token, and the employer gets a REP's period in one zip."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
import zipfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado_tasks.ponto.admin import add_employee
from tornado_tasks.ponto.afd import render_afd
from tornado_tasks.ponto.afd_source import load_afd_source
from tornado_tasks.ponto.ledger import record_punches
from tornado_tasks.ponto.models import QueuedPunch
from tornado_tasks.ponto.receipt import receipt_key
from tornado_tasks.ponto.receipt_access import token_hash
from tornado_tasks.ponto.receipt_pdf import verify_receipt, verify_receipt_with_ledger
from tornado_tasks.ponto.receipt_store import ReceiptsPayload, write_receipts
from tornado_tasks.ponto.rep_signer import DEV_SIGNER_KEY
from tornado_tasks.ponto.signing import load_signer

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, make_erp, s3_fixture  # noqa: F401
from tornado_core import TaskContext
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.devstack.certs import make_test_signer_pem
from tornado_core.plugins import API_GROUP, discover
from tornado_core.ports.objects import ObjectStorePort
from tornado_core.services import Services
from tornado_core.task_context import job_logger
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import make_app

JOSE, MARIA = "12345678909", "52998224725"  # make_erp includes José on every REP; Maria is added
DEVICE = timezone(timedelta(hours=-3))


@dataclass
class World:
    """An ERP with punches of two employees, the API's services on it, and the employer's token."""

    erp: Erp
    services: Services
    token: str
    punches: dict[str, list[str]]  # CPF -> punch ids, in recording order

    def call(self, *calls: tuple[str, str, Any, str]) -> list[HTTPResponse]:
        """``(method, path, body, bearer token)`` each, in order, against the API with the ponto plugin."""
        return asyncio.run(_calls(self.services, list(calls)))


async def _calls(services: Services, calls: list[tuple[str, str, Any, str]]) -> list[HTTPResponse]:
    app = make_app(services, plugins=[p for p in discover(API_GROUP) if p.name == "ponto"])
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, **app.http_server_options())
    server.add_sockets(sockets)
    base, client = f"http://127.0.0.1:{sockets[0].getsockname()[1]}", AsyncHTTPClient(force_instance=True)
    try:
        return [
            await client.fetch(
                base + path,
                method=method,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                body=None if body is None else json.dumps(body),
                raise_error=False,
            )
            for method, path, body, token in calls
        ]
    finally:
        client.close()
        server.stop()
        await app.aclose()


def punch(rep: str, cpf: str, *, offline: bool = False, ago: timedelta = timedelta(0)) -> QueuedPunch:
    now = datetime.now(UTC)
    return QueuedPunch(
        id=uuid.uuid4(), cpf=cpf, rep=rep, time=(now - ago).astimezone(DEVICE), offline=offline,
        collector=2 if offline else 1, received_at=now,
    )  # fmt: skip


def record(erp: Erp, punches: list[QueuedPunch]) -> list[str]:
    with erp.pool.connection() as conn:
        outcomes = record_punches(conn, tenant=erp.tenant, job_id="job-receipts", punches=punches)
    assert {o.status for o in outcomes} == {"recorded"}
    return [str(p.id) for p in punches]


def world_of(erp: Erp, objects: ObjectStorePort | None = None) -> World:
    services = memory_services([], rds=erp.pool)
    if objects is not None:
        services = replace(services, objects=objects)
    if not services.objects.exists(DEV_SIGNER_KEY):  # what `tornado dev up` installs
        services.objects.put(DEV_SIGNER_KEY, make_test_signer_pem())
    token = new_token()
    services.tenants.create(erp.tenant, hash_token(token))
    rep = erp.reps[0]
    with erp.pool.connection() as conn:
        add_employee(conn, rep_id=rep, cpf=MARIA, name="Maria das Dores", responsible_cpf=JOSE)
    jose = record(erp, [punch(rep, JOSE, offline=True, ago=timedelta(hours=2)), punch(rep, JOSE)])
    maria = record(erp, [punch(rep, MARIA)])
    return World(erp, services, token, {JOSE: jose, MARIA: maria})


@pytest.fixture
def world(erp: Erp) -> World:
    return world_of(erp)


def type7_lines(erp: Erp, rep: str) -> dict[int, tuple[str, str]]:
    """NSR -> (marcação DH, hash) of every type-7 line of the REP's AFD, as written in the file."""
    now = datetime.now(UTC)
    period = {"start": now.date() - timedelta(days=1), "end": now.date() + timedelta(days=1)}
    with erp.pool.connection() as conn:
        source = load_afd_source(conn, rep=rep, generated_at=now, **period)
    lines = render_afd(source.header, source.records).decode("latin-1").split("\r\n")
    return {int(line[:9]): (line[10:34], line[73:]) for line in lines if len(line) == 137 and line[9] == "7"}


def as_dh(iso: str) -> str:
    """A receipt's ``2025-03-10T08:00:05-05:00`` as the AFD writes it: ``2025-03-10T08:00:00-0500``."""
    return iso[:16] + ":00" + iso[-6:].replace(":", "")


def issue(world: World, cpf: str) -> dict[str, Any]:
    [answer] = world.call(("POST", "/v1/punches/receipt-tokens", {"cpf": cpf, "label": "phone"}, world.token))
    assert answer.code == 201, answer.body
    return dict(json.loads(answer.body))


def test_every_recorded_punch_has_a_signed_receipt_matching_the_ledger_and_the_afd(world: World) -> None:
    ids = world.punches[JOSE] + world.punches[MARIA]
    answers = world.call(*[("GET", f"/v1/punches/{pid}/receipt", None, world.token) for pid in ids])
    assert [(a.code, a.headers["Content-Type"]) for a in answers] == [(200, "application/pdf")] * 3
    roots = [load_signer(world.services.objects.get(DEV_SIGNER_KEY)).certificate]
    afd = type7_lines(world.erp, world.erp.reps[0])
    for pid, answer in zip(ids, answers, strict=True):
        with world.erp.pool.connection() as conn:
            check = verify_receipt_with_ledger(conn, answer.body, trust_roots=roots)
        assert check.ok and check.trusted and check.test, check.problems
        assert check.fields["punch_id"] == pid
        assert afd[check.fields["nsr"]] == (as_dh(check.fields["marked_at"]), check.fields["hash"])
    names = [verify_receipt(a.body).fields["employee"]["name"] for a in answers]
    assert names == ["José da Conceição", "José da Conceição", "Maria das Dores"]
    assert [verify_receipt(a.body).fields["offline"] for a in answers] == [True, False, False]

    again = world.call(("GET", f"/v1/punches/{ids[0]}/receipt", None, world.token))[0]
    nsr = verify_receipt(again.body).fields["nsr"]
    assert again.body == answers[0].body  # made once, the same bytes ever after
    assert world.services.objects.get(receipt_key(world.erp.tenant, world.erp.reps[0], nsr)) == again.body


def test_a_receipt_that_disagrees_with_the_ledger_is_named(world: World) -> None:
    pid = world.punches[JOSE][0]
    [answer] = world.call(("GET", f"/v1/punches/{pid}/receipt", None, world.token))
    with world.erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("UPDATE ponto_establishment SET company_name = 'Outra LTDA'")  # not what the REP recorded
        cur.execute("UPDATE ponto_rep SET registered = true WHERE rep_id = %s", (world.erp.reps[0],))
        check = verify_receipt_with_ledger(conn, answer.body)
        conn.rollback()
    assert check.problems == [
        "ledger: rep.registered: receipt says False, the ledger True",
        "ledger: test: receipt says True, the ledger False",
    ]  # the employer is the type-2 record's, so the table's later edit changes nothing


def test_an_employee_fetches_their_own_receipts_and_no_one_elses(world: World) -> None:
    jose, maria = issue(world, "123.456.789-09"), issue(world, MARIA)
    assert jose["token"].startswith("tpr_") and jose["cpf"] == JOSE
    other = make_erp(world.erp.pool, reps=1)  # another tenant, the same CPF
    record(other, [punch(other.reps[0], JOSE)])
    theirs = world_of(other)
    stranger = issue(theirs, JOSE)["token"]

    mine, page1, page2, own, not_mine, unknown, as_tenant, tenant_on_mine, elsewhere = world.call(
        ("GET", "/v1/employee/receipts", None, jose["token"]),
        ("GET", "/v1/employee/receipts?limit=1", None, jose["token"]),
        ("GET", f"/v1/employee/receipts?limit=1&before={world.punches[JOSE][1]}", None, jose["token"]),
        ("GET", f"/v1/employee/receipts/{world.punches[JOSE][0]}", None, jose["token"]),
        ("GET", f"/v1/employee/receipts/{world.punches[MARIA][0]}", None, jose["token"]),
        ("GET", f"/v1/employee/receipts/{uuid.uuid4()}", None, jose["token"]),
        ("GET", f"/v1/punches/{world.punches[JOSE][0]}/receipt", None, jose["token"]),
        ("GET", "/v1/employee/receipts", None, world.token),
        ("GET", f"/v1/employee/receipts/{world.punches[JOSE][0]}", None, stranger),
    )
    listed = json.loads(mine.body)
    assert [r["punch_id"] for r in listed["receipts"]] == world.punches[JOSE][::-1]  # newest marcação first
    assert listed["next_before"] is None
    assert [r["punch_id"] for r in json.loads(page1.body)["receipts"]] == [world.punches[JOSE][1]]
    assert json.loads(page2.body) == {
        "receipts": [listed["receipts"][1]],
        "next_before": world.punches[JOSE][0],
    }
    assert own.code == 200 and verify_receipt(own.body).fields["employee"]["cpf"] == JOSE
    assert (not_mine.code, not_mine.body) == (unknown.code, unknown.body)  # another's answers like none
    assert json.loads(not_mine.body)["error"]["code"] == "receipt_not_found" and not_mine.code == 404
    assert (as_tenant.code, tenant_on_mine.code) == (401, 401)  # neither token works for the other's routes
    assert elsewhere.code == 404  # the same CPF at another employer sees nothing of this one
    assert maria["token"] != jose["token"]


def test_a_revoked_token_is_refused_and_only_its_hash_was_kept(world: World) -> None:
    issued = issue(world, JOSE)
    path = f"/v1/punches/receipt-tokens/{issued['token_id']}"
    revoke, after, again, listing = world.call(
        ("DELETE", path, None, world.token),
        ("GET", "/v1/employee/receipts", None, issued["token"]),
        ("DELETE", path, None, world.token),
        ("GET", f"/v1/punches/receipt-tokens?cpf={JOSE}", None, world.token),
    )
    assert (revoke.code, after.code, again.code) == (204, 401, 404)
    [token] = json.loads(listing.body)["tokens"]
    assert (
        token["token_id"] == issued["token_id"] and token["revoked_at"] is not None and "token" not in token
    )
    stored = world.erp.scalar(
        "SELECT token_hash FROM ponto_receipt_token WHERE token_id = %s", issued["token_id"]
    )
    assert stored == token_hash(issued["token"]) != issued["token"]


def test_bad_requests_are_refused_before_the_database(world: World) -> None:
    bad_cpf, unknown_field, bad_id, bad_limit = world.call(
        ("POST", "/v1/punches/receipt-tokens", {"cpf": "123.456.789-00"}, world.token),
        ("POST", "/v1/punches/receipt-tokens", {"cpf": JOSE, "admin": True}, world.token),
        ("GET", "/v1/punches/not-a-uuid/receipt", None, world.token),
        ("GET", "/v1/employee/receipts?limit=0", None, issue(world, JOSE)["token"]),
    )
    refused = (bad_cpf, unknown_field, bad_id, bad_limit)
    assert [json.loads(r.body)["error"]["fields"][0]["field"] for r in refused] == [
        "cpf",
        "admin",
        "id",
        "limit",
    ]
    assert [r.code for r in refused] == [422, 422, 400, 400]


def test_a_registered_rep_never_gets_a_test_signed_receipt(world: World) -> None:
    with world.erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("UPDATE ponto_rep SET registered = true WHERE rep_id = %s", (world.erp.reps[0],))
    pid = world.punches[JOSE][0]
    [answer] = world.call(("GET", f"/v1/punches/{pid}/receipt", None, world.token))
    assert answer.code == 503 and json.loads(answer.body)["error"]["code"] == "receipt_unavailable"
    assert world.services.objects.list(f"ponto/receipts/{world.erp.tenant}/") == []


def test_the_employer_gets_a_reps_receipts_for_a_period_in_one_zip(erp: Erp, s3: S3ObjectStore) -> None:
    world = world_of(erp, objects=s3)
    [served] = world.call(("GET", f"/v1/punches/{world.punches[MARIA][0]}/receipt", None, world.token))
    ctx = TaskContext(
        job_id="job-zip", task="ponto.receipts", version="1", tenant=erp.tenant, attempt=1, s3=s3,
        rds=erp.pool, redshift=None,
        logger=job_logger(logging.getLogger("tests.ponto"), job="job-zip", tenant=erp.tenant),
        deadline=time.monotonic() + 600, _progress_sink=lambda fraction, note: None,
    )  # fmt: skip
    today = datetime.now(UTC).date()
    result = write_receipts(ctx, ReceiptsPayload(rep=erp.reps[0], start=today - timedelta(days=1), end=today))
    assert (result["receipts"], result["first_nsr"], result["last_nsr"], result["test"]) == (3, 4, 6, True)
    archive = zipfile.ZipFile(io.BytesIO(s3.get(result["key"])))
    names = archive.namelist()
    assert names == [f"{erp.reps[0]}_00000000{n}_{cpf}.pdf" for n, cpf in ((4, JOSE), (5, JOSE), (6, MARIA))]
    assert archive.read(names[2]) == served.body  # the receipt already given out, not a second one
    with erp.pool.connection() as conn:
        assert all(verify_receipt_with_ledger(conn, archive.read(n)).ok for n in names)
