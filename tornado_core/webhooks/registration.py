"""What an endpoint needs to be registered: a checked URL and a fresh signing secret."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from tornado_core.webhooks.errors import WebhookUrlInvalid

#: Longest URL accepted.
MAX_URL_LENGTH = 2048
#: Longest description accepted.
MAX_DESCRIPTION_LENGTH = 500
SECRET_PREFIX = "whsec_"
_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")  # a name or IPv4 address, or IPv6 (in brackets)
#: Characters of a secret shown in listings (the prefix and a few more).
SHOWN_SECRET_CHARS = len(SECRET_PREFIX) + 4


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def shown_part(secret: str) -> str:
    """The part of a secret a listing may show."""
    return secret[:SHOWN_SECRET_CHARS]


def check_url(url: str) -> str:
    """``url`` if Tornado may POST to it.

    Raises:
        WebhookUrlInvalid: Not an absolute http(s) URL with a host, too long, or with
            credentials, a fragment or whitespace in it.
    """
    if not url:
        raise WebhookUrlInvalid("must not be empty")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlInvalid(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise WebhookUrlInvalid("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlInvalid(f"cannot be parsed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlInvalid("must start with http:// or https://")
    if not parts.hostname or not _HOST.fullmatch(parts.hostname):
        raise WebhookUrlInvalid("must name a host (letters, digits, '.' and '-')")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlInvalid("must not carry credentials (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise WebhookUrlInvalid("must not have a fragment (#...)")
    if port == 0:
        raise WebhookUrlInvalid("must not use port 0")
    return url


def description_problem(description: object) -> str | None:
    """Why ``description`` is refused, or ``None``."""
    if not isinstance(description, str):
        return "must be a string"
    if len(description) > MAX_DESCRIPTION_LENGTH:
        return f"must be at most {MAX_DESCRIPTION_LENGTH} characters"
    if "\x00" in description:
        return "must not contain NUL characters"
    return None
