"""EPCIS 2.0 documents in and out: each event of a document becomes one signed ``event``
statement, and an export is an EPCISDocument whose events are exactly the bodies signed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import orjson
from sqlalchemy.engine import Connection

from ledger.core.errors import BatchRejected, LedgerError, MalformedInput, NotFound
from ledger.core.keys import PartyKey
from ledger.core.statements import now_rfc3339, sign_one
from ledger.core.times import utc_text
from ledger.epcis.context import EPCIS_CONTEXT as EPCIS_CONTEXT  # re-exported: importers use it
from ledger.epcis.context import DocumentRecord, InContext, SignedEvent, in_context, namespaces
from ledger.epcis.event_hash import DOCUMENT_FIELDS, event_hash
from ledger.epcis.projection import normalise_code
from ledger.epcis.stages import CBEC_NAMESPACE
from ledger.log.sequencer import Ledger, Receipt
from ledger.queries import trace
from ledger.store import capturedb, tracedb
from ledger.store.db import Store

# An export's own terms beside the eventList: each event's seq, signer and CBV 2.0 event hash
# and the documents it was imported in (their signed records).
LEDGER_PREFIX: Final = "suyuan"
LEDGER_NAMESPACE: Final = "urn:suyuan:export#"
DOCUMENT_TYPES: Final = ("EPCISDocument", "EPCISQueryDocument")

Direction = Literal["journey", "up", "down"]
DIRECTIONS: Final = ("journey", "up", "down")


def events_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of an EPCISDocument or EPCISQueryDocument, exactly as they appear."""
    expected = (
        "an EPCISDocument with epcisBody.eventList or an EPCISQueryDocument with "
        "epcisBody.queryResults.resultsBody.eventList"
    )
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

    def __init__(
        self,
        errors: Iterable[tuple[int, LedgerError]],
        events: list[dict[str, Any]],
        *,
        source: str | None = None,
    ) -> None:
        super().__init__(list(errors))
        self.names = [_event_name(i, events) for i, _ in self.errors]
        first = self.errors[0][1]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        doc = f"document {source}" if source else "document"
        self.message = f"{doc} refused, nothing appended: {self.names[0]}: {first.message}{more}"
        self.args = (self.message,)

    def diagnostics(self) -> str:
        lines = [f"error [{self.code}]: {len(self.errors)} event(s) refused, nothing appended"]
        lines += [
            f"  {name}: [{e.code}] {e.message}" for name, (_, e) in zip(self.names, self.errors, strict=True)
        ]
        return "\n".join(lines)


def _event_name(i: int, events: list[dict[str, Any]]) -> str:
    eid = events[i].get("eventID") if i < len(events) else None
    return f"event {i} ({eid})" if isinstance(eid, str) else f"event {i}"


def _kind(value: object) -> str:
    return "an array" if isinstance(value, list) else f"a {type(value).__name__} value"


def import_document(
    ledger: Ledger, document: Mapping[str, Any], *, signer: str, key: PartyKey, source: str | None = None
) -> list[Receipt]:
    """Sign every event of ``document`` as ``signer`` and append them as one batch.

    All or nothing: if any event is refused, ``BatchRejected`` names each refused event by
    its index in the eventList (and its eventID, if it has one) and nothing is appended.
    An event the signer already has on the ledger is not appended again (its receipt is
    the first one's, with ``duplicate_of``). The receipts are the events', in order; the
    batch also holds the document record (see ``import_epcis``).
    """
    return import_epcis(ledger, document, signer=signer, key=key, source=source).events


@dataclass(frozen=True)
class Imported:
    events: list[Receipt]
    document: Receipt  # of the ``document`` statement: the header fields and event hashes
    masterdata: list[Receipt] = field(default_factory=list)  # one per vocabulary element


def document_record(
    document: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]],
    *,
    media_type: str = "application/ld+json",
) -> dict[str, Any]:
    """The body of the ``document`` statement an import signs: the document's own fields,
    which no event carries (id, sender, receiver, instanceIdentifier, SBDH, creationDate,
    schemaVersion), its JSON-LD ``@context`` as ``context`` (what gives the events' terms
    their meaning), and the event hash of each event in eventList order, which is how an
    export names the documents its events came in. The events' bodies stay exactly the
    events, so their statements and event hashes do not depend on the document's context."""
    record: dict[str, Any] = {"type": document.get("type"), "format": media_type}
    for k in DOCUMENT_FIELDS - {"type", "format", "events", "context"}:
        if k in document:
            record[k] = document[k]
    if document.get("@context") is not None:
        record["context"] = document["@context"]
    record["events"] = [event_hash(e) for e in events]
    return record


