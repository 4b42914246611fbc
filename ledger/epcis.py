"""EPCIS 2.0 documents in and out: each event of a document becomes one signed ``event``
statement, and an export is an EPCISDocument whose events are exactly the bodies signed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from ledger import trace
from ledger.domain import CBEC_NAMESPACE
from ledger.errors import BatchRejected, LedgerError, MalformedInput, NotFound
from ledger.keys import PartyKey
from ledger.log import Ledger, Receipt
from ledger.statements import now_rfc3339, sign_one
from ledger.store import tracedb
from ledger.store.db import Store

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EXTENSION_NAMESPACE: Final = "urn:suyuan:ext:{prefix}#"
DOCUMENT_TYPES: Final = ("EPCISDocument", "EPCISQueryDocument")

# Prefixes the standard EPCIS 2.0 context defines; it is @protected, so never redefine them.
STANDARD_PREFIXES: Final = frozenset(
    {"epcis", "cbv", "cbvmda", "gs1", "rdf", "rdfs", "owl", "xsd", "dcterms", "sh", "schema"}
)
# A key such as ``urn:x:y`` or ``https:…`` is an absolute IRI, not a compact one: mapping its
# scheme as a prefix would change what it means.
URI_SCHEMES: Final = frozenset(
    {"http", "https", "urn", "ni", "tag", "mailto", "did", "data", "file", "ftp"}
)
_PREFIXED: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-_]*):(?!//)")

Direction = Literal["journey", "up", "down"]
DIRECTIONS: Final = ("journey", "up", "down")


def events_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of an EPCISDocument or EPCISQueryDocument, exactly as they appear."""
    expected = ("an EPCISDocument with epcisBody.eventList or an EPCISQueryDocument with "
                "epcisBody.queryResults.resultsBody.eventList")
    if not isinstance(document, Mapping):
        raise MalformedInput(f"expected {expected}, not {_kind(document)}")
    kind = document.get("type")
    body = document.get("epcisBody")
    if kind == "EPCISQueryDocument" and isinstance(body, Mapping):
        results = body.get("queryResults")
        body = results.get("resultsBody") if isinstance(results, Mapping) else None
    if kind not in DOCUMENT_TYPES or not isinstance(body, Mapping):
        raise MalformedInput(f"expected {expected}; this document has type {kind!r}")
    events = body.get("eventList")
    if not isinstance(events, list):
        raise MalformedInput(f"expected {expected}; its eventList is missing or not an array")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise MalformedInput(f"event {i} of the eventList must be a JSON object")
    return events


class DocumentRejected(BatchRejected):
    """A document refused as a whole; ``errors`` are by index in its eventList."""

    def __init__(self, errors: Iterable[tuple[int, LedgerError]],
                 events: list[dict[str, Any]]) -> None:
        super().__init__(list(errors))
        self.names = [_event_name(i, events) for i, _ in self.errors]
        first = self.errors[0][1]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        self.message = (f"document refused, nothing appended: {self.names[0]}: "
                        f"{first.message}{more}")
        self.args = (self.message,)

    def diagnostics(self) -> str:
        lines = [f"error [{self.code}]: {len(self.errors)} event(s) refused, nothing appended"]
        lines += [f"  {name}: [{e.code}] {e.message}"
                  for name, (_, e) in zip(self.names, self.errors, strict=True)]
        return "\n".join(lines)


def _event_name(i: int, events: list[dict[str, Any]]) -> str:
    eid = events[i].get("eventID") if i < len(events) else None
    return f"event {i} ({eid})" if isinstance(eid, str) else f"event {i}"


def _kind(value: object) -> str:
    return "an array" if isinstance(value, list) else f"a {type(value).__name__} value"


def import_document(ledger: Ledger, document: Mapping[str, Any], *, signer: str,
                    key: PartyKey) -> list[Receipt]:
    """Sign every event of ``document`` as ``signer`` and append them as one batch.

    All or nothing: if any event is refused, ``BatchRejected`` names each refused event by
    its index in the eventList (and its eventID, if it has one) and nothing is appended.
    """
    events = events_of(document)
    issued = now_rfc3339()
    envelopes: list[dict[str, Any]] = []
    unsignable: list[tuple[int, LedgerError]] = []
    for i, e in enumerate(events):
        try:
            envelopes.append(sign_one(kind="event", signer=signer, key=key, body=e,
                                      issued=issued))
        except LedgerError as err:  # a value JCS cannot write (say, a float beyond 2^53)
            unsignable.append((i, err))
    if unsignable:
        raise DocumentRejected(unsignable, events)
    try:
        return ledger.append_batch(envelopes)
    except BatchRejected as e:
        raise DocumentRejected(e.errors, events) from None


def export_document(store: Store, code: str, *, direction: Direction = "journey"
                    ) -> dict[str, Any]:
    """An EPCISDocument of the signed events about ``code``, in event-time order.

    ``journey``: the events of its journey (its own, its lot's, its containers' while it was
    inside). ``up``/``down``: the events naming it or anything in its upstream (what it was
    made of, packed in, its lot) or downstream lineage (what it became or held).
    """
    if direction not in DIRECTIONS:
        raise MalformedInput(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    key = trace.normalise_code(code)
    with store.reading() as conn:
        if direction == "journey":
            seqs = [s.seq for s in trace.journey_steps(conn, key)]
        else:
            lineage = trace.lineage(conn, key, depth=trace.MAX_DEPTH, forward=direction == "down")
            named = tracedb.seqs_naming(conn, [key, *(i["code"] for i in lineage)])
            rows = tracedb.event_rows(conn, named.keys())
            seqs = sorted(rows, key=lambda s: (rows[s]["event_time_utc"], s))
        raw = store.entries_by_seq(conn, seqs)
    if not seqs:
        raise NotFound(f"no event in the ledger names {key}")
    events = [_signed_body(raw[s]) for s in seqs]
    return {
        "@context": export_context(events),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "epcisBody": {"eventList": events},
    }


def _signed_body(entry: bytes) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(entry)["envelope"]["statement"]["body"]
    return body


def export_context(events: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The ``@context`` of an export: the standard EPCIS 2.0 context, then one object mapping
    every namespace prefix the events use in their keys (``example:myField`` → ``example``).

    A document's own ``@context`` is not kept: signed bodies are never rewritten and
    nothing is stored beside them. So ``cbec`` maps to the CBEC namespace and every other
    prefix to ``urn:suyuan:ext:<prefix>#``. Prefixes the standard context defines
    (``cbvmda``, ``gs1``, …) are left to it, since it is protected, and so are URI schemes
    used as keys (``https:``, ``urn:``), which are absolute IRIs. The exported JSON is the
    signed JSON; only an extension term's expanded IRI differs from the original document's.
    """
    prefixes: set[str] = set()
    for e in events:
        _collect_prefixes(e, prefixes)
    mapping = {p: CBEC_NAMESPACE if p == "cbec" else EXTENSION_NAMESPACE.format(prefix=p)
               for p in sorted(prefixes - STANDARD_PREFIXES - URI_SCHEMES)}
    return [EPCIS_CONTEXT, mapping] if mapping else [EPCIS_CONTEXT]


def _collect_prefixes(value: object, out: set[str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "@context":
                continue  # an event's own context declares terms; it uses none
            m = _PREFIXED.match(k)
            if m is not None:
                out.add(m[1])
            _collect_prefixes(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_prefixes(v, out)
