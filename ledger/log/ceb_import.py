"""Importing China Customs CBEC messages: who may sign their documents, what the ledger
already holds of them, and one batch per message (``suyuan ceb import``, and the agent's
``POST /ceb``).

A message's documents are signed by one party, which must be each document's responsible
enterprise by one of the customs codes its registration holds (``ebpCode``/``ebcCode`` for
an order, ``payCode`` for a payment, ``logisticsCode`` for a waybill, ``agentCode`` for an
inventory; a receipt is customs' own) or the enterprise that transmits the message
(BaseTransfer ``copCode``) acting for it, which the statement then records; anyone else is
refused ``wrong_sender``. A document whose natural key the ledger holds already is not
appended again unless it is a change (``appType`` 2, a new version) or a deletion (3, a
withdrawal): its answer is the first receipt, with ``duplicateOf``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ledger.core.errors import BatchRejected, LedgerError, NotAuthentic, NotAuthorised
from ledger.core.keys import PartyKey
from ledger.core.private import make_blob
from ledger.core.registry import CustomsCodeRecord, PartyRecord, RegistryState, customs_holder
from ledger.core.statements import now_rfc3339, sign_one
from ledger.epcis import ceb
from ledger.log.sequencer import Ledger, Receipt
from ledger.store import cebdb


@dataclass(frozen=True)
class CebResult:
    """What became of one document of a message: its kind, natural key and receipt."""

    message: str
    guid: str
    document: int  # its place among the message's payload elements
    kind: str
    key: Mapping[str, str]
    receipt: Receipt

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": dict(self.key),
            "message": self.message,
            "guid": self.guid,
            "document": self.document,
            **self.receipt.as_dict(),
        }


def signer_of(ledger: Ledger, key: PartyKey) -> str:
    """The registered party whose key this is."""
    with ledger.store.reading() as conn:
        known = ledger.store.public_keys(conn, [key.key_id])
    if key.key_id not in known:
        raise NotAuthentic(
            f"key {key.key_id} ({key.name}) is not registered to any party", code="unknown_key"
        )
    return known[key.key_id][0]


def _registry(ledger: Ledger, signer: str, msg: ceb.Message) -> RegistryState:
    codes = {c for d in msg.documents for f in (*d.kind.responsible, "ebcCode") if (c := d.get(f))}
    if msg.transmitter:
        codes.add(msg.transmitter)
    with ledger.store.reading() as conn:
        reg = ledger.store.load_registry(conn, key_ids=(), party_ids=[signer], codes=codes)
    if signer not in reg.parties:
        raise NotAuthentic(f"signer {signer} is not a registered party", code="unknown_signer")
    return reg


def _authorise(msg: ceb.Message, doc: ceb.Document, party: PartyRecord, reg: RegistryState) -> ceb.Context:
    """Who the document is signed for; ``wrong_sender`` unless the signer may sign it."""
    if doc.kind.receipt:
        if "customs" not in party.roles:
            raise NotAuthorised(
                f"{msg.source}: {doc.where()}: a {msg.type} is customs' receipt; {party.id} "
                f"(roles: {', '.join(party.roles)}) is not customs",
                code="wrong_sender",
            )
        return ceb.Context()
    responsible = ceb.responsible_codes(doc)
    own = set(party.customs_codes)
    parties = tuple(
        dict.fromkeys(p for c in responsible if (p := customs_holder(reg, c)) is not None and p != party.id)
    )
    if own & set(responsible):
        return ceb.Context(responsible=responsible, parties=parties)
    if msg.transmitter and msg.transmitter in own:
        return ceb.Context(responsible=responsible, on_behalf_of=responsible, parties=parties)
    fields = " / ".join(f"{f} {doc.get(f)}" for f in doc.kind.responsible if doc.get(f))
    held = ", ".join(party.customs_codes) or "none"
    raise NotAuthorised(
        f"{msg.source}: {doc.where()}: {party.id} (customs codes: {held}) is neither the "
        f"enterprise responsible for this {doc.kind.name} ({fields}) nor the enterprise that "
        f"transmits it (copCode {msg.transmitter or 'absent'}); sign it with one of their keys",
        code="wrong_sender",
    )


@dataclass
class LedgerFacts:
    """What the ledger holds of the documents a message names (one read transaction)."""

    versions: dict[tuple[str, str], list[tuple[int, bool]]]
    orders: dict[str, str]  # a waybill's orderNo -> the one platform order with that number
    payments: dict[str, str]  # order number -> its payment's latest version, if any
    goods: dict[str, tuple[Mapping[str, Any], ...]]  # declaration -> its quantityList


def _facts(ledger: Ledger, msg: ceb.Message) -> LedgerFacts:
    numbers = {n for d in msg.documents if not d.kind.receipt if (n := ceb.document_number(d)) is not None}
    by_number = {
        ceb.order_number_uri(o): o
        for d in msg.documents
        if d.kind.name == "waybill" and (o := d.get("orderNo"))
    }
    inventory_orders = {
        ceb.order_uri(d.get("ebpCode") or "", d.get("orderNo") or "")
        for d in msg.documents
        if d.kind.name == "inventory"
    }
    releases = {
        n[1]
        for d in msg.documents
        if d.kind.name == "inventory_receipt"
        and ceb.receipt_step(d.get("returnStatus") or "")[0] == "cbec:releasing"
        and (n := ceb.document_number(d)) is not None
    }
    store = ledger.store
    with store.reading() as conn:
        versions = cebdb.versions(conn, numbers | {("cbec:declaration", r) for r in releases})
        citing = cebdb.untyped_citations(conn, by_number)
        payments = cebdb.payments_of(conn, inventory_orders)
        latest = {
            r: versions[("cbec:declaration", r)][-1][0]
            for r in releases
            if ("cbec:declaration", r) in versions
        }
        wanted = {s for seqs in citing.values() for s in seqs} | set(latest.values())
        bodies = cebdb.bodies(conn, wanted)
    orders: dict[str, str] = {}
    for uri, seqs in citing.items():
        found = {
            bt["bizTransaction"]
            for s in seqs
            for bt in bodies.get(s, {}).get("bizTransactionList", ())
            if bt.get("type") == "cbec:order"
        }
        if len(found) == 1:  # two platforms with one order number: the waybill cannot tell
            orders[by_number[uri]] = found.pop()
    paid: dict[str, str] = {}
    for order, rows in payments.items():
        latest_of: dict[str, tuple[int, bool]] = {}
        for seq, number, withdrawn in rows:
            if number not in latest_of or latest_of[number][0] < seq:
                latest_of[number] = (seq, withdrawn)
        live = sorted((s, n) for n, (s, w) in latest_of.items() if not w)
        if live:
            paid[order] = live[-1][1]
    goods = {r: tuple(bodies.get(s, {}).get("quantityList", ())) for r, s in latest.items()}
    return LedgerFacts(versions, orders, paid, goods)


def no_facts() -> LedgerFacts:
    """What a signer who cannot read the ledger knows of it: nothing (``suyuan agent``)."""
    return LedgerFacts(versions={}, orders={}, payments={}, goods={})


def registry_of(parties: Sequence[PartyRecord]) -> RegistryState:
    """A registry of these parties and the customs codes they hold, for signing a message
    away from the ledger (the agent reads the parties from the ledger's API)."""
    reg = RegistryState()
    for p in parties:
        reg.parties[p.id] = p
        for code in p.customs_codes:
            reg.customs_codes[code] = CustomsCodeRecord(code=code, party=p.id, since_seq=p.registered_seq)
    return reg


@dataclass(frozen=True)
class SignedMessage:
    """A message's statements, ready to append as one batch: the envelopes, the private
    blobs they commit to (by commitment), and per document (in the message's order) the
    index of its envelope, or ("seq", n) for a document the ledger holds at n, or ("doc",
    i) for a repeat of the message's own envelope i."""

    envelopes: list[dict[str, Any]]
    blobs: dict[str, dict[str, Any]]
    slots: list[int | tuple[str, int]]


def sign_message(
    msg: ceb.Message,
    *,
    key: PartyKey,
    signer: str,
    registry: RegistryState,
    facts: LedgerFacts,
    matching_key: bytes,
    issued: str | None = None,
) -> SignedMessage:
    """Sign every document of a read message as ``signer``, authorised by ``registry``
    (``wrong_sender`` otherwise) and linked by what ``facts`` says the ledger holds."""
    if signer not in registry.parties:
        raise NotAuthentic(f"signer {signer} is not a registered party", code="unknown_signer")
    party = registry.parties[signer]
    contexts = [_authorise(msg, d, party, registry) for d in msg.documents]
    issued = issued or now_rfc3339()
    envelopes: list[dict[str, Any]] = []
    blobs: dict[str, dict[str, Any]] = {}
    slots: list[int | tuple[str, int]] = []
    first_in_message: dict[tuple[str, str], int] = {}  # document number -> its envelope
    for doc, ctx in zip(msg.documents, contexts, strict=True):
        number = None if doc.kind.receipt else ceb.document_number(doc)
        if number is not None and doc.app_type in (None, "1"):
            # The same document again (its natural key) is not a new fact: a change says
            # appType 2. Its answer is the receipt of its first version.
            on_ledger = facts.versions.get(number)
            if on_ledger:
                slots.append(("seq", on_ledger[0][0]))
                continue
            if number in first_in_message:
                slots.append(("doc", first_in_message[number]))
                continue
        if doc.kind.name == "waybill":
            ctx = replace(ctx, order=facts.orders.get(doc.get("orderNo") or ""))
        elif doc.kind.name == "inventory":
            order = ceb.order_uri(doc.get("ebpCode") or "", doc.get("orderNo") or "")
            ctx = replace(ctx, payment=facts.payments.get(order))
        elif doc.kind.name == "order":
            merchant = customs_holder(registry, doc.get("ebcCode") or "")
            if merchant is not None and merchant != signer:
                ctx = replace(ctx, merchant=merchant)
        elif doc.kind.name == "inventory_receipt":
            decl = ceb.document_number(doc)
            if decl is not None:
                ctx = replace(ctx, goods=facts.goods.get(decl[1], ()))
        mapped = ceb.event_of(msg, doc, ctx, matching_key=matching_key)
        commitment, blob = make_blob(mapped.private)
        try:
            env = sign_one(
                kind="event", signer=signer, key=key, body=mapped.body, issued=issued, private=commitment
            )
        except LedgerError as e:
            raise LedgerError(f"{msg.source}: {doc.where()}: {e.message}", code=e.code) from None
        blobs[commitment] = blob
        if number is not None and number not in first_in_message:
            first_in_message[number] = len(envelopes)
        slots.append(len(envelopes))
        envelopes.append(env)
    return SignedMessage(envelopes=envelopes, blobs=blobs, slots=slots)


def import_message(
    ledger: Ledger,
    msg: ceb.Message,
    *,
    key: PartyKey,
    matching_key: bytes,
    signer: str | None = None,
    issued: str | None = None,
) -> list[CebResult]:
    """Sign every document of a read message as ``signer`` (default: the key's party) and
    append them as one batch; one result per document, in the message's order."""
    signer = signer or signer_of(ledger, key)
    signed = sign_message(
        msg,
        key=key,
        signer=signer,
        registry=_registry(ledger, signer, msg),
        facts=_facts(ledger, msg),
        matching_key=matching_key,
        issued=issued,
    )
    envelopes, blobs, slots = signed.envelopes, signed.blobs, signed.slots
    before = ledger.size()
    try:
        receipts = ledger.append_batch(envelopes, private=blobs) if envelopes else []
    except BatchRejected as e:
        docs = {slot: doc for doc, slot in zip(msg.documents, slots, strict=True) if isinstance(slot, int)}
        i, refusal = e.errors[0]
        more = f" (and {len(e.errors) - 1} more)" if len(e.errors) > 1 else ""
        where = docs[i].where() if i in docs else f"statement {i}"
        raise LedgerError(
            f"{msg.source}: {where}: {refusal.message}{more}; nothing of this message was appended",
            code=refusal.code,
        ) from None
    # The very same statement again (a second import within the second it was signed) is
    # answered by the log's statement-hash check: mark it a repeat like the others.
    receipts = [
        replace(r, duplicate_of=r.seq) if r.duplicate_of is None and r.seq < before else r for r in receipts
    ]
    out: list[CebResult] = []
    earlier: dict[int, Receipt] = {}
    for doc, slot in zip(msg.documents, slots, strict=True):
        if isinstance(slot, int):
            receipt = receipts[slot]
        elif slot[0] == "doc":
            first = receipts[slot[1]]
            receipt = replace(first, duplicate_of=first.seq)
        else:
            seq = slot[1]
            if seq not in earlier:
                earlier[seq] = replace(ledger.receipt_of(seq), duplicate_of=seq)
            receipt = earlier[seq]
        out.append(CebResult(msg.type, msg.guid, doc.index, doc.kind.name, doc.key, receipt))
    return out


def import_ceb(
    ledger: Ledger,
    data: bytes,
    *,
    key: PartyKey,
    matching_key: bytes,
    signer: str | None = None,
    source: str = "message",
    issued: str | None = None,
) -> list[CebResult]:
    """Read one customs message (bytes as received: bare or in a ``dxp:DxpMsg``, UTF-8 or
    GB2312/GBK) and import it: one statement per document, one batch, all or nothing."""
    return import_message(
        ledger,
        ceb.read_message(data, source=source),
        key=key,
        matching_key=matching_key,
        signer=signer,
        issued=issued,
    )


def import_order(messages: Sequence[ceb.Message]) -> list[ceb.Message]:
    """Messages in the order their documents link: orders, payments, waybills, inventories,
    then customs' receipts; stable within a type."""
    rank = {t: i for i, t in enumerate(ceb.IMPORT_ORDER)}
    return sorted(messages, key=lambda m: rank[m.type])
