"""The GraphQL schema: queries over journeys, entries, proofs and parties; submitting
envelopes and issuing trace codes; a subscription to new entries.

``python -m api.graphql.schema > schemas/schema.graphql`` regenerates the exported SDL.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext

from api.errors import STORAGE_WHERE
from api.graphql.context import run
from api.graphql.cost import CostLimit
from api.graphql.guards import NoNulInInputs, SubscriptionsOverWebSocket
from api.graphql.regulator import RegulatorQuery
from api.graphql.rules import OnlyApplicableRules
from api.graphql.types import (
    Checkpoint,
    ConsistencyProof,
    Ctx,
    Entry,
    EntryConnection,
    Error,
    InclusionProof,
    Journey,
    Lineage,
    LineageItem,
    MasterData,
    Party,
    RecallImpact,
    Receipt,
    Step,
    SubmitResult,
    Trace,
    TraceCode,
    entry_of,
    entry_page,
    master_data_of,
    party_of,
)
from api.qr import FORMATS, digital_link_url, printable_base_url, qr_image
from ledger.compliance import tax
from ledger.core import ids, registry
from ledger.core.errors import BatchRejected, LedgerError, MalformedInput, NotAuthentic
from ledger.core.private import unwrap_envelopes
from ledger.epcis.masterdata import product_class
from ledger.log.sequencer import Ledger
from ledger.log.witnesses import cosigned_note
from ledger.queries import trace
from ledger.store.failures import storage_error

MAX_DEPTH = 10  # nesting of a query's selections
MAX_ALIASES = 20
MAX_TOKENS = 2000
MAX_SUBMIT = 1000  # envelopes in one submit: one batch, one transaction
MAX_CODES = 1000  # codes in one issueTraceCodes; with images:
MAX_IMAGES = 100
POLL_SECONDS = 0.5  # how often a subscription looks for new entries


def _checkpoint(ledger: Ledger, size: int | None = None) -> Checkpoint:
    note = ledger.latest_checkpoint() if size is None else ledger.checkpoint_note(size)
    n = int(note.split("\n")[1])
    return Checkpoint.of(note, cosigned_note(ledger, n))


def _trace_basis(ledger: Ledger, code: str) -> tuple[str, list[trace.Step], Checkpoint]:
    key, steps = trace.journey_of(ledger.store, code)
    # Read after the journey, so the checkpoint covers every entry of it.
    return key, steps, _checkpoint(ledger)


@strawberry.type
class ViewerInfo:
    kind: str = strawberry.field(description="public, party or regulator")
    party: str | None


@strawberry.type(description="The tax of a retail-import order; amounts and rates are exact decimal strings.")
class TaxBreakdown:
    treatment: str = strawberry.field(description="cbec_retail, or general_trade over the limit")
    currency: str | None
    hs_code: str | None
    dutiable_value: str = strawberry.field(description="goods + freight")
    single_limit: str
    vat_rate: str
    consumption_tax_rate: str
    comprehensive_rate: str | None = strawberry.field(description="e.g. 0.091 at 13 % VAT")
    tariff: str | None
    consumption_tax: str | None
    vat: str | None
    total: str | None
    declared_tax: str | None = strawberry.field(description="the tax the order says it collected")

    @classmethod
    def of(cls, d: dict[str, Any]) -> TaxBreakdown:
        return cls(
            treatment=d["treatment"],
            currency=d.get("currency"),
            hs_code=d.get("hsCode"),
            dutiable_value=d["dutiableValue"],
            single_limit=d["singleLimit"],
            vat_rate=d["vatRate"],
            consumption_tax_rate=d["consumptionTaxRate"],
            comprehensive_rate=d.get("comprehensiveRate"),
            tariff=d.get("tariff"),
            consumption_tax=d.get("consumptionTax"),
            vat=d.get("vat"),
            total=d.get("total"),
            declared_tax=d.get("declaredTax"),
        )


@strawberry.type
class Query(RegulatorQuery):
    @strawberry.field(description="Who this request is read as (from its bearer token).")
    def viewer(self, info: Ctx) -> ViewerInfo:
        v = info.context.viewer
        return ViewerInfo(kind=v.kind, party=v.party)

    @strawberry.field(
        description="A code's product, journey, lineage and recall status as the "
        "ledger's indexes hold them, with an inclusion proof of every "
        "journey entry against the latest checkpoint for the client to "
        "check; not verified here (the Digital Link page and trace "
        "bundles verify)."
    )
    async def trace(self, info: Ctx, code: str) -> Trace:
        key, steps, cp = await run(_trace_basis, info.context.ledger, code)
        return Trace(code=key, journey=[Step.of(s) for s in steps], checkpoint=cp)

    @strawberry.field(
        description="The item's own events, its lot's, and its containers' while "
        "it was inside them, in event-time order."
    )
    async def journey(self, info: Ctx, code: str) -> Journey:
        key, steps = await run(trace.journey_of, info.context.ledger.store, code)
        return Journey(code=key, steps=[Step.of(s) for s in steps])

    @strawberry.field(description="What it was made from or packed in.")
    async def upstream(self, info: Ctx, code: str, depth: int | None = None) -> Lineage:
        d = await run(trace.upstream, info.context.ledger.store, code, depth)
        return Lineage(code=d["code"], items=[LineageItem.of(i) for i in d["items"]])

    @strawberry.field(description="What it became, contained, and who received it.")
    async def downstream(self, info: Ctx, code: str, depth: int | None = None) -> Lineage:
        d = await run(trace.downstream, info.context.ledger.store, code, depth)
        return Lineage(code=d["code"], items=[LineageItem.of(i) for i in d["items"]])

    @strawberry.field(
        description="Regulators only: everything downstream of a lot or item, with "
        "its last owner, place and whether it was sold, and sold and "
        "unsold counts by owner. Who holds how much unsold stock of a "
        "recalled product is the market regulator's to act on, not "
        "public; whether a code is recalled is public (trace.recall, "
        "the resolver's gs1:recallStatus)."
    )
    async def recall_impact(self, info: Ctx, code: str) -> RecallImpact:
        info.context.require_regulator()
        return RecallImpact.of(await run(trace.recall_impact, info.context.ledger.store, code))

    @strawberry.field(description="The entry at seq, or null if there is none.")
    async def entry(self, info: Ctx, seq: int) -> Entry | None:
        return await entry_of(info, seq)

    @strawberry.field(
        description="Entries in seq order, a page at a time. since/until bound the "
        "time the ledger recorded them (RFC 3339, until exclusive); "
        "stage applies to events."
    )
    async def entries(
        self,
        info: Ctx,
        first: int = 50,
        after: str | None = None,
        signer: str | None = None,
        stage: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> EntryConnection:
        return await entry_page(
            info, first=first, after=after, signer=signer, stage=stage, since=since, until=until
        )

    @strawberry.field(description="The latest signed checkpoint.")
    async def checkpoint(self, info: Ctx) -> Checkpoint:
        return await run(_checkpoint, info.context.ledger)

    @strawberry.field(description="Inclusion proof of seq in the tree of treeSize (default: now).")
    async def inclusion_proof(self, info: Ctx, seq: int, tree_size: int | None = None) -> InclusionProof:
        return InclusionProof.of(await run(info.context.ledger.inclusion_proof, seq, tree_size))

    @strawberry.field(description="Consistency proof between two tree sizes (second default: now).")
    async def consistency_proof(self, info: Ctx, first: int, second: int | None = None) -> ConsistencyProof:
        return ConsistencyProof.of(await run(info.context.ledger.consistency_proof, first, second))

    @strawberry.field(
        description="The tax of one retail-import order (an order event body "
        "with cbec:orderInfo, or the orderInfo alone), broken down: within the "
        "5,000 RMB limit, tariff 0 and 70 % of VAT and consumption tax; over it, "
        "general trade. The annual limit needs the buyer's other orders: see "
        "findings."
    )
    def tax_for(self, order: JSON, hs_code: str | None = None) -> TaxBreakdown:
        if not isinstance(order, dict):
            raise MalformedInput("order is a JSON object: an order event body or its cbec:orderInfo")
        try:
            return TaxBreakdown.of(tax.as_json(tax.tax_for(order, hs_code=hs_code)))
        except ValueError as e:
            raise MalformedInput(str(e)) from None

    @strawberry.field(
        description="The master data in force of a place (a GLN or SGLN) or a "
        "product class (a GTIN, or its lot or item), or null."
    )
    async def master_data(self, info: Ctx, code: str) -> MasterData | None:
        ids.parse_code(code)  # a mistyped code is refused, not answered with null
        return await master_data_of(info, product_class(code) or code)

    @strawberry.field(description="A registered party, or null.")
    async def party(self, info: Ctx, id: str) -> Party | None:
        return await party_of(info, id)

    @strawberry.field(description="Registered parties, those with a role if given, by id.")
    async def parties(self, info: Ctx, role: str | None = None) -> list[Party]:
        if role is not None and role not in registry.ROLES:
            raise MalformedInput(f"unknown role {role!r}; roles are {', '.join(registry.ROLES)}")
        got = await run(info.context.ledger.party_records, None)
        return [Party.of(p) for _, p in sorted(got.items()) if role is None or role in p.roles]


def _submit(ledger: Ledger, items: list[Any]) -> list[SubmitResult]:
    envs, private = unwrap_envelopes(items)
    try:
        receipts = ledger.append_batch(envs, private=private)
    except BatchRejected as e:
        refused = dict(e.errors)
        first = e.errors[0][0]
        held = Error(
            code="batch_rejected",
            message=f"not appended: the batch was refused because envelope {first} was; "
            "fix or drop the refused envelopes and submit again",
        )
        return [
            SubmitResult(index=i, receipt=None, error=Error.of(refused[i]) if i in refused else held)
            for i in range(len(envs))
        ]
    return [SubmitResult(index=i, receipt=Receipt.of(r), error=None) for i, r in enumerate(receipts)]


def _trace_codes(base_url: str, codes: list[str], fmt: str | None) -> list[TraceCode]:
    out = []
    for text in codes:
        try:
            link = ids.parse_code(text)
            url = digital_link_url(base_url, link.canonical)
            image = None if fmt is None else base64.b64encode(qr_image(url, fmt)).decode()
        except LedgerError as e:
            out.append(
                TraceCode(input=text, code=None, url=None, media_type=None, image=None, error=Error.of(e))
            )
            continue
        out.append(
            TraceCode(
                input=text,
                code=link.canonical,
                url=url,
                media_type=None if fmt is None else FORMATS[fmt],
                image=image,
                error=None,
            )
        )
    return out


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Append signed envelopes as one batch (all or nothing); an "
        "item may be {envelope, private} to give the private blob "
        "its statement commits to. One result per envelope."
    )
    async def submit(self, info: Ctx, envelopes: list[JSON]) -> list[SubmitResult]:
        if not envelopes:
            raise MalformedInput("give at least one envelope")
        if len(envelopes) > MAX_SUBMIT:
            raise MalformedInput(
                f"submit at most {MAX_SUBMIT} envelopes at once, not "
                f"{len(envelopes)}; split them into several calls",
                code="too_many",
            )
        ledger = info.context.ledger
        before = await run(ledger.size)
        results = await run(_submit, ledger, list(envelopes))
        if info.context.appended is not None and await run(ledger.size) > before:
            info.context.appended()
        return results

    @strawberry.mutation(
        name="issueTraceCodes",
        description="Canonical form, Digital Link URL and (format svg or png) QR "
        "image of each code; a bad code gets its own error. Refused "
        "(private_base_url) while the server's SUYUAN_BASE_URL is "
        "unset or a loopback or private address: printed codes "
        "must reach the public resolver.",
    )
    async def issue_trace_codes(
        self, info: Ctx, codes: list[str], format: str | None = None
    ) -> list[TraceCode]:
        if format is not None and format not in FORMATS:
            raise MalformedInput(f"format {format!r} is not one of {', '.join(FORMATS)}", code="bad_format")
        limit = MAX_CODES if format is None else MAX_IMAGES
        if len(codes) > limit:
            raise MalformedInput(
                f"issue at most {limit} codes at once"
                + (" with images" if format else "")
                + f", not {len(codes)}",
                code="too_many",
            )
        # The codes are for printing: the server's own fallback (http://127.0.0.1:8000)
        # or a private address would send every phone that scans them nowhere.
        base = printable_base_url(
            info.context.settings.base_url, where="SUYUAN_BASE_URL of the server (then restart it)"
        )
        return await run(_trace_codes, base, list(codes), format)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each new entry after afterSeq (default: from now on), in seq order, as it is appended."
    )
    async def entries(self, info: Ctx, after_seq: int | None = None) -> AsyncGenerator[Entry, None]:
        ledger, ctx = info.context.ledger, info.context
        last = after_seq if after_seq is not None else await run(ledger.size) - 1
        while True:
            if await run(ledger.size) > last + 1:
                if ctx.token is not None:
                    # A subscription outlives the handshake that checked its token: before
                    # each delivery the token must still hold (not expired, its key not
                    # revoked since), and still speak for the same viewer.
                    viewer = await run(ledger.viewer_for_token, ctx.token)
                    if viewer != ctx.viewer:
                        raise NotAuthentic(
                            "the token's party no longer has the roles this "
                            "subscription began with; subscribe again",
                            code="token_roles_changed",
                        )
                more = True
                while more:
                    page, more = await run(ledger.list_entries, first=500, after=last)
                    for e in page:
                        last = e.seq
                        yield Entry.of(e)
            await asyncio.sleep(POLL_SECONDS)


class LedgerErrors(MaskErrors):
    """Unexpected exceptions become "Unexpected error."; the ledger's own refusals keep their
    sentence and carry their code in ``extensions``; validation errors pass as they are."""

    def __init__(self) -> None:
        # A GraphQLError inside one (a variable that does not coerce) is the request's fault.
        super().__init__(
            should_mask_error=lambda e: (
                e.original_error is not None and not isinstance(e.original_error, (LedgerError, GraphQLError))
            )
        )

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out = []
        for e in super()._process_errors([_storage(e) for e in errors]):
            orig = e.original_error
            if isinstance(orig, LedgerError):
                e = GraphQLError(
                    orig.message,
                    nodes=e.nodes,
                    source=e.source,
                    positions=e.positions,
                    path=e.path,
                    original_error=orig,
                    extensions={**(e.extensions or {}), "code": orig.code},
                )
            out.append(e)
        return out


def _storage(e: GraphQLError) -> GraphQLError:
    """A database failure under a resolver as the ``storage`` refusal (one sentence, its
    code), not "Unexpected error."."""
    orig = e.original_error
    if orig is None or isinstance(orig, (LedgerError, GraphQLError)):
        return e
    problem = storage_error(orig, where=STORAGE_WHERE)
    if problem is None:
        return e
    return GraphQLError(
        problem.message,
        nodes=e.nodes,
        source=e.source,
        positions=e.positions,
        path=e.path,
        original_error=problem,
    )


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Refusals are answers, not faults: log only what was not ours.
        super().process_errors(
            [
                e
                for e in errors
                if e.original_error is not None
                and not isinstance(e.original_error, (LedgerError, GraphQLError))
            ],
            execution_context,
        )


def make_schema(*, dev: bool = False) -> Schema:
    # Factories: each request gets fresh extension instances.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        CostLimit,
        SubscriptionsOverWebSocket,
        NoNulInInputs,
        LedgerErrors,
        # Last by convention; it filters in on_validate, after every rule was added.
        OnlyApplicableRules,
    ]
    if not dev:
        extensions.append(DisableIntrospection)
    return Schema(query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions)


def sdl() -> str:
    return make_schema(dev=True).as_str() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(sdl())
