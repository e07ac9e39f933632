"""Operators' passwords: the rules a new one must meet, Argon2id hashing and constant-cost checks."""

from __future__ import annotations

import secrets
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tornado_core.errors import OperatorInvalid

#: The shortest password an operator may choose.
MIN_PASSWORD_CHARS = 12
#: The longest one (hashing is linear in its length; nobody types more).
MAX_PASSWORD_CHARS = 1024


def check_password(password: str, *, name: str) -> None:
    """Refuse a password too weak to guard the console.

    Args:
        password: The proposed password.
        name: The account it is for (the password may not be the name itself).

    Raises:
        OperatorInvalid: ``field`` is ``password``; the message says what to change.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise OperatorInvalid("password", f"use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise OperatorInvalid("password", f"use at most {MAX_PASSWORD_CHARS} characters")
    if password.strip().lower() == name.lower() or len(set(password)) < 4:
        raise OperatorInvalid("password", "too easy to guess: do not repeat the name or a few characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise OperatorInvalid("password", "is not valid text") from None


class Passwords:
    """Argon2id hashes of passwords, and checks that cost the same whether an account exists or not.

    Args:
        hasher: The Argon2 hasher (default: argon2-cffi's recommended Argon2id parameters).
            Hashes made with other parameters still verify, and :meth:`needs_rehash` says so.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    def hash(self, password: str) -> str:
        """The encoded Argon2id hash of ``password`` (salt and parameters included)."""
        return self._hasher.hash(password)

    def check(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches the ``stored`` hash.

        With no stored hash (an unknown account) a dummy hash is verified instead, so the answer
        takes as long as for a real account and timing does not tell which names exist.
        """
        try:
            return self._hasher.verify(stored if stored is not None else self._dummy, password) and (
                stored is not None
            )
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than this hasher's (so it is renewed)."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True

    @cached_property
    def _dummy(self) -> str:
        """A hash of a random password, with this hasher's parameters (made on first need)."""
        return self._hasher.hash(secrets.token_urlsafe(16))
