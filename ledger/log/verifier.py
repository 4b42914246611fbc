"""One verifier of log entries: the registry's rules, applied to entry bytes exactly as the
append path applies them to statements, for the consumer page, trace bundles, the scope
audit and the full audit alike.

The chain of trust it checks: the pinned log key (``PinnedKey``: the published
``SUYUAN_LOG_KEY``, else the genesis entry's) verifies a checkpoint; every entry used is
included in it (the callers check inclusion, each with its own proofs); the genesis entry
(seq 0) names that key and the registrar with its key; the registrar cosigns each
registration and rotation; registrations, rotations and revocations decide which key each
party may sign with at each seq; and only then do the target entries' signatures count.

Everything here is a function of entry bytes: which entries to read (a party's
registration, the entry that introduced or ended a key) may be chosen from projections,
but every fact used comes from bytes that verify. Pure: no I/O but what callers pass in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

import orjson

from ledger.compliance import brands
from ledger.compliance import recalls as recall_answers
from ledger.compliance.recalls import RecallFacts
from ledger.core import registry
from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.note import NoteVerifier
from ledger.core.signatures import verify_many
from ledger.core.statements import Prepared, entry_bytes, prepare
from ledger.epcis import bodies, masterdata
from ledger.epcis.stages import (
    Classified,
    EventCodes,
    EventSummary,
    authorise_event,
    classify,
    event_codes,
    event_summary,
)
from ledger.epcis.validation import validate_event_body

ZERO_HEX = "0" * 64
LOG_KEY_VARIABLE = "SUYUAN_LOG_KEY"


def event_facts(body: Mapping[str, Any]) -> EventCodes:
    """What an event body says, after its schema check; needs no ledger state."""
    validate_event_body(body)
    return event_codes(body)


def judge_event(
    p: Prepared,
    reg: registry.RegistryState,
    *,
    codes: EventCodes | None = None,
    time: str | None = None,
    recalls: RecallFacts | None = None,
) -> Classified:
    """The event's stage, refused unless one of the signer's roles may sign that stage.

    With ``recalls`` — what the ledger held before this entry, for a judge whose registry
    is the whole ledger's (the append path, the audit) — also: if the event makes or
    recalls products under a registered GS1 company prefix, the signer holds it or was
    delegated it at ``time`` (``ledger.compliance.brands``); and a negative-listed signer's event is
    accepted only if it is a recall or answers one by the ledger's facts
    (``ledger.compliance.recalls``). A slice of the registry (a page's or a bundle's evidence) holds
    neither every delegation nor the lists, so those rules are the audit's there.

    ``codes`` are the event's codes (computed here when None and needed)."""
    party = reg.parties[p.signer]
    classified = classify(p.body, signer_roles=party.roles)
    authorise_event(party=p.signer, roles=party.roles, classified=classified)
    if recalls is None:
        return classified
    # With no prefix loaded, none of the GTINs the event could claim is registered.
    if reg.prefixes and classified.stage in ("production", "recall"):
        codes = codes or event_codes(p.body)
        if time is None:
            raise ValueError("judging brands needs the entry's ledger time")
        brands.check_event(
            reg,
            signer=p.signer,
            roles=party.roles,
            classified=classified,
            codes=codes,
            body=p.body,
            time=time,
        )
    if classified.stage != "recall" and p.signer in reg.negative:
        why = recall_answers.refusal(classified=classified, codes=codes or event_codes(p.body), facts=recalls)
        if why is not None:
            registry.check_negative(reg, p.signer, why=why)
    return classified


# --- entry bytes ---------------------------------------------------------------------------


class ParsedEntry(NamedTuple):
    """What an entry's bytes say, checked as far as the bytes alone allow (shape, canonical
    form, body rules, the event schema): a function of the bytes, so callers may cache it
    by leaf hash."""

    seq: object  # the seq the bytes claim
    prepared: Prepared | None
    codes: EventSummary | None  # an event's time, place and words
    error: str | None  # why the bytes are not a valid entry (then prepared is None)
    time: str | None = None  # the ledger time the bytes say the entry was appended at


