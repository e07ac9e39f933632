"""Signing webhook deliveries and verifying them as a receiver does; what an endpoint URL may be."""

from __future__ import annotations

import pytest

from tornado_core.webhooks import SignatureError, WebhookUrlInvalid, sign, verify_signature
from tornado_core.webhooks.registration import check_url, description_problem, new_secret, shown_part
from tornado_core.webhooks.signing import signature_digest

SECRET = "whsec_test-secret"
BODY = b'{"event":"job.succeeded","job":{"id":"j1"}}'
NOW = 1_800_000_000


def test_a_signature_verifies_with_the_same_secret_and_body() -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    assert header == f"t={NOW},v1={signature_digest(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, header, BODY, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    ("secret", "body"),
    [("whsec_other", BODY), (SECRET, BODY + b" "), (SECRET, BODY.replace(b"j1", b"j2"))],
    ids=["wrong-secret", "extra-byte", "altered-body"],
)
def test_a_signature_fails_with_another_secret_or_an_altered_body(secret: str, body: bytes) -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature(secret, header, body, now=NOW)


@pytest.mark.parametrize("offset", [301, -301], ids=["replayed-later", "from-the-future"])
def test_a_signature_outside_the_tolerance_is_refused(offset: int) -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    with pytest.raises(SignatureError, match="tolerance 300s"):
        verify_signature(SECRET, header, BODY, now=NOW + offset)
    assert verify_signature(SECRET, header, BODY, now=NOW + offset, tolerance=600) == NOW


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", f"t={NOW}", "v1=00", "garbage"])
def test_a_malformed_header_is_refused_clearly(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed Tornado-Signature"):
        verify_signature(SECRET, header, BODY, now=NOW)


def test_any_of_several_v1_digests_may_match() -> None:
    good = signature_digest(SECRET, NOW, BODY)
    assert verify_signature(SECRET, f"t={NOW},v1={'0' * 64},v1={good}", BODY, now=NOW) == NOW


def test_signature_errors_derive_from_the_one_root() -> None:
    from tornado_core.errors import TornadoError

    assert issubclass(SignatureError, TornadoError) and issubclass(WebhookUrlInvalid, TornadoError)


def test_secrets_are_fresh_and_only_their_prefix_is_shown() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_") and len(first) > 40
    assert shown_part(first) == first[:10]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://erp.example.com/webhooks?x=1", "http://[::1]/h"]
)
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "must not be empty"),
        ("ftp://example.com/x", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http:///path", "must name a host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com/a#frag", "fragment"),
        ("http://example.com/a b", "whitespace"),
        ("http://example.com:99999/", "cannot be parsed"),
        ("http://example.com/" + "a" * 2100, "at most 2048"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlInvalid) as caught:
        check_url(url)
    assert reason in caught.value.reason


def test_descriptions_must_be_short_text() -> None:
    assert description_problem("ERP production") is None
    assert description_problem(5) == "must be a string"
    assert description_problem("x" * 501) == "must be at most 500 characters"
    assert description_problem("a\x00b") == "must not contain NUL characters"
