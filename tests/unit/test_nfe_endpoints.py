"""SEFAZ endpoints as data: every UF, environment and service resolves (tornado_tasks.nfe.endpoints)."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import pytest
from tornado_tasks.nfe.endpoints import Endpoint, EndpointTable, EndpointUnknown

from tornado_core.errors import ConfigError

#: The 27 federative units, written out here so a UF missing from the data file fails.
UFS = (
    "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT", "PA",
    "PB", "PE", "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP", "TO",
)  # fmt: skip
SERVICES = (
    "NFeAutorizacao4", "NFeRetAutorizacao4", "NFeConsultaProtocolo4",
    "NFeStatusServico4", "NFeRecepcaoEvento4", "NFeInutilizacao4",
)  # fmt: skip
#: Domain reference 1.4: UFs with their own servers, and the two on SVAN; the rest use SVRS.
OWN_SERVERS = {"AM", "BA", "GO", "MG", "MS", "MT", "PE", "PR", "RS", "SP"}
ON_SVAN = {"MA", "PA"}
#: Domain reference 1.5: these contingency at SVC-RS, the others at SVC-AN.
ON_SVC_RS = {"AM", "BA", "GO", "MA", "MS", "MT", "PE", "PI", "PR"}
LOOPBACK = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def table() -> EndpointTable:
    return EndpointTable.bundled()


def expected_authority(uf: str) -> str:
    return uf if uf in OWN_SERVERS else "SVAN" if uf in ON_SVAN else "SVRS"


# --- the bundled table ----------------------------------------------------------------------------


def test_the_table_routes_exactly_the_27_ufs(table: EndpointTable) -> None:
    assert table.ufs == tuple(sorted(UFS))


@pytest.mark.parametrize("uf", UFS)
def test_every_service_of_every_uf_resolves_to_https_in_both_environments(
    table: EndpointTable, uf: str
) -> None:
    for environment in (1, 2):
        for service in SERVICES:
            endpoint = table.resolve(uf, environment, service)
            parts = urlsplit(endpoint.url)
            assert parts.scheme == "https" and parts.netloc, (uf, environment, service, endpoint)
            assert endpoint.authority == expected_authority(uf)


def test_production_and_homologation_are_different_servers(table: EndpointTable) -> None:
    for uf in UFS:
        for service in SERVICES:
            production, homologation = (table.resolve(uf, env, service).url for env in (1, 2))
            assert production != homologation, (uf, service)


def test_the_services_of_an_authority_are_different_urls(table: EndpointTable) -> None:
    urls = {table.resolve("SP", 1, service).url for service in SERVICES}
    assert len(urls) == len(SERVICES)
    assert table.resolve("SP", 1, "NFeStatusServico4") == Endpoint(
        url="https://nfe.fazenda.sp.gov.br/ws/nfestatusservico4.asmx", authority="SP"
    )  # the URL of the real capture in the domain reference 1.4


@pytest.mark.parametrize("uf", UFS)
def test_contingency_goes_to_the_ufs_svc(table: EndpointTable, uf: str) -> None:
    svc = "SVC-RS" if uf in ON_SVC_RS else "SVC-AN"
    assert table.authority_for(uf, contingency=True) == svc
    for environment in (1, 2):
        endpoint = table.resolve(uf, environment, "NFeAutorizacao4", contingency=True)
        assert endpoint.authority == svc
        assert endpoint.url.startswith("https://")


def test_sp_contingency_is_svc_an_and_pr_is_svc_rs(table: EndpointTable) -> None:
    sp = table.resolve("SP", 1, "NFeAutorizacao4", contingency=True)
    assert sp == Endpoint("https://www.svc.fazenda.gov.br/NFeAutorizacao4/NFeAutorizacao4.asmx", "SVC-AN")
    sp_hom = table.resolve("SP", 2, "NFeRetAutorizacao4", contingency=True)
    assert urlsplit(sp_hom.url).netloc == "hom.svc.fazenda.gov.br"
    pr = table.resolve("PR", 1, "NFeAutorizacao4", contingency=True)
    assert pr == Endpoint("https://nfe.svrs.rs.gov.br/ws/NfeAutorizacao/NFeAutorizacao4.asmx", "SVC-RS")
    assert urlsplit(table.resolve("PR", 2, "NFeConsultaProtocolo4", contingency=True).url).netloc == (
        "nfe-homologacao.svrs.rs.gov.br"
    )
    assert table.resolve("PR", 1, "NFeAutorizacao4").authority == "PR"  # not in contingency: its own


def test_svc_an_is_not_the_svan_server(table: EndpointTable) -> None:
    """nfelib 3.2.0 lists SVAN's host for SVC-AN; the data file corrects it (see its _corrections)."""
    for environment in (1, 2):
        for service in ("NFeAutorizacao4", "NFeRetAutorizacao4", "NFeConsultaProtocolo4"):
            svan = table.resolve("MA", environment, service)
            svc_an = table.resolve("SP", environment, service, contingency=True)
            assert svan.authority == "SVAN" and svc_an.authority == "SVC-AN"
            assert urlsplit(svan.url).netloc != urlsplit(svc_an.url).netloc


