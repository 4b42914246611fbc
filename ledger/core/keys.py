"""Party keys: Ed25519 signing keys and their ids (the key files are ``ledger.log.keystore``'s)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ledger.core.errors import MalformedInput, NotAuthentic


def key_id(public_key: bytes) -> str:
    """First 16 hex characters of SHA-256(public key)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def decode_public_key(b64: object, *, where: str = "publicKey") -> bytes:
    if not isinstance(b64, str):
        raise MalformedInput(f"{where} must be a base64 string of a 32-byte Ed25519 key")
    try:
        raw = base64.b64decode(b64, validate=True)
    except binascii.Error:
        raise MalformedInput(f"{where} is not valid base64") from None
    if len(raw) != 32:
        raise MalformedInput(f"{where} must decode to 32 bytes, not {len(raw)}")
    return raw


def verify(public_key: bytes, message: bytes, signature: bytes, *, who: str) -> None:
    """Raise NotAuthentic unless ``signature`` is ``public_key``'s over ``message``."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise NotAuthentic(f"the signature by {who} does not verify", code="bad_signature") from None


@dataclass(frozen=True)
class PartyKey:
    """A party's Ed25519 signing key, with the name it is filed under locally."""

    name: str
    signing_key: nacl.signing.SigningKey

    @classmethod
    def generate(cls, name: str) -> PartyKey:
        return cls(name, nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> PartyKey:
        return cls(name, nacl.signing.SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "keyId": self.key_id, "publicKey": self.public_key_b64}
