"""Encryption at rest for secrets kept in the database (exchange API keys).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with the key from ``TCP_SECRET_KEY``.
``TCP_SECRET_KEY`` may hold several comma-separated keys to rotate: the first encrypts, every one
decrypts (see docs/security.md). Make a key with ``python -m database.crypto``.
"""

from __future__ import annotations

import binascii
import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from config.errors import ConfigurationError

KEY_VARIABLE = "TCP_SECRET_KEY"


def generate_key() -> str:
    """A new random Fernet key (URL-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


class SecretCipher:
    """Encrypts and decrypts short secrets with the key(s) from ``TCP_SECRET_KEY``.

    Raises :class:`ConfigurationError` naming ``TCP_SECRET_KEY`` when the key is missing or malformed,
    and when a stored value does not decrypt with it (wrong key, or the value was altered).
    """

    def __init__(self, key: SecretStr | str | None) -> None:
        raw = key.get_secret_value() if isinstance(key, SecretStr) else (key or "")
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts:
            raise ConfigurationError(
                "is not set; it is needed to encrypt exchange API keys (make one with `python -m database.crypto`)",
                source=KEY_VARIABLE)
        fernets = []
        for position, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part.encode("ascii")))
            except (ValueError, binascii.Error, UnicodeEncodeError):
                raise ConfigurationError(
                    f"key {position} of {len(parts)} is not a Fernet key (expected 44 characters of URL-safe "
                    f"base64 encoding 32 bytes, got {len(part)} characters)", source=KEY_VARIABLE) from None
        self._fernet = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "SecretCipher(<key hidden>)"

    def encrypt(self, plaintext: str) -> str:
        """The Fernet token (ASCII) for ``plaintext``; a new random IV each time."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError):
            raise ConfigurationError(
                "does not decrypt a stored secret: the key differs from the one it was encrypted with, "
                "or the stored value was altered", source=KEY_VARIABLE) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the first key (after adding a new key in front of the old one)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise ConfigurationError("does not decrypt a stored secret, so it cannot re-encrypt it",
                                     source=KEY_VARIABLE) from None


if __name__ == "__main__":
    sys.stdout.write(generate_key() + "\n")
