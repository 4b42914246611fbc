"""Who may sign: parties, their roles and keys, and the rules of the registry statements.

Pure rules over an in-memory ``RegistryState``. The append path loads the slice of state
a batch touches; the audit replays the whole registry from entries; both call the same
``authorise`` and ``apply`` so a statement is judged alike at append time and in audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.core.errors import IdentifierError, MalformedInput, NotAuthentic, NotAuthorised
from ledger.core.ids import parse_party_id, validate_uscc
from ledger.core.keys import decode_public_key, key_id
from ledger.core.statements import Prepared, check_timestamp
from ledger.core.times import utc_text

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
# A GS1 company prefix: 4 to 12 digits (GS1 General Specifications 1.4.4).
_GS1_PREFIX = re.compile(r"^[0-9]{4,12}$")
MAX_GS1_PREFIXES = 100
# A customs registration code (海关注册编码): 10 digits or capital letters; an enterprise may
# instead use its 18-character USCC in customs messages (ebpCode, payCode, agentCode, ...).
_CUSTOMS_CODE = re.compile(r"^[0-9A-Z]{10}$")
MAX_CUSTOMS_CODES = 20
REGULATOR_KINDS = frozenset({"list.update", "credit.record"})
PREFIX_KINDS = frozenset({"prefix.delegate", "prefix.revoke"})


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
    gs1_prefixes: tuple[str, ...] = ()  # the GS1 company prefixes its registration names
    customs_codes: tuple[str, ...] = ()  # the customs codes it uses in customs messages
    name_en: str | None = None  # its registered English name, if it gave one


@dataclass(frozen=True)
class PrefixRecord:
    """A GS1 company prefix and the party whose registration holds it."""

    prefix: str
    party: str
    since_seq: int


@dataclass(frozen=True)
class CustomsCodeRecord:
    """A customs registration code (or USCC) and the party whose registration holds it."""

    code: str
    party: str
    since_seq: int


@dataclass(frozen=True)
class Delegation:
    """A prefix holder's leave for another party to make and recall its products."""

    prefix: str
    party: str  # the delegate
    since_seq: int
    until: str | None = None  # last ledger time (UTC, as entries write it) it holds, inclusive


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
    # GS1 company prefixes held, and delegations of them; loaded for the prefixes a batch
    # names (see ``ledger.compliance.brands``), all of them for a batch that registers new ones.
    prefixes: dict[str, PrefixRecord] = field(default_factory=dict)
    dirty_prefixes: set[str] = field(default_factory=set)
    delegations: dict[tuple[str, str], Delegation] = field(default_factory=dict)
    dirty_delegations: set[tuple[str, str]] = field(default_factory=set)
    # Customs codes held: loaded for the codes a batch's customs-message events name, all of
    # them for a batch that registers new ones (a code has one holder).
    customs_codes: dict[str, CustomsCodeRecord] = field(default_factory=dict)
    dirty_customs_codes: set[str] = field(default_factory=set)

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


