"""The DANFE PDF from an authorised nfeProc (tornado_tasks.nfe.danfe), on nfelib's own samples.

pypdf is not installed, so the first page's text is read the plain way: follow the page tree to
the first page's content stream, inflate it with zlib and collect the strings of its ``Tj``
operators (BrazilFiscalReport writes with the core PDF fonts, so they are literal strings).
"""

from __future__ import annotations

import os
import re
import socket
import zlib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from tornado_tasks.nfe.danfe import DanfeError, render_danfe

from tornado_core.errors import NonRetryable

SAMPLES = files("nfelib") / "nfe" / "samples" / "v4_0" / "leiauteNFe"
#: nfelib's authorised samples (nfeProc with protNFe, cStat 100): production (SC) and homologation (PR).
PROC_SAMPLES = (
    "42220575277525000178550030000292481295366801-procNFe.xml",
    "42211275277525000178550030000276771368212013-procNFe.xml",
    "41170706117473000150550010000463202612756525-procNFe.xml",
)
#: Every nfelib sample named after its access key: each is an nfeProc with an authorising protNFe
#: (the ``-nfe.xml`` ones too), issued in PE, PR, SC and SP, in both environments.
KEYED_NAME = re.compile(r"\d{44}-(procNFe|nfe)\.xml")
KEYED_SAMPLES = sorted(p.name for p in SAMPLES.iterdir() if KEYED_NAME.fullmatch(p.name))
NS = {"n": "http://www.portalfiscal.inf.br/nfe"}


def sample(name: str) -> bytes:
    return SAMPLES.joinpath(name).read_bytes()


def key_of(name: str) -> str:
    return name.split("-")[0]


def edited(name: str, xpath: str, change: Any) -> bytes:
    """The sample with ``change(element)`` applied to the element at ``xpath``."""
    root = etree.fromstring(sample(name))
    (element,) = root.xpath(xpath, namespaces=NS)
    change(element)
    return bytes(etree.tostring(root))


