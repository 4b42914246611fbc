"""Party keys: Ed25519 signing keys, their ids, and the key files kept in SUYUAN_HOME."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from ledger.core.errors import ConfigError, MalformedInput, NotAuthentic, NotFound
from ledger.core.keyfiles import bad_key_file, read_key_file, seed_in, write_key_file


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


class KeyStore:
    """Key files under ``SUYUAN_HOME/keys``: one JSON file per key, readable by owner only."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = home / "keys"

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith(".") or "\\" in name:
            raise MalformedInput(f"key name {name!r} must be a plain file name")
        return self.dir / f"{name}.key"

    def create(self, name: str, *, seed: bytes | None = None) -> PartyKey:
        """A new key file; ``seed`` (32 bytes) makes a reproducible key, as the demo's are."""
        key = PartyKey.generate(name) if seed is None else PartyKey.from_seed(name, seed)
        self.save(key)
        return key

    def save(self, key: PartyKey) -> None:
        """File ``key`` under its name; an existing key file is never overwritten."""
        path = self.path(key.name)
        exists = ConfigError(f"key {key.name!r} already exists at {path}; choose another name")
        if path.exists() or path.is_symlink():
            raise exists
        doc = key.describe() | {"seed": base64.b64encode(bytes(key.signing_key)).decode()}
        try:
            # Atomic and exclusive: two concurrent keygens of one name never overwrite
            # each other, and a crash leaves no half-written key.
            write_key_file(path, doc)
        except FileExistsError:
            raise exists from None

    def load(self, name: str) -> PartyKey:
        path = self.path(name)
        try:
            doc = read_key_file(path)
        except FileNotFoundError:
            raise NotFound(f"no key named {name!r} in {self.dir}; run `suyuan keygen {name}`") from None
        key = PartyKey.from_seed(name, seed_in(doc, path))
        if doc.get("publicKey", key.public_key_b64) != key.public_key_b64:
            raise bad_key_file(path, "names a public key that is not its seed's")
        return key

    def get_or_create(self, name: str) -> PartyKey:
        path = self.path(name)
        return self.load(name) if path.exists() or path.is_symlink() else self.create(name)
