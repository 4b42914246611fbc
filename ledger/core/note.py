"""C2SP signed notes and tlog checkpoints: the text a log signs and anyone can verify offline.

Formats: C2SP ``signed-note`` (Ed25519, algorithm byte 0x01) and ``tlog-checkpoint``
(origin line, decimal size line, base64 root line, optional extension lines).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ledger.core.errors import NoteError

ALG_ED25519 = 0x01
_NAME = re.compile(r"^[^\s+]+$")
_SIG_LINE = re.compile(r"^\u2014 (\S+) ([A-Za-z0-9+/=]+)$")


def key_hash(name: str, key_bytes: bytes) -> bytes:
    """SHA-256(name || 0x0A || key bytes)[:4], the key's short id in signature lines."""
    return hashlib.sha256(name.encode() + b"\n" + key_bytes).digest()[:4]


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise NoteError(f"note key name {name!r} must be non-empty with no spaces or '+'")


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 note key: signs note text, prints its verifier key."""

    name: str
    signing_key: nacl.signing.SigningKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_bytes(self) -> bytes:
        return bytes([ALG_ED25519]) + bytes(self.signing_key.verify_key)

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.key_bytes)

    def verifier_key(self) -> str:
        return f"{self.name}+{self.key_hash.hex()}+{base64.b64encode(self.key_bytes).decode()}"

    def signature_line(self, text: str) -> str:
        sig = self.signing_key.sign(text.encode()).signature
        return f"\u2014 {self.name} {base64.b64encode(self.key_hash + sig).decode()}\n"

    def sign(self, text: str) -> str:
        """The complete signed note: text, blank line, one signature line."""
        _check_text(text)
        return text + "\n" + self.signature_line(text)


def parse_vkey(vkey: str, *, alg: int) -> tuple[str, bytes, bytes]:
    """(name, key hash, 32-byte Ed25519 key) of a signed-note verifier key whose type
    byte is ``alg`` (0x01 note signatures, 0x04 cosignatures); the hash is checked."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key is name+hash+key, three parts joined by '+'")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    try:
        raw = base64.b64decode(key_b64, validate=True)
        want = bytes.fromhex(hash_hex)
    except (binascii.Error, ValueError):
        raise NoteError(f"verifier key {vkey!r} has bad hex or base64") from None
    if len(raw) != 33 or raw[0] != alg:
        raise NoteError(f"verifier key is not an Ed25519 key of type 0x{alg:02x} (and 32 bytes)")
    if len(want) != 4 or key_hash(name, raw) != want:
        raise NoteError(f"verifier key hash {hash_hex} does not match name {name!r} and key")
    return name, want, raw[1:]


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    key_hash: bytes
    verify_key: nacl.signing.VerifyKey

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<8 hex key hash>+<base64(0x01 || public key)>``."""
        name, kh, pk = parse_vkey(vkey, alg=ALG_ED25519)
        return cls(name, kh, nacl.signing.VerifyKey(pk))

    def vkey(self) -> str:
        """The verifier key line this verifier was parsed from."""
        raw = bytes([ALG_ED25519]) + bytes(self.verify_key)
        return f"{self.name}+{self.key_hash.hex()}+{base64.b64encode(raw).decode()}"

    def verify(self, note: str) -> str:
        """Return the note's text if this key signed it; raise NoteError otherwise."""
        text, sigs = split_note(note)
        for name, kh, sig in sigs:
            if name == self.name and kh == self.key_hash:
                try:
                    self.verify_key.verify(text.encode(), sig)
                except nacl.exceptions.BadSignatureError:
                    raise NoteError(f"the signature by {self.name} does not verify") from None
                return text
        raise NoteError(f"the note carries no signature by {self.name}+{self.key_hash.hex()}")


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end in a newline and contain no blank line")


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Split a signed note into its text and its (name, key hash, signature) lines."""
    sep = note.rfind("\n\n")
    if sep < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text = note[: sep + 1]
    _check_text(text)
    sigs: list[tuple[str, bytes, bytes]] = []
    for line in note[sep + 2 :].splitlines():
        m = _SIG_LINE.match(line)
        if not m:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(m.group(2), validate=True)
        except binascii.Error:
            raise NoteError(f"signature line {line!r} is not base64") from None
        if len(blob) < 5:
            raise NoteError(f"signature line {line!r} is too short")
        sigs.append((m.group(1), blob[:4], blob[4:]))
    if not sigs:
        raise NoteError("the note has no signature lines")
    return text, sigs


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root line")
        origin, size_line, root_line = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("the checkpoint origin line is empty")
        if not size_line.isdigit() or (size_line != "0" and size_line.startswith("0")):
            raise NoteError(f"checkpoint size {size_line!r} is not a decimal number")
        try:
            root = base64.b64decode(root_line, validate=True)
        except binascii.Error:
            raise NoteError("checkpoint root line is not base64") from None
        if len(root) != 32:
            raise NoteError("checkpoint root is not a 32-byte hash")
        return cls(origin, int(size_line), root)


def open_checkpoint(note: str, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and return its body, checking the origin if given."""
    cp = Checkpoint.parse(verifier.verify(note))
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp
