"""GraphQL object types: thin views of ledger values; list fields go through DataLoaders."""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.context import Context
from ledger.core import registry
from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.note import Checkpoint as CheckpointBody
from ledger.epcis import product
from ledger.epcis.masterdata import place_codes, product_class
from ledger.log import sequencer as log
from ledger.queries import trace
from ledger.queries.described import Described

Ctx = Info[Context, None]


@strawberry.type(description="A refusal: a machine-readable code and one sentence to act on.")
class Error:
    code: str
    message: str

    @classmethod
    def of(cls, e: LedgerError) -> Error:
        return cls(code=e.code, message=e.message)


@strawberry.type
class PartyKey:
    key_id: str
    public_key: str = strawberry.field(description="base64 Ed25519 public key")
    valid_from: int = strawberry.field(description="first seq it may sign")
    valid_until: int | None = strawberry.field(description="last seq it may sign, if it ended")
    ended_by: str | None = strawberry.field(description="revoked or rotated")


@strawberry.type(description="A registered party: public name and roles.")
class Party:
    id: str
    name: str
    roles: list[str]
    registered_seq: int
    gs1_prefixes: list[str] = strawberry.field(
        description="the GS1 company prefixes its registration holds: only it, or a party it "
        "delegated one to, may make or recall GTINs under them"
    )
    customs_codes: list[str] = strawberry.field(
        description="the customs codes (10-character customs registration codes or USCCs) its "
        "registration holds: the codes customs messages name it by"
    )
    name_en: str | None = strawberry.field(default=None, description="its registered English name, if given")

    @strawberry.field
    async def keys(self, info: Ctx) -> list[PartyKey]:
        return [
            PartyKey(
                key_id=k.key_id,
                public_key=base64.b64encode(k.public_key).decode(),
                valid_from=k.valid_from,
                valid_until=k.valid_until,
                ended_by=k.ended_by,
            )
            for k in await info.context.loaders.keys.load(self.id)
        ]

    @strawberry.field(description="Entries this party signed, a page at a time.")
    async def entries(self, info: Ctx, first: int = 20, after: str | None = None) -> EntryConnection:
        return await entry_page(info, first=first, after=after, signer=self.id)

    @classmethod
    def of(cls, p: registry.PartyRecord) -> Party:
        return cls(
            id=p.id,
            name=p.name,
            roles=list(p.roles),
            registered_seq=p.registered_seq,
            gs1_prefixes=list(p.gs1_prefixes),
            customs_codes=list(p.customs_codes),
            name_en=p.name_en,
        )


async def party_of(info: Ctx, party_id: str | None) -> Party | None:
    if party_id is None:
        return None
    rec = await info.context.loaders.party.load(party_id)
    return None if rec is None else Party.of(rec)


@strawberry.type(
    description="Private data a statement commits to, as far as the viewer may see "
    "it: status is shown, not_entitled, shredded or missing."
)
class PrivateData:
    commitment: str
    status: str
    data: JSON | None = strawberry.field(description="only when status is shown")
    salt: str | None = strawberry.field(description="with data: sha256(JCS({salt, data})) is the commitment")
    shredded: str | None = strawberry.field(description="when it was erased")


@strawberry.type
class InclusionProof:
    leaf_index: int
    tree_size: int
    hashes: list[str] = strawberry.field(description="hex, from the leaf side up (RFC 9162)")

    @classmethod
    def of(cls, p: log.InclusionProof) -> InclusionProof:
        return cls(leaf_index=p.leaf_index, tree_size=p.tree_size, hashes=[h.hex() for h in p.hashes])


@strawberry.type
class ConsistencyProof:
    first: int
    second: int
    hashes: list[str]

    @classmethod
    def of(cls, p: log.ConsistencyProof) -> ConsistencyProof:
        return cls(first=p.first, second=p.second, hashes=[h.hex() for h in p.hashes])


