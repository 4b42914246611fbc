"""What an EPCIS event means for the ledger: its stage and activity, which roles may sign it,
and every identifier it names in canonical form.

Classification rules, tried in order; the first that matches decides. A *stage-bearing*
bizStep is one named in these rules; an absent bizStep, ``other`` and any other URI are
not, and leave the decision to business transactions and the event type. Terms are
compared after ``normalise_term``, so every spelling of a CBV or CBEC word counts alike.

| #  | when                                                       | stage       | activity        |
| -- | ---------------------------------------------------------- | ----------- | --------------- |
| 1  | bizStep `cbec:recalling`                                   | recall      | recall          |
| 2  | no stage-bearing bizStep, disposition `recalled`           | recall      | recall          |
| 3  | bizStep `cbec:evaluating`                                  | evaluation  | evaluation      |
| 4  | bizStep `cbec:inspecting_customs`                          | clearance   | inspection      |
|    | bizStep `cbec:releasing`                                   | clearance   | release         |
|    | bizStep `cbec:holding_customs`                             | clearance   | hold            |
|    | bizStep `cbec:returning_customs`                           | clearance   | return          |
|    | bizStep `cbec:acknowledging_customs`                       | clearance   | receipt         |
| 5  | bizStep `cbec:declaring`                                   | clearance   | declaration     |
| 6  | a business transaction of type `cbec:declaration`          | clearance   | declaration     |
| 7  | a business transaction of type `cbec:payment`              | payment     | payment         |
| 8  | a business transaction of type `cbec:waybill`              | logistics   | waybill         |
| 9  | a business transaction of type `cbec:order`                | transaction | order           |
| 10 | bizStep `retail_selling` or `dispensing`                   | transaction | the bizStep     |
| 11 | a handling bizStep, signer is producer or brand_owner      | production  | the bizStep     |
|    | a handling bizStep, any other signer                       | logistics   | the bizStep     |
| 12 | a logistics bizStep                                        | logistics   | the bizStep     |
| 13 | a production bizStep                                       | production  | the bizStep     |
| 14 | TransformationEvent                                        | production  | transformation  |
| 15 | TransactionEvent                                           | transaction | transaction     |
| 16 | AggregationEvent, signer is producer or brand_owner        | production  | see below       |
|    | AggregationEvent, any other signer                         | logistics   | see below       |
| 17 | ObjectEvent or AssociationEvent                            | production  | other           |

- handling bizSteps: `packing`, `unpacking`, `loading`, `unloading`, `sensor_reporting`;
- logistics bizSteps: `shipping`, `receiving`, `departing`, `arriving`, `transporting`,
  `storing`, `stocking`, `picking`, `staging_outbound`, `accepting`, `void_shipping`,
  `holding`, `stock_taking`, `cycle_counting`, `entering_exiting`, `collecting`, `consigning`;
- production bizSteps: `commissioning`, `creating_class_instance`, `encoding`, `reserving`,
  `assembling`, `disassembling`, `inspecting`, `sampling`, `repackaging`, `repairing`,
  `replacing`, `installing`, `removing`, `decommissioning`, `destroying`, `killing`;
- AggregationEvent activity by action: ADD `packing`, DELETE `unpacking`, OBSERVE (or none)
  `aggregation`.

Why this order: the CBEC bizSteps (1, 3-5) name an act only one authority performs, so they
decide even when the event cites documents. Each of the three documents customs matches
(order, payment, waybill) and the declaration may enter the ledger only from the party that
issues it, so a document type decides over an ordinary bizStep (6-9); a later document cites
the earlier ones (a declaration cites all three, a payment and a waybill cite the order), so
the latest one wins. A carrier's event therefore cites the waybill and the order, never the
declaration. A disposition describes the goods, not the act: moving recalled goods is still
logistics, and the disposition alone makes a recall only when no bizStep names the act.

Who may sign each stage (``ROLE_PERMISSIONS``; a role not listed, or ``registrar``, may
sign no event):

| role                  | may sign                                        |
| --------------------- | ----------------------------------------------- |
| producer, brand_owner | production; recall                              |
| platform, merchant    | transaction; evaluation                         |
| warehouse, logistics  | logistics                                       |
| customs_broker        | clearance (declaration)                         |
| customs               | clearance (inspection, release, hold, return,   |
|                       | receipt)                                        |
| payment               | payment                                         |
| regulator             | recall                                          |
| registrar             | nothing                                         |

Whether a producer recalls its *own* products needs the ledger's history and is not
judged here; list and credit statements of the regulator are not events and are judged by
the registry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from ledger.core import ids
from ledger.core.errors import IdentifierError, MalformedInput, NotAuthorised
from ledger.core.times import utc_text

STAGES: Final = (
    "production",
    "transaction",
    "clearance",
    "logistics",
    "payment",
    "evaluation",
    "recall",
)

EVENT_TYPES: Final = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)

CBEC_NAMESPACE: Final = "https://suyuan.example/cbec#"

# --- Terms -------------------------------------------------------------------------------

_CBV_WEB: Final = "https://ref.gs1.org/cbv/"
# The CBV vocabularies an event uses for words, by their web prefix and URN part. Only
# these are stripped: other CBV URNs (urn:epcglobal:cbv:bt:…) are identifiers, not words.
_CBV_WEB_PREFIXES: Final = ("BizStep-", "Disp-", "BTT-", "SDT-", "ER-")
_CBV_URN_VOCABS: Final = frozenset({"bizstep", "disp", "btt", "sdt", "er"})
_CBV_URN: Final = "urn:epcglobal:cbv:"


@functools.lru_cache(maxsize=4096)
def normalise_term(value: str) -> str:
    """The one spelling the ledger compares: the bare CBV word, or ``cbec:`` + the CBEC word.

    ``https://ref.gs1.org/cbv/BizStep-shipping`` and ``urn:epcglobal:cbv:bizstep:shipping``
    become ``shipping``; ``https://suyuan.example/cbec#releasing`` becomes
    ``cbec:releasing``; anything else is returned unchanged.
    """
    if value.startswith(_CBV_WEB):
        rest = value[len(_CBV_WEB) :]
        for prefix in _CBV_WEB_PREFIXES:
            if rest.startswith(prefix) and len(rest) > len(prefix):
                return rest[len(prefix) :]
        return value
    if value.startswith(_CBV_URN):
        vocab, colon, word = value[len(_CBV_URN) :].partition(":")
        return word if colon and word and vocab in _CBV_URN_VOCABS else value
    if value.startswith(CBEC_NAMESPACE) and len(value) > len(CBEC_NAMESPACE):
        return "cbec:" + value[len(CBEC_NAMESPACE) :]
    return value


# --- Classification ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classified:
    """The stage of the journey an event belongs to, and the finer activity within it."""

    stage: str
    activity: str


_CBEC_STEPS: Final = {
    "cbec:recalling": Classified("recall", "recall"),
    "cbec:evaluating": Classified("evaluation", "evaluation"),
    "cbec:inspecting_customs": Classified("clearance", "inspection"),
    "cbec:releasing": Classified("clearance", "release"),
    "cbec:holding_customs": Classified("clearance", "hold"),
    # What customs answers a customs message with (CEB312/412/512/622, ledger/epcis/ceb.py):
    # returning a document it will not accept (退单), or a processing status (回执).
    "cbec:returning_customs": Classified("clearance", "return"),
    "cbec:acknowledging_customs": Classified("clearance", "receipt"),
    "cbec:declaring": Classified("clearance", "declaration"),
}
# Latest document first: the first type an event cites from this list decides (rules 6-9).
_DOCUMENTS: Final = (
    ("cbec:declaration", Classified("clearance", "declaration")),
    ("cbec:payment", Classified("payment", "payment")),
    ("cbec:waybill", Classified("logistics", "waybill")),
    ("cbec:order", Classified("transaction", "order")),
)
_DOCUMENT_TYPES: Final = frozenset(t for t, _ in _DOCUMENTS)
_TRANSACTION_STEPS: Final = frozenset({"retail_selling", "dispensing"})
# Handling that happens wherever the goods are: at the producer's own site it is part of
# production, anywhere else it is logistics, so the signer's roles decide.
_HANDLING_STEPS: Final = frozenset({"packing", "unpacking", "loading", "unloading",
                                    "sensor_reporting"})  # fmt: skip
_LOGISTICS_STEPS: Final = frozenset({
    "shipping", "receiving", "departing", "arriving", "transporting", "storing", "stocking",
    "picking", "staging_outbound", "accepting", "void_shipping", "holding", "stock_taking",
    "cycle_counting", "entering_exiting", "collecting", "consigning",
})  # fmt: skip
_PRODUCTION_STEPS: Final = frozenset({
    "commissioning", "creating_class_instance", "encoding", "reserving", "assembling",
    "disassembling", "inspecting", "sampling", "repackaging", "repairing", "replacing",
    "installing", "removing", "decommissioning", "destroying", "killing",
})  # fmt: skip
_SITE_OWNERS: Final = frozenset({"producer", "brand_owner"})
_AGGREGATION_ACTIVITY: Final = {"ADD": "packing", "DELETE": "unpacking", "OBSERVE": "aggregation"}
_STAGE_BEARING: Final = _TRANSACTION_STEPS | _HANDLING_STEPS | _LOGISTICS_STEPS | _PRODUCTION_STEPS
_RECALL: Final = _CBEC_STEPS["cbec:recalling"]

STAGE_ACTIVITIES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "production": _HANDLING_STEPS | _PRODUCTION_STEPS | {"transformation", "other", "aggregation"},
        "transaction": _TRANSACTION_STEPS | {"order", "transaction"},
        "clearance": frozenset({"declaration", "inspection", "release", "hold", "return", "receipt"}),
        "logistics": _HANDLING_STEPS | _LOGISTICS_STEPS | {"waybill", "aggregation"},
        "payment": frozenset({"payment"}),
        "evaluation": frozenset({"evaluation"}),
        "recall": frozenset({"recall"}),
    }
)
"""Every (stage, activity) that ``classify`` can return."""


def _optional_term(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedInput(f"{field} must be a string such as a CBV word, not {value!r}")
    return normalise_term(value)


def _event_type(body: Mapping[str, Any]) -> str:
    t = body.get("type")
    if t not in EVENT_TYPES:
        raise MalformedInput(f"event type {t!r} is not one of {', '.join(EVENT_TYPES)}")
    return str(t)


def _biz_transaction_types(body: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for bt in _list(body, "bizTransactionList"):
        if not isinstance(bt, Mapping):
            raise MalformedInput("each bizTransactionList entry must be an object")
        t = bt.get("type")
        if t is None:
            continue
        if not isinstance(t, str):
            raise MalformedInput("bizTransactionList type must be a string such as cbec:order")
        found.add(normalise_term(t))
    return found


@functools.lru_cache(maxsize=256)
def _classified(stage: str, activity: str) -> Classified:
    """One shared record per (stage, activity): they are immutable, and only the words of
    the rules below and of the CBV reach here, so the set is small."""
    return Classified(stage, activity)


def _handling(activity: str, signer_roles: Collection[str]) -> Classified:
    on_site = any(r in _SITE_OWNERS for r in signer_roles)
    return _classified("production" if on_site else "logistics", activity)


def classify(body: Mapping[str, Any], *, signer_roles: Collection[str] = ()) -> Classified:
    """The stage and activity of one EPCIS event body, by the rules in this module's table.

    ``signer_roles`` matter only for handling steps (packing and the like), which belong to
    production at a producer's or brand owner's site and to logistics elsewhere.
    """
    event_type = _event_type(body)
    step = _optional_term(body, "bizStep")
    if step is not None:
        cbec = _CBEC_STEPS.get(step)
        if cbec is not None:
            return cbec  # rules 1, 3, 4, 5
        if step not in _STAGE_BEARING:
            step = None  # `other` or a URI of someone else's vocabulary says nothing here
    if step is None and _optional_term(body, "disposition") == "recalled":
        return _RECALL  # rule 2
    # An event without business transactions (or with null) cites no document.
    types = _biz_transaction_types(body) if body.get("bizTransactionList") is not None else ()
    if types and not _DOCUMENT_TYPES.isdisjoint(types):
        for t, classified in _DOCUMENTS:  # rules 6-9
            if t in types:
                return classified
    if step is not None:
        if step in _TRANSACTION_STEPS:
            return _classified("transaction", step)  # rule 10
        if step in _HANDLING_STEPS:
            return _handling(step, signer_roles)  # rule 11
        if step in _LOGISTICS_STEPS:
            return _classified("logistics", step)  # rule 12
        return _classified("production", step)  # rule 13
    if event_type == "TransformationEvent":
        return _classified("production", "transformation")
    if event_type == "TransactionEvent":
        return _classified("transaction", "transaction")
    if event_type == "AggregationEvent":
        action = body.get("action")
        activity = (
            _AGGREGATION_ACTIVITY.get(action, "aggregation") if isinstance(action, str) else "aggregation"
        )
        return _handling(activity, signer_roles)
    return _classified("production", "other")


# --- Authorisation -----------------------------------------------------------------------

# Read-only views: a caller that could add a pair here would widen what every party may sign.
ROLE_PERMISSIONS: Final[Mapping[str, frozenset[tuple[str, str | None]]]] = MappingProxyType(
    {
        # (stage, activity); activity None means every activity of the stage.
        "producer": frozenset({("production", None), ("recall", None)}),
        "brand_owner": frozenset({("production", None), ("recall", None)}),
        "platform": frozenset({("transaction", None), ("evaluation", None)}),
        "merchant": frozenset({("transaction", None), ("evaluation", None)}),
        "warehouse": frozenset({("logistics", None)}),
        "logistics": frozenset({("logistics", None)}),
        # Clearance is split: the broker files the declaration, only customs decides on it.
        "customs_broker": frozenset({("clearance", "declaration")}),
        "customs": frozenset(
            {
                ("clearance", "inspection"),
                ("clearance", "release"),
                ("clearance", "hold"),
                ("clearance", "return"),
                ("clearance", "receipt"),
            }
        ),
        "payment": frozenset({("payment", None)}),
        "regulator": frozenset({("recall", None)}),
        # The registrar admits parties; it never speaks about goods.
        "registrar": frozenset(),
    }
)

ROLE_STAGES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {role: frozenset(stage for stage, _ in perms) for role, perms in ROLE_PERMISSIONS.items()}
)
"""The stages each role may sign at least part of (see ``ROLE_PERMISSIONS`` for which)."""


def _may(role: str, classified: Classified) -> bool:
    perms = ROLE_PERMISSIONS.get(role)
    if not perms:
        return False
    return (classified.stage, None) in perms or (classified.stage, classified.activity) in perms


def authorise_event(*, party: str, roles: Collection[str], classified: Classified) -> None:
    """Return if one of ``roles`` may sign an event of this stage and activity, else raise
    ``NotAuthorised`` (code ``role_not_allowed``) naming the party and who may sign it."""
    whole, exact = (classified.stage, None), (classified.stage, classified.activity)
    for role in roles:  # _may, written out: this runs for every event appended
        perms = ROLE_PERMISSIONS.get(role)
        if perms and (whole in perms or exact in perms):
            return
    whole_stage = [r for r, p in ROLE_PERMISSIONS.items() if (classified.stage, None) in p]
    owners = whole_stage or [r for r in ROLE_PERMISSIONS if _may(r, classified)]
    held = ", ".join(roles) or "none"
    what = f"{classified.stage} ({classified.activity})"
    if owners:
        part = "stage" if whole_stage else "activity"
        reason = f"that {part} belongs to {' or '.join(owners)}"
    else:
        reason = "no role may sign it"
    raise NotAuthorised(f"{party} (roles: {held}) may not sign {what}: {reason}", code="role_not_allowed")


# --- Identifiers an event names ----------------------------------------------------------

ClassCount = tuple[str, float | int | None, str | None]
"""An EPC class with its quantity and unit of measure, as a quantity list gives them."""


class EventCodes(NamedTuple):
    """Every identifier one event names, as ``ids.index_key`` indexes it, and the words the
    projections need; tuples keep the event's order. A NamedTuple, not a frozen dataclass:
    every event appended or re-derived makes one, and a frozen dataclass's nineteen
    ``object.__setattr__`` calls cost 2.4 µs where a tuple costs 0.6."""

    type: str
    event_time: str
    event_time_utc: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    epcs: tuple[str, ...]
    parent: str | None
    children: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    classes: tuple[ClassCount, ...]
    input_classes: tuple[ClassCount, ...]
    output_classes: tuple[ClassCount, ...]
    read_point: str | None
    biz_location: str | None
    biz_transactions: tuple[tuple[str, str], ...]
    sources: tuple[tuple[str, str], ...]
    destinations: tuple[tuple[str, str], ...]


# Conversion costs tens of microseconds; locations, classes, parties and documents repeat
# from event to event, so a bounded cache pays. Errors are not cached and raise each time.
_index_key = functools.lru_cache(maxsize=1 << 14)(ids.index_key)

# Items are the one kind of identifier that does not repeat (each has its own serial), and
# an event names many. Their GTIN part repeats, so it goes through the cache; a serial of
# 1-20 letters and digits is valid in GS1 and needs escaping in neither URN nor Digital
# Link, so it is appended as it is. Every other spelling takes the full conversion.
_FAST_SGTIN: Final = re.compile(r"urn:epc:id:sgtin:([0-9]+\.[0-9]+)\.([A-Za-z0-9]{1,20})")
_FAST_ITEM_LINK: Final = re.compile(r"(https://id\.gs1\.org/01/[0-9]{14})/21/([A-Za-z0-9]{1,20})")


def _convert(code: str) -> str:
    if code.startswith("urn:epc:id:sgtin:"):
        m = _FAST_SGTIN.fullmatch(code)
        if m is not None:
            try:
                return _index_key(f"urn:epc:idpat:sgtin:{m[1]}.*") + "/21/" + m[2]
            except IdentifierError:
                pass  # the full conversion names the identifier as its author wrote it
    elif code.startswith("https://id.gs1.org/01/"):
        m = _FAST_ITEM_LINK.fullmatch(code)
        if m is not None:
            try:
                return _index_key(m[1]) + "/21/" + m[2]
            except IdentifierError:
                pass
    return _index_key(code)


def _key(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedInput(f"{where} must be an identifier string, not {value!r}")
    try:
        return _convert(value)
    except IdentifierError as e:
        raise IdentifierError(f"{where}: {e.message}") from None


def _list(body: Mapping[str, Any], field: str) -> list[Any]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedInput(f"{field} must be a list")
    return value


def _keys(body: Mapping[str, Any], field: str) -> tuple[str, ...]:
    values = _list(body, field)
    # Most of an event's lists are absent; a list comprehension is the cheap way for the rest.
    return tuple([_key(v, field) for v in values]) if values else ()


def _classes(body: Mapping[str, Any], field: str) -> tuple[ClassCount, ...]:
    out: list[ClassCount] = []
    for q in _list(body, field):
        if not isinstance(q, Mapping):
            raise MalformedInput(f"each {field} entry must be an object with an epcClass")
        quantity = q.get("quantity")
        # bool is an int to Python, never a quantity to EPCIS.
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int | float)):
            raise MalformedInput(f"{field} quantity must be a number, not {quantity!r}")
        uom = q.get("uom")
        if uom is not None and not isinstance(uom, str):
            raise MalformedInput(f"{field} uom must be a UN/CEFACT code such as KGM")
        out.append((_key(q.get("epcClass"), f"{field} epcClass"), quantity, uom))
    return tuple(out)


def _location(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MalformedInput(f'{field} must be an object such as {{"id": "urn:epc:id:sgln:…"}}')
    return _key(value.get("id"), f"{field} id")


def _typed(body: Mapping[str, Any], field: str, id_field: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for entry in _list(body, field):
        if not isinstance(entry, Mapping):
            raise MalformedInput(f"each {field} entry must be an object")
        t = entry.get("type")
        if t is not None and not isinstance(t, str):
            raise MalformedInput(f"{field} type must be a string such as a CBV word")
        out.append((normalise_term(t) if t else "", _key(entry.get(id_field), field)))
    return tuple(out)


def _utc(event_time: str) -> str:
    """An event time in UTC; cached, as the events of one batch often share their time (a
    refusal raises each time: lru_cache keeps no exception). A time with a long fraction
    is read each time: the cache holds short texts only."""
    return _cached_utc(event_time) if len(event_time) <= 64 else _utc_of(event_time)


def _utc_of(event_time: str) -> str:
    try:
        # fromisoformat reads any fraction length (keeping microseconds) and 'Z'.
        t = datetime.fromisoformat(event_time)
    except ValueError:
        raise MalformedInput(
            f"eventTime {event_time!r} is not a date-time such as 2026-11-27T13:05:00+08:00"
        ) from None
    if t.tzinfo is None:
        raise MalformedInput(f"eventTime {event_time} has no UTC offset; end it with Z or one such as +08:00")
    try:
        return utc_text(t)  # one fixed-width form: times sort as strings in every store
    except OverflowError:
        raise MalformedInput(f"eventTime {event_time} is outside the years 1-9999 in UTC") from None


_cached_utc: Final = functools.lru_cache(maxsize=1 << 12)(_utc_of)


@dataclass(frozen=True, slots=True)
class EventSummary:
    """When and where an event happened and its words: what a page shows of it."""

    event_time: str
    event_time_utc: str
    biz_step: str | None
    disposition: str | None
    read_point: str | None
    biz_location: str | None


def event_summary(body: Mapping[str, Any]) -> EventSummary:
    """The part of ``event_codes`` a reader of one event needs, without converting every
    identifier it names; raises as ``event_codes`` does for what it reads."""
    event_time = body.get("eventTime")
    if not isinstance(event_time, str):
        raise MalformedInput("an event needs eventTime, a date-time such as 2026-11-27T13:05:00Z")
    return EventSummary(
        event_time,
        _utc(event_time),
        _optional_term(body, "bizStep"),
        _optional_term(body, "disposition"),
        _location(body, "readPoint"),
        _location(body, "bizLocation"),
    )


def event_codes(body: Mapping[str, Any]) -> EventCodes:
    """Every identifier an EPCIS event body names, each as ``ids.index_key`` gives it (the
    canonical Digital Link of a GS1 key, any other identifier as written), with its time in
    UTC and its words normalised. Raises ``MalformedInput`` for a body these cannot be read
    from, ``IdentifierError`` for a GS1 key with a wrong form or check digit."""
    event_time = body.get("eventTime")
    if not isinstance(event_time, str):
        raise MalformedInput("an event needs eventTime, a date-time such as 2026-11-27T13:05:00Z")
    event_time_utc = _utc(event_time)
    action = body.get("action")
    if action is not None and not isinstance(action, str):
        raise MalformedInput(f"action must be ADD, OBSERVE or DELETE, not {action!r}")
    parent = body.get("parentID")
    # Most events have few of the lists: one that is absent (or null) names nothing, and
    # is skipped without a call.
    get = body.get
    return EventCodes(
        type=_event_type(body),
        event_time=event_time,
        event_time_utc=event_time_utc,
        action=action,
        biz_step=_optional_term(body, "bizStep"),
        disposition=_optional_term(body, "disposition"),
        epcs=_keys(body, "epcList") if get("epcList") is not None else (),
        parent=None if parent is None else _key(parent, "parentID"),
        children=_keys(body, "childEPCs") if get("childEPCs") is not None else (),
        inputs=_keys(body, "inputEPCList") if get("inputEPCList") is not None else (),
        outputs=_keys(body, "outputEPCList") if get("outputEPCList") is not None else (),
        classes=(_classes(body, "quantityList") if get("quantityList") is not None else ())
        + (_classes(body, "childQuantityList") if get("childQuantityList") is not None else ()),
        input_classes=_classes(body, "inputQuantityList") if get("inputQuantityList") is not None else (),
        output_classes=_classes(body, "outputQuantityList") if get("outputQuantityList") is not None else (),
        read_point=_location(body, "readPoint"),
        biz_location=_location(body, "bizLocation"),
        biz_transactions=_typed(body, "bizTransactionList", "bizTransaction")
        if get("bizTransactionList") is not None
        else (),
        sources=_typed(body, "sourceList", "source") if get("sourceList") is not None else (),
        destinations=_typed(body, "destinationList", "destination")
        if get("destinationList") is not None
        else (),
    )
