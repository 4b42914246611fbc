"""SUYUAN_HOME: the operator's and parties' local keys and settings, and ledger creation."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # not on Windows: there concurrent inits are told apart by the database
    fcntl = None  # type: ignore[assignment]

import nacl.signing

from ledger.core import statements
from ledger.core.errors import ConfigError, LedgerError, NoteError, NotFound
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.log.keyfiles import (
    bad_key_file,
    read_key_file,
    replace_file,
    seed_in,
    text_in,
    write_key_file,
)
from ledger.log.keystore import KeyStore

if TYPE_CHECKING:
    from ledger.log.sequencer import Ledger, Receipt

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
        self._init_locked = False

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def note_key_file(self) -> Path:
        return self.path / "log-note.key"

    def config(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.config_file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ConfigError(f"{self.config_file} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{self.config_file} must hold one JSON object")
        return doc

    def save_config(self, doc: dict[str, Any]) -> None:
        replace_file(self.config_file, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

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
        path = self.note_key_file
        try:
            doc = read_key_file(path)
        except FileNotFoundError:
            return None
        try:
            signer = NoteSigner(text_in(doc, path, "name"), nacl.signing.SigningKey(seed_in(doc, path)))
        except NoteError:
            raise bad_key_file(path, "names its key with spaces or '+'") from None
        if doc.get("verifierKey", signer.verifier_key()) != signer.verifier_key():
            raise bad_key_file(path, "names a verifier key that is not its seed's")
        return signer

    def create_note_signer(self, origin: str) -> NoteSigner:
        existing = self.note_signer_if_any()
        if existing is not None:
            if existing.name != origin:
                raise ConfigError(
                    f"{self.note_key_file} already holds the checkpoint key for "
                    f"{existing.name!r}; use another SUYUAN_HOME for origin {origin!r}"
                )
            return existing
        signer = NoteSigner(origin, nacl.signing.SigningKey.generate())
        try:
            self.save_note_signer(signer)
        except FileExistsError:
            return self.create_note_signer(origin)  # made meanwhile by another process
        return signer

    def save_note_signer(self, signer: NoteSigner) -> None:
        """File the operator's checkpoint key; FileExistsError if the home holds one."""
        seed = base64.b64encode(bytes(signer.signing_key)).decode()
        write_key_file(
            self.note_key_file, {"name": signer.name, "seed": seed, "verifierKey": signer.verifier_key()}
        )

    def ledger_key_files(self) -> list[Path]:
        """The files that bind this home to a ledger: its checkpoint and registrar keys."""
        files = (self.note_key_file, self.keys.path(REGISTRAR_KEY))
        return [f for f in files if f.exists() or f.is_symlink()]

    def file_ledger_keys(self, signer: NoteSigner, registrar_key: PartyKey) -> list[Path]:
        """File a new ledger's checkpoint and registrar keys, and return the files written.

        A key file already here is kept when it holds that very key (the demo's, derived
        again) and refused otherwise: a home's keys are never overwritten, and a ledger
        never signs with the keys of another (``suyuan init`` makes fresh ones, so any
        key file here refuses it)."""
        note = self.note_signer_if_any()
        reg_path = self.keys.path(REGISTRAR_KEY)
        reg_there = reg_path.exists() or reg_path.is_symlink()
        others = [
            path
            for path, other in (
                (self.note_key_file, note is not None and note.verifier_key() != signer.verifier_key()),
                (
                    reg_path,
                    reg_there and self.keys.load(REGISTRAR_KEY).public_key != registrar_key.public_key,
                ),
            )
            if other
        ]
        if others:
            raise home_in_use(self, others)
        made: list[Path] = []
        try:
            if note is None:
                self.save_note_signer(signer)
                made.append(self.note_key_file)
            if not reg_there:
                self.keys.save(registrar_key)
                made.append(reg_path)
        except BaseException:
            unfile(made)
            raise
        return made

    @contextmanager
    def init_lock(self) -> Iterator[None]:
        """Serialises the creation of a ledger from this home among processes; taken
        again inside itself, it is already held."""
        if self._init_locked:
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path / ".init.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._init_locked = True
            yield
        finally:
            self._init_locked = False
            os.close(fd)  # closing the descriptor releases its lock

    def registrar(self) -> tuple[str, PartyKey]:
        reg = self.config().get("registrar")
        if not reg:
            raise ConfigError(f"no registrar in {self.config_file}; run `suyuan init` with this SUYUAN_HOME")
        if not isinstance(reg, dict) or not all(isinstance(reg.get(f), str) for f in ("id", "key")):
            raise ConfigError(f"the registrar in {self.config_file} needs an id and a key name")
        return reg["id"], self.keys.load(reg["key"])