@strawberry.type(description="A ledger entry: its exact bytes and what they say.")
class Entry:
    seq: int
    leaf_hash: str = strawberry.field(description="hex SHA-256(0x00 || entry bytes)")
    raw: str = strawberry.field(name="bytes", description="base64 of the exact entry bytes")
    time: str = strawberry.field(description="when the ledger recorded it (UTC)")
    prev: str = strawberry.field(description="leaf hash of the entry before it")
    kind: str
    signer: str
    statement: JSON = strawberry.field(description="the signed statement, decoded")
    signatures: JSON

    @strawberry.field
    async def signer_party(self, info: Ctx) -> Party | None:
        return await party_of(info, self.signer)

    @strawberry.field(
        description="an event's CBV 2.0 event hash (ni:///sha-256;…?ver=CBV2.0), "
        "which capture deduplicates by; null for other kinds"
    )
    def event_hash(self) -> str | None:
        from ledger.epcis.event_hash import event_hash

        return event_hash(self.statement["body"]) if self.kind == "event" else None  # type: ignore[index]

    @strawberry.field(description="the journey stage of an event; null for other kinds")
    async def stage(self, info: Ctx) -> str | None:
        return await info.context.loaders.stage.load(self.seq) if self.kind == "event" else None

    @strawberry.field(description="null when the statement commits to no private data")
    async def private(self, info: Ctx) -> PrivateData | None:
        v = await info.context.loaders.private.load(self.seq)
        if v is None:
            return None
        return PrivateData(
            commitment=v.commitment,
            status=v.status,
            data=cast(JSON, v.data),
            salt=v.salt,
            shredded=v.shredded,
        )

    @strawberry.field(description="its inclusion proof against the tree of treeSize (default: now)")
    async def inclusion_proof(self, info: Ctx, tree_size: int | None = None) -> InclusionProof:
        size = tree_size if tree_size is not None else await info.context.loaders.size.load(0)
        return InclusionProof.of(await info.context.loaders.proof(size).load(self.seq))

    @classmethod
    def of(cls, e: log.Entry) -> Entry:
        doc = e.decoded()
        env = doc["envelope"]
        st = env["statement"]
        return cls(
            seq=e.seq,
            leaf_hash=e.leaf_hash.hex(),
            raw=base64.b64encode(e.raw).decode(),
            time=doc["time"],
            prev=doc["prev"],
            kind=st["kind"],
            signer=st["signer"],
            statement=st,
            signatures=env["signatures"],
        )


async def entry_of(info: Ctx, seq: int) -> Entry | None:
    e = await info.context.loaders.entry.load(seq)
    return None if e is None else Entry.of(e)


