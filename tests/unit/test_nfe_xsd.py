"""XSD validation against nfelib's official schemas, the schema picked per root and event (nfe.xsd)."""

from __future__ import annotations

import threading
from importlib.resources import files

import pytest
from lxml import etree
from tornado_tasks.nfe.certificates import A1Certificate, TestAuthority
from tornado_tasks.nfe.signing import sign_enveloped
from tornado_tasks.nfe.xml_builder import build_nfe
from tornado_tasks.nfe.xsd import (
    EVENT_SCHEMAS,
    ROOT_SCHEMAS,
    SchemaInvalid,
    require_schema_valid,
    schema_errors,
    schema_path,
)

from tests.nfe_samples import (
    ISSUED_AT,
    NFE_NS,
    cancellation_request,
    correction_request,
    new_a1,
    sample_invoice,
    sample_key,
)
from tornado_core import NonRetryable

STATUS = (
    f'<consStatServ xmlns="{NFE_NS}" versao="4.00">\n'
    "  <tpAmb>2</tpAmb>\n"
    "  <cUF>35</cUF>\n"
    "  <xServ>{service}</xServ>\n"
    "</consStatServ>"
)
SAMPLES = files("nfelib") / "nfe" / "samples" / "v4_0" / "leiauteNFe"


@pytest.fixture(scope="module")
def a1() -> A1Certificate:
    return new_a1(TestAuthority.create())


@pytest.fixture(scope="module")
def key() -> str:
    return sample_key(sample_invoice()).text


def nfe() -> bytes:
    invoice = sample_invoice()
    return build_nfe(
        invoice, key=sample_key(invoice), issued_at=ISSUED_AT, environment=2, software_version="t"
    )


def status(service: str = "STATUS") -> bytes:
    return STATUS.replace("{service}", service).encode()


# --- NF-e documents -----------------------------------------------------------------------------------------


def test_a_signed_nfe_is_valid_and_an_unsigned_one_misses_only_its_signature(a1: A1Certificate) -> None:
    assert schema_errors(sign_enveloped(nfe(), a1)) == []
    (error,) = schema_errors(nfe())
    assert error.startswith("line 1: Element 'NFe': Missing child element(s).")
    assert "ds:Signature" in error


def test_errors_are_readable_and_carry_their_line() -> None:
    assert schema_errors(status()) == []
    (error,) = schema_errors(status("STATUSX"))
    assert error.startswith("line 4: Element 'xServ'")
    assert "{http" not in error  # the NF-e namespace is left out of the messages


def test_every_error_is_reported(a1: A1Certificate) -> None:
    broken = sign_enveloped(nfe(), a1).replace(b"<tpAmb>2</tpAmb>", b"<tpAmb>3</tpAmb>")
    broken = broken.replace(b"<CRT>3</CRT>", b"<CRT>7</CRT>")
    errors = schema_errors(broken)
    assert len(errors) == 2
    assert "'tpAmb'" in errors[0] and "'CRT'" in errors[1]


def test_an_authorised_nfe_proc_from_nfelib_is_valid() -> None:
    sample = SAMPLES.joinpath("35180834128745000152550010000474281920007498-nfe.xml").read_bytes()
    assert etree.QName(etree.fromstring(sample)).localname == "nfeProc"
    assert schema_errors(sample) == []


@pytest.mark.parametrize("root", sorted(ROOT_SCHEMAS))
def test_each_root_has_a_schema_that_compiles_and_validates(root: str) -> None:
    assert schema_path(ROOT_SCHEMAS[root]).is_file()
    errors = schema_errors(f'<{root} xmlns="{NFE_NS}"/>'.encode())
    assert errors, root  # an empty root is never valid: proof that its schema really ran
    assert all(error.startswith("line 1: Element") for error in errors)


@pytest.mark.parametrize("event_type", sorted(EVENT_SCHEMAS))
def test_each_event_type_has_its_schemas(event_type: str) -> None:
    for root, relative in EVENT_SCHEMAS[event_type].items():
        assert schema_path(relative).is_file()
        document = f'<{root} xmlns="{NFE_NS}"><tpEvento>{event_type}</tpEvento></{root}>'.encode()
        errors = schema_errors(document)
        assert errors and all(error.startswith("line 1: Element") for error in errors)


# --- events: each against its own schema --------------------------------------------------------------------