@pytest.mark.parametrize("uf", ["SP", "PR"])
def test_no_svc_offers_inutilizacao(table: EndpointTable, uf: str) -> None:
    with pytest.raises(EndpointUnknown, match="NFeInutilizacao4") as caught:
        table.resolve(uf, 1, "NFeInutilizacao4", contingency=True)
    assert "SVC-" in str(caught.value)
    assert table.resolve(uf, 1, "NFeInutilizacao4").authority == uf  # at the normal authority


def test_the_urls_are_nfelibs_apart_from_the_documented_svc_an_correction(table: EndpointTable) -> None:
    from nfelib.nfe.client.v4_0.servers import Endpoint as NfelibService
    from nfelib.nfe.client.v4_0.servers import servers

    names = {
        "NFeAutorizacao4": NfelibService.NFEAUTORIZACAO,
        "NFeRetAutorizacao4": NfelibService.NFERETAUTORIZACAO,
        "NFeConsultaProtocolo4": NfelibService.NFECONSULTAPROTOCOLO,
        "NFeStatusServico4": NfelibService.NFESTATUSSERVICO,
        "NFeRecepcaoEvento4": NfelibService.RECEPCAOEVENTO,
        "NFeInutilizacao4": NfelibService.NFEINUTILIZACAO,
    }
    compared = 0
    for uf in UFS:
        for contingency in (False, True):
            for environment, section in ((1, "prod_endpoints"), (2, "dev_endpoints")):
                for service, nfelib_name in names.items():
                    authority = table.authority_for(uf, contingency=contingency)
                    if authority == "SVC-AN" or nfelib_name not in servers[authority][section]:
                        continue
                    url = table.resolve(uf, environment, service, contingency=contingency).url
                    assert url == servers[authority][section][nfelib_name], (uf, authority, service)
                    compared += 1
    assert compared > 27 * 2 * len(SERVICES)  # every normal route and the SVC-RS ones


def test_the_data_file_names_its_source() -> None:
    data = json.loads(files("tornado_tasks.nfe").joinpath("endpoints.json").read_text(encoding="utf-8"))
    assert "nfelib" in data["_source"] and "servers.py" in data["_source"]
    assert "SVC-AN" in data["_corrections"]


# --- unknown names --------------------------------------------------------------------------------


def test_an_unknown_uf_is_named(table: EndpointTable) -> None:
    with pytest.raises(EndpointUnknown, match="'XX'") as caught:
        table.resolve("XX", 1, "NFeAutorizacao4")
    assert isinstance(caught.value, ConfigError)
    assert (caught.value.kind, caught.value.value) == ("uf", "XX")