@strawberry.type(
    description="Master data of a place or a product class: the version in "
    "force, signed by the owner of its identifier (GLN or GS1 company "
    "prefix), as the ledger's index holds it (the consumer page verifies "
    "what it shows)."
)
class MasterData:
    code: str = strawberry.field(description="the canonical Digital Link it describes")
    kind: str = strawberry.field(description="location or product")
    type: str = strawberry.field(description="the EPCIS vocabulary type")
    seq: int = strawberry.field(description="the entry of the version in force")
    signer: str
    versions: list[int] = strawberry.field(description="every version's seq, oldest first")
    names: list[LocalizedName]
    city: list[LocalizedName]
    brand: list[LocalizedName]
    street: list[str]
    state: str | None
    postal_code: str | None
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 (a product's: of origin)")
    latitude: str | None
    longitude: str | None
    net_content: str | None
    image: str | None

    @strawberry.field(description="in this language (zh, en) if given, else the first one")
    def name(self, language: str | None = None) -> str | None:
        return _localized(self.names, language)

    @strawberry.field
    async def signer_party(self, info: Ctx) -> Party | None:
        return await party_of(info, self.signer)

    @classmethod
    def of(cls, d: Described) -> MasterData:
        m = d.data

        def names(texts: Any) -> list[LocalizedName]:
            return [LocalizedName(value=v, language=None if k == "und" else k) for k, v in texts.items()]

        return cls(
            code=m.code,
            kind=m.kind,
            type=m.vtype,
            seq=d.seq,
            signer=d.signer,
            versions=list(d.versions),
            names=names(m.names),
            city=names(m.city),
            brand=names(m.brand),
            street=list(m.street),
            state=m.state,
            postal_code=m.postal_code,
            country=m.country,
            latitude=m.latitude,
            longitude=m.longitude,
            net_content=m.net_content,
            image=m.image,
        )


def _localized(names: list[LocalizedName], language: str | None) -> str | None:
    for n in names:
        if n.language == language:
            return n.value
    return names[0].value if names else None


async def master_data_of(info: Ctx, code: str | None) -> MasterData | None:
    if code is None:
        return None
    got = await info.context.loaders.masterdata.load(code)
    return None if got is None else MasterData.of(got)


@strawberry.type(description="One event in a product's journey.")
class Step:
    seq: int
    event_time: str
    stage: str
    activity: str
    biz_step: str | None
    signer: str
    location: str | None
    via: str | None = strawberry.field(
        description="null: the item's own event; else the container or lot it came through"
    )

    @strawberry.field
    async def signer_party(self, info: Ctx) -> Party | None:
        return await party_of(info, self.signer)

    @strawberry.field(description="the signed entry of this event")
    async def entry(self, info: Ctx) -> Entry | None:
        return await entry_of(info, self.seq)

    @strawberry.field(
        description="master data of the event's location (bizLocation, else "
        "readPoint): the exact location's, else its GLN's"
    )
    async def place(self, info: Ctx) -> MasterData | None:
        if self.location is None:
            return None
        for code in place_codes(self.location):
            got = await master_data_of(info, code)
            if got is not None:
                return got
        return None

    @classmethod
    def of(cls, s: trace.Step) -> Step:
        return cls(
            seq=s.seq,
            event_time=s.event_time,
            stage=s.stage,
            activity=s.activity,
            biz_step=s.biz_step,
            signer=s.signer,
            location=s.location,
            via=s.via,
        )


@strawberry.type
class Journey:
    code: str
    steps: list[Step]


@strawberry.type
class LineageItem:
    code: str
    depth: int
    via: str = strawberry.field(description="transformation, lot or aggregation")
    from_: str = strawberry.field(name="from")
    receiver: str | None = strawberry.field(description="last known owner (downstream only)")

    @classmethod
    def of(cls, d: dict[str, Any]) -> LineageItem:
        return cls(
            code=d["code"], depth=d["depth"], via=d["via"], from_=d["from"], receiver=d.get("receiver")
        )


@strawberry.type
class Lineage:
    code: str
    items: list[LineageItem]


@strawberry.type
class AffectedItem:
    code: str
    owner: str | None
    location: str | None
    sold: bool
    depth: int
    via: str


@strawberry.type
class RecallCounts:
    affected: int
    sold: int
    unsold: int
    by_owner: JSON = strawberry.field(description="owner party id -> number of items")


@strawberry.type
class RecallImpact:
    code: str
    affected: list[AffectedItem]
    counts: RecallCounts

    @classmethod
    def of(cls, d: dict[str, Any]) -> RecallImpact:
        c = d["counts"]
        return cls(
            code=d["code"],
            affected=[AffectedItem(**a) for a in d["affected"]],
            counts=RecallCounts(
                affected=c["affected"], sold=c["sold"], unsold=c["unsold"], by_owner=c["byOwner"]
            ),
        )


@strawberry.type
class RecallStatus:
    recalled: bool
    recalls: list[Step]


@strawberry.type(description="A signed checkpoint (C2SP tlog-checkpoint in signed-note form).")
class Checkpoint:
    origin: str
    size: int
    root_hash: str = strawberry.field(description="hex")
    note: str = strawberry.field(description="the note exactly as the log signed it")
    cosigned_note: str = strawberry.field(description="the note with every witness cosignature held")

    @classmethod
    def of(cls, note: str, cosigned: str) -> Checkpoint:
        body = CheckpointBody.parse(note.split("\n\n", 1)[0] + "\n")
        return cls(
            origin=body.origin, size=body.size, root_hash=body.root.hex(), note=note, cosigned_note=cosigned
        )


@strawberry.type
class LocalizedName:
    value: str
    language: str | None


@strawberry.type(description="Master data from the commissioning events of the item or its lot.")
class Product:
    code: str
    names: list[LocalizedName]
    lot_number: str | None
    expiration_date: str | None
    country_of_origin: str | None
    production_time: str | None
    producer: str | None
    seqs: list[int] = strawberry.field(description="the commissioning entries it comes from")

    @strawberry.field(description="in this language (zh, en) if given, else the first one")
    def name(self, language: str | None = None) -> str | None:
        for n in self.names:
            if n.language == language:
                return n.value
        return self.names[0].value if self.names else None

    @strawberry.field
    async def producer_party(self, info: Ctx) -> Party | None:
        return await party_of(info, self.producer)

    @strawberry.field(
        description="master data of its product class (its GTIN), signed by the "
        "holder of the GTIN's GS1 company prefix or its delegate"
    )
    async def master_data(self, info: Ctx) -> MasterData | None:
        return await master_data_of(info, product_class(self.code))


@strawberry.type(description="An entry's inclusion proof against the trace's checkpoint.")
class EntryProof:
    seq: int
    leaf_hash: str
    inclusion_proof: InclusionProof


@strawberry.type(
    description="Everything about one code as the ledger's indexes hold it, with "
    "an inclusion proof of every journey entry against one checkpoint "
    "(the latest) for the client to check: nothing here is verified by "
    "the server (the Digital Link page and trace bundles verify)."
)
class Trace:
    code: str
    journey: list[Step]
    checkpoint: Checkpoint

    @strawberry.field
    async def product(self, info: Ctx) -> Product | None:
        made = [
            s for s in self.journey if product.is_commissioning(stage=s.stage, biz_step=s.biz_step, via=s.via)
        ]
        entries = await info.context.loaders.entry.load_many([s.seq for s in made])
        p = product.product_of(
            [
                product.Commissioning(
                    seq=e.seq,
                    signer=s.signer,
                    event_time=s.event_time,
                    body=e.decoded()["envelope"]["statement"]["body"],
                )
                for s, e in zip(made, entries, strict=True)
                if e is not None
            ]
        )
        if p is None:
            return None
        return Product(
            code=self.code,
            names=[LocalizedName(value=n.value, language=n.language) for n in p.names],
            lot_number=p.lot_number,
            expiration_date=p.expiration_date,
            country_of_origin=p.country_of_origin,
            production_time=p.production_time,
            producer=p.producer,
            seqs=list(p.seqs),
        )

    @strawberry.field
    def recall(self) -> RecallStatus:
        recalls = [s for s in self.journey if s.stage == "recall"]
        return RecallStatus(recalled=bool(recalls), recalls=recalls)

    @strawberry.field
    async def upstream(self, info: Ctx, depth: int | None = None) -> Lineage:
        from api.graphql.context import run

        d = await run(trace.upstream, info.context.ledger.store, self.code, depth)
        return Lineage(code=d["code"], items=[LineageItem.of(i) for i in d["items"]])

    @strawberry.field
    async def downstream(self, info: Ctx, depth: int | None = None) -> Lineage:
        from api.graphql.context import run

        d = await run(trace.downstream, info.context.ledger.store, self.code, depth)
        return Lineage(code=d["code"], items=[LineageItem.of(i) for i in d["items"]])

    @strawberry.field(description="one per journey entry, all against `checkpoint`")
    async def proofs(self, info: Ctx) -> list[EntryProof]:
        seqs = [s.seq for s in self.journey]
        proofs = await info.context.loaders.proof(self.checkpoint.size).load_many(seqs)
        entries = await info.context.loaders.entry.load_many(seqs)
        return [
            EntryProof(seq=s, leaf_hash=e.leaf_hash.hex() if e else "", inclusion_proof=InclusionProof.of(p))
            for s, p, e in zip(seqs, proofs, entries, strict=True)
        ]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool = strawberry.field(
        description="whether `after` was given (entries before it exist then)"
    )
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class EntryEdge:
    cursor: str
    node: Entry


@strawberry.type(description="A page of entries in seq order (Relay connection).")
class EntryConnection:
    edges: list[EntryEdge]
    page_info: PageInfo


@strawberry.type(
    description="Proof that an envelope is in the ledger: its seq, hashes, the "
    "checkpoint it landed in and its inclusion proof against it."
)
class Receipt:
    seq: int
    leaf_hash: str
    statement_hash: str
    checkpoint: str
    inclusion_proof: InclusionProof
    duplicate_of: int | None = strawberry.field(
        default=None,
        description="set when the envelope was an event its signer already had on "
        "the ledger: this is that entry's receipt, nothing was appended",
    )

    @classmethod
    def of(cls, r: log.Receipt) -> Receipt:
        return cls(
            seq=r.seq,
            leaf_hash=r.leaf_hash.hex(),
            statement_hash=r.statement_hash.hex(),
            checkpoint=r.checkpoint,
            inclusion_proof=InclusionProof.of(r.proof),
            duplicate_of=r.duplicate_of,
        )


@strawberry.type(
    description="What the ledger answered one submitted envelope: a receipt, or why "
    "it was refused (then nothing of that batch was appended)."
)
class SubmitResult:
    index: int
    receipt: Receipt | None
    error: Error | None


@strawberry.type(
    description="A trace code to print: its canonical form, the Digital Link URL on "
    "this resolver, and its QR image when a format was asked for."
)
class TraceCode:
    input: str
    code: str | None
    url: str | None
    media_type: str | None
    image: str | None = strawberry.field(description="base64 of the PNG or SVG bytes")
    error: Error | None


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"entry:{seq}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    if cursor is None:
        return -1
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind == "entry" and seq.isdigit():
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise MalformedInput(
        f"cursor {cursor!r} is not one this API gave out; pass an endCursor back", code="bad_cursor"
    )


async def entry_page(
    info: Ctx,
    *,
    first: int,
    after: str | None,
    signer: str | None = None,
    stage: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> EntryConnection:
    from api.graphql.context import run

    page, more = await run(
        info.context.ledger.list_entries,
        first=first,
        after=_after(after),
        signer=signer,
        stage=stage,
        since=since,
        until=until,
    )
    loader = info.context.loaders.entry
    for e in page:
        loader.prime(e.seq, e)
    edges = [EntryEdge(cursor=_cursor(e.seq), node=Entry.of(e)) for e in page]
    return EntryConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=more,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
