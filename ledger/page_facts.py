"""What a consumer's page says about one code, assembled from the ledger: the product
(from its commissioning event's ``ilmd``), its customs clearance, the timeline of its
journey with party names and places, its recall status, the counterfeit signal of its
scans, and what "verified" means here — every journey entry's signatures and inclusion
proof checked against the latest checkpoint, and the witnesses that cosigned it.

Facts only, in plain JSON values; wording and languages belong to whoever renders them.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ledger import scans
from ledger.bundle import make_bundle, verify_bundle
from ledger.domain import normalise_term
from ledger.errors import LedgerError
from ledger.ids import parse_digital_link
from ledger.log import Ledger
from ledger.store import tracedb
from ledger.trace import Step, journey_steps, normalise_code
from ledger.witnessing import Witnessing

_VERIFIED_CACHE = 2048


class VerificationCache:
    """Page facts and verification results keyed by what they depend on, always
    including the cosigned checkpoint note: entries never change, so a value holds until
    a new checkpoint or a new cosignature changes the note."""

    def __init__(self, size: int = _VERIFIED_CACHE) -> None:
        self.size = size
        self._d: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()  # the server answers from a thread pool

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple[Any, ...], value: dict[str, Any]) -> None:
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
    if isinstance(value, str):
        return {"und": value}
    out: dict[str, str] = {}
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, Mapping) and isinstance(v.get("@value"), str):
            lang = str(v.get("@language") or "und").split("-")[0].lower()
            out.setdefault(lang, v["@value"])
        elif isinstance(v, str):
            out.setdefault("und", v)
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


def _page_steps(conn: Connection, key: str) -> list[Step]:
    """The journey, and for a lot also the commissioning events of its items: a lot's
    label leads to where its product was made even when no event names the lot itself."""
    steps = journey_steps(conn, key)
    have = {s.seq for s in steps}
    extra = [q for q in tracedb.lineage_seqs(conn, key, "lot") if q not in have]
    for seq, r in tracedb.event_rows(conn, extra).items():
        steps.append(Step(seq, r["event_time"], r["event_time_utc"], r["stage"], r["activity"],
                          r["biz_step"], r["signer"], r["biz_location"] or r["read_point"], None))
    steps.sort(key=lambda s: (s.event_time_utc, s.seq))
    return steps


def latest_note(ledger: Ledger) -> str:
    """The latest checkpoint with every cosignature gathered for it, in one read."""
    store = ledger.store
    with store.reading() as conn:
        head = store.head(conn)
        if head is None:
            return ""
        return head[2] + "".join(store.cosignature_lines(conn, head[0]))


def page_facts(ledger: Ledger, code: str, *, witnessing: Witnessing | None = None,
               cache: VerificationCache | None = None) -> dict[str, Any] | None:
    """Everything the consumer page shows about ``code``; None if the ledger holds
    nothing about it.

    All but the counterfeit signal depends only on the entries and the cosignatures, so
    with a ``cache`` it is kept per (code, cosigned checkpoint): a new entry or a new
    cosignature changes the note and so the key. The signal is read fresh every time.
    """
    key = normalise_code(code)
    note = latest_note(ledger) if cache is not None else ""
    facts = cache.get(("page", key, note)) if cache is not None else None
    if facts is None:
        facts = _assemble(ledger, key, witnessing=witnessing, cache=cache)
        if facts is None:
            return None
        if cache is not None:
            cache.put(("page", key, note), facts)
    signal = None
    if facts["kind"] == "item":
        with ledger.store.reading() as conn:
            signal = scans.signal_in(conn, key, facts["soldAt"])
    return {**facts, "counterfeit": signal}


def _assemble(ledger: Ledger, key: str, *, witnessing: Witnessing | None,
              cache: VerificationCache | None) -> dict[str, Any] | None:
    store = ledger.store
    with store.reading() as conn:
        steps = _page_steps(conn, key)
        if not steps:
            return None
        rows = tracedb.event_rows(conn, [s.seq for s in steps])
        raw = store.entries_by_seq(conn, [s.seq for s in steps])
        bodies = {s: orjson.loads(e)["envelope"]["statement"]["body"] for s, e in raw.items()}
        sold_at = scans.first_sale(steps, rows)
        places = {s.seq: _gln(s.location) for s in steps}
        party_ids = {s.signer for s in steps} | {f"gln:{g}" for g in places.values() if g}
        reg = store.load_registry(conn, key_ids=(), party_ids=party_ids)
    names = {pid: p.name for pid, p in reg.parties.items()}
    link = parse_digital_link(key)

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
        "verification": verify_journey(ledger, [s.seq for s in steps], witnessing=witnessing,
                                       cache=cache),
    }


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
    """
    wanted = tuple(sorted(set(seqs)))
    note = latest_note(ledger)
    hit = cache.get(("verified", wanted, note)) if cache is not None else None
    if hit is not None:
        return hit
    ws = witnessing.witnesses if witnessing else ()
    doc = make_bundle(ledger, wanted)
    res = verify_bundle(doc, log_key=ledger.log_verifier().vkey(),
                        witness_keys=[w.key for w in ws], quorum=0)
    ok = set(res.verified)
    signatures = 0
    for item in doc["entries"]:
        if item["seq"] in wanted and item["seq"] in ok:
            entry = orjson.loads(base64.b64decode(item["entry"]))
            signatures += len(entry["envelope"]["signatures"])
    quorum = witnessing.quorum if witnessing else 0
    out = {
        "entries": len(wanted),
        "entriesVerified": len(ok & set(wanted)),
        "signatures": signatures,
        "checkpoint": res.checkpoint.size if res.checkpoint else None,
        "origin": res.checkpoint.origin if res.checkpoint else None,
        "witnesses": {"cosigned": len(res.cosigned_by), "of": len(ws), "quorum": quorum,
                      "names": res.cosigned_by},
        "witnessed": bool(ws) and len(res.cosigned_by) >= quorum,
        "verified": not res.problems and set(wanted) <= ok,
        "problems": res.problems,
    }
    if cache is not None:
        cache.put(("verified", wanted, note), out)
    return out


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