def parse_entry(raw: bytes) -> ParsedEntry:
    try:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict) or doc.keys() != {"v", "seq", "prev", "time", "envelope"}:
            raise MalformedInput("the entry is not {v, seq, prev, time, envelope}")
        p = prepare(doc["envelope"])
        seq, prev, time = doc["seq"], doc["prev"], doc["time"]
        if (
            type(seq) is not int
            or not isinstance(prev, str)
            or len(prev) != 64
            or not isinstance(time, str)
            or raw
            != entry_bytes(seq=seq, prev=bytes.fromhex(prev), time=time, envelope_bytes=p.envelope_bytes)
        ):
            raise MalformedInput("the entry bytes are not canonical JSON")
        bodies.check_body(p)
        codes = None
        if p.kind == "event":
            # The event schema, as the append path checks it; the check digits of every
            # identifier an event names are not converted again here (reindex does).
            validate_event_body(p.body)
            codes = event_summary(p.body)
    except LedgerError as e:
        return ParsedEntry(None, None, None, f"not a valid entry: {e.message}")
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError):
        return ParsedEntry(None, None, None, "not a valid entry: not JSON of an envelope")
    return ParsedEntry(seq, p, codes, None, time)


# --- the pinned log key --------------------------------------------------------------------


@dataclass(frozen=True)
class Genesis:
    """What entry 0 says: the checkpoint origin, the log key and the registrar."""

    origin: str
    log_key: str
    registrar: str


def read_genesis(raw: bytes) -> Genesis:
    """Entry 0's bytes as a well-formed genesis: seq 0 with no predecessor, a genesis
    statement signed by the registrar it names with the key it introduces. Raises
    ``LedgerError`` saying what is wrong."""
    parsed = parse_entry(raw)
    p = parsed.prepared
    if p is None:
        raise MalformedInput(f"entry 0 is {parsed.error}")
    if parsed.seq != 0 or orjson.loads(raw)["prev"] != ZERO_HEX:
        raise MalformedInput("entry 0 does not say seq 0 with no predecessor")
    if p.kind != "genesis":
        raise MalformedInput(f"entry 0 is a {p.kind}, not the genesis")
    registry.authorise(p, 0, registry.RegistryState())
    (pk,) = registry.embedded_keys(p).values()
    if verify_many([(0, p.signed_message, p.signatures[0].sig, pk)]):
        raise MalformedInput("the genesis signature does not verify with the registrar key it names")
    return Genesis(str(p.body["origin"]), str(p.body["logKey"]), str(p.body["registrar"]["id"]))


@dataclass(frozen=True)
class PinnedKey:
    """The log key checkpoints are verified with, never read from a mutable row: the one
    an operator published (``SUYUAN_LOG_KEY``), else the one the genesis entry names.
    ``problem`` says why nothing verifies with it (None: all is well)."""

    key: str | None
    genesis: Genesis | None
    published: str | None
    problem: str | None


def pin_log_key(
    *, published: str | None, genesis: Genesis | None, genesis_problem: str | None = None
) -> PinnedKey:
    published = (published or "").strip() or None
    problem = (
        None
        if genesis is not None
        else (genesis_problem or "the ledger has no genesis entry; run `suyuan init` first")
    )
    if published is not None:
        try:
            NoteVerifier.from_vkey(published)
        except LedgerError as e:
            problem = f"the published log key ({LOG_KEY_VARIABLE}) is unusable: {e.message}"
        else:
            if genesis is not None and genesis.log_key != published:
                problem = (
                    f"the published log key ({LOG_KEY_VARIABLE}) is {published}, but "
                    f"this ledger's genesis entry names {genesis.log_key}: nothing here "
                    "verifies against the published key"
                )
    key = published if published is not None else (genesis.log_key if genesis else None)
    return PinnedKey(key, genesis, published, problem)


# --- the registry's rules, replayed --------------------------------------------------------


class SigCheck(NamedTuple):
    """One signature to check, with the public key its key id names."""

    seq: int
    signer: str
    key_id: str
    statement_hash: bytes
    message: bytes
    sig: bytes
    public_key: bytes


@dataclass(frozen=True)
class Judgement:
    """The registry's verdict on one entry at its seq: ``problem`` is why the append path
    would have refused it (None: accepted); ``checks`` are its signatures whose keys are
    known, for the caller to verify; ``classified`` is an accepted event's stage."""

    seq: int
    problem: str | None
    checks: tuple[SigCheck, ...]
    classified: Classified | None = None


