"""The errors of webhooks: registration refused, signature refused."""

from __future__ import annotations

from tornado_core.errors import TornadoError


class WebhookError(TornadoError):
    """Root of the webhook errors."""


class WebhookUrlInvalid(WebhookError):
    """An endpoint URL Tornado will not POST to.

    Attributes:
        reason: What is wrong with it (without the URL).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid webhook URL: {reason}")
        self.reason = reason


class SignatureError(WebhookError):
    """A ``Tornado-Signature`` header that does not prove the body came from Tornado, now."""