def home_in_use(home: Home, files: Sequence[Path], *, whose: str = "another ledger") -> ConfigError:
    return ConfigError(
        f"{home.path} holds the keys of {whose} ({', '.join(map(str, files))}); a new "
        "ledger gets keys of its own and never overwrites these: set SUYUAN_HOME to a new "
        "directory, or move those files away",
        code="home_in_use",
    )


def unfile(paths: Sequence[Path]) -> None:
    """Remove key files this process wrote for a ledger that did not come to be."""
    for path in paths:
        path.unlink(missing_ok=True)


def refuse_initialised(led: Ledger) -> None:
    size = led.size()
    if size > 0:
        raise LedgerError(
            f"this database already holds a ledger of {size} entries; nothing was changed",
            code="already_initialised",
        )


def create_ledger(
    led: Ledger,
    home: Home,
    *,
    origin: str,
    registrar_id: str,
    registrar_name: str,
    signer: NoteSigner,
    registrar_key: PartyKey,
) -> Receipt:
    """File the keys in ``home`` and append the genesis entry naming them (``suyuan init``).

    Concurrent creations take turns: from one home on a lock file, on one database in the
    append's own lock, where a second genesis is refused. The one that did not come first
    is refused as ``already_initialised`` and takes back the key files it wrote, so that
    its home can still create a ledger.
    """
    with home.init_lock():
        refuse_initialised(led)
        made = home.file_ledger_keys(signer, registrar_key)
        config = home.config_file.read_text() if home.config_file.exists() else None
        try:
            home.save_config(
                home.config() | {"origin": origin, "registrar": {"id": registrar_id, "key": REGISTRAR_KEY}}
            )
            led.note_signer = signer
            return led.append(
                genesis_envelope(
                    origin=origin,
                    signer=signer,
                    registrar_id=registrar_id,
                    registrar_name=registrar_name,
                    registrar_key=registrar_key,
                )
            )
        except BaseException as e:
            if _genesis_names(led, signer):
                raise  # it landed (the error came after): the keys sign a ledger now
            unfile(made)
            if config is None:
                home.config_file.unlink(missing_ok=True)
            else:
                replace_file(home.config_file, config)
            if isinstance(e, LedgerError) and led.size() > 0:
                raise LedgerError(
                    "another `suyuan init` created a ledger in this database at the "
                    "same time; nothing was changed",
                    code="already_initialised",
                ) from None
            raise


def _genesis_names(led: Ledger, signer: NoteSigner) -> bool:
    """Whether the database's genesis names ``signer``; True when that cannot be read,
    as key files are only taken back when they certainly sign nothing."""
    try:
        return led.log_verifier().vkey() == signer.verifier_key()
    except NotFound:
        return False
    except Exception:  # noqa: BLE001 - the database is unreachable: keep the keys
        return True


def genesis_envelope(
    *,
    origin: str,
    signer: NoteSigner,
    registrar_id: str,
    registrar_name: str,
    registrar_key: PartyKey,
) -> dict[str, Any]:
    body = {
        "origin": origin,
        "logKey": signer.verifier_key(),
        "registrar": {"id": registrar_id, "name": registrar_name, "publicKey": registrar_key.public_key_b64},
    }
    return statements.sign_one(kind="genesis", signer=registrar_id, key=registrar_key, body=body)