def import_epcis(
    ledger: Ledger,
    document: Mapping[str, Any],
    *,
    signer: str,
    key: PartyKey,
    source: str | None = None,
    media_type: str = "application/ld+json",
) -> Imported:
    """``import_document``, with the receipt of the document record too."""
    events = events_of(document)
    issued = now_rfc3339()
    envelopes: list[dict[str, Any]] = []
    unsignable: list[tuple[int, LedgerError]] = []
    for i, e in enumerate(events):
        try:
            envelopes.append(sign_one(kind="event", signer=signer, key=key, body=e, issued=issued))
        except LedgerError as err:  # a value JCS cannot write (say, a float beyond 2^53)
            unsignable.append((i, err))
    if unsignable:
        raise DocumentRejected(unsignable, events, source=source)
    described = masterdata_of(document, signer=signer, key=key, issued=issued, source=source)
    envelopes += [env for _, env in described]
    try:
        record = document_record(document, events, media_type=media_type)
        envelopes.append(sign_one(kind="document", signer=signer, key=key, body=record, issued=issued))
    except LedgerError as err:
        raise LedgerError(
            f"{source or 'document'}: its header cannot be recorded: {err.message}", code=err.code
        ) from None
    before = ledger.size()
    try:
        receipts = ledger.append_batch(envelopes)
    except BatchRejected as e:
        refused_masterdata(e, events, described, source=source)
        raise DocumentRejected(
            [(i, err) for i, err in e.errors if i < len(events)] or e.errors, events, source=source
        ) from None
    # The very same statements (the same document again within the second its events were
    # signed) are answered by the log's statement-hash check, whose receipts are the first
    # ones as they were; an import says which of its events were there already.
    receipts = [
        replace(r, duplicate_of=r.seq) if r.duplicate_of is None and r.seq < before else r for r in receipts
    ]
    return Imported(receipts[: len(events)], receipts[-1], receipts[len(events) : -1])


# --- the EPCISMasterData section (epcisHeader.epcisMasterData), signed beside the events ------