_SERIALS = itertools.count()


class RegistryReplay:
    """The registry built from entries fed in seq order, through ``registry.authorise``
    and ``registry.apply``, the very rules of the append path: an entry they refuse changes
    nothing, as the append path would never have appended it.

    Fed every entry, it is the full audit's registry; fed a genesis, the registrations and
    key changes of some parties and then their entries, it judges those entries as the
    append path did (a projection chose which entries; what the replay learns comes from
    their bytes). With ``log_key`` the genesis must name that key.
    """

    def __init__(self, *, log_key: str | None = None) -> None:
        self.state = registry.RegistryState()
        self.log_key = log_key
        self.last = -1
        self.serial = next(_SERIALS)  # names this replay in a cache of its judgements

    def feed(
        self, seq: int, p: Prepared, *, time: str | None = None, recalls: RecallFacts | None = None
    ) -> Judgement:
        """Judge ``p`` at ``seq`` and, if accepted, apply it. ``time`` and ``recalls`` (the
        entry's ledger time and what the ledger held before it) are for a replay of every
        entry, the audit's: then events are judged by every rule (see ``judge_event``)."""
        if seq <= self.last:
            raise ValueError(f"entries are fed in seq order: {seq} after {self.last}")
        self.last = seq
        reg = self.state
        keys = registry.signing_keys(p, reg)
        checks = tuple(
            SigCheck(seq, s.signer, s.key, p.statement_hash, p.signed_message, s.sig, pk)
            for s, pk in zip(p.signatures, keys, strict=True)
            if pk is not None
        )
        classified = None
        try:
            registry.authorise(p, seq, reg)
            if p.kind == "event":
                classified = judge_event(p, reg, time=time, recalls=recalls)
            elif p.kind == "masterdata":
                masterdata.check_owner(reg, signer=p.signer, body=p.body, time=time)
        except LedgerError as e:
            return Judgement(seq, e.message, checks)
        registry.apply(p, seq, reg)
        problem = None
        if p.kind == "genesis" and self.log_key is not None and p.body["logKey"] != self.log_key:
            problem = f"the genesis names log key {p.body['logKey']}, not the pinned {self.log_key}"
        return Judgement(seq, problem, checks, classified)

    def judge_event(self, seq: int, p: Prepared) -> tuple[str | None, Classified | None]:
        """An event at ``seq`` judged against the registry as fed so far, which may hold
        entries after ``seq``: an event changes no registry state, and every rule it is
        judged by is one of key validity at its seq (a key's record carries the seqs it
        was valid between; a signer registered later signs with a key not yet valid) or
        of roles, which never change. So the verdict is the one the append path gave it.
        Nothing here changes the replay: many pages may judge against one."""
        try:
            registry.authorise(p, seq, self.state)
            return None, judge_event(p, self.state)
        except LedgerError as e:
            return e.message, None

    def judge_masterdata(self, seq: int, p: Prepared, time: str | None) -> str | None:
        """Why master data at ``seq`` (appended at ledger ``time``) would have been refused
        given the registry as fed so far; like an event it changes no registry state, and
        its owner is decided by registrations (a prefix is held from its holder's
        registration on, and prefixes never overlap, so a registration that lists a prefix
        covering the identifier proves its holder) or a delegation fed before it."""
        try:
            registry.authorise(p, seq, self.state)
            masterdata.check_owner(self.state, signer=p.signer, body=p.body, time=time)
        except LedgerError as e:
            return e.message
        return None


SignatureChecker = Callable[[Sequence[SigCheck]], list[bool]]


def check_signatures(checks: Sequence[SigCheck]) -> list[bool]:
    """Whether each signature verifies (batched through ``verify.verify_many``)."""
    bad = set(verify_many([(n, c.message, c.sig, c.public_key) for n, c in enumerate(checks)]))
    return [n not in bad for n in range(len(checks))]


