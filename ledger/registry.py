"""Who may sign: parties, their roles and keys, and the rules of the registry statements.

Pure rules over an in-memory ``RegistryState``. The append path loads the slice of state
a batch touches; the audit replays the whole registry from entries; both call the same
``authorise`` and ``apply`` so a statement is judged alike at append time and in audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import MalformedInput, NotAuthentic, NotAuthorised
from ledger.ids import parse_party_id
from ledger.keys import decode_public_key, key_id
from ledger.statements import Prepared

ROLES = (
    "producer",
    "brand_owner",
    "platform",
    "merchant",
    "warehouse",
    "logistics",
    "customs_broker",
    "customs",
    "payment",
    "regulator",
    "registrar",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HS = re.compile(r"^[0-9]{6,10}$")
REGULATOR_KINDS = frozenset({"list.update", "credit.record"})


@dataclass
class KeyRecord:
    key_id: str
    party: str
    public_key: bytes
    valid_from: int
    valid_until: int | None = None  # last seq it may sign, inclusive
    ended_by: str | None = None  # "revoked" or "rotated"


@dataclass
class PartyRecord:
    id: str
    name: str
    roles: tuple[str, ...]
    registered_seq: int


@dataclass
class RegistryState:
    """The registry as of some seq, or the slice of it one batch needs."""

    registrar: str | None = None
    origin: str | None = None
    log_key: str | None = None
    parties: dict[str, PartyRecord] = field(default_factory=dict)
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    dirty_parties: set[str] = field(default_factory=set)
    dirty_keys: set[str] = field(default_factory=set)
    # 事前准入禁止: party -> (seq it was listed at, reason); loaded for a batch's signers.
    negative: dict[str, tuple[int, str]] = field(default_factory=dict)
    dirty_negative: set[str] = field(default_factory=set)
    # Retail-import positive list: HS code -> seq it was added at (changes only).
    positive_changes: dict[str, int | None] = field(default_factory=dict)

    def add_key(self, rec: KeyRecord) -> None:
        self.keys[rec.key_id] = rec
        self.dirty_keys.add(rec.key_id)

    def add_party(self, rec: PartyRecord) -> None:
        self.parties[rec.id] = rec
        self.dirty_parties.add(rec.id)


def _exact_fields(body: Mapping[str, Any], fields: Iterable[str], kind: str) -> None:
    want = set(fields)
    if body.keys() != want:
        raise MalformedInput(f"a {kind} body has exactly the fields {', '.join(sorted(want))}")


def _str_field(body: Mapping[str, Any], name: str, kind: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedInput(f"{kind} body field {name} must be a non-empty string")
    return value


def embedded_keys(p: Prepared) -> dict[str, bytes]:
    """Keys that a statement itself introduces (key id -> public key), shape-checked."""
    kind, body = p.kind, p.body
    if kind == "genesis":
        reg = body.get("registrar")
        if not isinstance(reg, dict):
            raise MalformedInput("a genesis body names its registrar as an object")
        pk = decode_public_key(reg.get("publicKey"), where="genesis registrar publicKey")
        return {key_id(pk): pk}
    if kind in ("party.register", "party.key.rotate"):
        pk = decode_public_key(body.get("publicKey"), where=f"{kind} publicKey")
        return {key_id(pk): pk}
    return {}


def check_body(p: Prepared) -> None:
    """Shape rules of each kind's body that need no registry state."""
    kind, body = p.kind, p.body
    if kind == "genesis":
        _exact_fields(body, ("origin", "logKey", "registrar"), kind)
        _str_field(body, "origin", kind)
        _str_field(body, "logKey", kind)
        reg = body["registrar"]
        if not isinstance(reg, dict) or reg.keys() != {"id", "name", "publicKey"}:
            raise MalformedInput("genesis registrar has exactly id, name and publicKey")
        parse_party_id(str(reg["id"]))
        _str_field(reg, "name", "genesis registrar")
    elif kind == "party.register":
        _exact_fields(body, ("id", "name", "roles", "publicKey"), kind)
        parse_party_id(_str_field(body, "id", kind))
        _str_field(body, "name", kind)
        roles = body["roles"]
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise MalformedInput("party.register roles must be a non-empty list of role names")
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise MalformedInput(
                f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}"
            )
        if len(set(roles)) != len(roles):
            raise MalformedInput("party.register roles must not repeat")
    elif kind == "party.key.rotate":
        _exact_fields(body, ("publicKey",), kind)
    elif kind == "party.key.revoke":
        _exact_fields(body, ("party", "key"), kind)
        parse_party_id(_str_field(body, "party", kind))
        if not isinstance(body["key"], str) or len(body["key"]) != 16:
            raise MalformedInput("party.key.revoke key must be a 16-hex-character key id")
    elif kind == "list.update":
        which = body.get("list")
        if which == "negative":
            _exact_fields(body, ("list", "action", "party", "reason"), kind)
            parse_party_id(_str_field(body, "party", kind))
            _str_field(body, "reason", kind)
        elif which == "positive":
            _exact_fields(body, ("list", "action", "hsCodes", "reason"), kind)
            codes = body["hsCodes"]
            if not isinstance(codes, list) or not codes or not all(
                    isinstance(c, str) and _HS.match(c) for c in codes):
                raise MalformedInput("list.update hsCodes is a non-empty list of 6- to "
                                     "10-digit HS codes")
        else:
            raise MalformedInput("list.update names list \"negative\" or \"positive\"")
        if body.get("action") not in ("add", "remove"):
            raise MalformedInput("list.update action is \"add\" or \"remove\"")
    elif kind == "credit.record":
        _exact_fields(body, ("party", "item", "points", "reason"), kind)
        parse_party_id(_str_field(body, "party", kind))
        _str_field(body, "item", kind)
        _str_field(body, "reason", kind)
        pts = body["points"]
        if type(pts) is not int or not -100 <= pts <= 100:
            raise MalformedInput("credit.record points is an integer from -100 to 100")
    elif kind == "attest":
        seq, entry = body.get("seq"), body.get("entry")
        if type(seq) is not int or seq < 0:
            raise MalformedInput("an attest body names the attested entry's seq (an integer)")
        if not isinstance(entry, str) or not _HEX64.match(entry):
            raise MalformedInput("an attest body names the attested entry's leaf hash in hex")
    elif kind == "document":
        from ledger.event_hash import check_document_record

        check_document_record(body)
    if kind in ("genesis", "party.register", "party.key.rotate"):
        new = embedded_keys(p)
        if kind != "party.key.rotate" and p.key not in new:
            raise MalformedInput(
                f"{kind} must be signed by the key it introduces ({next(iter(new))})"
            )