def _fields(body: Mapping[str, Any], kind: str, required: Iterable[str], optional: Iterable[str]) -> None:
    want, may = set(required), set(optional)
    if not want <= body.keys() <= want | may:
        extra = f" and optionally {', '.join(sorted(may))}" if may else ""
        raise MalformedInput(f"a {kind} body has the fields {', '.join(sorted(want))}{extra}")


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
    """Shape rules of the registry's kinds' bodies, which need no registry state (the EPCIS
    kinds' are ``ledger.epcis.bodies.check_body``'s, which calls this first)."""
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
        _fields(body, kind, ("id", "name", "roles", "publicKey"), ("gs1Prefixes", "customsCodes", "nameEn"))
        if "gs1Prefixes" in body:
            check_gs1_prefixes(body["gs1Prefixes"])
        if "customsCodes" in body:
            check_customs_codes(body["customsCodes"])
        parse_party_id(_str_field(body, "id", kind))
        _str_field(body, "name", kind)
        if "nameEn" in body:
            _str_field(body, "nameEn", kind)
        roles = body["roles"]
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise MalformedInput("party.register roles must be a non-empty list of role names")
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise MalformedInput(f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
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
            if (
                not isinstance(codes, list)
                or not codes
                or not all(isinstance(c, str) and _HS.match(c) for c in codes)
            ):
                raise MalformedInput("list.update hsCodes is a non-empty list of 6- to 10-digit HS codes")
        else:
            raise MalformedInput('list.update names list "negative" or "positive"')
        if body.get("action") not in ("add", "remove"):
            raise MalformedInput('list.update action is "add" or "remove"')
    elif kind == "credit.record":
        _exact_fields(body, ("party", "item", "points", "reason"), kind)
        parse_party_id(_str_field(body, "party", kind))
        _str_field(body, "item", kind)
        _str_field(body, "reason", kind)
        pts = body["points"]
        if type(pts) is not int or not -100 <= pts <= 100:
            raise MalformedInput("credit.record points is an integer from -100 to 100")
    elif kind in PREFIX_KINDS:
        _fields(body, kind, ("prefix", "to"), ("until",) if kind == "prefix.delegate" else ())
        if "until" in body:
            check_timestamp(body["until"], where="prefix.delegate until")
        check_gs1_prefixes([body["prefix"]], where=f"{kind} prefix")
        parse_party_id(_str_field(body, "to", kind))
    elif kind == "attest":
        seq, entry = body.get("seq"), body.get("entry")
        if type(seq) is not int or seq < 0:
            raise MalformedInput("an attest body names the attested entry's seq (an integer)")
        if not isinstance(entry, str) or not _HEX64.match(entry):
            raise MalformedInput("an attest body names the attested entry's leaf hash in hex")
    if kind in ("genesis", "party.register", "party.key.rotate"):
        new = embedded_keys(p)
        if kind != "party.key.rotate" and p.key not in new:
            raise MalformedInput(f"{kind} must be signed by the key it introduces ({next(iter(new))})")


def check_gs1_prefixes(value: object, *, where: str = "party.register gs1Prefixes") -> list[str]:
    """A non-empty list of distinct GS1 company prefixes, each 4 to 12 digits."""
    if not isinstance(value, list) or not value or len(value) > MAX_GS1_PREFIXES:
        raise MalformedInput(
            f'{where} must be a list of 1 to {MAX_GS1_PREFIXES} GS1 company prefixes, such as ["4512345"]'
        )
    for v in value:
        if not isinstance(v, str) or not _GS1_PREFIX.match(v):
            raise MalformedInput(f"{where}: {v!r} is not a GS1 company prefix (4 to 12 digits)")
    if len(set(value)) != len(value):
        raise MalformedInput(f"{where} must not repeat a prefix")
    return value


def check_customs_codes(value: object, *, where: str = "party.register customsCodes") -> list[str]:
    """A non-empty list of distinct customs codes: each a 10-character customs registration
    code (digits and capital letters) or an 18-character USCC with correct check characters."""
    if not isinstance(value, list) or not value or len(value) > MAX_CUSTOMS_CODES:
        raise MalformedInput(
            f'{where} must be a list of 1 to {MAX_CUSTOMS_CODES} customs codes, such as ["1105910159"]'
        )
    for v in value:
        if isinstance(v, str) and len(v) == 18:
            try:
                validate_uscc(v)
            except IdentifierError as e:
                raise MalformedInput(f"{where}: {e.message}") from None
        elif not isinstance(v, str) or not _CUSTOMS_CODE.match(v):
            raise MalformedInput(
                f"{where}: {v!r} is not a customs code (10 digits or capital "
                "letters, or an 18-character USCC)"
            )
    if len(set(value)) != len(value):
        raise MalformedInput(f"{where} must not repeat a code")
    return value


def customs_holder(reg: RegistryState, code: str) -> str | None:
    """The registered party that holds a customs code, if any."""
    rec = reg.customs_codes.get(code)
    return None if rec is None else rec.party


def utc_time(value: str) -> str:
    """An RFC 3339 time in the ledger's own format (UTC, microseconds, Z), which sorts."""
    return utc_text(datetime.fromisoformat(value.replace("Z", "+00:00")))


def prefix_holder(reg: RegistryState, gtin: str) -> PrefixRecord | None:
    """The registered GS1 company prefix a GTIN-14 falls under, by longest match: the
    company prefix starts after the indicator digit and is 4 to 12 digits long."""
    for n in range(12, 3, -1):
        rec = reg.prefixes.get(gtin[1 : 1 + n])
        if rec is not None:
            return rec
    return None


def may_use_prefix(reg: RegistryState, party: str, rec: PrefixRecord, time: str) -> bool:
    """Whether ``party`` may make or recall products under the prefix at ledger ``time``:
    it holds the prefix, or the holder delegated it and the delegation still runs."""
    if party == rec.party:
        return True
    d = reg.delegations.get((rec.prefix, party))
    return d is not None and (d.until is None or time <= d.until)


def _overlapping(reg: RegistryState, prefix: str, party: str) -> PrefixRecord | None:
    """Another party's prefix that equals, contains or extends ``prefix``: GS1 company
    prefixes never nest, so one party's range is never carved out of another's."""
    for rec in reg.prefixes.values():
        if rec.party != party and (rec.prefix.startswith(prefix) or prefix.startswith(rec.prefix)):
            return rec
    return None


def _valid_key(reg: RegistryState, signer: str, kid: str, seq: int) -> KeyRecord:
    rec = reg.keys.get(kid)
    if rec is None:
        raise NotAuthentic(f"key {kid} of {signer} is not registered (at seq {seq})", code="unknown_key")
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
            f"{p.kind} of {p.signer} needs the registrar's cosignature ({reg.registrar})",
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
        for prefix in p.body.get("gs1Prefixes", ()):
            held = _overlapping(reg, prefix, p.signer)
            if held is not None:
                raise NotAuthorised(
                    f"GS1 company prefix {prefix} overlaps {held.prefix}, held by {held.party} "
                    f"since seq {held.since_seq}; a prefix has one holder",
                    code="prefix_taken",
                )
        for code in p.body.get("customsCodes", ()):
            taken = reg.customs_codes.get(code)
            if taken is not None:
                raise NotAuthorised(
                    f"customs code {code} is held by {taken.party} since seq {taken.since_seq}; "
                    "a customs code has one holder",
                    code="customs_code_taken",
                )
        return
    if p.signer not in reg.parties:
        raise NotAuthentic(f"signer {p.signer} is not a registered party", code="unknown_signer")
    for s in p.signatures:
        _valid_key(reg, s.signer, s.key, seq)
    if kind in REGULATOR_KINDS and "regulator" not in reg.parties[p.signer].roles:
        raise NotAuthorised(
            f"{p.signer} (roles: {', '.join(reg.parties[p.signer].roles)}) "
            f"may not sign {kind}: only a regulator may",
            code="role_not_allowed",
        )
    # Giving up a key or a delegation is never refused: it only takes power away.
    if kind not in ("event", "party.key.revoke", "prefix.revoke"):
        check_negative(reg, p.signer)
    if kind == "party.key.rotate":
        new = next(iter(embedded_keys(p)))
        if new in reg.keys:
            raise NotAuthorised(f"key {new} is already registered")
        _need_registrar(p, reg, seq)
    elif kind == "party.key.revoke":
        target, kid = p.body["party"], p.body["key"]
        if p.signer not in (target, reg.registrar):
            raise NotAuthorised(f"only {target} or the registrar may revoke its keys, not {p.signer}")
        rec = reg.keys.get(kid)
        if rec is None or rec.party != target:
            raise NotAuthorised(f"key {kid} is not a key of {target}")
        if rec.valid_until is not None:
            raise NotAuthorised(f"key {kid} was already {rec.ended_by} at seq {rec.valid_until}")
    elif kind in PREFIX_KINDS:
        prefix, to = p.body["prefix"], p.body["to"]
        held = reg.prefixes.get(prefix)
        if held is None or held.party != p.signer:
            raise NotAuthorised(
                f"{p.signer} does not hold GS1 company prefix {prefix}"
                + (f" ({held.party} does)" if held else "")
                + "; only its holder may delegate it",
                code="prefix_not_held",
            )
        if kind == "prefix.delegate":
            if to == p.signer:
                raise NotAuthorised(f"{p.signer} holds {prefix} already; delegate it to another party")
            if to not in reg.parties:
                raise NotAuthorised(f"{to} is not a registered party", code="unknown_party")
        elif (prefix, to) not in reg.delegations:
            raise NotAuthorised(f"{p.signer} has not delegated {prefix} to {to}", code="not_delegated")


def check_negative(reg: RegistryState, party: str, *, why: str | None = None) -> None:
    """Refuse a negative-listed party; callers exempt what answers a recall (``why`` says
    why an event that was judged for it does not)."""
    listed = reg.negative.get(party)
    if listed is not None:
        raise NotAuthorised(
            f"{party} is on the negative list since seq {listed[0]} ({listed[1]}); "
            "only answers to a recall are accepted from it" + (f", and this is none: {why}" if why else ""),
            code="negative_listed",
        )


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
        prefixes = tuple(sorted(body.get("gs1Prefixes", ())))
        codes = tuple(sorted(body.get("customsCodes", ())))
        reg.add_party(
            PartyRecord(
                body["id"],
                body["name"],
                tuple(body["roles"]),
                seq,
                prefixes,
                customs_codes=codes,
                name_en=body.get("nameEn"),
            )
        )
        reg.add_key(KeyRecord(key_id(pk), body["id"], pk, seq))
        for prefix in prefixes:
            reg.prefixes[prefix] = PrefixRecord(prefix, body["id"], seq)
            reg.dirty_prefixes.add(prefix)
        for code in codes:
            reg.customs_codes[code] = CustomsCodeRecord(code, body["id"], seq)
            reg.dirty_customs_codes.add(code)
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
    elif kind in PREFIX_KINDS:
        pair = (body["prefix"], body["to"])
        if kind == "prefix.delegate":
            until = body.get("until")
            reg.delegations[pair] = Delegation(*pair, seq, None if until is None else utc_time(until))
        else:
            reg.delegations.pop(pair, None)
        reg.dirty_delegations.add(pair)
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