def test_the_uf_is_read_without_case_or_blanks(table: EndpointTable) -> None:
    assert table.resolve(" sp ", 2, "NFeStatusServico4") == table.resolve("SP", 2, "NFeStatusServico4")


@pytest.mark.parametrize("environment", [0, 3, True, "1"])
def test_an_unknown_environment_is_named(table: EndpointTable, environment: Any) -> None:
    with pytest.raises(EndpointUnknown, match="environment") as caught:
        table.resolve("SP", environment, "NFeAutorizacao4")
    assert caught.value.kind == "environment"


@pytest.mark.parametrize("service", ["NfeAutorizacao", "nfeautorizacao4", "NFeDistribuicaoDFe", ""])
def test_an_unknown_service_is_named(table: EndpointTable, service: str) -> None:
    with pytest.raises(EndpointUnknown, match=f"service {service!r}"):
        table.resolve("SP", 1, service)


# --- the override (local emulator, tests) ---------------------------------------------------------


@pytest.mark.parametrize("base", [LOOPBACK, LOOPBACK + "/"])
def test_the_override_points_every_route_at_the_base(table: EndpointTable, base: str) -> None:
    local = table.with_override(base)
    for uf in UFS:
        for environment in (1, 2):
            for service in SERVICES:
                endpoint = local.resolve(uf, environment, service)
                assert endpoint == Endpoint(f"{LOOPBACK}/ws/{service.lower()}.asmx", expected_authority(uf))
                if service != "NFeInutilizacao4":
                    svc = local.resolve(uf, environment, service, contingency=True)
                    assert svc.url == endpoint.url
                    assert svc.authority == table.authority_for(uf, contingency=True)


def test_the_override_leaves_the_original_and_the_gaps_alone(table: EndpointTable) -> None:
    before = table.resolve("SP", 1, "NFeAutorizacao4")
    local = table.with_override(LOOPBACK)
    assert table.resolve("SP", 1, "NFeAutorizacao4") == before
    with pytest.raises(EndpointUnknown):
        local.resolve("SP", 1, "NFeInutilizacao4", contingency=True)


@pytest.mark.parametrize("base", ["", "127.0.0.1:8765", "ftp://127.0.0.1", "http://", f"{LOOPBACK}?x=1"])
def test_a_bad_override_is_a_config_error(table: EndpointTable, base: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        table.with_override(base)


# --- from_mapping ---------------------------------------------------------------------------------


def small(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "_source": "test",
        "ufs": {"SP": {"authority": "SP", "contingency": "SVC-AN"}},
        "authorities": {
            "SP": {"1": {"NFeAutorizacao4": "https://sp.example/a"}, "2": {}},
            "SVC-AN": {"1": {"NFeAutorizacao4": "https://svc.example/a"}},
        },
    }
    return data | changes


def test_from_mapping_builds_a_small_table() -> None:
    table = EndpointTable.from_mapping(small())
    assert table.resolve("SP", 1, "NFeAutorizacao4") == Endpoint("https://sp.example/a", "SP")
    assert table.resolve("SP", 1, "NFeAutorizacao4", contingency=True).url == "https://svc.example/a"
    with pytest.raises(EndpointUnknown, match="SP has no endpoint"):
        table.resolve("SP", 2, "NFeAutorizacao4")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ufs": None}, "'ufs' must be an object"),
        ({"ufs": {"SP": {"authority": "SP", "contingency": "SVC-RS"}}}, "SVC-RS"),
        ({"authorities": {"SP": {"3": {}}, "SVC-AN": {}}}, "environment '3'"),
        ({"authorities": {"SP": {"1": {"NFeAutoriz": "https://x"}}, "SVC-AN": {}}}, "NFeAutoriz"),
        ({"authorities": {"SP": {"1": {"NFeAutorizacao4": "sp.example/a"}}, "SVC-AN": {}}}, "sp.example"),
    ],
)
def test_from_mapping_refuses_a_malformed_table(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EndpointTable.from_mapping(small(**changes))
