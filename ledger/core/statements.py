"""Statements and envelopes: their exact shape, canonical bytes, and signing.

A statement is what a party signs; an envelope carries it with one or more signatures.
``prepare`` turns an untrusted envelope into the bytes the ledger will hash, refusing
anything malformed; deciding whether a signature's key is valid is the registry's job.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ledger.core import canonical
from ledger.core.errors import MalformedInput
from ledger.core.ids import parse_party_id as _parse_party_id
from ledger.core.keys import PartyKey
from ledger.core.times import utc_text

SIGNING_DOMAIN = b"suyuan-statement/v1\n"
VERSION = 1
KINDS = frozenset(
    {
        "genesis",
        "party.register",
        "party.key.rotate",
        "party.key.revoke",
        "event",
        "attest",
        "list.update",
        "credit.record",
        "document",
        "prefix.delegate",
        "prefix.revoke",
        "masterdata",
    }
)
MAX_STATEMENT_BYTES = 1 << 20
MAX_SIGNATURES = 8

# Parties sign many statements each: check each id's form and check character once.
parse_party_id = functools.lru_cache(maxsize=1 << 16)(_parse_party_id)

_ENVELOPE_FIELDS = frozenset({"statement", "signatures"})
_SIGNATURE_FIELDS = frozenset({"signer", "key", "sig"})
_REQUIRED = frozenset({"v", "kind", "signer", "key", "issued", "body"})
_ALLOWED = _REQUIRED | {"private"}
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_COMMITMENT = re.compile(r"^sha256:[0-9a-f]{64}$")
# RFC 3339 date-time with an explicit offset; fromisoformat then checks the calendar.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


class Signature(NamedTuple):
    signer: str
    key: str
    sig: bytes


class Prepared(NamedTuple):
    """An envelope that is well formed, with the bytes every later step needs.

    A tuple, and the statement's fields copied out once: the append path reads them
    a dozen times per statement.
    """

    statement: Mapping[str, Any]
    statement_bytes: bytes  # JCS(statement)
    statement_hash: bytes  # SHA-256(JCS(statement))
    signatures: tuple[Signature, ...]
    envelope_bytes: bytes  # JCS(envelope)
    kind: str
    signer: str
    key: str
    body: Mapping[str, Any]

    @property
    def signed_message(self) -> bytes:
        return SIGNING_DOMAIN + self.statement_bytes


def _shown(value: object) -> str:
    """A refused value as a message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "\u2026"


@functools.lru_cache(maxsize=1 << 12)
def _time_problem(value: str) -> str | None:
    """Why ``value`` is no RFC 3339 time ("form", "date"), or None. Cached: the statements
    of one batch are often issued at the same second."""
    if not _RFC3339.match(value):
        return "form"
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "date"
    return None


# The longest time _RFC3339 takes: nine fraction digits and an offset, 35 characters (36
# with the newline "$" lets through). A longer text is no time, and is not cached.
_LONGEST_TIME = 36


def check_timestamp(value: object, *, where: str) -> str:
    if isinstance(value, str):
        problem = _time_problem(value) if len(value) <= _LONGEST_TIME else "form"
        if problem is None:
            return value
        if problem == "date":
            raise MalformedInput(f"{where} {_shown(value)} is not a real date and time")
    raise MalformedInput(f"{where} must be an RFC 3339 time with its offset, like 2026-11-27T13:05:00+08:00")


def _check_statement(st: object) -> dict[str, Any]:
    if not isinstance(st, dict):
        raise MalformedInput("statement must be a JSON object")
    keys = st.keys()
    if not (keys >= _REQUIRED and keys <= _ALLOWED):  # compared without building sets
        missing = _REQUIRED - keys
        if missing:
            raise MalformedInput(f"statement is missing {', '.join(sorted(missing))}")
        extra = keys - _ALLOWED
        raise MalformedInput(f"statement has unknown field(s) {', '.join(sorted(extra))}")
    if type(st["v"]) is not int or st["v"] != VERSION:
        raise MalformedInput(f"statement version v must be {VERSION}, not {_shown(st['v'])}")
    # A list or object is unhashable: the type is checked before the set is asked.
    if type(st["kind"]) is not str or st["kind"] not in KINDS:
        raise MalformedInput(f"statement kind {_shown(st['kind'])} is not one of {', '.join(sorted(KINDS))}")
    if not isinstance(st["signer"], str):
        raise MalformedInput("statement signer must be a party id string")
    parse_party_id(st["signer"])
    if not isinstance(st["key"], str) or not _KEY_ID.match(st["key"]):
        raise MalformedInput("statement key must be a key id: 16 lowercase hex characters")
    check_timestamp(st["issued"], where="statement issued")
    if not isinstance(st["body"], dict):
        raise MalformedInput("statement body must be a JSON object")
    if "private" in st and (not isinstance(st["private"], str) or not _COMMITMENT.match(st["private"])):
        raise MalformedInput("statement private must be sha256: followed by 64 hex characters")
    return st