def _valid_key(reg: RegistryState, signer: str, kid: str, seq: int) -> KeyRecord:
    rec = reg.keys.get(kid)
    if rec is None:
        raise NotAuthentic(
            f"key {kid} of {signer} is not registered (at seq {seq})", code="unknown_key"
        )
    if rec.party != signer:
        raise NotAuthentic(
            f"key {kid} belongs to {rec.party}, not to {signer}",
            code="wrong_key",
        )
    if seq < rec.valid_from:
        raise NotAuthentic(
            f"key {kid} of {signer} is not valid until seq {rec.valid_from} (used at seq {seq})",
            code="key_not_yet_valid",
        )
    if rec.valid_until is not None and seq > rec.valid_until:
        raise NotAuthentic(
            f"key {kid} of {signer} was {rec.ended_by or 'revoked'} at seq {rec.valid_until}",
            code="key_revoked",
        )
    return rec


def signing_keys(p: Prepared, reg: RegistryState) -> list[bytes | None]:
    """Public key for each signature, as far as known: the registry or the statement itself."""
    new = embedded_keys(p) if p.kind in ("genesis", "party.register") else {}
    out: list[bytes | None] = []
    for s in p.signatures:
        rec = reg.keys.get(s.key)
        out.append(rec.public_key if rec is not None else new.get(s.key))
    return out


def _need_registrar(p: Prepared, reg: RegistryState, seq: int) -> None:
    if reg.registrar is None:
        raise NotAuthorised("the ledger has no registrar yet; run `suyuan init` first")
    cosigs = [s for s in p.signatures[1:] if s.signer == reg.registrar]
    if not cosigs:
        raise NotAuthorised(
            f"{p.kind} of {p.signer} needs the registrar's cosignature "
            f"({reg.registrar})",
            code="registrar_cosignature_missing",
        )
    for s in cosigs:
        _valid_key(reg, s.signer, s.key, seq)