def masterdata_of(
    document: Mapping[str, Any], *, signer: str, key: PartyKey, issued: str, source: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """(name, envelope) of a ``masterdata`` statement for each vocabulary element of the
    document's master-data section; refused as a whole, naming the element, if one is not
    an element the ledger takes."""
    from ledger.epcis import masterdata

    try:
        bodies = masterdata.elements_of(document)
        return [
            (masterdata.element_name(b), env)
            for b, env in zip(
                bodies, masterdata.sign_elements(bodies, signer=signer, key=key, issued=issued), strict=True
            )
        ]
    except LedgerError as e:
        raise type(e)(f"{source or 'document'} refused, nothing appended: {e.message}", code=e.code) from None


def refused_masterdata(
    e: BatchRejected,
    events: list[dict[str, Any]],
    described: list[tuple[str, dict[str, Any]]],
    *,
    source: str | None,
) -> None:
    """Raise the refusal of a master-data element of the batch, if the batch's first
    refusal is one (the events' and the record's are the caller's)."""
    first, err = e.errors[0]
    if len(events) <= first < len(events) + len(described):
        more = f" (and {len(e.errors) - 1} more)" if len(e.errors) > 1 else ""
        raise type(err)(
            f"{source or 'document'} refused, nothing appended: "
            f"{described[first - len(events)][0]}: {err.message}{more}",
            code=err.code,
        ) from None


def export_document(store: Store, code: str, *, direction: Direction = "journey") -> dict[str, Any]:
    """An EPCISDocument of the signed events about ``code``, in event-time order.

    ``journey``: the events of its journey (its own, its lot's, its containers' while it was
    inside). ``up``/``down``: the events naming it or anything in its upstream (what it was
    made of, packed in, its lot) or downstream lineage (what it became or held).
    """
    if direction not in DIRECTIONS:
        raise MalformedInput(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    key = normalise_code(code)
    with store.reading() as conn:
        if direction == "journey":
            seqs = [s.seq for s in trace.journey_steps(conn, key)]
        else:
            lineage = trace.lineage(conn, key, depth=trace.MAX_DEPTH, forward=direction == "down")
            named = tracedb.seqs_naming(conn, [key, *(i["code"] for i in lineage)])
            rows = tracedb.event_rows(conn, named.keys())
            seqs = sorted(rows, key=lambda s: (rows[s]["event_time_utc"], s))
        signed, records = signed_events(store, conn, seqs)
    if not seqs:
        raise NotFound(f"no event in the ledger names {key}")
    written = in_context(signed, records, extra={LEDGER_PREFIX: LEDGER_NAMESPACE})
    entries = []
    for i, e in enumerate(signed):
        entry: dict[str, Any] = {
            "seq": e.seq,
            "signer": e.signer,
            "eventHash": e.event_hash,
            "documents": [
                r.seq for r in records if r.signer == e.signer and e.event_hash in r.body["events"]
            ],
        }
        if i in written.signed_contexts:
            entry["signedContext"] = written.signed_contexts[i]
        entries.append(entry)
    return {
        "@context": written.context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": utc_text(digits=3),
        "epcisBody": {"eventList": written.events},
        # Beside the events, never in them: the signed bodies are exported exactly as signed.
        f"{LEDGER_PREFIX}:entries": entries,
        # The records without their contexts: those are in the document's own @context.
        f"{LEDGER_PREFIX}:documents": [
            {
                "seq": r.seq,
                "signer": r.signer,
                **{k: v for k, v in r.body.items() if k not in ("events", "context")},
            }
            for r in records
        ],
    }


def signed_events(
    store: Store, conn: Connection, seqs: Sequence[int]
) -> tuple[list[SignedEvent], list[DocumentRecord]]:
    """The event entries ``seqs``, in that order, and the document records naming them."""
    raw = store.entries_by_seq(conn, seqs)
    hashes = capturedb.hashes_of(conn, seqs)
    statements = {s: orjson.loads(raw[s])["envelope"]["statement"] for s in seqs}
    signed = [
        SignedEvent(s, statements[s]["signer"], statements[s]["issued"], statements[s]["body"], hashes[s])
        for s in seqs
    ]
    return signed, capturedb.document_records(conn, hashes.values())


def events_in_context(
    store: Store, seqs: Sequence[int], *, extra: Mapping[str, Any] | None = None
) -> InContext:
    """The signed events ``seqs`` and the ``@context`` a document writing them needs so that
    each expands as in the document it was imported in (``ledger.epcis.context.in_context``);
    ``extra`` are the writer's own terms, checked against the events' like the rest."""
    with store.reading() as conn:
        signed, records = signed_events(store, conn, seqs)
    return in_context(signed, records, extra=extra)


def export_xml(store: Store, code: str, *, direction: Direction = "journey") -> bytes:
    """``export_document`` as EPCIS 2.0 XML, checked against GS1's XSD before it is returned.

    The events are written from their signed JSON by GS1's mapping (bare CBV words as their
    URNs); the ledger's entries and document records follow the EventList as elements in the
    export namespace, which the XSD admits there."""
    from lxml import etree

    from ledger.epcis import xml as epcis_xml
    from ledger.epcis.event_hash import GS1_VOC

    doc = export_document(store, code, direction=direction)
    mapping = {k: v for k, v in namespaces(doc["@context"]).items() if k != LEDGER_PREFIX}
    bound = {"cbvmda": "urn:epcglobal:cbv:mda", "gs1": GS1_VOC, "cbec": CBEC_NAMESPACE, **mapping}
    ns = LEDGER_NAMESPACE
    entries = etree.Element(f"{{{ns}}}entries", nsmap={LEDGER_PREFIX: ns})
    for e in doc[f"{LEDGER_PREFIX}:entries"]:
        etree.SubElement(
            entries,
            f"{{{ns}}}entry",
            seq=str(e["seq"]),
            signer=e["signer"],
            eventHash=e["eventHash"],
            documents=" ".join(str(d) for d in e["documents"]),
        )
    documents = etree.Element(f"{{{ns}}}documents", nsmap={LEDGER_PREFIX: ns})
    for d in doc[f"{LEDGER_PREFIX}:documents"]:
        etree.SubElement(
            documents, f"{{{ns}}}document", **{k: str(v) for k, v in d.items() if isinstance(v, str | int)}
        )
    data = epcis_xml.write(doc, namespaces=bound, body_extras=[entries, documents])
    epcis_xml.validate(data, source="the export")
    return data
