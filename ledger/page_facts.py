"""What a consumer's page says about one code, assembled from the ledger: the product
(from its commissioning event's ``ilmd``), its customs clearance, the timeline of its
journey with party names and places, its recall status, the counterfeit signal of its
scans, and what "verified" means here — every journey entry's signatures and inclusion
proof checked against the latest checkpoint, and the witnesses that cosigned it.

Facts only, in plain JSON values; wording and languages belong to whoever renders them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy.engine import Connection

from ledger import merkle, registry, scans
from ledger.domain import normalise_term
from ledger.errors import LedgerError
from ledger.ids import parse_digital_link
from ledger.keys import key_id
from ledger.log import Ledger, verify_many
from ledger.note import Checkpoint, NoteVerifier
from ledger.product import names_of
from ledger.statements import prepare
from ledger.store import pagedb, tracedb
from ledger.store.db import Store
from ledger.trace import Step, journey_rows, normalise_code
from ledger.witness import CosignatureVerifier
from ledger.witnessing import Witnessing

_VERIFIED_CACHE = 20_000  # keys; a cold item adds about 20, shared entries stay


class VerificationCache:
    """A bounded LRU of verification work, each value keyed by everything it depends on:
    an entry's parse and its signature checks by the leaf hash of its bytes, its inclusion
    by (seq, leaf hash, checkpoint size and root), a checkpoint by its whole cosigned note
    and the keys that verified it, where a key was introduced by its key id. Altered bytes
    or a new checkpoint miss it; a hit only spares repeating a check already passed or
    failed on the same input. Many items share container events (a pallet's shipping is
    in every tin's journey), so most of a cold item's entries are checked already."""

    def __init__(self, size: int = _VERIFIED_CACHE) -> None:
        self.size = size
        self._d: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()  # the server answers from a thread pool

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._d[key] = value
            if len(self._d) > self.size:
                self._d.popitem(last=False)


def mask_number(number: str) -> str:
    """A document number with its middle hidden: ``TS20261127000123`` -> ``TS2026****0123``."""
    if len(number) <= 4:
        return "*" * len(number)
    if len(number) <= 10:
        return number[:2] + "****" + number[-2:]
    return number[:6] + "****" + number[-4:]


def product_names(value: object) -> dict[str, str]:
    """``gs1:productName`` as language -> text (``und`` for a plain string)."""
    out: dict[str, str] = {}
    for name in names_of(value):
        out.setdefault((name.language or "und").split("-")[0].lower(), name.value)
    return out


def _gln(location: str | None) -> str | None:
    if not location:
        return None
    try:
        link = parse_digital_link(location)
    except LedgerError:
        return None
    return link.gln if link.kind in ("location", "party") else None


def _doc_number(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _biz(body: Mapping[str, Any], type_: str) -> str | None:
    for b in body.get("bizTransactionList") or []:
        if isinstance(b, Mapping) and normalise_term(str(b.get("type") or "")) == type_:
            return str(b.get("bizTransaction"))
    return None


def _field(body: Mapping[str, Any], *names: str) -> str | None:
    ilmd = body.get("ilmd")
    if not isinstance(ilmd, Mapping):
        ilmd = {}
    for n in names:
        for where in (body, ilmd):
            v = where.get(n)
            if isinstance(v, str) and v:
                return v
    return None


def is_known(ledger: Ledger, code: str) -> bool:
    """Whether any event names ``code`` (then its journey is not empty)."""
    key = normalise_code(code)
    with ledger.store.reading() as conn:
        return bool(tracedb.seqs_naming(conn, [key]) or tracedb.lineage_seqs(conn, key, "lot"))


def _page_steps(conn: Connection, key: str, kind: str
                ) -> tuple[list[Step], dict[int, dict[str, Any]]]:
    """The journey, and for a lot also the commissioning events of its items: a lot's
    label leads to where its product was made even when no event names the lot itself.
    With the event rows of every step."""
    return journey_rows(conn, key, lot_items=kind == "lot")  # lot lineage starts at lots


def latest_note(ledger: Ledger) -> str:
    """The latest checkpoint with every cosignature gathered for it, in one read."""
    store = ledger.store
    with store.reading() as conn:
        return _note_in(conn, store)


def _note_in(conn: Connection, store: Store) -> str:
    head = store.head(conn)
    if head is None:
        return ""
    return head[2] + "".join(store.cosignature_lines(conn, head[0]))


def page_facts(ledger: Ledger, code: str, *, witnessing: Witnessing | None = None,
               cache: VerificationCache | None = None,
               scan: scans.Scan | None = None) -> dict[str, Any] | None:
    """Everything the consumer page shows about ``code``; None if the ledger holds
    nothing about it.

    The journey, its entries, the names of its parties and the latest cosigned
    checkpoint are read in one transaction, and every entry is verified from the bytes
    read now; a ``cache`` only spares repeating a check already made on the same bytes
    against the same checkpoint (see ``verify_journey``). With ``scan`` (region, client
    class, visitor) an item's scan is then recorded, given the journey just read, and the
    counterfeit signal shown is the one that write computed, this scan included.
    """
    key = normalise_code(code)
    got = _assemble(ledger, key, witnessing=witnessing, cache=cache)
    if got is None:
        return None
    facts, steps = got
    signal = None
    if facts["kind"] == "item":
        if scan is not None:
            signal = scans.record_scan(ledger.store, key, region=scan.region, client=scan.client,
                                       visitor=scan.visitor, journey=(steps, facts["soldAt"]))
        else:
            with ledger.store.reading() as conn:
                signal = scans.signal_in(conn, key, facts["soldAt"])
    return {**facts, "counterfeit": signal}


def _assemble(ledger: Ledger, key: str, *, witnessing: Witnessing | None,
              cache: VerificationCache | None) -> tuple[dict[str, Any], list[Step]] | None:
    store = ledger.store
    cache = cache if cache is not None else VerificationCache(64)
    link = parse_digital_link(key)
    with store.reading() as conn:
        steps, rows = _page_steps(conn, key, link.kind)
        if not steps:
            return None
        seqs = [s.seq for s in steps]
        sold_at = scans.first_sale(steps, rows)
        places = {s.seq: _gln(s.location) for s in steps}
        party_ids = {s.signer for s in steps} | {f"gln:{g}" for g in places.values() if g}
        # One statement for the entries' bytes (with those that introduced their signers'
        # keys last time, read ahead), the latest checkpoint and its cosignatures, the
        # log key and the names shown.
        ahead: set[int] = set()
        for signer in {s.signer for s in steps}:
            ahead.update(cache.get(("ahead", signer)) or ())
        got = pagedb.page_reads(conn, [*seqs, *ahead], party_ids)
        raw = {s: got.entries[s] for s in seqs if s in got.entries}
        parsed = {s: _parse(cache, e) for s, e in raw.items()}
        kids = {k for p in parsed.values() for k, _, _ in p.sigs
                if cache.get(("intro", k)) is None}
        keys = store.load_registry(conn, key_ids=kids, party_ids=()).keys if kids else {}
        verification, introducers = _verify_in(
            conn, store, seqs, raw, parsed, keys, log_key=got.meta.get("log_key"),
            note=got.note, ahead=got.entries, witnessing=witnessing, cache=cache)
    for signer in {s.signer for s in steps}:
        cache.put(("ahead", signer), tuple(sorted(introducers)))
    bodies = {s: p.body for s, p in parsed.items()}
    names = got.names

    def party(pid: str) -> dict[str, Any]:
        return {"id": pid, "name": names.get(pid)}

    def place(seq: int) -> dict[str, Any] | None:
        g = places[seq]
        return None if g is None else {"gln": g, "name": names.get(f"gln:{g}")}

    product = _product(link.lot, steps, bodies, party)
    clearance = _clearance(steps, bodies, party)
    if product["origin"] is None and clearance is not None:
        product["origin"] = clearance.pop("origin", None)
    elif clearance is not None:
        clearance.pop("origin", None)
    timeline = [{"seq": s.seq, "eventTime": s.event_time, "stage": s.stage,
                 "activity": s.activity, "disposition": rows[s.seq]["disposition"],
                 "bizStep": normalise_term(s.biz_step) if s.biz_step else None,
                 "signer": party(s.signer), "place": place(s.seq), "via": s.via}
                for s in steps]
    recalls = []
    for s in steps:
        if s.stage == "recall":
            r = bodies[s.seq].get("cbec:recall")
            reason = r.get("reason") if isinstance(r, Mapping) else None
            recalls.append({"seq": s.seq, "eventTime": s.event_time, "by": party(s.signer),
                            "reason": reason})
    return {
        "code": key,
        "kind": link.kind,
        "product": product,
        "clearance": clearance,
        "timeline": timeline,
        "recall": {"recalled": bool(recalls), "recalls": recalls},
        "soldAt": sold_at,
        "verification": verification,
    }, steps


def _product(lot: str | None, steps: Sequence[Step], bodies: Mapping[int, Any],
             party: Any) -> dict[str, Any]:
    made = None
    for s in steps:  # the commissioning that carries master data, else the first production
        b = bodies[s.seq]
        if s.stage == "production" and s.activity == "commissioning" and b.get("ilmd"):
            made = s
            break
    if made is None:
        made = next((s for s in steps if s.stage == "production"), None)
    body = bodies[made.seq] if made else {}
    ilmd = body.get("ilmd")
    if not isinstance(ilmd, Mapping):
        ilmd = {}
    return {
        "names": product_names(ilmd.get("gs1:productName")),
        "producer": party(made.signer) if made else None,
        "origin": _field(body, "cbvmda:countryOfOrigin", "cbec:countryOfOrigin"),
        "lot": lot or _field(body, "cbvmda:lotNumber"),
        "productionDate": made.event_time if made else None,
        "expiryDate": _field(body, "cbvmda:itemExpirationDate"),
        "hsCode": _field(body, "cbec:hsCode"),
    }


def _clearance(steps: Sequence[Step], bodies: Mapping[int, Any], party: Any
               ) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    fallback: str | None = None
    for s in steps:
        b = bodies[s.seq]
        proc = _field(b, "cbec:customsProcedure")
        if s.stage != "clearance":
            fallback = fallback or proc  # an order or shipment may name it too
            continue
        if proc:
            out["procedure"] = proc
        decl = _biz(b, "cbec:declaration")
        if decl:
            out.setdefault("declaration", mask_number(_doc_number(decl)))
        origin = _field(b, "cbec:countryOfOrigin")
        if origin:
            out.setdefault("origin", origin)
        if s.activity == "declaration":
            out.setdefault("declaredAt", s.event_time)
            out.setdefault("declarant", party(s.signer))
        elif s.activity == "release":
            out["releasedAt"] = s.event_time
            out["releasedBy"] = party(s.signer)
        elif s.activity == "inspection":
            out["inspection"] = normalise_term(str(b.get("disposition") or "")) or None
        elif s.activity == "hold":
            out["heldAt"] = s.event_time
    if not out and fallback is None:
        return None
    if out.get("procedure") is None:
        out["procedure"] = fallback
    for k in ("procedure", "declaration", "declaredAt", "releasedAt"):
        out.setdefault(k, None)
    return out


def verify_journey(ledger: Ledger, seqs: Sequence[int], *, witnessing: Witnessing | None,
                   cache: VerificationCache | None = None) -> dict[str, Any]:
    """Check every entry's signatures and inclusion proof against the latest (cosigned)
    checkpoint, with the log's own key, and count the configured witnesses that cosigned.

    What ``verify_bundle`` checks for a bundle of these entries, read in one transaction
    with one read of tree nodes for all the proofs. A ``cache`` keeps each entry's checks
    keyed by the leaf hash of its bytes as read now (and the checkpoint's size and root
    for its inclusion proof), so altered bytes always miss it and are checked afresh.
    """
    store = ledger.store
    cache = cache if cache is not None else VerificationCache(64)
    wanted = sorted(set(seqs))
    with store.reading() as conn:
        raw = store.entries_by_seq(conn, wanted)
        parsed = {s: _parse(cache, e) for s, e in raw.items()}
        kids = {k for p in parsed.values() for k, _, _ in p.sigs
                if cache.get(("intro", k)) is None}
        reg = store.load_registry(conn, key_ids=kids, party_ids=())
        return _verify_in(conn, store, wanted, raw, parsed, reg.keys, log_key=reg.log_key,
                          note=_note_in(conn, store), ahead={}, witnessing=witnessing,
                          cache=cache)[0]


class _Parsed(NamedTuple):
    """What verification needs from an entry's bytes (a function of them alone)."""

    seq: object  # the seq the bytes claim
    sigs: tuple[tuple[str, str, bytes], ...]  # (key id, signer, signature)
    message: bytes
    embedded: dict[str, tuple[str, bytes]]  # key id -> (owner, public key) it introduces
    body: Mapping[str, Any]
    error: str | None


def _parse(cache: VerificationCache, raw: bytes) -> _Parsed:
    leaf = merkle.leaf_hash(raw)
    hit = cache.get(("parsed", leaf))
    if hit is not None:
        return cast(_Parsed, hit)
    try:
        entry = orjson.loads(raw)
        p = prepare(entry["envelope"])
        owner = p.body["registrar"]["id"] if p.kind == "genesis" else p.signer
        embedded = {kid: (owner, pk) for kid, pk in registry.embedded_keys(p).items()}
        out = _Parsed(entry.get("seq"), tuple((s.key, s.signer, s.sig) for s in p.signatures),
                      p.signed_message, embedded, p.body, None)
    except (LedgerError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        msg = e.message if isinstance(e, LedgerError) else "entry is not JSON of an envelope"
        out = _Parsed(None, (), b"", {}, {}, msg)
    cache.put(("parsed", leaf), out)
    return out


def _verify_in(conn: Connection, store: Store, seqs: Sequence[int], raw: dict[int, bytes],
               parsed: dict[int, _Parsed], key_records: Mapping[str, registry.KeyRecord], *,
               log_key: str | None, note: str, ahead: Mapping[int, bytes],
               witnessing: Witnessing | None, cache: VerificationCache
               ) -> tuple[dict[str, Any], set[int]]:
    """The verification of the entries ``raw`` at ``seqs`` against ``note``, the latest
    checkpoint read in the same transaction, and the seqs of the entries that introduced
    their keys (read from ``ahead`` when there, else now)."""
    wanted = sorted(set(seqs))
    ws = witnessing.witnesses if witnessing else ()
    quorum = witnessing.quorum if witnessing else 0
    problems: list[str] = []
    for kid, rec in key_records.items():
        cache.put(("intro", kid), rec.valid_from)  # where a key was introduced never changes
    raw, parsed = dict(raw), dict(parsed)
    # The entries that introduced each signing key, and in turn the keys that signed those,
    # as make_bundle gathers them.
    todo = list(parsed)
    while todo:
        need: set[int] = set()
        unknown: set[str] = set()
        frontier = [kid for s in todo for kid, _, _ in parsed[s].sigs]
        while frontier:
            kid = frontier.pop()
            intro = cache.get(("intro", kid))
            if intro is None:
                unknown.add(kid)
            elif intro not in raw and intro not in need:
                need.add(int(intro))
                # Read ahead the entries that introduced the keys this one was signed with
                # last time; the next round checks what its bytes say now.
                frontier.extend(cache.get(("hint", intro)) or ())
        if unknown:
            for kid, rec in store.load_registry(conn, key_ids=unknown, party_ids=()).keys.items():
                cache.put(("intro", kid), rec.valid_from)
                if rec.valid_from not in raw:
                    need.add(rec.valid_from)
        got = {q: ahead[q] for q in need if q in ahead}
        if len(got) < len(need):
            got.update(store.entries_by_seq(conn, need - got.keys()))
        raw.update(got)
        for s, e in got.items():
            parsed[s] = _parse(cache, e)
            cache.put(("hint", s), tuple(kid for kid, _, _ in parsed[s].sigs))
        todo = list(got)
    introducers = set(raw) - set(wanted)
    cp, cosigned = _checkpoint(cache, log_key, note, [w.key for w in ws])
    if cp is None:
        problems.append(f"checkpoint: {cosigned[0] if cosigned else 'the ledger has none'}")
        return _verification(wanted, set(), 0, None, problems, [], ws, quorum), introducers
    leaves = {s: merkle.leaf_hash(e) for s, e in raw.items()}
    included: dict[int, str | None] = {}
    for s in raw:
        hit = cache.get(("included", s, leaves[s], cp.size, cp.root))
        if hit is not None:
            included[s] = hit[0]
    todo = [s for s in raw if s not in included and 0 <= s < cp.size]
    # One read of tree nodes for every proof still to check.
    proofs = merkle.inclusion_proofs(todo, cp.size,
                                     lambda ids: store.fetch_nodes(conn, ids)) if todo else {}
    for s in todo:
        why: str | None = None
        try:
            merkle.verify_inclusion(leaf=leaves[s], index=s, size=cp.size, proof=proofs[s],
                                    root=cp.root)
        except LedgerError as e:
            why = e.message
        included[s] = why
        cache.put(("included", s, leaves[s], cp.size, cp.root), (why,))
    failed: set[int] = set()
    keys: dict[str, tuple[str, bytes]] = {}
    for s in sorted(raw):
        p = parsed[s]
        why = (f"there is no entry at seq {s} (the ledger has {cp.size})" if s not in included
               else included[s] or p.error)
        if why is None and p.seq != s:
            why = f"entry bytes say seq {p.seq}"
        if why is not None:
            problems.append(f"seq {s}: {why}")
            failed.add(s)
            continue
        keys.update(p.embedded)
    for s in wanted:
        if s not in raw:
            problems.append(f"seq {s}: there is no entry at seq {s} (the ledger has {cp.size})")
    jobs: list[tuple[int, bytes, bytes, bytes]] = []
    who: list[tuple[int, str, tuple[Any, ...]]] = []
    for s in sorted(raw):
        if s in failed:
            continue
        p = parsed[s]
        for kid, signer, sig in p.sigs:
            known = keys.get(kid)
            if known is None or known[0] != signer or key_id(known[1]) != kid:
                problems.append(f"seq {s}: key {kid} of {signer} is not introduced "
                                "by any entry in the bundle")
                failed.add(s)
                continue
            ck = ("signed", leaves[s], kid, known[1], sig)
            good = cache.get(ck)
            if good is None:
                who.append((s, signer, ck))
                jobs.append((len(jobs), p.message, sig, known[1]))
            elif not good[0]:
                failed.add(s)
                problems.append(f"seq {s}: the signature by {signer} does not verify")
    bad = set(verify_many(jobs))
    for n, (s, signer, ck) in enumerate(who):
        cache.put(ck, (n not in bad,))
        if n in bad:
            failed.add(s)
            problems.append(f"seq {s}: the signature by {signer} does not verify")
    ok = {s for s in wanted if s in raw and s not in failed}
    signatures = sum(len(parsed[s].sigs) for s in ok)
    return _verification(wanted, ok, signatures, cp, problems, cosigned, ws, quorum), introducers


def _checkpoint(cache: VerificationCache, log_key: str | None, note: str,
                witness_keys: list[str]) -> tuple[Checkpoint | None, list[str]]:
    """The checkpoint of ``note`` verified with the log key, and the names of the witnesses
    whose cosignatures on it verify; (None, [why]) when it does not verify."""
    ck = ("checkpoint", log_key, note, tuple(witness_keys))
    hit = cache.get(ck)
    if hit is not None:
        return cast(tuple[Checkpoint | None, list[str]], hit)
    out: tuple[Checkpoint | None, list[str]]
    try:
        if not log_key:
            raise LedgerError("the ledger has no genesis entry; run `suyuan init` first")
        cp = Checkpoint.parse(NoteVerifier.from_vkey(log_key).verify(note))
        names = []
        for wk in witness_keys:
            try:
                w = CosignatureVerifier.from_vkey(wk)
                w.verify(note)
                names.append(w.name)
            except LedgerError:
                continue
        out = (cp, names)
    except LedgerError as e:
        out = (None, [e.message])
    cache.put(ck, out)
    return out


def _verification(wanted: list[int], ok: set[int], signatures: int, cp: Checkpoint | None,
                  problems: list[str], cosigned: list[str], ws: Sequence[Any],
                  quorum: int) -> dict[str, Any]:
    if cp is None:
        cosigned = []
    return {
        "entries": len(wanted),
        "entriesVerified": len(ok),
        "signatures": signatures,
        "checkpoint": cp.size if cp else None,
        "origin": cp.origin if cp else None,
        "witnesses": {"cosigned": len(cosigned), "of": len(ws), "quorum": quorum,
                      "names": list(cosigned)},
        "witnessed": bool(ws) and len(cosigned) >= quorum,
        "verified": not problems and cp is not None and set(wanted) <= ok,
        "problems": problems,
    }


def check_digit_error(path: str) -> dict[str, str] | None:
    """For a Digital Link path whose GTIN (/01/) or SSCC (/00/) fails its check digit:
    the key, the value as given, the digit given and the digit expected."""
    from ledger.ids import gs1_check_digit

    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("01", "00"):
        return None
    what, value = ("GTIN", parts[1]) if parts[0] == "01" else ("SSCC", parts[1])
    lengths = (8, 12, 13, 14) if what == "GTIN" else (18,)
    if not (value.isascii() and value.isdigit()) or len(value) not in lengths:
        return None
    expected = gs1_check_digit(value[:-1])
    if value[-1] == expected:
        return None
    return {"key": what, "value": value, "given": value[-1], "expected": expected}