@dataclass
class Verdicts:
    """The verdict on a set of entries: why each failing seq fails, the stage of each
    event that verified, and the parties whose registrations verified."""

    problems: dict[int, str] = field(default_factory=dict)
    classified: dict[int, Classified] = field(default_factory=dict)
    parties: dict[str, registry.PartyRecord] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)  # problems of the set, not of one seq
    signatures: dict[int, int] = field(default_factory=dict)  # seq -> signatures verified

    def ok(self, seq: int) -> bool:
        return seq in self.signatures and seq not in self.problems

    def lines(self) -> list[str]:
        return self.general + [f"seq {s}: {why}" for s, why in sorted(self.problems.items())]


# Statements that change who may sign with which key. The page's evidence holds only
# these; a set with any other kind but events and master data (``JUDGED_KINDS``, which
# change no registry state) is judged strictly in seq order.
KEY_KINDS = frozenset({"genesis", "party.register", "party.key.rotate", "party.key.revoke"})
JUDGED_KINDS = frozenset({"event", "masterdata"})


class Replays(Protocol):
    """Where replays of key statements, and the verdicts on events judged against each,
    are kept between calls (``page_facts``'s cache)."""

    def get(self, key: tuple[Any, ...]) -> Any: ...

    def put(self, key: tuple[Any, ...], value: Any) -> None: ...


def verify_entries(
    entries: Mapping[int, ParsedEntry],
    *,
    log_key: str | None,
    unusable: Mapping[int, str] | None = None,
    check: SignatureChecker = check_signatures,
    replays: Replays | None = None,
    in_order: bool = False,
) -> Verdicts:
    """Judge entries (each already shown to be included in a checkpoint verified with
    ``log_key``; ``unusable`` are those that are not, with the reason) as the append path
    did: every signature first, with the public key an entry of the set introduced for
    its key id, then the registry's rules in seq order, an entry that fails either
    changing nothing for those after it.

    When the set holds only key statements (``KEY_KINDS``) and events, the key statements
    are replayed first and every event is then judged against that registry
    (``RegistryReplay.judge_event`` says why the verdicts are the same); ``replays`` may
    keep such replays, keyed by the exact envelopes and seqs replayed, so that the many
    pages sharing the same parties replay them once. ``in_order`` replays strictly in seq
    order whatever the kinds (the tests hold both ways to one model)."""
    out = Verdicts(problems=dict(unusable or {}))
    usable: dict[int, Prepared] = {}
    for seq in sorted(entries):
        e = entries[seq]
        if seq in out.problems:
            continue
        if e.prepared is None:
            out.problems[seq] = e.error or "not a valid entry"
        elif e.seq != seq:
            out.problems[seq] = f"the entry bytes say seq {e.seq}"
        else:
            usable[seq] = e.prepared
    if 0 not in entries and 0 not in out.problems:
        out.general.append(
            "the genesis entry (seq 0), which names the log key and the registrar, is not among the entries"
        )
    keyed = {s: p for s, p in usable.items() if p.kind in KEY_KINDS}
    rest = {s: p for s, p in usable.items() if s not in keyed}
    times = {s: entries[s].time for s in usable}
    if in_order or any(p.kind not in JUDGED_KINDS for p in rest.values()):
        replay = _in_order(usable, out, log_key=log_key, check=check, times=times)
    else:
        key = ("replay", log_key, tuple((s, p.envelope_bytes) for s, p in keyed.items()))
        got = cast(
            tuple[RegistryReplay, dict[int, str]] | None, replays.get(key) if replays is not None else None
        )
        if got is None:
            replay, failed = RegistryReplay(log_key=log_key), Verdicts()
            _feed(keyed, failed, replay, check=check)
            got = (replay, failed.problems)
            if replays is not None:
                replays.put(key, got)
        replay = got[0]
        out.problems.update(got[1])
        for s, p in keyed.items():
            if s not in out.problems:
                out.signatures[s] = len(p.signatures)
        # An event's verdict is a function of the replay and its own bytes and seq: many
        # items share an event (a pallet's shipping), so it is judged once per replay.
        todo: dict[int, Prepared] = {}
        for seq, p in rest.items():
            hit = (
                replays.get(("judged", replay.serial, seq, p.envelope_bytes, times[seq]))
                if replays is not None
                else None
            )
            if hit is None:
                todo[seq] = p
            elif hit[0] is not None:
                out.problems[seq] = hit[0]
            else:
                out.signatures[seq] = len(p.signatures)
                if hit[1] is not None:
                    out.classified[seq] = hit[1]
        # An event's keys are introduced by key statements only.
        known = {kid: rec.public_key for kid, rec in replay.state.keys.items()}
        judged = Verdicts()
        _crypto(todo, known, judged, check=check)
        for seq, p in todo.items():
            why, classified = judged.problems.get(seq), None
            if why is None and p.kind == "masterdata":
                why = replay.judge_masterdata(seq, p, times[seq])
            elif why is None:
                why, classified = replay.judge_event(seq, p)
            if why is not None:
                out.problems[seq] = why
            else:
                out.signatures[seq] = len(p.signatures)
                if classified is not None:
                    out.classified[seq] = classified
            if replays is not None:
                replays.put(("judged", replay.serial, seq, p.envelope_bytes, times[seq]), (why, classified))
    if 0 in out.problems:
        # The chain of trust starts at the genesis: nothing verifies without it.
        for seq in usable:
            out.problems.setdefault(seq, "the genesis entry (seq 0) does not verify")
    out.parties = {
        pid: rec for pid, rec in replay.state.parties.items() if rec.registered_seq not in out.problems
    }
    return out


