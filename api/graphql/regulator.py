"""Regulator-only GraphQL views: findings, statistics, credit and audit. Each resolver first
refuses any viewer that is not a regulator; the values are the ledger's own
(``ledger.compliance.findings``, ``ledger.queries.stats``, ``ledger.queries.credit``,
``ledger.log.audit``, ``ledger.queries.chain_audit``)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import run
from api.graphql.types import Ctx, InclusionProof, LineageItem, Step
from ledger.log.audit import audit as full_audit
from ledger.log.sequencer import Ledger
from ledger.queries import credit as credit_mod
from ledger.queries import stats
from ledger.queries.chain_audit import scope_audit
from ledger.queries.findings import list_findings


@strawberry.type(description="A sentence in Chinese and in English.")
class Message:
    zh: str
    en: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> Message:
        return cls(zh=str(d.get("zh", "")), en=str(d.get("en", "")))


@strawberry.type(description="A compliance finding raised by a rule over recorded facts.")
class Finding:
    id: str = strawberry.field(description="seq of the raising entry and a number, 412-0")
    seq: int = strawberry.field(description="the entry that raised it")
    rule: str
    severity: str
    seqs: list[int]
    parties: list[str]
    codes: list[str]
    message: Message
    details: JSON | None

    @classmethod
    def of(cls, f: dict[str, Any]) -> Finding:
        return cls(
            id=str(f["id"]),
            seq=int(f["seq"]),
            rule=str(f["rule"]),
            severity=str(f["severity"]),
            seqs=[int(s) for s in f.get("seqs", ())],
            parties=[str(p) for p in f.get("parties", ())],
            codes=[str(c) for c in f.get("codes", ())],
            message=Message.of(f["message"]),
            details=f["details"],
        )


@strawberry.input(description="Which findings: every given condition must hold.")
class FindingFilter:
    rule: str | None = None
    party: str | None = None
    code: str | None = None
    severity: str | None = None
    since_seq: int | None = strawberry.field(default=None, description="only findings about entries from seq")
    limit: int | None = None


@strawberry.type
class StageMonthCount:
    stage: str
    month: str = strawberry.field(description="YYYY-MM of the event time in UTC")
    count: int


@strawberry.type
class KeyCount:
    key: str
    count: int


@strawberry.type
class ProcedureTrade:
    procedure: str
    declarations: int
    orders: int
    value_cny: str = strawberry.field(name="valueCNY", description="exact decimal sum of orders' paid, CNY")


@strawberry.type
class CurrencyValue:
    procedure: str
    currency: str
    value: str


@strawberry.type
class ClearanceTime:
    buckets: list[KeyCount]
    released: int
    median_seconds: float | None


@strawberry.type(description="Statistics; definitions in the README, section Statistics.")
class Statistics:
    events_by_stage_month: list[StageMonthCount]
    entries_by_kind: list[KeyCount]
    trade_by_procedure: list[ProcedureTrade]
    other_currencies: list[CurrencyValue]
    origins: list[KeyCount]
    destinations: list[KeyCount]
    clearance_time: ClearanceTime

    @classmethod
    def of(cls, s: dict[str, Any]) -> Statistics:
        def counts(d: dict[str, int]) -> list[KeyCount]:
            return [KeyCount(key=k, count=v) for k, v in d.items()]

        c = s["clearanceTime"]
        return cls(
            events_by_stage_month=[
                StageMonthCount(stage=st, month=m, count=n)
                for st, months in s["eventsByStageMonth"].items()
                for m, n in months.items()
            ],
            entries_by_kind=counts(s["entriesByKind"]),
            trade_by_procedure=[
                ProcedureTrade(
                    procedure=t["procedure"],
                    declarations=t["declarations"],
                    orders=t["orders"],
                    value_cny=t["valueCNY"],
                )
                for t in s["tradeByProcedure"]
            ],
            other_currencies=[CurrencyValue(**o) for o in s["otherCurrencies"]],
            origins=counts(s["origins"]),
            destinations=counts(s["destinations"]),
            clearance_time=ClearanceTime(
                buckets=counts(c["buckets"]), released=c["released"], median_seconds=c["medianSeconds"]
            ),
        )


@strawberry.type
class CreditItem:
    source: str = strawberry.field(description="credit.record, finding, recall or complaint")
    seqs: list[int]
    points: int
    reason: Message


@strawberry.type(description="A party's credit: 0-100, every contributing item explained.")
class Credit:
    party: str
    name: str
    score: int
    items: list[CreditItem]

    @classmethod
    def of(cls, d: dict[str, Any]) -> Credit:
        return cls(
            party=d["party"],
            name=d["name"],
            score=d["score"],
            items=[
                CreditItem(
                    source=i["source"], seqs=i["seqs"], points=i["points"], reason=Message.of(i["reason"])
                )
                for i in d["items"]
            ],
        )


@strawberry.type
class AuditProblem:
    seq: int | None
    checkpoint: int | None
    problem: str


@strawberry.type(description="The whole ledger re-derived from its entries.")
class Integrity:
    ok: bool
    entries: int
    checkpoints: int
    nodes: int
    signatures: int
    problems: list[AuditProblem]


@strawberry.type(
    description="An entry of a scope audit, from its bytes: stage and activity "
    "only when it verified (judged with its signer's verified "
    "registration), event time and signer as the bytes say."
)
class ScopeEntry:
    seq: int
    leaf_hash: str
    entry: str = strawberry.field(description="base64 of the exact entry bytes")
    stage: str | None
    activity: str | None
    event_time: str | None
    signer: str | None
    inclusion_proof: InclusionProof = strawberry.field(
        description="against the checkpoint of the scope audit"
    )
    proof_verified: bool
    signatures_verified: bool
    problems: list[str]


@strawberry.type(description="One product chain: its entries proved against the latest checkpoint.")
class ScopeAudit:
    code: str
    ok: bool
    problems: list[str]
    checkpoint_note: str
    tree_size: int
    journey: list[Step]
    upstream: list[LineageItem]
    downstream: list[LineageItem]
    entries: list[ScopeEntry]
    findings: list[Finding] = strawberry.field(description="findings touching these entries")

    @classmethod
    def of(cls, d: dict[str, Any]) -> ScopeAudit:
        return cls(
            code=d["code"],
            ok=d["ok"],
            problems=d["problems"],
            checkpoint_note=d["checkpoint"]["note"],
            tree_size=d["checkpoint"]["size"],
            journey=[
                Step(
                    seq=j["seq"],
                    event_time=j["eventTime"],
                    stage=j["stage"],
                    activity=j["activity"],
                    biz_step=j["bizStep"],
                    signer=j["signer"],
                    location=j["location"],
                    via=j["via"],
                )
                for j in d["journey"]
            ],
            upstream=[LineageItem.of(i) for i in d["upstream"]],
            downstream=[LineageItem.of(i) for i in d["downstream"]],
            entries=[
                ScopeEntry(
                    seq=e["seq"],
                    leaf_hash=e["leafHash"],
                    entry=e["entry"],
                    stage=e["stage"],
                    activity=e["activity"],
                    event_time=e["eventTime"],
                    signer=e["signer"],
                    inclusion_proof=InclusionProof(
                        leaf_index=e["inclusionProof"]["leafIndex"],
                        tree_size=e["inclusionProof"]["treeSize"],
                        hashes=e["inclusionProof"]["hashes"],
                    ),
                    proof_verified=e["proofVerified"],
                    signatures_verified=e["signaturesVerified"],
                    problems=e["problems"],
                )
                for e in d["entries"]
            ],
            findings=[Finding.of(f) for f in d["findings"]],
        )


@strawberry.type(description="An audit: the whole ledger's integrity, and one chain if scoped.")
class Audit:
    ledger: strawberry.Private[Ledger]
    scope_code: strawberry.Private[str | None]

    @strawberry.field(description="The full audit (reads every entry; only when asked for).")
    async def integrity(self) -> Integrity:
        rep = (await run(full_audit, self.ledger.store, log_key=self.ledger.published_log_key)).as_dict()
        return Integrity(
            ok=rep["ok"],
            entries=rep["entries"],
            checkpoints=rep["checkpoints"],
            nodes=rep["nodes"],
            signatures=rep["signatures"],
            problems=[AuditProblem(**p) for p in rep["problems"]],
        )

    @strawberry.field(description="The scoped product chain, when audit was given a scope.")
    async def scope(self) -> ScopeAudit | None:
        if self.scope_code is None:
            return None
        return ScopeAudit.of(await run(scope_audit, self.ledger, self.scope_code))


def _findings(ledger: Ledger, f: FindingFilter | None) -> list[dict[str, Any]]:
    f = f or FindingFilter()
    return [
        x.as_dict()
        for x in list_findings(
            ledger.store,
            rule=f.rule,
            party=f.party,
            code=f.code,
            severity=f.severity,
            since_seq=f.since_seq,
            limit=f.limit,
        )
    ]


@strawberry.type
class RegulatorQuery:
    @strawberry.field(description="Regulators only: compliance findings, filtered.")
    async def findings(self, info: Ctx, filter: FindingFilter | None = None) -> list[Finding]:
        info.context.require_regulator()
        return [Finding.of(f) for f in await run(_findings, info.context.ledger, filter)]

    @strawberry.field(
        description="Regulators only: stages by month, trade, origins, destinations, clearance time."
    )
    async def statistics(self, info: Ctx) -> Statistics:
        info.context.require_regulator()
        return Statistics.of(await run(stats.statistics, info.context.ledger.store))

    @strawberry.field(description="Regulators only: a party's credit, every item explained.")
    async def credit(self, info: Ctx, party: str) -> Credit:
        info.context.require_regulator()
        return Credit.of(await run(credit_mod.credit, info.context.ledger.store, party))

    @strawberry.field(
        description="Regulators only: the ledger's audit, and with scope one "
        "product chain's entries proved against the latest checkpoint."
    )
    async def audit(self, info: Ctx, scope: str | None = None) -> Audit:
        info.context.require_regulator()
        return Audit(ledger=info.context.ledger, scope_code=scope)
