"""The EPCIS 2.0 query language over the ledger: query parameters to an ``EventSelection``
the projections answer (ledger/store/epcisdb.py), pages of events in keyset order, and the
EPCISQueryDocument they are returned in.

What the projections index is selected in SQL: eventType, event and record time, action,
bizStep, disposition, readPoint and bizLocation (``WD_`` is ``EQ_``: the ledger holds no
location master data, so a location has no descendants), the ``MATCH_`` family (EPC
patterns by prefix), ``EQ_bizTransaction_<type>`` and ``EQ_eventID`` (through the capture
index, ``event_keys``, whose key is an event's eventID, else its event hash; the body's
eventID confirms it). Two conditions no projection holds, ``EQ_source_<type>`` and
``EQ_destination_<type>``, are checked on the signed bodies of the selected events, like
the exact part of every ``MATCH_`` (the
index puts an aggregation's child classes beside its child EPCs): such a page examines at
most ``SCAN_BUDGET`` events and may hold fewer than ``perPage`` events (the bindings allow
it) while its ``nextPageToken`` goes on. Every other standard parameter raises
``UnsupportedQuery``; an unknown name or a bad value raises ``QueryParameterException``.

Returned events are the signed bodies, plus where each is on the ledger: ``suyuan:seq``
and ``suyuan:leafHash`` (for ``/proof/inclusion/{seq}/{size}``) in the ``suyuan``
namespace the document's ``@context`` declares, and ``recordTime`` (the ledger's time)
when the signed body has none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from ledger.core import canonical, ids
from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.times import utc_text
from ledger.epcis.context import (
    EPCIS_CONTEXT,
    EXTENSION_NAMESPACE,
    STANDARD_PREFIXES,
    URI_SCHEMES,
)
from ledger.epcis.projection import split_lot
from ledger.epcis.stages import CBEC_NAMESPACE, EVENT_TYPES, EventCodes, event_codes, normalise_term
from ledger.queries.documents import events_in_context
from ledger.store import epcisdb, tracedb
from ledger.store.db import Store
from ledger.store.epcisdb import CodeMatch, EventSelection, Position

LEDGER_NAMESPACE: Final = "https://suyuan.example/ledger#"
SEQ_FIELD: Final = "suyuan:seq"
LEAF_HASH_FIELD: Final = "suyuan:leafHash"

DEFAULT_PER_PAGE: Final = 30  # the bindings' default
MAX_PER_PAGE: Final = 1000
SCAN_BUDGET: Final = 5000  # events a page examines when bodies must be checked
COUNT_BUDGET: Final = 100_000  # events examined to check maxEventCount
QUERY_NAME: Final = "SimpleEventQuery"


class QueryParameterException(MalformedInput):
    """A parameter the query language does not know, or a value it may not take."""

    code = "query_parameter"


class UnsupportedQuery(LedgerError):
    """A standard parameter or feature this ledger does not implement."""

    code = "not_implemented"


class QueryTooLarge(LedgerError):
    """More events match than ``maxEventCount`` allows."""

    code = "query_too_large"


class QueryTooComplex(LedgerError):
    """A query whose answer would cost more than the ledger spends on one request."""

    code = "query_too_complex"


# Parameters answered from the projections (or the bodies), by name.
_LOCATIONS: Final = {
    "EQ_readPoint": "read_points",
    "WD_readPoint": "read_points",
    "EQ_bizLocation": "biz_locations",
    "WD_bizLocation": "biz_locations",
}
# MATCH_x: (parts of ident_entries, what the body check compares)
_MATCHES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "MATCH_epc": (("epc", "child"), ("epcs", "children")),
    "MATCH_parentID": (("parent",), ("parent",)),
    "MATCH_inputEPC": (("input",), ("inputs",)),
    "MATCH_outputEPC": (("output",), ("outputs",)),
    "MATCH_anyEPC": (
        ("epc", "child", "parent", "input", "output"),
        ("epcs", "children", "parent", "inputs", "outputs"),
    ),
    "MATCH_epcClass": (("class", "child"), ("classes",)),
    "MATCH_inputEPCClass": (("input",), ("input_classes",)),
    "MATCH_outputEPCClass": (("output",), ("output_classes",)),
    "MATCH_anyEPCClass": (
        ("class", "child", "input", "output"),
        ("classes", "input_classes", "output_classes"),
    ),
}
_SINGLE: Final = frozenset(
    {
        "GE_eventTime",
        "LT_eventTime",
        "GE_recordTime",
        "LT_recordTime",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
        "EXISTS_errorDeclaration",
    }
)
KNOWN: Final = frozenset(
    {"eventType", "EQ_action", "EQ_bizStep", "EQ_disposition", "EQ_eventID", *_LOCATIONS, *_MATCHES, *_SINGLE}
)
_TYPED_PREFIXES: Final = ("EQ_bizTransaction_", "EQ_source_", "EQ_destination_")
# Names of the query language's parameter families: a standard parameter this ledger does
# not answer is "not implemented"; any other name is a mistake in the query.
_STANDARD_PREFIXES: Final = (
    "EQ_",
    "GT_",
    "GE_",
    "LT_",
    "LE_",
    "EXISTS_",
    "HASATTR_",
    "EQATTR_",
    "MATCH_",
    "WD_",
)
ACTIONS: Final = ("ADD", "OBSERVE", "DELETE")


@dataclass(frozen=True)
class EventQuery:
    """One parsed EPCIS query: the SQL selection and what the bodies must also show."""

    selection: EventSelection
    matches: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = ()
    sources: tuple[tuple[str, frozenset[str]], ...] = ()
    destinations: tuple[tuple[str, frozenset[str]], ...] = ()
    event_ids: frozenset[str] = frozenset()
    count_limit: int | None = None
    max_count: int | None = None
    record_ge: str | None = None  # recordTime bounds, resolved to seqs when the query runs
    record_lt: str | None = None
    fingerprint: str = ""
    params: dict[str, list[str]] = field(default_factory=dict)

    @property
    def checks_bodies(self) -> bool:
        return bool(self.matches or self.sources or self.destinations or self.event_ids)


@dataclass(frozen=True)
class LedgerEvent:
    """A returned event: its signed body and where it is on the ledger."""

    seq: int
    leaf_hash: bytes
    record_time: str
    body: dict[str, Any]

    def as_epcis(self) -> dict[str, Any]:
        out = dict(self.body)
        out.setdefault("recordTime", self.record_time)
        out[SEQ_FIELD] = self.seq
        out[LEAF_HASH_FIELD] = self.leaf_hash.hex()
        return out


@dataclass(frozen=True)
class EventPage:
    events: list[LedgerEvent]
    next_token: str | None


# --- parameters ----------------------------------------------------------------------------


def params_of_json(query: object) -> dict[str, list[str]]:
    """The parameters of a JSON query (a named query's ``query``): each value a list of
    strings, a string, a number or a boolean."""
    if not isinstance(query, Mapping):
        raise QueryParameterException(
            'a query is a JSON object of EPCIS query parameters, such as {"eventType": ["ObjectEvent"]}'
        )
    out: dict[str, list[str]] = {}
    for name, value in query.items():
        items = value if isinstance(value, list) else [value]
        texts = []
        for v in items:
            if isinstance(v, bool):
                texts.append("true" if v else "false")
            elif isinstance(v, int | str):
                texts.append(str(v))
            else:
                raise QueryParameterException(
                    f"query parameter {name} takes strings, integers or booleans, not {json.dumps(v)[:60]}"
                )
        if not texts:
            raise QueryParameterException(f"query parameter {name} has no value")
        out[str(name)] = texts
    return out


def params_of_url(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """URL query parameters, pipe-delimited lists split; a name given twice is refused."""
    out: dict[str, list[str]] = {}
    for name, value in items:
        if name in out:
            raise QueryParameterException(
                f"query parameter {name} is given twice; give one value, or several separated by |"
            )
        out[name] = [value] if name in _SINGLE else value.split("|")
    return out


def _one(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise QueryParameterException(f"query parameter {name} takes one value, not {len(values)}")
    return values[0]


def _time(name: str, values: list[str]) -> str:
    text = _one(name, values)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise QueryParameterException(
            f"{name} {text[:60]!r} is not a date-time with a time zone, such as 2026-11-27T08:00:00Z"
        )
    try:
        utc = t.astimezone(UTC)
    except OverflowError:
        raise QueryParameterException(f"{name} {text[:60]!r} is outside the years 1-9999 in UTC") from None
    # The fixed-width form of events.event_time_utc and of the ledger's own times.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond:06d}Z"


def _int(name: str, values: list[str], *, least: int) -> int:
    text = _one(name, values)
    if not (text.isascii() and text.isdigit()) or len(text) > 12 or int(text) < least:
        raise QueryParameterException(f"{name} is an integer of at least {least}, not {text[:40]!r}")
    return int(text)


def code_key(value: str) -> str:
    """The index key of an identifier a query names (an item named with its lot is the
    item); a GS1 key that breaks its rules stays as written, so it matches nothing."""
    try:
        return split_lot(ids.index_key(value))[0]
    except LedgerError:
        return value


def _code_match(parts: tuple[str, ...], values: list[str]) -> CodeMatch:
    exact: list[str] = []
    prefixes: list[str] = []
    for v in values:
        key = code_key(v)
        exact.append(key)
        if v.startswith("urn:epc:idpat:"):
            # A pattern names its class: every EPC of it sits below it in the Digital Link.
            prefixes.append(key + "/")
    return CodeMatch(parts=parts, exact=tuple(dict.fromkeys(exact)), prefixes=tuple(dict.fromkeys(prefixes)))


def _fingerprint(params: Mapping[str, list[str]]) -> str:
    return hashlib.sha256(canonical.canonical_bytes(dict(params))).hexdigest()[:16]


def parse_query(params: Mapping[str, list[str]]) -> EventQuery:
    """An ``EventQuery`` of EPCIS query parameters (name -> values); raises
    ``QueryParameterException`` or ``UnsupportedQuery``."""
    sel: dict[str, Any] = {}
    lists: dict[str, list[str]] = {"read_points": [], "biz_locations": []}
    matches = []
    codes = []
    bts: list[tuple[str, tuple[str, ...]]] = []
    sources: list[tuple[str, frozenset[str]]] = []
    dests: list[tuple[str, frozenset[str]]] = []
    event_ids: frozenset[str] = frozenset()
    order_by = direction = None
    count_limit = max_count = None
    record_ge = record_lt = None
    for name, values in params.items():
        if any(not v for v in values):
            raise QueryParameterException(f"query parameter {name} has an empty value")
        if name == "eventType":
            sel["types"] = tuple(dict.fromkeys(values))
        elif name == "GE_eventTime":
            sel["time_ge"] = _time(name, values)
        elif name == "LT_eventTime":
            sel["time_lt"] = _time(name, values)
        elif name == "GE_recordTime":
            record_ge = _time(name, values)
        elif name == "LT_recordTime":
            record_lt = _time(name, values)
        elif name == "EQ_action":
            bad = [v for v in values if v not in ACTIONS]
            if bad:
                raise QueryParameterException(
                    f"EQ_action values are ADD, OBSERVE or DELETE, not {bad[0][:40]!r}"
                )
            sel["actions"] = tuple(dict.fromkeys(values))
        elif name == "EQ_bizStep":
            sel["biz_steps"] = tuple(dict.fromkeys(normalise_term(v) for v in values))
        elif name == "EQ_disposition":
            sel["dispositions"] = tuple(dict.fromkeys(normalise_term(v) for v in values))
        elif name in _LOCATIONS:
            lists[_LOCATIONS[name]] += [code_key(v) for v in values]
        elif name in _MATCHES:
            parts, fields = _MATCHES[name]
            m = _code_match(parts, values)
            codes.append(m)
            matches.append((fields, m.exact, m.prefixes))
        elif name == "EQ_eventID":
            event_ids = frozenset(values)
        elif name.startswith(_TYPED_PREFIXES) and name not in KNOWN:
            prefix = next(p for p in _TYPED_PREFIXES if name.startswith(p))
            kind = normalise_term(name[len(prefix) :])
            if not kind:
                raise QueryParameterException(f"{name} names no type: {prefix}<type>, such as {prefix}po")
            keys = tuple(dict.fromkeys(code_key(v) for v in values))
            if prefix == "EQ_bizTransaction_":
                bts.append((kind, keys))
            elif prefix == "EQ_source_":
                sources.append((kind, frozenset(keys)))
            else:
                dests.append((kind, frozenset(keys)))
        elif name == "orderBy":
            order_by = _one(name, values)
            if order_by not in ("eventTime", "recordTime") and ":" not in order_by:
                raise QueryParameterException(
                    f"orderBy is eventTime, recordTime or the qualified "
                    f"name of an extension field, not {order_by[:60]!r}"
                )
            if order_by not in ("eventTime", "recordTime"):
                raise UnsupportedQuery(
                    f"orderBy {order_by[:60]!r} is not implemented; order by eventTime or recordTime"
                )
        elif name == "orderDirection":
            direction = _one(name, values)
            if direction not in ("ASC", "DESC"):
                raise QueryParameterException(f"orderDirection is ASC or DESC, not {direction[:20]!r}")
        elif name == "eventCountLimit":
            count_limit = _int(name, values, least=1)
        elif name == "maxEventCount":
            max_count = _int(name, values, least=0)
        elif name == "EXISTS_errorDeclaration":
            if _one(name, values) == "true":
                raise UnsupportedQuery(
                    "EXISTS_errorDeclaration=true is not implemented: the "
                    "ledger does not index error declarations"
                )
            if values[0] != "false":
                raise QueryParameterException("EXISTS_errorDeclaration is true or false")
        elif name.startswith(_STANDARD_PREFIXES):
            raise UnsupportedQuery(
                f"query parameter {name[:80]} is not implemented by this "
                "ledger; the README lists those it answers"
            )
        else:
            raise QueryParameterException(f"{name[:80]!r} is not a parameter of the EPCIS query language")
    if count_limit is not None and max_count is not None:
        raise QueryParameterException("eventCountLimit and maxEventCount exclude each other")
    if count_limit is not None and order_by is None:
        raise QueryParameterException(
            "eventCountLimit needs orderBy: it keeps the first events in that order"
        )
    for k, v in lists.items():
        if v:
            sel[k] = tuple(dict.fromkeys(v))
    selection = EventSelection(
        **sel,
        codes=tuple(codes),
        biz_transactions=tuple(bts),
        event_keys=tuple(sorted(event_ids or ())),
        by_event_time=order_by == "eventTime",
        descending=order_by is not None and direction != "ASC",
    )
    return EventQuery(
        selection=selection,
        matches=tuple(matches),
        sources=tuple(sources),
        destinations=tuple(dests),
        event_ids=event_ids,
        count_limit=count_limit,
        max_count=max_count,
        record_ge=record_ge,
        record_lt=record_lt,
        fingerprint=_fingerprint(params),
        params=dict(params),
    )


def resolve_selection(store: Store, q: EventQuery) -> EventSelection:
    """The selection with its record-time bounds as seqs of this store: every entry of a
    batch carries the time of the checkpoint that ends it, so two index reads suffice."""
    if q.record_ge is None and q.record_lt is None:
        return q.selection
    with store.reading() as conn:
        bounds = tracedb.seq_bounds_for_time(conn, since=q.record_ge, until=q.record_lt)
    return replace(q.selection, seq_lo=bounds.lo, seq_hi=bounds.hi)


# --- pages ---------------------------------------------------------------------------------


def _token(q: EventQuery, pos: Position, remaining: int | None) -> str:
    doc = {"f": q.fingerprint, "t": pos.time, "s": pos.seq, "n": remaining}
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def _read_token(q: EventQuery, token: str) -> tuple[Position, int | None]:
    bad = QueryParameterException(
        "nextPageToken is not one this ledger gave for this query; follow the Link header of the page before"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise bad from None
    if not isinstance(doc, dict) or set(doc) != {"f", "t", "s", "n"}:
        raise bad
    t, s, n = doc["t"], doc["s"], doc["n"]
    if (
        doc["f"] != q.fingerprint
        or not (t is None or isinstance(t, str))
        or isinstance(s, bool)
        or not isinstance(s, int)
        or not (n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 0))
    ):
        raise bad
    return Position(t, s), n


def _codes_of(codes: EventCodes, fields: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for f in fields:
        if f == "parent":
            if codes.parent is not None:
                out.add(split_lot(codes.parent)[0])
        elif f in ("classes", "input_classes", "output_classes"):
            out.update(split_lot(c)[0] for c, _, _ in getattr(codes, f))
        else:
            out.update(split_lot(c)[0] for c in getattr(codes, f))
    return out


def _confirmed(q: EventQuery, body: Mapping[str, Any]) -> bool:
    """Whether a body shows what the index could not tell exactly."""
    if q.event_ids and body.get("eventID") not in q.event_ids:
        return False
    if not (q.matches or q.sources or q.destinations):
        return True
    try:
        codes = event_codes(body)
    except LedgerError:
        return False
    for fields, exact, prefixes in q.matches:
        named = _codes_of(codes, fields)
        if not (named & set(exact) or any(c.startswith(prefixes) for c in named)):
            return False
    for wanted, typed in ((q.sources, codes.sources), (q.destinations, codes.destinations)):
        for kind, keys in wanted:
            if not any(t == kind and i in keys for t, i in typed):
                return False
    return True


def _decode(row: epcisdb.EventRow) -> LedgerEvent:
    doc = orjson.loads(row.entry)
    return LedgerEvent(
        seq=row.seq,
        leaf_hash=row.leaf_hash,
        record_time=doc["time"],
        body=doc["envelope"]["statement"]["body"],
    )


def _scan(
    store: Store, q: EventQuery, sel: EventSelection, *, after: Position | None, want: int, budget: int
) -> tuple[list[LedgerEvent], Position | None, bool]:
    """(up to ``want`` events, the position of the last event examined, whether more may
    follow), examining at most ``budget`` events."""
    out: list[LedgerEvent] = []
    pos = after
    examined = 0
    chunk = want + 1 if not q.checks_bodies else min(500, budget)
    with store.reading(snapshot=True) as conn:
        while True:
            rows = epcisdb.select_events(conn, sel, after=pos, limit=chunk)
            for row in rows:
                if len(out) == want:
                    return out, pos, True
                if examined == budget:
                    return out, pos, True
                examined += 1
                pos = Position(row.event_time_utc if sel.by_event_time else None, row.seq)
                event = _decode(row)
                if not q.checks_bodies or _confirmed(q, event.body):
                    out.append(event)
            if len(rows) < chunk:
                return out, pos, False


def run_query(
    store: Store, q: EventQuery, *, per_page: int = DEFAULT_PER_PAGE, token: str | None = None
) -> EventPage:
    """One page of the events ``q`` selects, and the token of the next page if any."""
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise QueryParameterException(f"perPage is from 1 to {MAX_PER_PAGE}, not {per_page}")
    sel = resolve_selection(store, q)
    after, remaining = (None, q.count_limit) if token is None else _read_token(q, token)
    if token is None and q.max_count is not None:
        found, _, more = _scan(store, q, sel, after=None, want=q.max_count + 1, budget=COUNT_BUDGET)
        if len(found) > q.max_count:
            raise QueryTooLarge(f"more than maxEventCount={q.max_count} events match this query")
        if more:
            raise QueryTooComplex(
                f"counting the events of this query would examine more than "
                f"{COUNT_BUDGET:,} events; narrow it or leave out maxEventCount"
            )
    want = per_page if remaining is None else min(per_page, remaining)
    budget = SCAN_BUDGET if q.checks_bodies else want + 1
    events, pos, more = _scan(store, q, sel, after=after, want=want, budget=budget)
    if remaining is not None:
        remaining -= len(events)
        more = more and remaining > 0
    next_token = _token(q, pos, remaining) if more and pos is not None else None
    return EventPage(events=events, next_token=next_token)


def first_event(store: Store, params: Mapping[str, list[str]]) -> LedgerEvent | None:
    """The first event the query selects, looking through every page (for a resource
    such as ``/events/{eventID}`` that is one event or none)."""
    q = parse_query(params)
    token = None
    examined = 0
    while True:
        page = run_query(store, q, per_page=1, token=token)
        if page.events:
            return page.events[0]
        if page.next_token is None:
            return None
        examined += SCAN_BUDGET
        if examined >= COUNT_BUDGET:
            raise QueryTooComplex(
                f"finding this event would examine more than {COUNT_BUDGET:,} "
                "events; query EQ_eventID page by page"
            )
        token = page.next_token


# --- documents -----------------------------------------------------------------------------


def query_context(members: Iterable[str]) -> list[Any]:
    """The context of a vocabulary list (bizSteps, dispositions): the standard EPCIS context,
    then the prefixes its members use, bound as an export binds a prefix no kept context
    defines (``cbec`` to the CBEC vocabulary's namespace)."""
    prefixes = {m.split(":", 1)[0] for m in members if ":" in m and "://" not in m}
    mapping = {
        p: CBEC_NAMESPACE if p == "cbec" else EXTENSION_NAMESPACE.format(prefix=p)
        for p in sorted(prefixes - STANDARD_PREFIXES - URI_SCHEMES)
    }
    return [EPCIS_CONTEXT, mapping] if mapping else [EPCIS_CONTEXT]


def ledger_keys(event: Mapping[str, Any]) -> tuple[str, str]:
    """The keys of the ledger's two fields in a returned event: ``suyuan:seq`` and
    ``suyuan:leafHash``, unless the event's own ``@context`` (the one it was signed with)
    binds ``suyuan`` to another namespace, where those names would mean its fields and
    the ledger's are written as absolute IRIs (``https://suyuan.example/ledger#seq``)."""
    own = event.get("@context")
    for part in own if isinstance(own, list) else [own]:
        if isinstance(part, Mapping) and part.get("suyuan", LEDGER_NAMESPACE) != LEDGER_NAMESPACE:
            return LEDGER_NAMESPACE + "seq", LEDGER_NAMESPACE + "leafHash"
    return SEQ_FIELD, LEAF_HASH_FIELD


def query_document(
    store: Store,
    events: list[LedgerEvent],
    *,
    query_name: str = QUERY_NAME,
    subscription_id: str | None = None,
) -> dict[str, Any]:
    """An EPCISQueryDocument of ``events``, whose ``@context`` gives each event the meaning
    it was signed with (the context its import kept, ``ledger.epcis.context``) and declares
    ``suyuan``, the namespace of the ledger's own fields."""
    placed = events_in_context(store, [e.seq for e in events], extra={"suyuan": LEDGER_NAMESPACE})
    by_seq = {e.seq: e for e in events}
    bodies = []
    for seq, body in zip([e.seq for e in events], placed.events, strict=True):
        out = dict(body)
        e = by_seq[seq]
        out.setdefault("recordTime", e.record_time)
        seq_key, leaf_key = ledger_keys(out)
        out[seq_key] = e.seq
        out[leaf_key] = e.leaf_hash.hex()
        bodies.append(out)
    results: dict[str, Any] = {"queryName": query_name}
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": bodies}
    return {
        "@context": placed.context,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": utc_text(digits=3),
        "epcisBody": {"queryResults": results},
    }


class NotWritableAsXml(LedgerError):
    """An answer EPCIS XML cannot carry (an event field with no XML namespace to write it
    in): the client may ask for it in JSON."""

    code = "not_xml"


def query_xml(doc: Mapping[str, Any]) -> bytes:
    """An EPCISQueryDocument (``query_document``) as EPCIS 2.0 XML, checked against GS1's
    query XSD before it is returned. Each event's prefixes are those its ``@context``
    binds; the ledger's fields are ``suyuan:seq`` and ``suyuan:leafHash`` elements in
    ``LEDGER_NAMESPACE`` after the event's standard fields (the XSD's extension point),
    and CBV words are written as their URNs, as GS1's XML examples write them."""
    from lxml import etree

    from ledger.epcis import xml as epcis_xml
    from ledger.epcis.context import namespaces
    from ledger.epcis.event_hash import GS1_VOC

    bound = {
        "cbvmda": "urn:epcglobal:cbv:mda",
        "gs1": GS1_VOC,
        "cbec": CBEC_NAMESPACE,
        **namespaces(doc["@context"]),
    }
    # The ledger's fields are written by their namespace, not their prefix: an event may
    # bind ``suyuan`` to a namespace of its own, and its fields keep theirs.
    results = doc["epcisBody"]["queryResults"]
    events, extras = [], []
    for e in results["resultsBody"]["eventList"]:
        seq_key, leaf_key = ledger_keys(e)
        events.append({k: v for k, v in e.items() if k not in (seq_key, leaf_key)})
        seq = etree.Element(f"{{{LEDGER_NAMESPACE}}}seq", nsmap={"suyuan": LEDGER_NAMESPACE})
        seq.text = str(e[seq_key])
        leaf = etree.Element(f"{{{LEDGER_NAMESPACE}}}leafHash", nsmap={"suyuan": LEDGER_NAMESPACE})
        leaf.text = str(e[leaf_key])
        extras.append([seq, leaf])
    bare = {**doc, "epcisBody": {"queryResults": {**results, "resultsBody": {"eventList": events}}}}
    try:
        data = epcis_xml.write_query(bare, namespaces=bound, event_extras=extras)
    except (MalformedInput, ValueError) as e:
        raise NotWritableAsXml(
            f"an event of this answer cannot be written as EPCIS XML ({e}); ask for application/json"
        ) from None
    xsd = epcis_xml.schema()
    if not xsd.validate(etree.fromstring(data, epcis_xml.hardened_parser()).getroottree()):
        raise NotWritableAsXml(
            f"an event of this answer is not valid EPCIS XML once written "
            f"({xsd.error_log[0].message}); ask for application/json"
        )
    return data


# --- vocabularies --------------------------------------------------------------------------

CBV_BIZ_STEPS: Final = (
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning",
    "creating_class_instance", "cycle_counting", "decommissioning", "departing", "destroying",
    "disassembling", "dispensing", "encoding", "entering_exiting", "holding", "inspecting",
    "installing", "killing", "loading", "other", "packing", "picking", "receiving", "removing",
    "repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling",
    "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing",
    "transporting", "unloading", "unpacking", "void_shipping",
)  # fmt: skip
CBV_DISPOSITIONS: Final = (
    "active", "available", "completeness_inferred", "completeness_verified", "conformant",
    "container_closed", "container_open", "damaged", "destroyed", "dispensed", "disposed",
    "encoded", "expired", "in_progress", "in_transit", "inactive", "mismatch_class",
    "mismatch_instance", "mismatch_quantity", "needs_replacement", "no_pedigree_match",
    "non_conformant", "non_sellable_other", "partially_dispensed", "recalled", "reserved",
    "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen",
    "unavailable", "unknown",
)  # fmt: skip
VOCABULARIES: Final = ("eventTypes", "bizSteps", "dispositions", "readPoints", "bizLocations", "epcs")
_COLUMNS: Final[dict[str, epcisdb.Vocabulary]] = {
    "bizSteps": "biz_step",
    "dispositions": "disposition",
    "readPoints": "read_point",
    "bizLocations": "biz_location",
}
_STANDARD: Final[dict[str, tuple[str, ...]]] = {
    "eventTypes": tuple(EVENT_TYPES),
    "bizSteps": CBV_BIZ_STEPS,
    "dispositions": CBV_DISPOSITIONS,
}


@dataclass(frozen=True)
class VocabularyPage:
    members: list[str]
    next_token: str | None


def vocabulary_page(
    store: Store, kind: str, *, per_page: int = DEFAULT_PER_PAGE, token: str | None = None
) -> VocabularyPage:
    """The values of one top-level resource (the standard words, then those the ledger's
    events use), in order, a page at a time."""
    if kind not in VOCABULARIES:
        raise MalformedInput(f"no vocabulary {kind!r}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise QueryParameterException(f"perPage is from 1 to {MAX_PER_PAGE}, not {per_page}")
    # A position in a sorted list of values is a value: any token is one, and none is refused.
    after = token
    standard = [v for v in _STANDARD.get(kind, ()) if after is None or v > after]
    with store.reading() as conn:
        if kind == "epcs":
            used = epcisdb.known_codes(conn, after=after, limit=per_page + 1)
        elif kind in _COLUMNS:
            used = epcisdb.distinct_values(conn, _COLUMNS[kind], after=after, limit=per_page + 1)
        else:
            used = []
    members = sorted(set(standard) | set(used))[: per_page + 1]
    more = len(members) > per_page
    members = members[:per_page]
    next_token = members[-1] if more else None
    return VocabularyPage(members=members, next_token=next_token)
