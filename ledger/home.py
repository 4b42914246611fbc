"""SUYUAN_HOME: the operator's and parties' local keys and settings, and ledger creation."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing

from ledger import statements
from ledger.errors import ConfigError
from ledger.keys import KeyStore, PartyKey
from ledger.note import NoteSigner

DEFAULT_ORIGIN = "suyuan.local/log"
# The Tangshan CBEC zone's registrar in the examples: a valid USCC (GB 32100 check).
DEFAULT_REGISTRAR_ID = "uscc:12130200MB0000000B"
DEFAULT_REGISTRAR_NAME = "唐山跨境电子商务综合试验区登记中心"
REGISTRAR_KEY = "registrar"


def default_home() -> Path:
    return Path(os.environ.get("SUYUAN_HOME") or Path.home() / ".suyuan").expanduser()


@dataclass
class Home:
    path: Path

    def __init__(self, path: Path | None = None) -> None:
        self.path = (path or default_home()).expanduser()
        self.keys = KeyStore(self.path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def note_key_file(self) -> Path:
        return self.path / "log-note.key"

    def config(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.config_file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ConfigError(f"{self.config_file} is not valid JSON") from None
        return doc

    def save_config(self, doc: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(self.config_file)

    def published_log_key(self) -> str | None:
        """The log verifier key an operator published, which verification pins:
        ``SUYUAN_LOG_KEY``, else ``logKey`` in this home's config.json; None: the key the
        genesis entry names is pinned instead."""
        env = os.environ.get("SUYUAN_LOG_KEY", "").strip()
        if env:
            return env
        key = self.config().get("logKey")
        return key.strip() if isinstance(key, str) and key.strip() else None

    def note_signer_if_any(self) -> NoteSigner | None:
        if not self.note_key_file.exists():
            return None
        doc = json.loads(self.note_key_file.read_text())
        return NoteSigner(doc["name"], nacl.signing.SigningKey(base64.b64decode(doc["seed"])))

    def create_note_signer(self, origin: str) -> NoteSigner:
        existing = self.note_signer_if_any()
        if existing is not None:
            if existing.name != origin:
                raise ConfigError(
                    f"{self.note_key_file} already holds the checkpoint key for "
                    f"{existing.name!r}; use another SUYUAN_HOME for origin {origin!r}")
            return existing
        signer = NoteSigner(origin, nacl.signing.SigningKey.generate())
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.note_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            seed = base64.b64encode(bytes(signer.signing_key)).decode()
            json.dump({"name": origin, "seed": seed, "verifierKey": signer.verifier_key()}, f)
        return signer

    def registrar(self) -> tuple[str, PartyKey]:
        reg = self.config().get("registrar")
        if not reg:
            raise ConfigError(
                f"no registrar in {self.config_file}; run `suyuan init` with this SUYUAN_HOME")
        return reg["id"], self.keys.load(reg["key"])


def genesis_envelope(
    *, origin: str, signer: NoteSigner, registrar_id: str, registrar_name: str,
    registrar_key: PartyKey,
) -> dict[str, Any]:
    body = {
        "origin": origin,
        "logKey": signer.verifier_key(),
        "registrar": {"id": registrar_id, "name": registrar_name,
                      "publicKey": registrar_key.public_key_b64},
    }
    return statements.sign_one(kind="genesis", signer=registrar_id, key=registrar_key, body=body)
