"""The key store: one key file per party key under ``SUYUAN_HOME/keys`` (the files
themselves are written and read by ``ledger.log.keyfiles``)."""

from __future__ import annotations

import base64
from pathlib import Path

from ledger.core.errors import ConfigError, MalformedInput, NotFound
from ledger.core.keys import PartyKey
from ledger.log.keyfiles import bad_key_file, read_key_file, seed_in, write_key_file


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
