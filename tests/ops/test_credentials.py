"""Exchange API keys are encrypted at rest with TCP_SECRET_KEY and come back intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from config.errors import ConfigurationError
from database.crypto import SecretCipher, generate_key
from database.engine import make_engine, make_session_factory, session_scope
from database.models import ApiCredential
from database.repositories.credentials import (
    ApiCredentials,
    delete_credentials,
    list_credential_labels,
    load_credentials,
    reencrypt_all,
    store_credentials,
)

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "4f3c2a1b-okx-api-key-7d9e"
API_SECRET = "B1F2C3D4E5F60718293A4B5C6D7E8F90"
PASSPHRASE = "correct horse battery staple"


def make_credentials(label: str = "main", api_key: str = API_KEY) -> ApiCredentials:
    return ApiCredentials("okx", label, SecretStr(api_key), SecretStr(API_SECRET), SecretStr(PASSPHRASE))


def test_the_stored_form_in_postgresql_is_not_the_key_and_decrypts_back(pg_clean: str) -> None:
    cipher = SecretCipher(SecretStr(generate_key()))
    factory = make_session_factory(make_engine(pg_clean))
    with session_scope(factory) as session:
        store_credentials(session, cipher, make_credentials())
    with session_scope(factory) as session:
        [stored] = session.execute(select(ApiCredential.exchange, ApiCredential.label, ApiCredential.ciphertext)).all()
        loaded = load_credentials(session, cipher, "okx", "main")
    assert (stored.exchange, stored.label) == ("okx", "main")
    for secret in (API_KEY, API_SECRET, PASSPHRASE):
        pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
        assert not [piece for piece in pieces if piece in stored.ciphertext]
    assert stored.ciphertext.startswith("gAAAAA")  # a Fernet token (version byte 0x80)
    assert loaded is not None
    assert (loaded.api_key.get_secret_value(), loaded.api_secret.get_secret_value(),
            loaded.passphrase.get_secret_value()) == (API_KEY, API_SECRET, PASSPHRASE)  # type: ignore[union-attr]


def test_credentials_are_replaced_listed_and_deleted_by_exchange_and_label(db_url: str) -> None:
    cipher = SecretCipher(generate_key())
    factory = make_session_factory(make_engine(db_url))
    with session_scope(factory) as session:
        store_credentials(session, cipher, make_credentials("main", "old-key"))
        store_credentials(session, cipher, make_credentials("main", "new-key"))
        store_credentials(session, cipher, ApiCredentials("okx", "sub", SecretStr("k"), SecretStr("s")))
    with session_scope(factory) as session:
        assert list_credential_labels(session) == [("okx", "main"), ("okx", "sub")]
        assert load_credentials(session, cipher, "okx", "main").api_key.get_secret_value() == "new-key"  # type: ignore[union-attr]
        assert load_credentials(session, cipher, "okx", "sub").passphrase is None  # type: ignore[union-attr]
        assert load_credentials(session, cipher, "binance", "main") is None
        assert delete_credentials(session, "okx", "sub") is True
        assert delete_credentials(session, "okx", "sub") is False
        assert list_credential_labels(session, "okx") == [("okx", "main")]


def test_a_different_key_cannot_read_them_and_rotation_moves_them_to_the_new_key(sqlite_url: str) -> None:
    old, new = generate_key(), generate_key()
    factory = make_session_factory(make_engine(sqlite_url))
    with session_scope(factory) as session:
        store_credentials(session, SecretCipher(old), make_credentials())
    with session_scope(factory) as session:
        with pytest.raises(ConfigurationError, match="^TCP_SECRET_KEY: does not decrypt"):
            load_credentials(session, SecretCipher(new), "okx", "main")
    with session_scope(factory) as session:
        assert reencrypt_all(session, SecretCipher(f"{new},{old}")) == 1
    with session_scope(factory) as session:
        assert load_credentials(session, SecretCipher(new), "okx", "main").api_key.get_secret_value() == API_KEY  # type: ignore[union-attr]


@pytest.mark.parametrize(("key", "message"), [
    (None, "TCP_SECRET_KEY: is not set"),
    ("", "TCP_SECRET_KEY: is not set"),
    (" , ", "TCP_SECRET_KEY: is not set"),
    ("not-a-key", "TCP_SECRET_KEY: key 1 of 1 is not a Fernet key .* got 9 characters"),
    (Fernet.generate_key().decode()[:-4], "TCP_SECRET_KEY: key 1 of 1 is not a Fernet key"),
    (f"{Fernet.generate_key().decode()},short", "TCP_SECRET_KEY: key 2 of 2 is not a Fernet key"),
])
def test_a_missing_or_malformed_key_is_a_configuration_error_that_does_not_echo_it(
        key: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{message}") as info:
        SecretCipher(key)
    if key and key.strip(" ,"):
        assert key not in str(info.value)


def test_a_tampered_token_is_refused_and_every_token_is_fresh() -> None:
    cipher = SecretCipher(generate_key())
    first, second = cipher.encrypt("secret"), cipher.encrypt("secret")
    assert first != second and cipher.decrypt(first) == cipher.decrypt(second) == "secret"
    tampered = first[:-6] + ("A" if first[-6] != "A" else "B") + first[-5:]
    with pytest.raises(ConfigurationError, match="altered"):
        cipher.decrypt(tampered)


def test_nothing_secret_shows_in_repr() -> None:
    key = generate_key()
    credentials = make_credentials()
    assert key not in repr(SecretCipher(key))
    for text in (repr(credentials), str(credentials)):
        assert API_KEY not in text and API_SECRET not in text and PASSPHRASE not in text
        assert "okx" in text and "main" in text


def test_empty_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="okx/main"):
        ApiCredentials("okx", "main", SecretStr(""), SecretStr("s"))


def test_the_module_prints_a_new_usable_key() -> None:
    result = subprocess.run([sys.executable, "-m", "database.crypto"], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=60)
    key = result.stdout.strip()
    assert SecretCipher(key).decrypt(SecretCipher(key).encrypt("x")) == "x"