def first_page_text(pdf: bytes) -> list[str]:
    """The literal strings the first page shows, in drawing order."""
    objects = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj(.*?)endobj", pdf, re.S)}
    catalog = next(body for body in objects.values() if re.search(rb"/Type\s*/Catalog", body))
    pages = objects[int(re.search(rb"/Pages\s+(\d+) 0 R", catalog).group(1))]  # type: ignore[union-attr]
    first = objects[int(re.search(rb"/Kids\s*\[\s*(\d+) 0 R", pages).group(1))]  # type: ignore[union-attr]
    content = objects[int(re.search(rb"/Contents\s+(\d+) 0 R", first).group(1))]  # type: ignore[union-attr]
    stream = re.search(rb"stream\r?\n(.*)\r?\nendstream", content, re.S).group(1)  # type: ignore[union-attr]
    if b"/FlateDecode" in content:
        stream = zlib.decompress(stream)
    return [s.decode("latin-1") for s in re.findall(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", stream)]


# --- rendering ------------------------------------------------------------------------------------


def test_nfelib_ships_the_samples_these_tests_render() -> None:
    assert set(PROC_SAMPLES) <= set(KEYED_SAMPLES)
    assert len(KEYED_SAMPLES) >= 15


@pytest.mark.parametrize("name", KEYED_SAMPLES)
def test_the_danfe_of_an_nfeproc_is_a_pdf_showing_the_access_key(name: str) -> None:
    pdf = render_danfe(sample(name))
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    key = key_of(name)
    grouped = " ".join(key[i : i + 4] for i in range(0, 44, 4))  # the DANFE prints it 4 by 4
    texts = first_page_text(pdf)
    assert grouped in texts, texts[:40]
    assert "DANFE" in texts


def test_the_first_page_reader_sees_what_is_not_there() -> None:
    """The text check can fail: another NF-e's key is not on this page."""
    texts = first_page_text(render_danfe(sample(PROC_SAMPLES[0])))
    other = key_of(PROC_SAMPLES[1])
    assert not any(other in t.replace(" ", "") for t in texts)


def test_a_homologation_nfe_says_it_has_no_fiscal_value() -> None:
    homologation = render_danfe(sample(PROC_SAMPLES[2]))  # tpAmb 2
    production = render_danfe(sample(PROC_SAMPLES[0]))  # tpAmb 1
    assert "SEM VALOR FISCAL" in first_page_text(homologation)
    assert "SEM VALOR FISCAL" not in first_page_text(production)


def test_the_same_nfeproc_renders_the_same_bytes() -> None:
    assert render_danfe(sample(PROC_SAMPLES[0])) == render_danfe(sample(PROC_SAMPLES[0]))
    assert b"/CreationDate (D:20220527135315-03'00')" in render_danfe(sample(PROC_SAMPLES[0]))


def test_rendering_touches_no_network_and_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the DANFE tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(scratch))
    assert render_danfe(sample(PROC_SAMPLES[1])).startswith(b"%PDF-")
    assert sorted(os.listdir(tmp_path)) == ["tmp"]
    assert os.listdir(scratch) == []


# --- refusals -------------------------------------------------------------------------------------


def test_a_bare_nfe_is_not_an_nfeproc() -> None:
    (nfe,) = etree.fromstring(sample(PROC_SAMPLES[0])).xpath("/n:nfeProc/n:NFe", namespaces=NS)
    with pytest.raises(DanfeError, match="expected an nfeProc") as caught:
        render_danfe(etree.tostring(nfe))
    assert isinstance(caught.value, NonRetryable)


def test_an_infnfe_id_without_the_nfe_prefix_is_refused() -> None:
    """nfelib's NFe35200159... sample is an nfeProc with no protocol and a bare-key Id."""
    with pytest.raises(DanfeError, match="is not 'NFe' followed by"):
        render_danfe(sample("NFe35200159594315000157550010000000012062777161.xml"))


def test_an_nfeproc_without_protocol_is_refused() -> None:
    xml = edited(PROC_SAMPLES[0], "/n:nfeProc/n:protNFe", lambda e: e.getparent().remove(e))
    with pytest.raises(DanfeError, match="no protocol"):
        render_danfe(xml)


@pytest.mark.parametrize(
    ("xpath", "value", "message"),
    [
        ("//n:infProt/n:cStat", "110", "not authorised: protocol cStat 110"),
        ("//n:infProt/n:chNFe", "4" * 44, "the protocol is for NF-e 4444"),
        ("//n:infProt/n:nProt", "", "no nProt"),
        ("//n:infProt/n:dhRecbto", "yesterday", "no valid dhRecbto"),
        ("//n:ide/n:mod", "65", "model 65"),
    ],
)
def test_a_protocol_that_does_not_authorise_this_nfe_is_refused(xpath: str, value: str, message: str) -> None:
    def set_text(element: Any) -> None:
        element.text = value

    with pytest.raises(DanfeError, match=message):
        render_danfe(edited(PROC_SAMPLES[0], xpath, set_text))


def test_late_authorisation_150_still_prints() -> None:
    def late(element: Any) -> None:
        element.text = "150"

    assert render_danfe(edited(PROC_SAMPLES[0], "//n:infProt/n:cStat", late)).startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed"),
        (b"%PDF-1.4 not xml", "not well-formed"),
        (b"<nfeProc/>", "expected an nfeProc"),  # no namespace
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>', "DOCTYPE"),
    ],
)
def test_what_is_not_an_nfeproc_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(DanfeError, match=message):
        render_danfe(data)


def test_text_instead_of_bytes_is_refused() -> None:
    with pytest.raises(DanfeError, match="must be bytes"):
        render_danfe(sample(PROC_SAMPLES[0]).decode())  # type: ignore[arg-type]
