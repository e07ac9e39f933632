"""Cancellation, CC-e and inutilização against the real SEFAZ emulator, PostgreSQL and S3.

Every NF-e here is authorised by the emulator through :class:`~tornado_tasks.nfe.emit.Emitter`,
then the task functions (``events.cancel``, ``events.correct``, ``voiding.void``) run with a
task context as a worker builds it, reading ``TORNADO_NFE_*`` from the environment.
"""

from __future__ import annotations

import pytest
from tornado_tasks.nfe import numbering
from tornado_tasks.nfe.events import cancel, correct
from tornado_tasks.nfe.models import CancelPayload, CorrectionPayload, VoidPayload
from tornado_tasks.nfe.signing import verify_enveloped
from tornado_tasks.nfe.voiding import void
from tornado_tasks.nfe.xsd import schema_errors

from tests.nfe_fixtures import (  # noqa: F401
    NfeWorld,
    nfe_world_fixture,
    sefaz_emulator_fixture,
    test_authority_fixture,
)
from tests.nfe_samples import ISSUER_CNPJ
from tornado_core import NonRetryable, Retry

pytestmark = pytest.mark.integration

EVENTS, CONSULT, VOIDING = "NFeRecepcaoEvento4", "NFeConsultaProtocolo4", "NFeInutilizacao4"
REASON = "Pedido cancelado pelo cliente antes do envio"
DAY_AND_AN_HOUR = 25 * 3600


def cancel_job(world: NfeWorld, job_id: str, key: str, tenant: str | None = None) -> dict[str, object]:
    payload = CancelPayload(access_key=key, reason=REASON)
    return cancel(world.context(job_id, tenant=tenant), payload, world.endpoints)


def correct_job(world: NfeWorld, job_id: str, key: str, text: str) -> dict[str, object]:
    payload = CorrectionPayload(access_key=key, correction=text)
    return correct(world.context(job_id, task="nfe.correct"), payload, world.endpoints)


def void_job(world: NfeWorld, job_id: str, first: int, last: int) -> dict[str, object]:
    payload = VoidPayload(
        cnpj=ISSUER_CNPJ, uf="SP", series=1, first_number=first, last_number=last,
        reason="Numeracao queimada por rejeicao da SEFAZ",
    )  # fmt: skip
    return void(world.context(job_id, task="nfe.void"), payload, world.endpoints)


def burn_number(world: NfeWorld, job_id: str) -> int:
    """Allocate the next number of the sample series and burn it, as a rejected emission does."""
    with world.pool.connection() as conn:
        allocation = numbering.allocate_number(conn, job_id=job_id, cnpj=ISSUER_CNPJ, model=55, series=1)
        numbering.mark(conn, job_id, numbering.Status.REJECTED_BURNED)
    return allocation.number


def stored_document(world: NfeWorld, key: object) -> bytes:
    assert isinstance(key, str)
    return world.s3.get(key)


def test_a_cancellation_within_the_window_is_registered_and_the_nfe_turns_cancelled(world: NfeWorld) -> None:
    emitted = world.emit("emit-1")
    key = str(emitted["access_key"])
    result = cancel_job(world, "cancel-1", key)
    assert (result["state"], result["status_code"], result["sequence"]) == ("registered", 135, 1)
    assert isinstance(result["protocol"], str) and len(result["protocol"]) == 15
    state, protocol, code = world.scalar(
        "SELECT array[state, protocol, status_code::text] FROM nfe_emission WHERE access_key = %s", key
    )
    assert (state, protocol, code) == ("cancelled", emitted["protocol"], "135")  # authorisation kept
    assert world.scalar("SELECT state FROM nfe_event WHERE job_id = 'cancel-1'") == "registered"
    files = result["files"]
    assert isinstance(files, dict)
    proc, signed = stored_document(world, files["procEventoNFe"]), stored_document(world, files["signed"])
    assert schema_errors(proc) == []
    assert len(verify_enveloped(signed)) == 1
    assert signed in proc  # the evento as signed, byte for byte, then SEFAZ's retEvento
    assert f"<nProt>{emitted['protocol']}</nProt>".encode() in proc  # the NF-e's, in detEvento
    assert f"ID110111{key}01".encode() in proc
    [authorized] = world.emulator.documents()["authorized"]
    assert authorized["cancelled"] is True


