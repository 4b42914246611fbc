"""What a consumer's page says about one code, assembled from the ledger: the product
(from its commissioning event's ``ilmd``), its customs clearance, the timeline of its
journey with party names and places, its recall status, the counterfeit signal of its
scans, and what "verified" means here — every journey entry included in the latest
checkpoint (verified with the pinned log key) and signed with a key its signer held at its
seq, as the genesis and the signers' registry entries (each included too) say, under the
registry's rules (``ledger.log.verifier``); and the witnesses that cosigned the checkpoint.

Every fact shown comes from entry bytes verified in the same request; the projections only
choose which entries to read. Facts only, in plain JSON values; wording and languages
belong to whoever renders them.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy.engine import Connection

from ledger.compliance import brands
from ledger.core import merkle
from ledger.core.errors import LedgerError
from ledger.core.ids import DigitalLink, index_key, parse_digital_link
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.core.statements import Prepared
from ledger.epcis import masterdata
from ledger.epcis.product import names_of
from ledger.epcis.projection import normalise_code
from ledger.epcis.stages import normalise_term
from ledger.log import verifier
from ledger.log.cosigner import CosignatureVerifier
from ledger.log.sequencer import Ledger
from ledger.log.verifier import PinnedKey
from ledger.log.witnesses import Witnessing
from ledger.queries import scans, verified_cache
from ledger.queries.trace import Step, journey_rows
from ledger.store import pagedb, tracedb
from ledger.store.db import Store
from ledger.store.scansdb import Visit

_VERIFIED_CACHE = 20_000  # keys; a cold item adds about 25, shared entries stay


class VerificationCache:
    """A bounded LRU of verification work, each value keyed by everything it depends on:
    an entry's parse by the leaf hash of its bytes, a signature by (statement hash, public
    key, signature), an inclusion by (seq, leaf hash, checkpoint size and root), a
    checkpoint by its whole cosigned note, the log key and the witness keys, a replay of
    key statements by the log key and the exact (seq, envelope) it replayed, and an
    event's verdict by that replay and the event's (seq, envelope). Never a row of a
    projection: altered bytes or a new checkpoint miss it; a hit only spares repeating a
    check already passed or failed on the same input. Many items share container events
    (a pallet's shipping is in every tin's journey) and parties (the genesis and their
    registrations), so most of a cold item's entries are checked already. Also the
    ``verifier.Replays`` store of ``verify_entries``."""

    def __init__(self, size: int = _VERIFIED_CACHE) -> None:
        self.size = size
        # The nodes of recent checkpoints' trees that verified paths went through
        # (``verified_cache.ProvenTree``): siblings a cold entry's path need not read.
        self.trees = verified_cache.ProvenTrees()
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


@functools.lru_cache(maxsize=1 << 14)
def _gln(location: str | None) -> str | None:
    # A function of the text, kept: a page names the same few places many times.
    if not location:
        return None
    try:
        link = parse_digital_link(location)
    except LedgerError:
        return None
    return link.gln if link.kind in ("location", "party") else None


class _Code(NamedTuple):
    link: DigitalLink
    product: str | None  # the product class whose master data describes it


@functools.lru_cache(maxsize=1 << 10)
def _code(key: str) -> _Code:
    # A function of the text, kept: a request reads the same code's parts several times.
    return _of_link(parse_digital_link(key))


def _of_link(link: DigitalLink) -> _Code:
    return _Code(link, masterdata.class_of(link))


def _keyed(code: str, link: DigitalLink | None = None) -> tuple[str, _Code]:
    """``normalise_code(code)`` and the parts of that key, parsing ``code`` once, and not
    at all when ``link`` is its parse (the resolver has it): a code that is its own key
    (the canonical Digital Link of an item without its lot) is not parsed again."""
    if link is None or link.canonical != code:
        try:
            link = parse_digital_link(code)
        except LedgerError:
            key = normalise_code(code)
            return key, _code(key)
    if link.canonical == code and not (link.kind == "item" and link.lot is not None):
        return code, _of_link(link)
    key = normalise_code(code)
    return key, _code(key)


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
        return bool(tracedb.seqs_naming(conn, [key]) or tracedb.lineage_seqs(conn, key, kind="lot"))


def _page_steps(conn: Connection, key: str, kind: str) -> tuple[list[Step], dict[int, dict[str, Any]]]:
    """The journey, and for a lot also the commissioning events of its items: a lot's
    label leads to where its product was made even when no event names the lot itself.
    With the event rows of every step."""
    return journey_rows(conn, key, lot_items=kind == "lot")  # lot lineage starts at lots


def _note_in(conn: Connection, store: Store) -> str:
    head = store.head(conn)
    if head is None:
        return ""
    return head.note + "".join(store.cosignature_lines(conn, head.size))


def page_facts(
    ledger: Ledger,
    code: str,
    *,
    witnessing: Witnessing | None = None,
    cache: VerificationCache | None = None,
    scan: scans.Scan | None = None,
    scans_to: scans.ScanWriter | None = None,
    link: DigitalLink | None = None,
) -> dict[str, Any] | None:
    """Everything the consumer page shows about ``code``; None if the ledger holds
    nothing about it. ``link``: ``code`` parsed already, if the caller has it.

    The journey, its entries, the names of its parties and the latest cosigned
    checkpoint are read in one transaction, and every entry is verified from the bytes
    read now; a ``cache`` only spares repeating a check already made on the same bytes
    against the same checkpoint (see ``verify_journey``). With ``scan`` (region, client
    class, visitor) an item's scan is then recorded, given the journey just read, and the
    counterfeit signal shown is the one that write computed, this scan included; with
    ``scans_to`` the scan is queued there instead, and the signal shown counts the scans
    stored (read in this request's transaction), those still queued and this one.
    """
    key, parts = _keyed(code, link)
    queued = scan is not None and scans_to is not None
    got = _assemble(ledger, key, parts, witnessing=witnessing, cache=cache, visits=queued)
    if got is None:
        return None
    facts, steps, visits = got
    signal = None
    if facts["kind"] == "item":
        if scan is not None and scans_to is not None:
            if visits is None:  # read with the rest whenever asked; here as a fallback
                with ledger.store.reading() as conn:
                    visits = scans.visits_in(conn, key)
            signal = scans_to.record(key, scan, journey=(steps, facts["soldAt"]), visits=visits)
        elif scan is not None:
            signal = scans.record_scan(
                ledger.store,
                key,
                region=scan.region,
                client=scan.client,
                visitor=scan.visitor,
                journey=(steps, facts["soldAt"]),
            )
        else:
            with ledger.store.reading() as conn:
                signal = scans.signal_in(conn, key, facts["soldAt"])
    return {**facts, "counterfeit": signal}


def _assemble(
    ledger: Ledger,
    key: str,
    parts: _Code,
    *,
    witnessing: Witnessing | None,
    cache: VerificationCache | None,
    visits: bool = False,
) -> tuple[dict[str, Any], list[Step], list[Visit] | None] | None:
    store = ledger.store
    cache = cache if cache is not None else VerificationCache(64)
    link, product = parts
    with store.reading() as conn:
        steps, rows = _page_steps(conn, key, link.kind)
        if not steps:
            return None
        seqs = sorted({s.seq for s in steps})
        pin = ledger.pinned_key(conn)
        registrar = pin.genesis.registrar if pin.genesis else None
        # Which registry entries to read (each signer's and each place's party, and the
        # registrar's) and which master data (of each place and of the product) the
        # projections choose; what the page believes, the bytes decide.
        chosen = {s.signer for s in steps} | {f"gln:{g}" for s in steps if (g := _gln(s.location))}
        if registrar:
            chosen.add(registrar)
        codes = {c for s in steps if rows[s.seq].get("rank") != 4 for c in masterdata.place_codes(s.location)}
        if product:
            codes.add(product)
        # One statement for the entries' bytes, the genesis, those registry entries, the
        # master data in force with its signers' registry entries, and the latest
        # checkpoint with its cosignatures.
        prefixes = brands.prefix_candidates(link.gtin) if product and link.gtin else []
        # With them, the stored tree nodes the inclusion checks of the journey's entries
        # will read, in the tree of the checkpoint this snapshot holds (the one verified
        # below, unless the table was edited: then the check reads what it misses), and
        # the item's scans for its counterfeit signal.
        head = store.pinned_head()
        ahead: set[merkle.NodeId] = set()
        if head is not None:
            tree = cache.trees.peek(head.size, head.root) or verified_cache.ProvenTree(head.size, head.root)
            ahead = tree.wanted([*seqs, 0])
        got = pagedb.page_reads(
            conn,
            [*seqs, 0],
            party_ids=chosen,
            codes=codes,
            prefixes=prefixes,
            nodes=ahead,
            visits_of=(key, "bot") if visits and link.kind == "item" else None,
        )
        parse = _Parses(cache)
        entries, found = dict(got.entries), dict(got.described)
        # A product described by a delegate of its prefix's holder: the delegations to it
        # (the bytes say to whom) are the evidence of its right.
        delegate = found.get(product or "", (0, ""))[1]
        for q, b in got.delegations.items():
            given = parse(b).prepared
            if given is not None and given.body.get("to") == delegate:
                entries.setdefault(q, b)
        # The places the entries' bytes name, where the events index named others (only
        # an index edited outside the ledger does): their master data is read now.
        named = {
            c
            for q in seqs
            if q in entries and rows[q].get("rank") != 4 and (read := parse(entries[q]).codes) is not None
            for c in masterdata.place_codes(read.biz_location or read.read_point)
        }
        if named - codes:
            more, also = pagedb.master_data_reads(conn, named - codes)
            entries.update({q: b for q, b in more.items() if q not in entries})
            found.update(also)
        described = [(seq, code) for code, (seq, _) in found.items()]
        raw = verifier.with_evidence(
            entries,
            parse=parse,
            registrar=registrar,
            fetch=lambda ids: pagedb.evidence_entries(conn, ids),
            fetched=chosen | {who for _, who in found.values()},
            parties=_place_parties(parse(entries[q]) for q in seqs if q in entries),
        )
        verification, verdicts, parsed = _verify_in(
            conn,
            store,
            seqs,
            raw,
            pin=pin,
            note=got.note,
            witnessing=witnessing,
            parse=parse,
            described=described,
            nodes=got.nodes,
        )
    # Every fact shown comes from bytes that verified, read now: what each step did, when
    # and where (its body, its stage judged with the roles of its signer's verified
    # registration), the names of parties (their verified registrations) and of places
    # and the product (master data verified to be signed by the owner of the identifier).
    # An entry that does not verify shows nothing; the verification names it.
    by_seq = {s.seq: s for s in steps}
    shown: list[Step] = []
    bodies: dict[int, Mapping[str, Any]] = {}
    facts_of: dict[int, dict[str, Any]] = {}
    for q in seqs:
        pe = parsed.get(q)
        if not verdicts.ok(q) or pe is None or pe.codes is None or pe.prepared is None:
            continue
        c, cl = pe.codes, verdicts.classified[q]
        shown.append(
            Step(
                q,
                c.event_time,
                c.event_time_utc,
                cl.stage,
                cl.activity,
                c.biz_step,
                pe.prepared.signer,
                c.biz_location or c.read_point,
                by_seq[q].via,
            )
        )
        bodies[q] = pe.prepared.body
        facts_of[q] = {
            "disposition": c.disposition,
            "activity": cl.activity,
            "event_time_utc": c.event_time_utc,
        }
    shown.sort(key=lambda s: (s.event_time_utc, s.seq))
    # A lot's page reads its items' customs releases to count them, not to list them.
    counted = [s for s in shown if rows[s.seq].get("rank") == 4]
    listed = [s for s in shown if rows[s.seq].get("rank") != 4]
    sold_at = scans.first_sale(listed, facts_of)
    records = verdicts.parties
    master: dict[str, masterdata.MasterData] = {}
    for q, code in described:
        pe = parsed.get(q)
        if verdicts.ok(q) and pe is not None and pe.prepared is not None:
            md = _described(cache, pe.prepared)
            if md.code == code:  # else the index is wrong (the verification says so)
                master[code] = md

    def party(pid: str) -> dict[str, Any]:
        rec = records.get(pid)
        return {"id": pid, "name": rec.name if rec else None, "nameEn": rec.name_en if rec else None}

    product_facts = _product(link.lot, listed, bodies, party)
    about = master.get(product) if product else None
    product_facts["masterData"] = about.as_dict() if about else None
    if about is not None:
        product_facts["names"] = product_facts["names"] or dict(about.names)
        product_facts["origin"] = product_facts["origin"] or about.country
    clearance = _clearance(listed, bodies, party)
    if product_facts["origin"] is None and clearance is not None:
        product_facts["origin"] = clearance.pop("origin", None)
    elif clearance is not None:
        clearance.pop("origin", None)
    if link.kind == "lot":

        def epcs(q: int) -> frozenset[str]:
            pe = parsed[q]
            assert pe.prepared is not None  # a step shown verified
            return _epcs(cache, pe.prepared)

        clearance = _lot_releases(clearance, listed, counted, bodies, rows, epcs)
    timeline = [
        {
            "seq": s.seq,
            "eventTime": s.event_time,
            "stage": s.stage,
            "activity": s.activity,
            "disposition": facts_of[s.seq]["disposition"],
            "bizStep": normalise_term(s.biz_step) if s.biz_step else None,
            "documents": _documents(bodies[s.seq]),
            "signer": party(s.signer),
            "place": _place(s.location, master, party),
            "via": s.via,
        }
        for s in listed
    ]
    recalls = []
    for s in listed:
        if s.stage == "recall":
            r = bodies[s.seq].get("cbec:recall")
            reason = masterdata.texts(r.get("reason")) if isinstance(r, Mapping) else {}
            recalls.append(
                {"seq": s.seq, "eventTime": s.event_time, "by": party(s.signer), "reason": reason or None}
            )
    return (
        {
            "code": key,
            "kind": link.kind,
            "product": product_facts,
            "clearance": clearance,
            "timeline": timeline,
            "recall": {"recalled": bool(recalls), "recalls": recalls},
            "soldAt": sold_at,
            "verification": verification,
        },
        listed,
        got.visits,
    )


def _described(cache: VerificationCache, p: Prepared) -> masterdata.MasterData:
    """What a master-data statement says, kept by its statement hash (a function of it)."""
    hit = cache.get(("described", p.statement_hash))
    if hit is None:
        hit = masterdata.describe(p.body)
        cache.put(("described", p.statement_hash), hit)
    return cast(masterdata.MasterData, hit)


def _place(
    location: str | None, master: Mapping[str, masterdata.MasterData], party: Any
) -> dict[str, Any] | None:
    """A step's place: its GLN, the names, city and country its verified master data
    give (the exact location's, else its GLN's), and the name of the party whose id is
    that GLN, if one is registered."""
    g = _gln(location)
    if g is None:
        return None
    md = next((master[c] for c in masterdata.place_codes(location) if c in master), None)
    return {
        "gln": g,
        "name": party(f"gln:{g}")["name"],
        "nameEn": party(f"gln:{g}")["nameEn"],
        "names": dict(md.names) if md else {},
        "city": dict(md.city) if md else {},
        "country": md.country if md else None,
    }


def _documents(body: Mapping[str, Any]) -> list[str]:
    """The types of the business documents an event cites (po, cbec:order …), normalised."""
    out = []
    for b in body.get("bizTransactionList") or []:
        if isinstance(b, Mapping) and isinstance(b.get("type"), str):
            out.append(normalise_term(b["type"]))
    return out


def _epcs(cache: VerificationCache, p: Prepared) -> frozenset[str]:
    """The codes of an event's epcList, as indexed; kept by its statement hash (a function
    of it: a lot's page reads the same hundreds of events again)."""
    hit = cache.get(("epcs", p.statement_hash))
    if hit is None:
        out = set()
        for c in p.body.get("epcList") or []:
            if isinstance(c, str):
                try:
                    out.add(index_key(c))
                except LedgerError:
                    continue
        hit = frozenset(out)
        cache.put(("epcs", p.statement_hash), hit)
    return cast(frozenset[str], hit)


def _lot_releases(
    clearance: dict[str, Any] | None,
    listed: Sequence[Step],
    counted: Sequence[Step],
    bodies: Mapping[int, Any],
    rows: Mapping[int, Mapping[str, Any]],
    epcs: Callable[[int], frozenset[str]],
) -> dict[str, Any] | None:
    """A lot's clearance: how many of its items (those its items' commissioning events
    name) customs released, by the verified release events of those items."""
    items: set[str] = set()
    for s in listed:
        if rows[s.seq].get("rank") == 3 and s.stage == "production":
            items |= epcs(s.seq)
    released: set[str] = set()
    last: str | None = None
    procedure: str | None = None
    for s in [*listed, *counted]:
        if s.stage == "clearance" and s.activity == "release":
            hit = epcs(s.seq) & items
            if hit:
                released |= hit
                last = max(last or "", s.event_time_utc)
                procedure = procedure or _field(bodies[s.seq], "cbec:customsProcedure")
    if not items and clearance is None:
        return None
    out: dict[str, Any] = (
        clearance
        if clearance is not None
        else {"procedure": None, "declaration": None, "declaredAt": None, "releasedAt": None}
    )
    out["procedure"] = out["procedure"] or procedure
    out["items"] = len(items)
    out["itemsReleased"] = len(released)
    out["lastReleasedUtc"] = last
    return out


def _place_parties(parsed: Iterable[verifier.ParsedEntry]) -> set[str]:
    """The parties of the places these events name (their names are shown)."""
    out = set()
    for pe in parsed:
        if pe.codes is not None:
            g = _gln(pe.codes.biz_location or pe.codes.read_point)
            if g:
                out.add(f"gln:{g}")
    return out


def _product(lot: str | None, steps: Sequence[Step], bodies: Mapping[int, Any], party: Any) -> dict[str, Any]:
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


def _clearance(steps: Sequence[Step], bodies: Mapping[int, Any], party: Any) -> dict[str, Any] | None:
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


def verify_journey(
    ledger: Ledger,
    seqs: Sequence[int],
    *,
    witnessing: Witnessing | None,
    cache: VerificationCache | None = None,
) -> dict[str, Any]:
    """Check every entry against the latest (cosigned) checkpoint, verified with the pinned
    log key, as the page does: its inclusion, and its signatures under the registry's rules
    replayed from the genesis and the registry entries of its signers (each included too);
    and count the configured witnesses that cosigned.

    What ``verify_bundle`` checks for a bundle of these entries. A ``cache`` keeps each
    check keyed by everything it depends on (see ``VerificationCache``)."""
    store = ledger.store
    parse = _Parses(cache if cache is not None else VerificationCache(64))
    wanted = sorted(set(seqs))
    with store.reading() as conn:
        pin = ledger.pinned_key(conn)
        registrar = pin.genesis.registrar if pin.genesis else None
        raw = verifier.with_evidence(
            store.entries_by_seq(conn, [*wanted, 0]),
            parse=parse,
            fetch=lambda ids: pagedb.evidence_entries(conn, ids),
            registrar=registrar,
        )
        return _verify_in(
            conn, store, wanted, raw, pin=pin, note=_note_in(conn, store), witnessing=witnessing, parse=parse
        )[0]


class _Parses:
    """One request's leaf hashes and parses of entry bytes, each computed once; the cache
    spares the parse across requests (it is a function of the bytes alone)."""

    def __init__(self, cache: VerificationCache) -> None:
        self.cache = cache
        self._got: dict[bytes, tuple[bytes, verifier.ParsedEntry]] = {}

    def leaf(self, raw: bytes) -> bytes:
        return self._of(raw)[0]

    def __call__(self, raw: bytes) -> verifier.ParsedEntry:
        return self._of(raw)[1]

    def _of(self, raw: bytes) -> tuple[bytes, verifier.ParsedEntry]:
        got = self._got.get(raw)
        if got is None:
            leaf = merkle.leaf_hash(raw)
            parsed = self.cache.get(("parsed", leaf))
            if parsed is None:
                parsed = verifier.parse_entry(raw)
                self.cache.put(("parsed", leaf), parsed)
            got = self._got[raw] = (leaf, cast(verifier.ParsedEntry, parsed))
        return got


def _verify_in(
    conn: Connection,
    store: Store,
    seqs: Sequence[int],
    raw: Mapping[int, bytes],
    *,
    pin: PinnedKey,
    note: str,
    witnessing: Witnessing | None,
    parse: _Parses,
    described: Sequence[tuple[int, str]] = (),
    nodes: Mapping[merkle.NodeId, bytes] | None = None,
) -> tuple[dict[str, Any], verifier.Verdicts, dict[int, verifier.ParsedEntry]]:
    """The verification of the entries at ``seqs`` (events) and of the master data the
    index points at (``described``: (seq, the code it must describe)), with the evidence in
    ``raw``, read in the same transaction, against ``note``, the latest checkpoint; and the
    verdicts and parsed bytes of every entry read. ``nodes``: stored tree nodes read
    already in this transaction (the others a check needs are read here)."""
    wanted = sorted(set(seqs) | {q for q, _ in described})
    ws = witnessing.witnesses if witnessing else ()
    quorum = witnessing.quorum if witnessing else 0
    cache = parse.cache
    problems = [f"log key: {pin.problem}"] if pin.problem else []
    parsed = {s: parse(e) for s, e in raw.items()}
    cp, cosigned = _checkpoint(cache, pin.key, note, [w.key for w in ws])
    if cp is None:
        problems.append(f"checkpoint: {cosigned[0] if cosigned else 'the ledger has none'}")
        return (
            _verification(wanted, verifier.Verdicts(), None, problems, [], ws, quorum),
            verifier.Verdicts(),
            parsed,
        )
    leaves = {s: parse.leaf(e) for s, e in raw.items()}
    unusable: dict[int, str] = {}
    for s in wanted:
        if s not in raw:
            unusable[s] = f"there is no entry at seq {s} (the ledger has {cp.size})"
    included: dict[int, str | None] = {}
    for s in raw:
        hit = cache.get(("included", s, leaves[s], cp.size, cp.root))
        if hit is not None:
            included[s] = hit[0]
        elif not 0 <= s < cp.size:
            unusable[s] = f"seq {s} lies beyond the checkpoint's {cp.size} entries"
    todo = {s: leaves[s] for s in raw if s not in included and s not in unusable}
    # Every path still to check, from the leaf hashes of the bytes read now up to this
    # checkpoint's root; the siblings this tree has proven already are not read again,
    # the others in one read of tree nodes.
    if todo:
        for s, why in verified_cache.check_inclusion(
            todo,
            size=cp.size,
            root=cp.root,
            fetch=lambda ids: _nodes(conn, store, ids, nodes or {}),
            trees=cache.trees,
        ).items():
            included[s] = why
            cache.put(("included", s, leaves[s], cp.size, cp.root), (why,))
    for s, why in included.items():
        if why is not None:
            unusable[s] = f"not included in the checkpoint: {why}"
    verdicts = verifier.verify_entries(
        parsed,
        log_key=pin.key,
        unusable=unusable,
        check=lambda checks: _checked(cache, checks),
        replays=cache,
    )
    for s in seqs:  # the journey holds events only
        pe = parsed.get(s)
        if verdicts.ok(s) and pe is not None and pe.prepared is not None and pe.codes is None:
            verdicts.problems[s] = f"a {pe.prepared.kind} statement, not an event"
    for s, code in described:  # and the index points at master data of each code
        pe = parsed.get(s)
        if verdicts.ok(s) and pe is not None and pe.prepared is not None:
            if pe.prepared.kind != "masterdata":
                verdicts.problems[s] = f"a {pe.prepared.kind} statement, not master data"
            elif (about := _described(parse.cache, pe.prepared).code) != code:
                verdicts.general.append(
                    f"the master-data index names seq {s} for {code}, but that entry describes {about}"
                )
    return (_verification(wanted, verdicts, cp, problems, cosigned, ws, quorum), verdicts, parsed)


def _nodes(
    conn: Connection, store: Store, ids: Collection[merkle.NodeId], read: Mapping[merkle.NodeId, bytes]
) -> dict[merkle.NodeId, bytes]:
    """The stored nodes ``ids``: those in ``read`` (read earlier in this transaction), the
    others read now."""
    out = {n: read[n] for n in ids if n in read}
    missing = [n for n in ids if n not in out]
    if missing:
        out.update(store.fetch_nodes(conn, missing))
    return out


def _checked(cache: VerificationCache, checks: Sequence[verifier.SigCheck]) -> list[bool]:
    """``verifier.check_signatures`` for the checks not made before on the same input."""
    out: list[bool | None] = []
    todo: list[int] = []
    for n, c in enumerate(checks):
        hit = cache.get(("signed", c.statement_hash, c.public_key, c.sig))
        out.append(None if hit is None else bool(hit[0]))
        if hit is None:
            todo.append(n)
    if todo:
        for n, good in zip(todo, verifier.check_signatures([checks[n] for n in todo]), strict=True):
            c = checks[n]
            cache.put(("signed", c.statement_hash, c.public_key, c.sig), (good,))
            out[n] = good
    return [bool(x) for x in out]


def _checkpoint(
    cache: VerificationCache, log_key: str | None, note: str, witness_keys: list[str]
) -> tuple[Checkpoint | None, list[str]]:
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


def _verification(
    wanted: list[int],
    verdicts: verifier.Verdicts,
    cp: Checkpoint | None,
    problems: list[str],
    cosigned: list[str],
    ws: Sequence[Any],
    quorum: int,
) -> dict[str, Any]:
    if cp is None:
        cosigned = []
    ok = [s for s in wanted if verdicts.ok(s)]
    problems = problems + verdicts.lines()
    return {
        "entries": len(wanted),
        "entriesVerified": len(ok),
        "signatures": sum(verdicts.signatures[s] for s in ok),
        "checkpoint": cp.size if cp else None,
        "origin": cp.origin if cp else None,
        "witnesses": {
            "cosigned": len(cosigned),
            "of": len(ws),
            "quorum": quorum,
            "names": list(cosigned),
            "configured": [str(w.key).split("+", 1)[0] for w in ws],
        },
        "witnessed": bool(ws) and len(cosigned) >= quorum,
        "verified": not problems and cp is not None and len(ok) == len(wanted),
        "problems": problems,
    }


def check_digit_error(path: str) -> dict[str, str] | None:
    """For a Digital Link path whose GTIN (/01/) or SSCC (/00/) fails its check digit:
    the key, the value as given, the digit given and the digit expected."""
    from ledger.core.ids import gs1_check_digit

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
