"""Who signs a REP-P's files: the developer's certificate, ICP-Brasil when registered, naming AD-RB."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from tornado_tasks.ponto.cli import verify_afd_command
from tornado_tasks.ponto.rep_signer import (
    AD_RB_POLICY,
    DEV_SIGNER_KEY,
    REP_SIGNER_KEY,
    SignerError,
    SignerRefused,
    icp_brasil_problem,
    install_rep_signer,
    is_icp_brasil,
    load_rep_signer,
)
from tornado_tasks.ponto.signing import load_signer, sign_detached, verify_detached

from tests.unit.test_ponto_afd import GOLDEN
from tornado_core.adapters.memory.stores import MemoryObjectStore
from tornado_core.devstack.certs import TEST_SIGNER_KEY, make_test_signer_pem
from tornado_core.errors import ConfigError

#: The policy a signature certificate of type A1 carries under some AC (the last arc is the AC's).
A1_POLICY = "2.16.76.1.2.1.133"


def _name(common_name: str, organization: str = "ICP-Brasil") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def icp_like_pem(*, policy: str | None = A1_POLICY, days: int = 365, issuer_org: str = "ICP-Brasil") -> bytes:
    """A key and a certificate shaped like an ICP-Brasil e-CNPJ A1: issued by an 'AC' of O=ICP-Brasil."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("ACME SOFTWARE LTDA:11222333000181", "ICP-Brasil"))
        .issuer_name(_name("AC TESTE RFB v5", issuer_org))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + timedelta(days=days))
    )
    if policy:
        builder = builder.add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(policy), None)]),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def store(**objects: bytes) -> MemoryObjectStore:
    memory = MemoryObjectStore()
    for key, data in objects.items():
        memory.put(key, data)
    return memory


def test_the_dev_key_is_the_local_stacks_test_signer_key() -> None:
    assert DEV_SIGNER_KEY == TEST_SIGNER_KEY


def test_a_rep_not_registered_signs_with_the_stacks_test_signer_marked_test_and_naming_ad_rb() -> None:
    signer = load_rep_signer(store(**{DEV_SIGNER_KEY: make_test_signer_pem()}), registered=False)
    assert signer.test and signer.policy == AD_RB_POLICY
    assert "not ICP-Brasil" in signer.certificate.subject.rfc4514_string()


def test_the_developer_signer_comes_first_and_no_tenant_key_overrides_it() -> None:
    objects = store(
        **{
            REP_SIGNER_KEY: make_test_signer_pem("ACME REP-P developer"),
            DEV_SIGNER_KEY: make_test_signer_pem(),
            "signing/acme/signer.pem": make_test_signer_pem("a tenant's own signer"),
        }
    )
    signer = load_rep_signer(objects, registered=False)
    assert "ACME REP-P developer" in signer.certificate.subject.rfc4514_string()
    with pytest.raises(SignerError, match=REP_SIGNER_KEY):  # a tenant's key alone is no signer
        load_rep_signer(store(**{"signing/acme/signer.pem": make_test_signer_pem()}), registered=False)


def test_a_registered_rep_refuses_the_test_signer_and_never_falls_back_to_the_stacks() -> None:
    with pytest.raises(SignerRefused, match="not an ICP-Brasil authority") as refused:
        load_rep_signer(store(**{REP_SIGNER_KEY: make_test_signer_pem()}), registered=True)
    assert isinstance(refused.value, ConfigError)  # from the core's error tree
    with pytest.raises(SignerError, match="no REP-P developer signer"):
        load_rep_signer(store(**{DEV_SIGNER_KEY: make_test_signer_pem()}), registered=True)


def test_a_registered_rep_signs_with_an_icp_brasil_certificate_for_real() -> None:
    signer = load_rep_signer(store(**{REP_SIGNER_KEY: icp_like_pem()}), registered=True)
    assert not signer.test and signer.policy == AD_RB_POLICY
    assert is_icp_brasil(signer.certificate)


@pytest.mark.parametrize(
    ("pem", "why"),
    [
        (lambda: icp_like_pem(policy=None), "no ICP-Brasil certificate policy"),
        (lambda: icp_like_pem(policy="1.3.6.1.4.1.99.1"), "no ICP-Brasil certificate policy"),
        (lambda: icp_like_pem(issuer_org="Some Other CA"), "not an ICP-Brasil authority"),
        (lambda: icp_like_pem(days=-1), "expired"),
    ],
)
def test_a_registered_rep_refuses_what_only_looks_icp_brasil(pem: Callable[[], bytes], why: str) -> None:
    objects = store(**{REP_SIGNER_KEY: pem()})
    with pytest.raises(SignerRefused, match=why):
        load_rep_signer(objects, registered=True)