def test_a_signed_cancellation_and_a_signed_correction_are_valid(a1: A1Certificate, key: str) -> None:
    assert schema_errors(sign_enveloped(cancellation_request(key), a1)) == []
    assert schema_errors(sign_enveloped(correction_request(key), a1)) == []


def test_a_cancellation_is_checked_against_the_cancellation_schema(a1: A1Certificate, key: str) -> None:
    """The generic event schema takes any detEvento; the cancellation one wants nProt and xJust."""
    wrong = cancellation_request(key).replace(b"<descEvento>Cancelamento</descEvento>", b"")
    errors = schema_errors(sign_enveloped(wrong, a1))
    assert len(errors) == 1 and "'nProt'" in errors[0] and "descEvento" in errors[0]


def test_a_correction_is_checked_against_the_correction_schema(a1: A1Certificate, key: str) -> None:
    wrong = (
        correction_request(key).replace(b"<xCorrecao>", b"<xCorrecao>x").replace(b"Carta de Correcao", b"X")
    )
    errors = schema_errors(sign_enveloped(wrong, a1))
    assert any("'descEvento'" in error for error in errors)


def test_an_event_without_a_known_type_gives_one_error(key: str) -> None:
    unknown = cancellation_request(key).replace(
        b"<tpEvento>110111</tpEvento>", b"<tpEvento>999999</tpEvento>"
    )
    assert schema_errors(unknown) == ["no XSD for event type (tpEvento) 999999 (known: 110110, 110111, "
                                      "110140, 210200, 210210, 210220, 210240)"]  # fmt: skip
    mixed = cancellation_request(key).replace(b"</evento>", b"</evento><tpEvento>110110</tpEvento>")
    (error,) = schema_errors(mixed)
    assert error == "envEvento must carry one event type (tpEvento) to pick its XSD, found: 110110, 110111"


# --- what is not an NF-e document ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "start"),
    [
        (
            f'<nfeFoo xmlns="{NFE_NS}"/>'.encode(),
            "unknown root element nfeFoo: no XSD for it (known roots: NFe, ",
        ),
        (b"<NFe/>", "the root element NFe is not in the NF-e namespace"),
        (b"<NFe", "not well-formed XML"),
        (b'<!DOCTYPE NFe [<!ENTITY x "y">]><NFe>&x;</NFe>', "a DOCTYPE is not allowed"),
    ],
)
def test_what_has_no_schema_gives_one_error_saying_so(document: bytes, start: str) -> None:
    (error,) = schema_errors(document)
    assert error.startswith(start)


def test_require_schema_valid_raises_a_non_retryable_listing_the_errors() -> None:
    require_schema_valid(status(), "consStatServ")
    with pytest.raises(SchemaInvalid) as caught:
        require_schema_valid(status("NOPE"), "consStatServ")
    assert isinstance(caught.value, NonRetryable)
    assert caught.value.errors == schema_errors(status("NOPE"))
    assert str(caught.value).startswith("consStatServ does not match its XSD: line 4: Element 'xServ'")


def test_threads_validating_at_once_each_get_their_own_errors() -> None:
    """A compiled schema keeps its error log on itself: concurrent users must not see each other's."""
    good, bad = status(), status("WRONG")
    expected = schema_errors(bad)
    results: list[tuple[bool, list[str]]] = []

    def run(document: bytes) -> None:
        for _ in range(50):
            results.append((document is good, schema_errors(document)))

    threads = [threading.Thread(target=run, args=(good if i % 2 else bad,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 400
    assert all(errors == ([] if is_good else expected) for is_good, errors in results)


def test_a_signed_nfe_validates_in_threads_other_than_the_one_that_first_compiled_the_schema() -> None:
    """lxml ties a compiled schema to its thread: a worker's job threads must each get their own."""
    authority = TestAuthority.create()
    invoice = sample_invoice(3)
    key = sample_key(invoice)
    unsigned = build_nfe(invoice, key=key, issued_at=ISSUED_AT, environment=2, software_version="tests")
    signed = sign_enveloped(unsigned, new_a1(authority))
    assert schema_errors(signed) == []  # compiled here, in the main thread
    results: list[list[str]] = []

    def run() -> None:
        for _ in range(40):
            results.append(schema_errors(signed))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 160 and all(errors == [] for errors in results), {str(e) for e in results}