def test_a_cancellation_out_of_the_window_is_rejected_with_sefaz_code(world: NfeWorld) -> None:
    key = str(world.emit("emit-1")["access_key"])
    world.emulator.admin("PUT", "clock", {"offset_seconds": DAY_AND_AN_HOUR})
    with pytest.raises(NonRetryable, match=r"cancellation of NF-e .*: 501 Rejeição: Prazo de cancelamento"):
        cancel_job(world, "cancel-late", key)
    assert world.scalar("SELECT state || ' ' || status_code FROM nfe_event WHERE job_id = 'cancel-late'") == (
        "rejected 501"
    )
    assert world.scalar("SELECT state FROM nfe_emission WHERE access_key = %s", key) == "authorized"
    with pytest.raises(NonRetryable, match="501"):  # a redelivery repeats the verdict, sends nothing
        cancel_job(world, "cancel-late", key)
    assert len(world.emulator.requests(EVENTS)) == 1
    world.emulator.admin("PUT", "clock", {"offset_seconds": 0})
    retried = cancel_job(world, "cancel-again", key)  # another job takes over the rejected sequence 1
    assert (retried["state"], retried["sequence"]) == ("registered", 1)
    assert world.scalar("SELECT job_id FROM nfe_event WHERE access_key = %s", key) == "cancel-again"


def test_another_tenants_key_is_unknown_and_nothing_is_sent(world: NfeWorld) -> None:
    key = str(world.emit("emit-1")["access_key"])
    with pytest.raises(NonRetryable, match=f"no NF-e {key} for this tenant"):
        cancel_job(world, "cancel-foreign", key, tenant="someone-else")
    unknown = key[:-2] + ("00" if key[-2:] != "00" else "11")
    with pytest.raises(NonRetryable, match="for this tenant"):
        cancel_job(world, "cancel-unknown", unknown)
    assert world.emulator.requests(EVENTS) == []
    assert world.scalar("SELECT count(*) FROM nfe_event") == 0
    assert world.scalar("SELECT state FROM nfe_emission WHERE access_key = %s", key) == "authorized"


def test_two_correction_letters_take_sequences_one_and_two(world: NfeWorld) -> None:
    key = str(world.emit("emit-1")["access_key"])
    first = correct_job(world, "cce-1", key, "Corrige o complemento do endereco do destinatario")
    second = correct_job(world, "cce-2", key, "Corrige o numero do pedido informado nos dados adicionais")
    assert [(r["sequence"], r["state"], r["status_code"]) for r in (first, second)] == [
        (1, "registered", 135),
        (2, "registered", 135),
    ]
    assert correct_job(world, "cce-1", key, "Corrige o complemento do endereco do destinatario") == first
    assert len(world.emulator.requests(EVENTS)) == 2  # the redelivery kept its sequence, sent nothing
    [authorized] = world.emulator.documents()["authorized"]
    assert [(e["tpEvento"], e["nSeqEvento"]) for e in authorized["events"]] == [("110110", 1), ("110110", 2)]
    for result in (first, second):
        files = result["files"]
        assert isinstance(files, dict)
        assert schema_errors(stored_document(world, files["procEventoNFe"])) == []
    assert world.scalar("SELECT state FROM nfe_emission WHERE access_key = %s", key) == "authorized"


def test_a_redelivered_cancellation_registers_one_event(world: NfeWorld) -> None:
    key = str(world.emit("emit-1")["access_key"])
    first = cancel_job(world, "cancel-1", key)
    again = cancel_job(world, "cancel-1", key)
    assert again == first
    assert first["state"] == "registered"
    assert len(world.emulator.requests(EVENTS)) == 1
    assert world.scalar("SELECT count(*) FROM nfe_event WHERE access_key = %s", key) == 1


def test_a_cancellation_whose_answer_was_lost_is_confirmed_by_the_protocol_query(world: NfeWorld) -> None:
    key = str(world.emit("emit-1")["access_key"])
    world.emulator.admin("POST", "scripts", {"scenario": "lost_answer", "service": EVENTS})
    with pytest.raises(Retry):  # SEFAZ registered it, the answer never came back
        cancel_job(world, "cancel-1", key)
    assert world.scalar("SELECT state FROM nfe_event WHERE job_id = 'cancel-1'") == "sent"
    result = cancel_job(world, "cancel-1", key)  # the redelivery sends again: 573, then the query
    assert (result["state"], result["status_code"], result["sequence"]) == ("registered", 135, 1)
    assert [r["document_cStats"] for r in world.emulator.requests(EVENTS)] == [["135"], ["573"]]
    assert len(world.emulator.requests(CONSULT)) == 1
    [authorized] = world.emulator.documents()["authorized"]
    assert [(e["tpEvento"], e["nProt"]) for e in authorized["events"]] == [("110111", result["protocol"])]
    assert world.scalar("SELECT state FROM nfe_emission WHERE access_key = %s", key) == "cancelled"
    files = result["files"]
    assert isinstance(files, dict)
    assert schema_errors(stored_document(world, files["procEventoNFe"])) == []