def test_a_self_issued_certificate_naming_icp_brasil_is_not_icp_brasil() -> None:
    certificate = load_signer(make_test_signer_pem()).certificate
    assert icp_brasil_problem(certificate) is not None
    assert not is_icp_brasil(certificate)


def test_install_stores_the_developer_signer_and_refuses_a_pem_without_its_certificate() -> None:
    objects = MemoryObjectStore()
    pem = make_test_signer_pem("ACME REP-P developer")
    install_rep_signer(objects, pem)
    assert objects.get(REP_SIGNER_KEY) == pem
    key_only = pem.split(b"-----BEGIN CERTIFICATE-----")[0]
    with pytest.raises(SignerError, match="cannot be read"):
        install_rep_signer(MemoryObjectStore(), key_only)
    someone_elses = key_only + make_test_signer_pem().split(b"-----END PRIVATE KEY-----\n")[1]
    with pytest.raises(SignerError, match="belongs to its private key"):
        install_rep_signer(MemoryObjectStore(), someone_elses)


def test_the_certificate_of_the_key_is_picked_from_a_pem_with_its_chain() -> None:
    own, other = make_test_signer_pem("mine"), make_test_signer_pem("the AC")
    key, certificate = own.split(b"-----BEGIN CERTIFICATE-----")
    chain_first = (
        key + other.split(b"-----END PRIVATE KEY-----\n")[1] + b"-----BEGIN CERTIFICATE-----" + certificate
    )
    assert "mine" in load_signer(chain_first).certificate.subject.rfc4514_string()


def test_the_signature_names_the_ad_rb_policy_and_openssl_still_accepts_it(tmp_path: Path) -> None:
    assert shutil.which("openssl"), "openssl is needed (bash .ci/bootstrap installs it)"
    data = GOLDEN.read_bytes()
    signer = load_rep_signer(store(**{REP_SIGNER_KEY: icp_like_pem()}), registered=True)
    p7s = sign_detached(data, signer)
    policy = verify_detached(data, p7s).policy
    assert policy is not None
    assert (policy.oid, policy.sha256, policy.uri) == (
        AD_RB_POLICY.oid,
        AD_RB_POLICY.sha256,
        AD_RB_POLICY.uri,
    )
    (tmp_path / "afd.txt").write_bytes(data)
    (tmp_path / "afd.p7s").write_bytes(p7s)
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "afd.p7s"),
         "-content", str(tmp_path / "afd.txt"), "-noverify", "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "Verification successful" in result.stderr, result.stderr
    printed = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(tmp_path / "afd.p7s")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "1.2.840.113549.1.9.16.2.15" in printed or "id-smime-aa-ets-sigPolicyId" in printed


def verify_cli(tmp_path: Path, pem: bytes, *extra: str) -> tuple[int, str]:
    data = GOLDEN.read_bytes()
    (tmp_path / "AFD.txt").write_bytes(data)
    (tmp_path / "AFD.p7s").write_bytes(sign_detached(data, load_signer(pem), policy=AD_RB_POLICY))
    result = CliRunner().invoke(verify_afd_command, [str(tmp_path / "AFD.txt"), *extra])
    return result.exit_code, result.output


def test_verify_afd_says_when_the_certificate_is_a_test_one_and_which_policy_it_names(tmp_path: Path) -> None:
    code, output = verify_cli(tmp_path, make_test_signer_pem())
    assert code == 0, output
    assert "certificate: TEST (not ICP-Brasil); policy: 2.16.76.1.7.1.1.2.3 (ICP-Brasil AD-RB v2.3)" in output
    assert "WARNING TEST certificate" in output
    code, output = verify_cli(tmp_path, make_test_signer_pem(), "--require-icp-brasil")
    assert code == 1 and "not ICP-Brasil" in output
    code, output = verify_cli(tmp_path, icp_like_pem(), "--require-icp-brasil")
    assert code == 0 and "certificate: ICP-Brasil; policy: 2.16.76.1.7.1.1.2.3" in output, output
    assert "WARNING" not in output


def test_verify_afd_warns_when_a_signature_names_no_policy(tmp_path: Path) -> None:
    data = GOLDEN.read_bytes()
    (tmp_path / "AFD.txt").write_bytes(data)
    (tmp_path / "AFD.p7s").write_bytes(sign_detached(data, load_signer(make_test_signer_pem())))
    result = CliRunner().invoke(verify_afd_command, [str(tmp_path / "AFD.txt")])
    assert result.exit_code == 0 and "policy: none" in result.output
    assert "names no signature policy" in result.output
