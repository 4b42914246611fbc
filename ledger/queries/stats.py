"""Statistics for regulators: what the ledger holds, by stage and month, trade value by
customs procedure, origins and destinations, and how long clearance takes.

Definitions (README "Statistics"):

- *events by stage and month*: events counted by their stage and the month (UTC) of their
  ``eventTime``; *entries by kind*: every entry by statement kind.
- *trade value by procedure*: each order event (``cbec:orderInfo``) counted once, its
  ``paid`` summed exactly (decimal) in its currency; its procedure is its own
  ``cbec:customsProcedure``, else that of a declaration citing the same order URI, else
  ``unknown``. Declarations are counted per procedure beside it. Only CNY is summed into
  ``valueCNY``; other currencies are listed apart, never converted.
- *origins*: distinct product identifiers per country of origin, from every production
  or clearance event that states one (``cbec:countryOfOrigin`` on the event,
  ``cbec:``/``cbvmda:countryOfOrigin`` in its ``ilmd``).
- *destinations*: declarations by destination country: ``CN`` for the import procedures
  (9610, 1210); for exports (9710, 9810) the country of the GS1 Member Organisation whose
  prefix begins the GLN of the declaration's ``destinationList`` location or owning party
  (``unknown`` when it names none, or a prefix not in ``GS1_PREFIXES``).
- *clearance time*: for each declaration document (``cbec:declaration`` URI), from the
  earliest declaring event to the earliest release event citing it, in buckets
  (``CLEARANCE_BUCKETS``); declarations not yet released are counted as ``pending``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from statistics import median
from typing import Any

import orjson

from ledger.epcis.stages import normalise_term
from ledger.store import reportdb
from ledger.store.db import Store

PROCEDURES = ("9610", "1210", "9710", "9810")
IMPORT_PROCEDURES = frozenset({"9610", "1210"})
# (label, upper bound in seconds, exclusive); the last bucket is open.
CLEARANCE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<10min", 600),
    ("10-60min", 3600),
    ("1-6h", 6 * 3600),
    ("6-24h", 86400),
    ("1-3d", 3 * 86400),
    (">3d", float("inf")),
)
# GS1 prefix ranges (first three digits of a GLN) -> country of the Member Organisation.
GS1_PREFIXES: tuple[tuple[int, int, str], ...] = (
    (0, 139, "US"),
    (300, 379, "FR"),
    (400, 440, "DE"),
    (450, 459, "JP"),
    (460, 469, "RU"),
    (471, 471, "TW"),
    (489, 489, "HK"),
    (490, 499, "JP"),
    (500, 509, "GB"),
    (540, 549, "BE"),
    (690, 699, "CN"),
    (754, 755, "CA"),
    (760, 769, "CH"),
    (800, 839, "IT"),
    (840, 849, "ES"),
    (870, 879, "NL"),
    (880, 880, "KR"),
    (885, 885, "TH"),
    (888, 888, "SG"),
    (890, 890, "IN"),
    (893, 893, "VN"),
    (899, 899, "ID"),
    (930, 939, "AU"),
    (940, 949, "NZ"),
    (955, 955, "MY"),
)
_ORIGIN_KEYS = ("cbec:countryOfOrigin", "cbvmda:countryOfOrigin")


def gln_country(identifier: str) -> str | None:
    """Country of the GS1 Member Organisation of a GLN (``gln:…`` or a /414/ or /417/ link)."""
    digits = None
    if identifier.startswith("gln:"):
        digits = identifier[4:]
    else:
        for ai in ("/414/", "/417/"):
            if ai in identifier:
                digits = identifier.split(ai, 1)[1][:13]
    if not digits or not digits[:3].isdigit():
        return None
    p = int(digits[:3])
    return next((c for lo, hi, c in GS1_PREFIXES if lo <= p <= hi), None)


def _bucket(seconds: float) -> str:
    if seconds < 0:
        return "negative"
    return next(label for label, hi in CLEARANCE_BUCKETS if seconds < hi)


def _utc(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _body(raw: bytes) -> dict[str, Any]:
    b: dict[str, Any] = orjson.loads(raw)["envelope"]["statement"]["body"]
    return b


def _docs(body: Mapping[str, Any], kind: str) -> list[str]:
    out = []
    for bt in body.get("bizTransactionList") or ():
        if isinstance(bt, dict) and normalise_term(str(bt.get("type", ""))) == kind:
            out.append(str(bt.get("bizTransaction")))
    return out


def _origin(body: Mapping[str, Any]) -> str | None:
    for where in (body, body.get("ilmd") or {}):
        for k in _ORIGIN_KEYS:
            v = where.get(k)
            if isinstance(v, str) and v:
                return v.upper()
    return None


def _destination(body: Mapping[str, Any], procedure: str | None) -> str:
    if procedure in IMPORT_PROCEDURES:
        return "CN"
    dests = [d for d in body.get("destinationList") or () if isinstance(d, dict)]
    dests.sort(key=lambda d: normalise_term(str(d.get("type"))) != "location")
    for d in dests:
        c = gln_country(str(d.get("destination", "")))
        if c:
            return c
    return "unknown"


def _money(v: object) -> Decimal | None:
    try:
        return Decimal(str(v)) if isinstance(v, str) else None
    except InvalidOperation:
        return None


def compute(
    stage_months: Iterable[tuple[str, str, int]],
    kinds: Iterable[tuple[str, int]],
    declarations: Iterable[tuple[int, str, Mapping[str, Any]]],
    orders: Iterable[tuple[int, Mapping[str, Any]]],
    releases: Iterable[tuple[int, str, Mapping[str, Any]]],
    origin_events: Iterable[tuple[Mapping[str, Any], set[str]]],
) -> dict[str, Any]:
    """The statistics from decoded inputs (pure): declarations and releases are
    (seq, event_time_utc, body), orders (seq, body), origin events (body, its codes)."""
    by_stage: dict[str, dict[str, int]] = defaultdict(dict)
    for stage, month, n in stage_months:
        by_stage[stage][month] = n
    decls = sorted(declarations, key=lambda d: d[0])
    order_proc: dict[str, str] = {}
    decl_count: Counter[str] = Counter()
    destinations: Counter[str] = Counter()
    declared_at: dict[str, datetime] = {}
    for _seq, utc, body in decls:
        stated = body.get("cbec:customsProcedure")
        proc = stated if isinstance(stated, str) else "unknown"
        decl_count[proc] += 1
        destinations[_destination(body, proc)] += 1
        for o in _docs(body, "cbec:order"):
            order_proc.setdefault(o, proc)
        t = _utc(utc)
        for d in _docs(body, "cbec:declaration"):
            if d not in declared_at or t < declared_at[d]:
                declared_at[d] = t
    value: dict[str, Decimal] = defaultdict(Decimal)
    orders_n: Counter[str] = Counter()
    other: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for _seq, body in sorted(orders, key=lambda o: o[0]):
        info = body.get("cbec:orderInfo")
        paid = _money(info.get("paid")) if isinstance(info, dict) else None
        if paid is None or not isinstance(info, dict):
            continue
        own = body.get("cbec:customsProcedure")
        cited = [order_proc[o] for o in _docs(body, "cbec:order") if o in order_proc]
        proc = own if isinstance(own, str) else (cited[0] if cited else "unknown")
        orders_n[proc] += 1
        if info.get("currency") == "CNY":
            value[proc] += paid
        else:
            other[(proc, str(info.get("currency")))] += paid
    released: dict[str, datetime] = {}
    for _seq, utc, body in releases:
        t = _utc(utc)
        for d in _docs(body, "cbec:declaration"):
            if d not in released or t < released[d]:
                released[d] = t
    buckets: Counter[str] = Counter({label: 0 for label, _ in CLEARANCE_BUCKETS})
    durations = []
    for d, t0 in declared_at.items():
        if d in released:
            secs = (released[d] - t0).total_seconds()
            durations.append(secs)
            buckets[_bucket(secs)] += 1
        else:
            buckets["pending"] += 1
    origin_codes: dict[str, set[str]] = defaultdict(set)
    for body, codes in origin_events:
        country = _origin(body)
        if country:
            origin_codes[country].update(codes)
    procs = [*PROCEDURES, *sorted((set(decl_count) | set(orders_n)) - set(PROCEDURES))]
    return {
        "eventsByStageMonth": {s: dict(sorted(m.items())) for s, m in sorted(by_stage.items())},
        "entriesByKind": dict(kinds),
        "tradeByProcedure": [
            {
                "procedure": p,
                "declarations": decl_count[p],
                "orders": orders_n[p],
                "valueCNY": f"{value[p]:.2f}",
            }
            for p in procs
            if p in PROCEDURES or decl_count[p] or orders_n[p]
        ],
        "otherCurrencies": [
            {"procedure": p, "currency": c, "value": f"{v:.2f}"} for (p, c), v in sorted(other.items())
        ],
        "origins": dict(
            sorted(((k, len(v)) for k, v in origin_codes.items()), key=lambda kv: (-kv[1], kv[0]))
        ),
        "destinations": dict(sorted(destinations.items(), key=lambda kv: (-kv[1], kv[0]))),
        "clearanceTime": {
            "buckets": dict(buckets),
            "released": len(durations),
            "medianSeconds": median(durations) if durations else None,
        },
    }


def statistics(store: Store) -> dict[str, Any]:
    """Read the inputs in one snapshot and compute the statistics."""
    with store.reading(snapshot=True) as conn:
        stage_months = reportdb.events_by_stage_month(conn)
        kinds = reportdb.entries_by_kind(conn)
        decl = reportdb.event_seqs(conn, activities=("declaration",))
        rel = reportdb.event_seqs(conn, activities=("release",))
        orders = reportdb.event_seqs(conn, activities=("order",))
        with_origin = reportdb.event_seqs(conn, stage="production") + reportdb.event_seqs(
            conn, stage="clearance"
        )
        raw = reportdb.entry_bytes(conn, [s for s, _, _ in with_origin + orders])
        codes = reportdb.codes_of(conn, raw)
    bodies = {s: _body(b) for s, b in raw.items()}
    origin_events = [(bodies[s], codes.get(s, set())) for s in sorted(bodies) if _origin(bodies[s])]
    return compute(
        stage_months,
        kinds,
        [(s, t, bodies[s]) for s, t, _ in decl],
        [(s, bodies[s]) for s, _, _ in orders],
        [(s, t, bodies[s]) for s, t, _ in rel],
        origin_events,
    )