def authorise(p: Prepared, seq: int, reg: RegistryState) -> None:
    """Raise unless ``p`` may be appended at ``seq`` given ``reg``; signatures are checked
    cryptographically elsewhere, here only whose keys they are and whether valid then."""
    kind = p.kind
    if (kind == "genesis") != (seq == 0):
        raise NotAuthorised(
            "the genesis statement is entry 0 and only entry 0"
            if kind == "genesis"
            else "the ledger must start with a genesis entry; run `suyuan init`"
        )
    if kind == "genesis":
        if len(p.signatures) != 1 or p.signer != p.body["registrar"]["id"]:
            raise NotAuthorised("genesis is signed by the registrar it names, and only by it")
        return
    if kind == "party.register":
        if p.signer != p.body["id"]:
            raise NotAuthorised("a party registers itself: statement signer must equal body id")
        if p.signer in reg.parties:
            raise NotAuthorised(
                f"{p.signer} is already registered (seq {reg.parties[p.signer].registered_seq})",
                code="already_registered",
            )
        if p.key in reg.keys:
            raise NotAuthorised(f"key {p.key} is already registered to another party")
        _need_registrar(p, reg, seq)
        return
    if p.signer not in reg.parties:
        raise NotAuthentic(f"signer {p.signer} is not a registered party", code="unknown_signer")
    for s in p.signatures:
        _valid_key(reg, s.signer, s.key, seq)
    if kind in REGULATOR_KINDS and "regulator" not in reg.parties[p.signer].roles:
        raise NotAuthorised(f"{p.signer} (roles: {', '.join(reg.parties[p.signer].roles)}) "
                            f"may not sign {kind}: only a regulator may", code="role_not_allowed")
    if kind not in ("event", "party.key.revoke"):
        check_negative(reg, p.signer)
    if kind == "party.key.rotate":
        new = next(iter(embedded_keys(p)))
        if new in reg.keys:
            raise NotAuthorised(f"key {new} is already registered")
        _need_registrar(p, reg, seq)
    elif kind == "party.key.revoke":
        target, kid = p.body["party"], p.body["key"]
        if p.signer not in (target, reg.registrar):
            raise NotAuthorised(
                f"only {target} or the registrar may revoke its keys, not {p.signer}"
            )
        rec = reg.keys.get(kid)
        if rec is None or rec.party != target:
            raise NotAuthorised(f"key {kid} is not a key of {target}")
        if rec.valid_until is not None:
            raise NotAuthorised(f"key {kid} was already {rec.ended_by} at seq {rec.valid_until}")


def check_negative(reg: RegistryState, party: str) -> None:
    """Refuse a negative-listed party; callers exempt what answers a recall."""
    listed = reg.negative.get(party)
    if listed is not None:
        raise NotAuthorised(
            f"{party} is on the negative list since seq {listed[0]} ({listed[1]}); "
            "only answers to a recall are accepted from it", code="negative_listed")


def apply(p: Prepared, seq: int, reg: RegistryState) -> None:
    """Update ``reg`` with the effect of an authorised statement appended at ``seq``."""
    kind, body = p.kind, p.body
    if kind == "genesis":
        r = body["registrar"]
        pk = decode_public_key(r["publicKey"])
        reg.registrar, reg.origin, reg.log_key = r["id"], body["origin"], body["logKey"]
        reg.add_party(PartyRecord(r["id"], r["name"], ("registrar",), seq))
        reg.add_key(KeyRecord(key_id(pk), r["id"], pk, seq))
    elif kind == "party.register":
        pk = decode_public_key(body["publicKey"])
        reg.add_party(PartyRecord(body["id"], body["name"], tuple(body["roles"]), seq))
        reg.add_key(KeyRecord(key_id(pk), body["id"], pk, seq))
    elif kind == "party.key.rotate":
        pk = decode_public_key(body["publicKey"])
        old = reg.keys[p.key]
        old.valid_until, old.ended_by = seq, "rotated"
        reg.dirty_keys.add(old.key_id)
        reg.add_key(KeyRecord(key_id(pk), p.signer, pk, seq))
    elif kind == "party.key.revoke":
        rec = reg.keys[body["key"]]
        rec.valid_until, rec.ended_by = seq, "revoked"
        reg.dirty_keys.add(rec.key_id)
    elif kind == "list.update":
        if body["list"] == "negative":
            if body["action"] == "add":
                reg.negative[body["party"]] = (seq, body["reason"])
            else:
                reg.negative.pop(body["party"], None)
            reg.dirty_negative.add(body["party"])
        else:
            for code in body["hsCodes"]:
                reg.positive_changes[code] = seq if body["action"] == "add" else None
