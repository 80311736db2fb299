"""Spotify tokens encrypted at rest: one MultiFernet keyed by TOKEN_ENCRYPTION_KEY.

The first key encrypts, every key decrypts, so a key can be rotated: put the new key first, keep
the old one after it, run `manage.py rotate_token_key`, then drop the old key.

`EncryptedTextField` stores only ciphertext. On the model its value is a `Secret`, which holds the
ciphertext and reveals the plaintext only when asked, so tokens stay out of the database, reprs,
the admin and logs.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.query_utils import DeferredAttribute


class TokenDecryptionError(Exception):
    """A stored token can't be decrypted with any configured key."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            'TOKEN_ENCRYPTION_KEY is not set. Generate one with `python -c "from '
            'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        )
    try:
        return MultiFernet([Fernet(key.strip()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEY must be comma-separated Fernet keys "
            "(32 url-safe base64-encoded bytes each)."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.TOKEN_ENCRYPTION_KEY))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenDecryptionError(
            "A stored Spotify token cannot be decrypted with TOKEN_ENCRYPTION_KEY. If the key "
            "was changed, list the old key after the new one, or reconnect Spotify."
        ) from None


def rotate(ciphertext: str) -> str:
    try:
        return fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenDecryptionError(
            "A stored Spotify token cannot be decrypted with any key in TOKEN_ENCRYPTION_KEY; "
            "keep the old key in the list while rotating."
        ) from None


class Secret:
    """A token as ciphertext. `reveal()` decrypts; nothing else shows the plaintext."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    @classmethod
    def from_plaintext(cls, plaintext: str) -> Secret:
        return cls(encrypt(plaintext))

    def reveal(self) -> str:
        return decrypt(self.ciphertext)

    def rotated(self) -> Secret:
        return Secret(rotate(self.ciphertext))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def _to_secret(value: Any) -> Secret | None:
    if value is None or value == "":
        return None
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret.from_plaintext(value)
    raise TypeError(f"An encrypted field takes a str or a Secret, not {type(value).__name__}")


class _SecretAttribute(DeferredAttribute):
    """Encrypts a plaintext str the moment it is assigned, so the instance never holds it."""

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = _to_secret(value)


class EncryptedTextField(models.TextField):
    descriptor_class = _SecretAttribute

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret | None:
        return Secret(value) if value else None

    def to_python(self, value: Any) -> Secret | None:
        return _to_secret(value)

    def get_prep_value(self, value: Any) -> str | None:
        secret = _to_secret(value)
        return secret.ciphertext if secret else None

    def value_to_string(self, obj: models.Model) -> str:
        return "********"
