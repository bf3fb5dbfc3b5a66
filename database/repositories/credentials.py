"""Exchange API credentials, stored encrypted (``api_credentials``; key from ``TCP_SECRET_KEY``).

The three secrets of one account (key, secret, passphrase) are encrypted together as one Fernet
token, so the table holds no secret in clear and no hint of one. Values come back as
:class:`ApiCredentials` whose secrets are ``SecretStr`` (``repr``/``str`` show ``**********``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from database.crypto import SecretCipher
from database.models import ApiCredential, utc_now


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """One exchange account's API credentials (``label`` tells several accounts on one exchange apart)."""

    exchange: str
    label: str
    api_key: SecretStr
    api_secret: SecretStr
    passphrase: SecretStr | None = None

    def __post_init__(self) -> None:
        if not self.exchange or not self.label:
            raise ValueError(f"exchange and label must not be empty, got {self.exchange!r} and {self.label!r}")
        if not self.api_key.get_secret_value() or not self.api_secret.get_secret_value():
            raise ValueError(f"api_key and api_secret of {self.exchange}/{self.label} must not be empty")


def _seal(cipher: SecretCipher, credentials: ApiCredentials) -> str:
    passphrase = credentials.passphrase.get_secret_value() if credentials.passphrase is not None else None
    return cipher.encrypt(json.dumps({"api_key": credentials.api_key.get_secret_value(),
                                      "api_secret": credentials.api_secret.get_secret_value(),
                                      "passphrase": passphrase}))


def store_credentials(session: Session, cipher: SecretCipher, credentials: ApiCredentials) -> None:
    """Insert or replace the credentials of ``(exchange, label)``."""
    ciphertext = _seal(cipher, credentials)
    row = session.scalars(select(ApiCredential).where(
        ApiCredential.exchange == credentials.exchange, ApiCredential.label == credentials.label)).one_or_none()
    if row is None:
        session.add(ApiCredential(exchange=credentials.exchange, label=credentials.label, ciphertext=ciphertext))
    else:
        row.ciphertext = ciphertext
        row.updated_at = utc_now()
    session.flush()


def load_credentials(session: Session, cipher: SecretCipher, exchange: str, label: str) -> ApiCredentials | None:
    """The decrypted credentials, or None when none are stored.

    Raises :class:`ConfigurationError` when ``TCP_SECRET_KEY`` does not decrypt them.
    """
    ciphertext = session.scalar(select(ApiCredential.ciphertext).where(
        ApiCredential.exchange == exchange, ApiCredential.label == label))
    if ciphertext is None:
        return None
    values = json.loads(cipher.decrypt(ciphertext))
    passphrase = values.get("passphrase")
    return ApiCredentials(exchange, label, SecretStr(values["api_key"]), SecretStr(values["api_secret"]),
                          SecretStr(passphrase) if passphrase is not None else None)


def list_credential_labels(session: Session, exchange: str | None = None) -> list[tuple[str, str]]:
    """``(exchange, label)`` of every stored account, sorted; nothing is decrypted."""
    query = select(ApiCredential.exchange, ApiCredential.label).order_by(ApiCredential.exchange, ApiCredential.label)
    if exchange is not None:
        query = query.where(ApiCredential.exchange == exchange)
    return [(row.exchange, row.label) for row in session.execute(query)]


def delete_credentials(session: Session, exchange: str, label: str) -> bool:
    """Delete one account's credentials; True if there were any."""
    result = session.execute(delete(ApiCredential).where(
        ApiCredential.exchange == exchange, ApiCredential.label == label))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def reencrypt_all(session: Session, cipher: SecretCipher) -> int:
    """Re-encrypt every stored row with the cipher's first key (key rotation); returns the row count."""
    rows = list(session.scalars(select(ApiCredential)))
    for row in rows:
        row.ciphertext = cipher.rotate(row.ciphertext)
        row.updated_at = utc_now()
    session.flush()
    return len(rows)