def _check_signatures(sigs: object, st: Mapping[str, Any]) -> tuple[Signature, ...]:
    if not isinstance(sigs, list) or not sigs:
        raise MalformedInput("envelope signatures must be a non-empty list")
    if len(sigs) > MAX_SIGNATURES:
        raise MalformedInput(f"an envelope carries at most {MAX_SIGNATURES} signatures")
    out: list[Signature] = []
    for i, s in enumerate(sigs):
        if type(s) is not dict or s.keys() != _SIGNATURE_FIELDS:
            raise MalformedInput(f"signature {i} must have exactly signer, key and sig")
        if not isinstance(s["signer"], str) or not isinstance(s["key"], str):
            raise MalformedInput(f"signature {i} signer and key must be strings")
        parse_party_id(s["signer"])
        if not _KEY_ID.match(s["key"]):
            raise MalformedInput(f"signature {i} key must be 16 lowercase hex characters")
        if not isinstance(s["sig"], str):
            raise MalformedInput(f"signature {i} sig must be a base64 string")
        if len(s["sig"]) != 88:
            raise MalformedInput(
                f"signature {i} sig must be 88 base64 characters (64 bytes), not {len(s['sig'])}"
            )
        try:
            raw = binascii.a2b_base64(s["sig"], strict_mode=True)
        except (binascii.Error, ValueError):
            raise MalformedInput(f"signature {i} sig is not valid base64") from None
        # One signature, one spelling: stray low bits would make the same signature
        # travel as different envelope bytes. 64 bytes are 88 characters ending in "x==",
        # where x carries 4 bits that must be zero (A, Q, g or w); the strict decoding
        # above already refused any other character or padding.
        if len(raw) == 64:
            canonical_spelling = s["sig"][85] in "AQgw"
        else:
            canonical_spelling = binascii.b2a_base64(raw, newline=False).decode() == s["sig"]
        if not canonical_spelling:
            raise MalformedInput(f"signature {i} sig is not canonical base64 (stray padding bits)")
        if len(raw) != 64:
            raise MalformedInput(f"signature {i} sig must decode to 64 bytes, not {len(raw)}")
        out.append(Signature(s["signer"], s["key"], raw))
    if out[0].signer != st["signer"] or out[0].key != st["key"]:
        raise MalformedInput("the first signature must be by the statement's signer and key")
    if len(out) > 1 and len({s.key for s in out}) != len(out):
        raise MalformedInput("an envelope may carry only one signature per key")
    return tuple(out)


def prepare(envelope: object) -> Prepared:
    """Validate an envelope's shape and compute its canonical bytes; no key is consulted."""
    if not isinstance(envelope, dict):
        raise MalformedInput("envelope must be a JSON object with statement and signatures")
    if envelope.keys() != _ENVELOPE_FIELDS:
        raise MalformedInput("envelope must have exactly two fields: statement and signatures")
    st = _check_statement(envelope["statement"])
    fast = canonical.check_value(st)
    st_bytes = canonical.canonical_bytes(st, fast=fast)
    if len(st_bytes) > MAX_STATEMENT_BYTES:
        raise MalformedInput(
            f"statement is {len(st_bytes)} bytes; the limit is {MAX_STATEMENT_BYTES} (1 MiB)"
        )
    sigs = _check_signatures(envelope["signatures"], st)
    sig_bytes = canonical.canonical_bytes(envelope["signatures"], fast=True)
    # JCS orders "signatures" before "statement"; composing avoids canonicalising twice.
    env_bytes = b'{"signatures":' + sig_bytes + b',"statement":' + st_bytes + b"}"
    return Prepared(
        st,
        st_bytes,
        hashlib.sha256(st_bytes).digest(),
        sigs,
        env_bytes,
        st["kind"],
        st["signer"],
        st["key"],
        st["body"],
    )


def entry_bytes(*, seq: int, prev: bytes, time: str, envelope_bytes: bytes) -> bytes:
    """JCS of {"v", "seq", "prev", "time", "envelope"}, composed in JCS key order."""
    return b"".join(
        (
            b'{"envelope":',
            envelope_bytes,
            b',"prev":"',
            prev.hex().encode(),
            b'","seq":',
            str(seq).encode(),
            b',"time":"',
            time.encode(),
            b'","v":1}',
        )
    )


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_clock


@contextmanager
def clock(now: Callable[[], datetime]) -> Iterator[None]:
    """Read ``now`` (an aware datetime) instead of the system clock for issued and ledger
    times while the block runs, in this process: a test moves time when it means to, instead
    of sleeping and hoping the clock moved. Ledger times still never go back (log/sequencer.py)."""
    global _clock
    before, _clock = _clock, now
    try:
        yield
    finally:
        _clock = before


def now_rfc3339() -> str:
    return _clock().astimezone().isoformat(timespec="seconds")


def ledger_time() -> str:
    """UTC, microseconds, 'Z': the time the ledger writes into entries."""
    return utc_text(_clock())


def make_statement(
    *,
    kind: str,
    signer: str,
    key: PartyKey,
    body: Mapping[str, Any],
    issued: str | None = None,
    private: str | None = None,
) -> dict[str, Any]:
    st: dict[str, Any] = {
        "v": VERSION,
        "kind": kind,
        "signer": signer,
        "key": key.key_id,
        "issued": issued or now_rfc3339(),
        "body": dict(body),
    }
    if private is not None:
        st["private"] = private
    return st


def sign(statement: Mapping[str, Any], signers: Sequence[tuple[str, PartyKey]]) -> dict[str, Any]:
    """Envelope for ``statement`` signed by each (party id, key), statement signer first."""
    message = SIGNING_DOMAIN + canonical.canonical_bytes(statement)
    return {
        "statement": dict(statement),
        "signatures": [
            {"signer": who, "key": k.key_id, "sig": base64.b64encode(k.sign(message)).decode()}
            for who, k in signers
        ],
    }


def sign_one(
    *,
    kind: str,
    signer: str,
    key: PartyKey,
    body: Mapping[str, Any],
    cosigners: Sequence[tuple[str, PartyKey]] = (),
    issued: str | None = None,
    private: str | None = None,
) -> dict[str, Any]:
    st = make_statement(kind=kind, signer=signer, key=key, body=body, issued=issued, private=private)
    return sign(st, [(signer, key), *cosigners])
