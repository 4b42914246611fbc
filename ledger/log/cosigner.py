"""Witnesses: C2SP tlog-cosignature (Ed25519, cosignature/v1) and the tlog-witness
add-checkpoint rules, with the witness's per-log state kept in one file.

A witness cosigns a checkpoint only if the log's key signed it and it is consistent with
the last checkpoint the witness cosigned for that origin, so an operator who shows two
different histories to two audiences (a split view) cannot get both cosigned.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from ledger.core import merkle
from ledger.core.errors import LedgerError, NoteError, ProofError
from ledger.core.note import Checkpoint, NoteVerifier, key_hash, parse_vkey, split_note

ALG_COSIGNATURE = 0x04
HEADER = "cosignature/v1\n"
MAX_PROOF_LINES = 63


def cosignature_key_hash(name: str, public_key: bytes) -> bytes:
    return key_hash(name, bytes([ALG_COSIGNATURE]) + public_key)


def signed_message(body: str, timestamp: int) -> bytes:
    """What a cosigner signs: the header, the time line, the checkpoint body."""
    return f"{HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class Cosigner:
    name: str
    signing_key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def key_hash(self) -> bytes:
        return cosignature_key_hash(self.name, self.public_key)

    def vkey(self) -> str:
        raw = bytes([ALG_COSIGNATURE]) + self.public_key
        return f"{self.name}+{self.key_hash.hex()}+{base64.b64encode(raw).decode()}"

    def cosign(self, body: str, *, timestamp: int | None = None) -> str:
        """One note signature line over a checkpoint body."""
        t = int(time.time()) if timestamp is None else timestamp
        if not 0 <= t < 2**63:
            raise NoteError("a cosignature timestamp is between 0 and 2^63-1")
        sig = self.signing_key.sign(signed_message(body, t)).signature
        blob = self.key_hash + struct.pack(">Q", t) + sig
        return f"\u2014 {self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class CosignatureVerifier:
    name: str
    key_hash: bytes
    verify_key: nacl.signing.VerifyKey

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        name, kh, pk = parse_vkey(vkey, alg=ALG_COSIGNATURE)
        return cls(name, kh, nacl.signing.VerifyKey(pk))

    def verify(self, note: str) -> int:
        """The timestamp of this cosigner's valid cosignature on ``note``; NoteError if none."""
        body, sigs = split_note(note)
        for name, kh, blob in sigs:
            if name != self.name or kh != self.key_hash:
                continue
            if len(blob) != 8 + 64:
                raise NoteError(f"the cosignature by {name} is not timestamp and signature")
            (t,) = struct.unpack(">Q", blob[:8])
            try:
                self.verify_key.verify(signed_message(body, t), blob[8:])
            except nacl.exceptions.BadSignatureError:
                raise NoteError(f"the cosignature by {name} does not verify") from None
            return int(t)
        raise NoteError(f"the note carries no cosignature by {self.name}")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer to add-checkpoint: status, body, content type."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def parse_request(text: str) -> tuple[int, list[bytes], str]:
    """(old size, consistency proof, checkpoint note) from an add-checkpoint body."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise NoteError("add-checkpoint body is an old line, proof lines, a blank line, a note")
    lines = head.split("\n")
    old = lines[0]
    if not old.startswith("old ") or not old[4:].isdigit() or (old[4:] != "0" and old[4:].startswith("0")):
        raise NoteError("the first line is `old <size>` in decimal without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise NoteError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise NoteError("a consistency proof line is not base64") from None
        if len(h) != 32:
            raise NoteError("a consistency proof line is not a 32-byte hash")
        proof.append(h)
    return int(old[4:]), proof, note


class Witness:
    """One witness: its cosigner key, the logs it follows, and its state file."""

    def __init__(self, cosigner: Cosigner, logs: Mapping[str, NoteVerifier], state: Path):
        self.cosigner = cosigner
        self.logs = dict(logs)  # origin -> the log's checkpoint key
        self.state = state

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        doc = self._read()
        rec = doc.get(origin)
        return None if rec is None else (int(rec["size"]), base64.b64decode(str(rec["root"])))

    def _read(self) -> dict[str, dict[str, str | int]]:
        try:
            doc: dict[str, dict[str, str | int]] = json.loads(self.state.read_text())
        except FileNotFoundError:
            return {}
        return doc

    def _write(self, doc: Mapping[str, object]) -> None:
        tmp = self.state.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.state)  # atomic: a crash leaves the old state or the new one

    def add_checkpoint(self, text: str) -> Answer:
        """Apply the tlog-witness add-checkpoint rules to one request body."""
        try:
            old, proof, note = parse_request(text)
            cp = Checkpoint.parse(split_note(note)[0])
        except LedgerError as e:
            return Answer(400, e.message + "\n")
        verifier = self.logs.get(cp.origin)
        if verifier is None:
            return Answer(404, f"unknown log {cp.origin}\n")
        try:
            verifier.verify(note)
        except NoteError as e:
            return Answer(403, e.message + "\n")
        if old > cp.size:
            return Answer(400, f"old size {old} is larger than the checkpoint's {cp.size}\n")
        self.state.parent.mkdir(parents=True, exist_ok=True)
        # Check-then-write under one lock: two requests must not roll each other back.
        with open(self.state.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self._read()
            rec = doc.get(cp.origin)
            size = int(rec["size"]) if rec else 0
            if old != size:
                return Answer(409, f"{size}\n", "text/x.tlog.size")
            try:
                if rec is None:
                    if proof:
                        raise ProofError("the proof from size 0 must be empty")
                else:
                    merkle.verify_consistency(
                        first=size,
                        second=cp.size,
                        first_root=base64.b64decode(str(rec["root"])),
                        second_root=cp.root,
                        proof=proof,
                    )
            except ProofError as e:
                if old == cp.size:
                    return Answer(409, f"{size}\n", "text/x.tlog.size")
                return Answer(422, e.message + "\n")
            doc[cp.origin] = {"size": cp.size, "root": base64.b64encode(cp.root).decode()}
            self._write(doc)
        return Answer(200, self.cosigner.cosign(split_note(note)[0]))


def request_body(old: int, proof: list[bytes], note: str) -> str:
    """An add-checkpoint request body, as a log sends it."""
    lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + note