def test_a_throttled_or_stopped_service_asks_for_another_attempt(world: NfeWorld) -> None:
    key = str(world.emit("emit-1")["access_key"])
    world.emulator.admin("POST", "scripts", {"scenario": "throttle", "service": EVENTS})
    with pytest.raises(Retry) as throttled:
        correct_job(world, "cce-1", key, "Corrige o complemento do endereco do destinatario")
    assert throttled.value.delay == world.config.throttle_delay
    world.emulator.admin("POST", "scripts", {"scenario": "unavailable", "status": 108, "service": EVENTS})
    with pytest.raises(Retry, match="108"):
        correct_job(world, "cce-1", key, "Corrige o complemento do endereco do destinatario")
    result = correct_job(world, "cce-1", key, "Corrige o complemento do endereco do destinatario")
    assert (result["state"], result["sequence"]) == ("registered", 1)  # the sequence survived the retries
    assert [r["cStat"] for r in world.emulator.requests(EVENTS)] == ["656", "108", "128"]


def test_a_burned_number_is_voided_and_its_allocation_turns_voided(world: NfeWorld) -> None:
    number = burn_number(world, "emit-burned")
    result = void_job(world, "void-1", number, number)
    assert (result["state"], result["status_code"]) == ("voided", 102)
    assert isinstance(result["protocol"], str) and len(result["protocol"]) == 15
    assert world.scalar("SELECT status FROM nfe_number WHERE job_id = 'emit-burned'") == "voided"
    assert world.scalar("SELECT state FROM nfe_voiding WHERE job_id = 'void-1'") == "voided"
    files = result["files"]
    assert isinstance(files, dict)
    proc, signed = stored_document(world, files["procInutNFe"]), stored_document(world, files["signed"])
    assert schema_errors(proc) == []
    assert len(verify_enveloped(signed)) == 1
    assert signed in proc
    [voided] = world.emulator.documents()["inutilized"]
    assert (voided["first"], voided["last"], voided["nProt"]) == (number, number, result["protocol"])
    assert void_job(world, "void-1", number, number) == result  # a redelivery sends nothing
    assert len(world.emulator.requests(VOIDING)) == 1


def test_a_voiding_whose_answer_was_lost_is_sent_again_and_counts_as_done(world: NfeWorld) -> None:
    number = burn_number(world, "emit-burned")
    world.emulator.admin("POST", "scripts", {"scenario": "lost_answer", "service": VOIDING})
    with pytest.raises(Retry):
        void_job(world, "void-1", number, number)
    assert world.scalar("SELECT state FROM nfe_voiding WHERE job_id = 'void-1'") == "sent"
    result = void_job(world, "void-1", number, number)
    assert (result["state"], result["status_code"]) == ("voided", 563)  # the same range, already voided
    assert [r["cStat"] for r in world.emulator.requests(VOIDING)] == ["102", "563"]
    assert world.scalar("SELECT status FROM nfe_number WHERE job_id = 'emit-burned'") == "voided"


def test_a_range_holding_an_authorised_number_is_refused_and_nothing_is_sent(world: NfeWorld) -> None:
    authorised = int(str(world.emit("emit-1")["number"]))
    burned = burn_number(world, "emit-burned")
    with pytest.raises(NonRetryable, match=f"number {authorised} of series 1 .* is authorized"):
        void_job(world, "void-1", authorised, burned)
    with pytest.raises(NonRetryable, match=f"number {burned + 1} .* has not been allocated yet"):
        void_job(world, "void-2", burned, burned + 1)
    assert world.emulator.requests(VOIDING) == []
    assert world.scalar("SELECT count(*) FROM nfe_voiding") == 0
    assert world.scalar("SELECT status FROM nfe_number WHERE job_id = 'emit-burned'") == "rejected_burned"


@pytest.fixture(name="world")
def world_fixture(nfe_world: NfeWorld) -> NfeWorld:
    """The test's tenant, databases and emulator (:func:`tests.nfe_fixtures.nfe_world_fixture`)."""
    return nfe_world