def _crypto(
    usable: Mapping[int, Prepared], known: Mapping[str, bytes], out: Verdicts, *, check: SignatureChecker
) -> None:
    """Record every signature of ``usable`` that does not verify with the key its id names
    (an unknown key is left to the rules, which refuse it)."""
    checks = [
        SigCheck(seq, s.signer, s.key, p.statement_hash, p.signed_message, s.sig, known[s.key])
        for seq, p in usable.items()
        for s in p.signatures
        if s.key in known
    ]
    for c, good in zip(checks, check(checks), strict=True):
        if not good:
            out.problems.setdefault(c.seq, f"the signature by {c.signer} with key {c.key_id} does not verify")


def _feed(
    usable: Mapping[int, Prepared],
    out: Verdicts,
    replay: RegistryReplay,
    *,
    check: SignatureChecker,
    times: Mapping[int, str | None] | None = None,
) -> None:
    known: dict[str, bytes] = {}
    for p in usable.values():
        known.update(registry.embedded_keys(p))
    _crypto(usable, known, out, check=check)
    for seq, p in usable.items():
        if seq in out.problems:
            continue
        j = replay.feed(seq, p, time=times.get(seq) if times else None)
        if j.problem is not None:
            out.problems[seq] = j.problem
            continue
        out.signatures[seq] = len(p.signatures)
        if j.classified is not None:
            out.classified[seq] = j.classified


def _in_order(
    usable: Mapping[int, Prepared],
    out: Verdicts,
    *,
    log_key: str | None,
    check: SignatureChecker,
    times: Mapping[int, str | None],
) -> RegistryReplay:
    replay = RegistryReplay(log_key=log_key)
    _feed(usable, out, replay, check=check, times=times)
    return replay


def parties_to_prove(entries: Collection[ParsedEntry], *, registrar: str | None) -> set[str]:
    """The parties whose registry entries verifying ``entries`` needs: every signer and
    cosigner of them, and the registrar (whose key cosigns the registrations)."""
    out = {s.signer for e in entries if e.prepared is not None for s in e.prepared.signatures}
    if registrar:
        out.add(registrar)
    return out


def with_evidence(
    raw: Mapping[int, bytes],
    *,
    parse: Callable[[bytes], ParsedEntry],
    fetch: Callable[[set[str]], Mapping[int, bytes]],
    registrar: str | None,
    parties: Collection[str] = (),
    fetched: Collection[str] = (),
) -> dict[int, bytes]:
    """``raw`` with the registry entries of every party verifying them needs, and of
    ``parties`` (whose names are shown), fetched (``fetch(party ids)``, which may choose
    them from projections) until nothing more is needed; ``fetched``: parties already
    fetched. Registry entries are signed by their party and the registrar only, so this
    ends after a round or two."""
    out = dict(raw)
    asked = set(fetched)
    need = set(parties)
    new = list(out.values())
    while True:
        need |= parties_to_prove([parse(b) for b in new], registrar=registrar)
        missing = need - asked
        if not missing:
            return out
        asked |= missing
        got = {s: b for s, b in fetch(missing).items() if s not in out}
        out.update(got)
        new = list(got.values())
