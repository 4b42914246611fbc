"""Compliance findings: what is wrong in business terms is recorded, then flagged.

A statement is refused only when it is not authentic or not authorised; everything else
that is wrong — three documents that disagree, a buyer over the annual limit, goods sold
before customs released them — lands in the ledger and raises a *finding* for regulators.

Rules are pure functions of one event (``Subject``) and a read-only ``View`` of what the
ledger held before it. They run in the append transaction, in seq order; ``FindingsBatch``
collects a batch's findings and the small indexes the rules read (trade documents and
code marks), and ``suyuan reindex`` replays the same code over every entry, so the
``findings`` projection rebuilds identically. A finding is never retracted by a later
entry: it says what the ledger showed when the entry was appended.

How documents link (三单对碰): an event *is* a trade document when it carries the
document's information object and cites the document in ``bizTransactionList`` —
``cbec:orderInfo`` with a ``cbec:order``, ``cbec:paymentInfo`` with a ``cbec:payment``,
``cbec:waybillInfo`` with a ``cbec:waybill`` — and a declaration is an event of the
declaration activity citing a ``cbec:declaration``. The document's number is the cited
URI. A payment or waybill belongs to the order it cites; a declaration names the order,
payment and waybill it covers; a release (``cbec:releasing``) names its declaration. The
latest event of a document number is its current version.

Reads go through the ``View`` protocol; ``ledger.compliance.findings_batch.FindingsBatch`` answers
it for the append path and for ``suyuan reindex``. The SQL is in ``ledger.store.findingsdb``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Protocol

from ledger.compliance import brands
from ledger.compliance.tax import (
    ANNUAL_LIMIT,
    RETAIL_PROCEDURES,
    SINGLE_LIMIT,
    dutiable_value,
    money,
)
from ledger.core.records import Document as Document
from ledger.core.records import Finding as Finding
from ledger.core.times import utc_text
from ledger.epcis.projection import (
    GS1_CLASS_PREFIX,
    gtin_class,
    named_codes,
    recall_scope,
)
from ledger.epcis.stages import Classified, EventCodes

if TYPE_CHECKING:
    from ledger.core.registry import PrefixRecord

SEVERITIES: Final = ("high", "medium", "low")
AMOUNT_TOLERANCE: Final = Decimal("0.05")
FUTURE_SLACK: Final = timedelta(minutes=5)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    zh: str
    en: str


_RULE_LIST: Final = (
    Rule("three_docs.mismatch", "medium", "三单信息不一致", "order, payment and waybill disagree"),
    Rule(
        "three_docs.missing",
        "high",
        "放行时缺少订单、支付单、运单或申报单",
        "released with a document missing",
    ),
    Rule(
        "three_docs.release_mismatch", "high", "三单不符仍予放行", "released although the documents disagree"
    ),
    Rule(
        "three_docs.unregistered", "high", "电商平台或电商企业未登记", "platform or merchant not registered"
    ),
    Rule(
        "tax.single_limit",
        "medium",
        "超过单次交易限值，按一般贸易征税",
        "over the single-transaction limit: taxed as general trade",
    ),
    Rule(
        "tax.annual_limit",
        "medium",
        "超过个人年度交易限值，按一般贸易征税",
        "over the buyer's annual limit: taxed as general trade",
    ),
    Rule(
        "positive_list.missing",
        "high",
        "商品不在跨境电商零售进口正面清单内",
        "goods not on the retail-import positive list",
    ),
    Rule(
        "order.sold_before_release",
        "high",
        "海关放行前销售或交付",
        "sold or delivered before customs release",
    ),
    Rule(
        "order.after_recall",
        "high",
        "召回后仍有非召回处置的事件",
        "event after a recall that is not recall handling",
    ),
    Rule(
        "order.future_time",
        "medium",
        "事件时间晚于记录时间五分钟以上",
        "event time more than five minutes in the future",
    ),
    Rule("order.receive_without_ship", "low", "收货前无发货记录", "received with no earlier shipping"),
    Rule(
        "order.after_decommission",
        "medium",
        "停用或销毁后仍有事件",
        "event after decommissioning or destruction",
    ),
    Rule(
        "gtin.unregistered_prefix",
        "low",
        "商品条码的厂商识别代码未登记",
        "GTIN under no registered GS1 company prefix",
    ),
    Rule(
        "party.unregistered",
        "medium",
        "海关报文的责任企业未在账本登记",
        "enterprise responsible for a customs message not registered",
    ),
    # Raised from scans, which live outside the ledger: see ``record_scan_findings``.
    Rule("scan.counterfeit", "high", "扫码异常，疑似假冒", "scan pattern suggests a counterfeit"),
)
RULES: Final[Mapping[str, Rule]] = {r.code: r for r in _RULE_LIST}
COUNTERFEIT_RULE: Final = "scan.counterfeit"


@dataclass(frozen=True)
class Draft:
    """What a rule returns; the batch numbers it and stamps the entry's seq and time."""

    rule: str
    seqs: Iterable[int]
    parties: Iterable[str]
    zh: str
    en: str
    codes: Iterable[str] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


# --- what the rules read -------------------------------------------------------------------


class View(Protocol):
    """What the ledger held before the entry being judged; read only."""

    def marks(self, code: str) -> Mapping[str, tuple[int, str]]:
        """mark -> (seq, UTC event time) of the first event that set it on ``code``:
        ``import``, ``declared``, ``released``, ``recalled``, ``ended``, ``shipped``, and
        on a product (GTIN class) code ``unprefixed`` (``rule_unregistered_prefix``)."""

    def lots(self, code: str) -> frozenset[str]:
        """The lots an item belongs to (lineage)."""

    def containers(self, code: str) -> frozenset[str]:
        """Every container the code was ever packed in, transitively."""

    def recalls(self) -> bool:
        """Whether anything was ever recalled (lets most events skip the recall walk)."""

    def recalled_gtins(self) -> frozenset[str]:
        """GTIN-class prefixes of every recalled code."""

    def recalled(self, code: str) -> tuple[int, str] | None:
        """(seq, UTC event time) of the first recall naming exactly ``code``."""

    def document(self, type_: str, id_: str) -> Document | None:
        """The latest version of a trade document."""

    def citing_order(self, order_id: str) -> Sequence[Document]:
        """The latest version of every payment, waybill and declaration of an order."""

    def buyer_orders(self, buyer: str, year: int) -> Mapping[str, Decimal]:
        """order number -> dutiable value of a buyer's orders in a calendar year."""

    def on_positive_list(self, hs_code: str) -> bool:
        """Whether the code or a heading above it (6 to 10 digits) is on the list."""

    def roles(self, party: str) -> tuple[str, ...] | None:
        """The party's roles, or None if it is not registered."""

    def prefix_holder(self, gtin: str) -> PrefixRecord | None:
        """The registered GS1 company prefix a GTIN-14 falls under, if any."""

    def customs_holder(self, code: str) -> str | None:
        """The registered party whose registration holds a customs code, if any."""


@dataclass(frozen=True)
class Subject:
    """The event being judged, with what the ledger knows about it."""

    seq: int
    signer: str
    issued: str
    appended: str  # ledger time of the entry
    body: Mapping[str, Any]
    codes: EventCodes
    classified: Classified

    @functools.cached_property
    def named(self) -> list[str]:
        """Every code the event names (``named_codes``)."""
        return named_codes(self.codes)

    @functools.cached_property
    def goods(self) -> list[str]:
        """The codes it names as goods handled, without transformation inputs and outputs."""
        return named_codes(self.codes, io=False)


# --- reading an event ---------------------------------------------------------------------

DOC_TYPES: Final = ("cbec:order", "cbec:payment", "cbec:waybill", "cbec:declaration")
_INFO: Final = (
    ("cbec:orderInfo", "cbec:order"),
    ("cbec:paymentInfo", "cbec:payment"),
    ("cbec:waybillInfo", "cbec:waybill"),
)
DOC_ACTIVITIES: Final = frozenset({"order", "payment", "waybill", "declaration"})
SALE_STEPS: Final = frozenset({"retail_selling", "dispensing"})
ENDING_STEPS: Final = frozenset({"decommissioning", "destroying", "killing"})
ENDING_DISPOSITIONS: Final = frozenset({"destroyed"})
RECALL_HANDLING_DISPOSITIONS: Final = frozenset(
    {"recalled", "returned", "destroyed", "disposed", "non_sellable_other", "damaged", "expired"}
)
RECALL_HANDLING_STEPS: Final = frozenset(
    {"destroying", "decommissioning", "killing", "holding", "inspecting", "sampling"}
)
MOVEMENT_STEPS: Final = frozenset({"retail_selling", "dispensing", "accepting", "shipping", "receiving"})


def procedure_of(body: Mapping[str, Any]) -> str | None:
    p = body.get("cbec:customsProcedure")
    if not isinstance(p, str):
        ilmd = body.get("ilmd")
        p = ilmd.get("cbec:customsProcedure") if isinstance(ilmd, Mapping) else None
    return p if isinstance(p, str) else None


def local_year(body: Mapping[str, Any], event_time: str) -> int | None:
    """The calendar year of the event in its own time zone (eventTimeZoneOffset)."""
    try:
        t = datetime.fromisoformat(event_time)
        off = body.get("eventTimeZoneOffset")
        if isinstance(off, str) and len(off) == 6:
            sign = -1 if off[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
            t = t.astimezone(tz)
        return t.year
    except (ValueError, OverflowError):
        return None


def document_of(s: Subject) -> Document | None:
    """The trade document this event is, if it is one."""
    body, c = s.body, s.codes
    links: dict[str, str] = {}
    for t, i in c.biz_transactions:
        if t in DOC_TYPES and t not in links:
            links[t] = i
    if not links:
        return None
    kind = None
    info: Mapping[str, Any] = {}
    for info_field, t in _INFO:
        v = body.get(info_field)
        if isinstance(v, Mapping) and t in links:
            kind, info = t, v
            break
    if kind is None:
        if s.classified.activity != "declaration" or "cbec:declaration" not in links:
            return None
        kind = "cbec:declaration"
    own = links.pop(kind)
    hs = body.get("cbec:hsCode")
    order = own if kind == "cbec:order" else links.get("cbec:order")
    buyer = info.get("buyerIdHash") if kind in ("cbec:order", "cbec:payment") else None
    lines = body.get("cbec:lines")
    if kind in ("cbec:order", "cbec:declaration") and isinstance(lines, list):
        info = {**info, "lines": lines}  # customs matches a declaration's lines to its order's
    year = value = seller = None
    if kind == "cbec:order":
        year = local_year(body, c.event_time)
        v = dutiable_value(info)
        value = str(v) if v is not None and info.get("currency") == "CNY" else None
        seller = next((i for t, i in c.sources if t == "owning_party"), None)
    return Document(
        kind,
        own,
        s.seq,
        s.signer,
        links,
        info,
        procedure_of(body),
        hs if isinstance(hs, str) else None,
        order,
        buyer if isinstance(buyer, str) else None,
        year,
        value,
        seller,
        withdrawn="errorDeclaration" in body,
        customs=isinstance(body.get("cbec:customsMessage"), Mapping),
    )


def customs_codes_named(body: Mapping[str, Any]) -> list[str]:
    """The customs codes of the enterprises a customs-message event names as responsible."""
    message = body.get("cbec:customsMessage")
    codes = message.get("responsible") if isinstance(message, Mapping) else None
    return [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []


def marks_set(s: Subject) -> dict[str, list[str]]:
    """mark -> codes this event sets it on."""
    c, cl = s.codes, s.classified
    out: dict[str, list[str]] = {}
    codes = s.named
    if not codes and cl.stage != "recall":
        return out
    procedure = procedure_of(s.body)
    if procedure in RETAIL_PROCEDURES:
        out["import"] = codes
        if cl.activity == "declaration":
            out["declared"] = codes
    if cl.activity == "release":
        out["released"] = codes
    if cl.stage == "recall":
        out["recalled"] = codes + [x for x in recall_scope(s.body) if x not in codes]
    if c.biz_step in ENDING_STEPS or c.disposition in ENDING_DISPOSITIONS:
        out["ended"] = codes
    if c.biz_step in DISPATCH_STEPS:
        out["shipped"] = codes
    return out


# A 1210 release whose disposition is ``sellable_not_accessible`` lets bulk goods into the
# bonded zone (一线进区), where no consumer can reach them yet; the three documents are
# matched at the release of each parcel to its buyer (二线出区), whose disposition differs.
BONDED_ENTRY_DISPOSITION: Final = "sellable_not_accessible"

# CBV steps by which goods leave for somewhere else: ``shipping`` and ``departing`` (a
# carrier's train, ship or truck leaving with them). Either makes a later receipt expected.
DISPATCH_STEPS: Final = frozenset({"shipping", "departing"})


# --- the rules ----------------------------------------------------------------------------


def _expand(code: str, view: View, *, containers: bool) -> set[str]:
    """A code with its containers (if asked), their lots and their GTIN classes."""
    out = {code}
    if containers:
        out |= view.containers(code)
    for x in list(out):
        out |= view.lots(x)
        cls = gtin_class(x)
        if cls:
            out.add(cls)
    return out


def _first_mark(codes: Iterable[str], mark: str, view: View, before: int) -> tuple[str, int, str] | None:
    best: tuple[str, int, str] | None = None
    for x in codes:
        m = view.marks(x).get(mark)
        if m is not None and m[0] < before and (best is None or m[0] < best[1]):
            best = (x, m[0], m[1])
    return best


@functools.lru_cache(maxsize=256)
def _future_limit(issued: str, appended: str) -> tuple[datetime, str]:
    """The earlier of the two times, and that plus five minutes as a sortable UTC string."""
    ref = min(
        datetime.fromisoformat(issued.replace("Z", "+00:00")).astimezone(UTC),
        datetime.fromisoformat(appended.replace("Z", "+00:00")),
    )
    return ref, utc_text(ref + FUTURE_SLACK)


def rule_future_time(s: Subject, view: View) -> list[Draft]:
    ref, limit = _future_limit(s.issued, s.appended)
    if s.codes.event_time_utc <= limit:
        return []
    ahead = datetime.fromisoformat(s.codes.event_time_utc.replace("Z", "+00:00")) - ref
    minutes = int(ahead.total_seconds() // 60)
    return [
        Draft(
            "order.future_time",
            [s.seq],
            [s.signer],
            f"事件时间 {s.codes.event_time} 比签发或记录时间晚 {minutes} 分钟（允许 5 分钟）",
            f"eventTime {s.codes.event_time} is {minutes} minutes after the statement was "
            "issued or recorded (5 allowed)",
            s.named,
            {
                "eventTime": s.codes.event_time,
                "issued": s.issued,
                "recorded": s.appended,
                "aheadSeconds": int(ahead.total_seconds()),
            },
        )
    ]


# Activities (ledger.epcis.stages.classify) in the Chinese of a regulator's finding; the machine
# word follows in brackets.
ACTIVITY_ZH: Final[Mapping[str, str]] = {
    "order": "订单",
    "payment": "支付",
    "waybill": "运单",
    "declaration": "申报",
    "release": "放行",
    "inspection": "查验",
    "hold": "暂停放行",
    "transaction": "交易",
    "retail_selling": "零售",
    "dispensing": "发放",
    "evaluation": "评价",
    "commissioning": "生产赋码",
    "packing": "装箱",
    "unpacking": "拆箱",
    "aggregation": "组托",
    "loading": "装载",
    "unloading": "卸载",
    "shipping": "发运",
    "receiving": "收货",
    "departing": "启运",
    "arriving": "到达",
    "transporting": "运输",
    "storing": "仓储",
    "stocking": "上架",
    "picking": "拣货",
    "staging_outbound": "待出库",
    "accepting": "签收",
    "inspecting": "检验",
    "sampling": "抽样",
    "transformation": "加工",
}


def rule_after_recall(s: Subject, view: View) -> list[Draft]:
    cl, c = s.classified, s.codes
    if not view.recalls() or cl.stage in ("recall", "evaluation"):
        return []
    if cl.activity in ("inspection", "hold") or c.disposition in RECALL_HANDLING_DISPOSITIONS:
        return []
    if c.biz_step in RECALL_HANDLING_STEPS:
        return []
    gtins = view.recalled_gtins()
    hit: dict[str, tuple[str, int, str]] = {}
    for code in s.named:
        cls = gtin_class(code)
        if cls is None:
            cands: set[str] = {code}
        elif cls in gtins:
            cands = {code, cls} | view.lots(code)
        else:
            continue  # nothing of this product was ever recalled
        for x in cands:
            m = view.recalled(x)
            if m is not None and m[0] < s.seq and m[1] <= c.event_time_utc:
                if code not in hit or m[0] < hit[code][1]:
                    hit[code] = (x, m[0], m[1])
    if not hit:
        return []
    codes = sorted(hit)
    recall_seqs = sorted({h[1] for h in hit.values()})
    what = cl.activity
    return [
        Draft(
            "order.after_recall",
            [s.seq, *recall_seqs],
            [s.signer],
            f"{ACTIVITY_ZH.get(what, '其他')}事件（{what}）涉及已召回的 {codes[0]}"
            f"（召回见 seq {recall_seqs[0]}），且不是召回处置",
            f"a {what} event names {codes[0]}, recalled at seq {recall_seqs[0]}, and is not recall handling",
            codes,
            {"recalled": {k: {"via": v[0], "seq": v[1]} for k, v in sorted(hit.items())}, "activity": what},
        )
    ]


def rule_after_decommission(s: Subject, view: View) -> list[Draft]:
    cl, c = s.classified, s.codes
    if cl.stage in ("recall", "evaluation"):
        return []
    hit: dict[str, tuple[int, str]] = {}
    for code in s.named:
        m = view.marks(code).get("ended")
        if m is not None and m[0] < s.seq and m[1] <= c.event_time_utc:
            hit[code] = m
    if not hit:
        return []
    codes = sorted(hit)
    seqs = sorted({m[0] for m in hit.values()})
    return [
        Draft(
            "order.after_decommission",
            [s.seq, *seqs],
            [s.signer],
            f"{codes[0]} 已于 seq {seqs[0]} 停用或销毁，之后仍有 {cl.activity} 事件",
            f"{codes[0]} was decommissioned or destroyed at seq {seqs[0]}, yet a "
            f"{cl.activity} event names it later",
            codes,
            {"ended": {k: v[0] for k, v in sorted(hit.items())}, "activity": cl.activity},
        )
    ]


UNPREFIXED_MARK: Final = "unprefixed"


def rule_unregistered_prefix(s: Subject, view: View) -> list[Draft]:
    """The first event that makes or recalls a product (GTIN) under no registered GS1
    company prefix: once per GTIN, marked on its class code."""
    stage = s.classified.stage
    if stage != "production" and stage != "recall":
        return []
    what, claimed = brands.claimed_codes(s.classified, s.codes, s.body, view.roles(s.signer) or ())
    fresh: list[str] = []
    for code in claimed:
        gtin = brands.gtin_of(code)
        if gtin is None:
            continue
        cls = GS1_CLASS_PREFIX + gtin
        if cls in fresh or UNPREFIXED_MARK in view.marks(cls) or view.prefix_holder(gtin):
            continue
        fresh.append(cls)
    if not fresh:
        return []
    act_zh = "生产" if what == "make" else "召回"
    return [
        Draft(
            "gtin.unregistered_prefix",
            [s.seq],
            [s.signer],
            f"{act_zh}的商品 {fresh[0]} 的厂商识别代码未在登记中心登记，无法核实品牌方",
            f"{fresh[0]} was {'made' if what == 'make' else 'recalled'} under no registered "
            "GS1 company prefix: no brand owner can be checked",
            fresh,
            {"act": what, "gtins": [c[len(GS1_CLASS_PREFIX) :] for c in fresh]},
        )
    ]


def rule_receive_without_ship(s: Subject, view: View) -> list[Draft]:
    if s.codes.biz_step != "receiving":
        return []
    unshipped = [
        code
        for code in s.goods
        if _first_mark(_expand(code, view, containers=True), "shipped", view, s.seq) is None
    ]
    if not unshipped:
        return []
    return [
        Draft(
            "order.receive_without_ship",
            [s.seq],
            [s.signer],
            f"收到 {unshipped[0]}，但账本上此前没有它（或其容器、批次）的发货记录",
            f"{unshipped[0]} was received, but no earlier shipping of it, its container or "
            "its lot is on the ledger",
            unshipped,
            {"unshipped": unshipped},
        )
    ]


def rule_sold_before_release(s: Subject, view: View) -> list[Draft]:
    cl, c = s.classified, s.codes
    if c.type == "TransactionEvent" or cl.activity == "declaration":
        return []  # records of business documents, not goods moving; orders precede release
    sale = c.biz_step in SALE_STEPS or c.disposition == "retail_sold"
    delivery = c.biz_step == "accepting"
    shipping = c.biz_step == "shipping"
    if not (sale or delivery or shipping):
        return []
    late: dict[str, dict[str, Any]] = {}
    for code in s.goods:
        around = _expand(code, view, containers=True)
        imported = _first_mark(around, "import", view, s.seq)
        if imported is None or _first_mark(around, "released", view, s.seq) is not None:
            continue
        declared = _first_mark(around, "declared", view, s.seq)
        if shipping and not (sale or delivery) and declared is None:
            continue  # moving goods before they are declared is how they reach customs
        late[code] = {"importSeq": imported[1], "declaredSeq": declared[1] if declared else None}
    if not late:
        return []
    codes = sorted(late)
    act = "sold" if sale else ("delivered" if delivery else "shipped out of customs control")
    act_zh = "销售" if sale else ("交付" if delivery else "出区发运")
    seqs = [s.seq, *sorted({v["importSeq"] for v in late.values()})]
    return [
        Draft(
            "order.sold_before_release",
            seqs,
            [s.signer],
            f"进口商品 {codes[0]} 在海关放行前被{act_zh}",
            f"imported {codes[0]} was {act} before customs released it",
            codes,
            {"act": act, "codes": late},
        )
    ]


def _order_arithmetic(order: Document) -> list[dict[str, Any]]:
    i = order.info
    goods, freight, tax, discount, paid = (
        money(i.get(k)) for k in ("goods", "freight", "tax", "discount", "paid")
    )
    if goods is None or freight is None or tax is None or discount is None or paid is None:
        return [{"field": "amount", "problem": "unreadable amounts"}]
    expected = goods + freight + tax - discount
    deviation = abs(expected - paid)
    # A customs order (CEB311) states acturalPaid = goodsValue + freight + taxTotal −
    # discount as customs' own rule: to the fen. Other orders are allowed 5 %.
    tolerance = Decimal(0) if order.customs else abs(paid) * AMOUNT_TOLERANCE
    if deviation > tolerance:
        return [
            {
                "field": "amount",
                "order": order.id,
                "expected": str(expected),
                "paid": str(paid),
                "deviation": str(deviation),
                "tolerance": "0" if order.customs else "5%",
            }
        ]
    return []


def _line_names(doc: Document) -> dict[int, str] | None:
    lines = doc.info.get("lines")
    if not isinstance(lines, list):
        return None
    out: dict[int, str] = {}
    for x in lines:
        if (
            isinstance(x, Mapping)
            and isinstance(x.get("gnum"), int | float)
            and isinstance(x.get("name"), str)
        ):
            out[int(x["gnum"])] = x["name"]
    return out


def _lines(order: Document, declaration: Document) -> list[dict[str, Any]]:
    """How a declaration's lines disagree with its order's: customs requires them one to one
    by line number (gnum), each with the order's goods name (gname = itemName)."""
    ordered, declared = _line_names(order), _line_names(declaration)
    if ordered is None or declared is None:
        return []  # lines are compared only where both documents list them
    out: list[dict[str, Any]] = []
    for gnum in sorted(set(ordered) | set(declared)):
        a, b = ordered.get(gnum), declared.get(gnum)
        if a != b:
            out.append({"field": "lines", "gnum": gnum, "order": a, "declaration": b})
    return out


def _pair(order: Document, other: Document, *, cited_order: str | None = None) -> list[dict[str, Any]]:
    """How a payment or waybill disagrees with its order."""
    out: list[dict[str, Any]] = []
    label = "payment" if other.type == "cbec:payment" else "waybill"
    if other.order != order.id:
        out.append({"field": "orderNumber", "order": order.id, label: other.order})
    oi, xi = order.info, other.info
    if xi.get("currency") != oi.get("currency"):
        out.append({"field": "currency", "order": oi.get("currency"), label: xi.get("currency")})
    if other.type == "cbec:payment":
        if money(xi.get("paid")) != money(oi.get("paid")):
            out.append({"field": "paid", "order": oi.get("paid"), "payment": xi.get("paid")})
        if other.buyer != order.buyer:
            out.append({"field": "buyer", "order": order.buyer, "payment": other.buyer})
    else:
        if money(xi.get("freight")) != money(oi.get("freight")):
            out.append({"field": "freight", "order": oi.get("freight"), "waybill": xi.get("freight")})
        # Compared where both carry it (customs messages do): the hashes, never the people.
        a, b = oi.get("consigneeHash"), xi.get("consigneeHash")
        if a is not None and b is not None and a != b:
            out.append({"field": "consignee", "order": a, "waybill": b})
    return out


def _describe(problems: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    zh = {
        "amount": "订单金额不符（商品+运费+税−抵扣≠实付，超 5%）",
        "orderNumber": "订单号不一致",
        "currency": "币制不一致",
        "paid": "支付金额不一致",
        "buyer": "订购人与支付人不一致",
        "freight": "运费不一致",
        "consignee": "订单与运单的收货人信息不一致",
        "lines": "清单表体与订单商品不一致（序号或名称）",
    }
    en = {
        "amount": "order amounts do not add up (goods + freight + tax − discount vs paid, over 5 %)",
        "orderNumber": "order numbers differ",
        "currency": "currencies differ",
        "paid": "amounts paid differ",
        "buyer": "buyer and payer differ",
        "freight": "freight differs",
        "consignee": "the order's and the waybill's consignees differ",
        "lines": "the declaration's lines differ from the order's (number or name)",
    }
    fields = list(dict.fromkeys(str(p["field"]) for p in problems))
    return "；".join(zh.get(f, f) for f in fields), "; ".join(en.get(f, f) for f in fields)


def rule_three_docs_arrival(s: Subject, view: View, doc: Document) -> list[Draft]:
    """A document that disagrees with the documents of its order already on the ledger."""
    problems: list[dict[str, Any]] = []
    others: list[Document] = []
    if doc.type == "cbec:order":
        problems += _order_arithmetic(doc)
        for other in view.citing_order(doc.id):
            if other.withdrawn:
                continue
            p = (
                _pair(doc, other)
                if other.type in ("cbec:payment", "cbec:waybill")
                else _lines(doc, other)
                if other.type == "cbec:declaration"
                else []
            )
            if p:
                problems += p
                others.append(other)
    elif doc.type in ("cbec:payment", "cbec:waybill") and doc.order:
        order = _present(view.document("cbec:order", doc.order))
        if order is not None:
            p = _pair(order, doc)
            if p:
                problems += p
                others.append(order)
    elif doc.type == "cbec:declaration" and doc.order:
        for t in ("cbec:payment", "cbec:waybill"):
            number = doc.links.get(t)
            cited = _present(view.document(t, number)) if number else None
            if cited is not None and cited.order != doc.order:
                label = t.split(":")[1]
                problems.append({"field": "orderNumber", "order": doc.order, label: cited.order})
                others.append(cited)
        order = _present(view.document("cbec:order", doc.order))
        if order is not None:
            p = _lines(order, doc)
            if p:
                problems += p
                others.append(order)
    if not problems:
        return []
    zh, en = _describe(problems)
    order_no = doc.order or doc.id
    return [
        Draft(
            "three_docs.mismatch",
            [s.seq, *(o.seq for o in others)],
            [s.signer, *(o.signer for o in others)],
            f"订单 {order_no} 的单证不一致：{zh}",
            f"documents of order {order_no} disagree: {en}",
            s.named,
            {"order": order_no, "document": doc.type, "problems": problems},
        )
    ]


def _present(doc: Document | None) -> Document | None:
    """A document as the rules see it: a withdrawn one is not there."""
    return None if doc is None or doc.withdrawn else doc


def rule_unregistered_enterprise(s: Subject, view: View) -> list[Draft]:
    """A customs message's document whose responsible enterprise no registered party holds
    the customs code of: it was transmitted for it (or names it beside the signer), and is
    recorded; the enterprise is named by its code."""
    codes = customs_codes_named(s.body)
    missing = [c for c in codes if view.customs_holder(c) is None]
    if not missing:
        return []
    message = s.body.get("cbec:customsMessage")
    kind = message.get("message") if isinstance(message, Mapping) else None
    who = "、".join(missing)
    return [
        Draft(
            "party.unregistered",
            [s.seq],
            [s.signer],
            f"{kind} 的责任企业（海关编码 {who}）未在账本登记",
            f"{kind}: the responsible enterprise (customs code {', '.join(missing)}) is "
            "not registered on the ledger",
            s.named,
            {
                "message": kind,
                "codes": missing,
                "key": message.get("key") if isinstance(message, Mapping) else None,
            },
        )
    ]


def rule_registered(s: Subject, view: View, doc: Document) -> list[Draft]:
    if doc.type != "cbec:order":
        return []
    problems: list[dict[str, Any]] = []
    roles = view.roles(s.signer) or ()
    if "platform" not in roles:
        problems.append({"party": s.signer, "as": "platform", "roles": list(roles)})
    parties = [s.signer]
    if doc.seller is not None and doc.seller != s.signer:
        parties.append(doc.seller)
        seller_roles = view.roles(doc.seller)
        if seller_roles is None or not ({"merchant", "platform"} & set(seller_roles)):
            problems.append(
                {"party": doc.seller, "as": "merchant", "roles": list(seller_roles) if seller_roles else None}
            )
    if not problems:
        return []
    who = problems[0]["party"]
    as_zh = "电商平台" if problems[0]["as"] == "platform" else "电商企业"
    return [
        Draft(
            "three_docs.unregistered",
            [s.seq],
            parties,
            f"订单 {doc.id} 的{as_zh} {who} 未以该角色登记",
            f"order {doc.id}: {who} is not registered as {problems[0]['as']}",
            s.named,
            {"order": doc.id, "problems": problems},
        )
    ]


def rule_tax_limits(s: Subject, view: View, doc: Document) -> list[Draft]:
    if doc.type != "cbec:order" or doc.value is None:
        return []
    if doc.procedure is not None and doc.procedure not in RETAIL_PROCEDURES:
        return []
    value = Decimal(doc.value)
    out: list[Draft] = []
    codes = s.named
    if value > SINGLE_LIMIT:
        out.append(
            Draft(
                "tax.single_limit",
                [s.seq],
                [s.signer],
                f"订单 {doc.id} 完税价格 {value} 元超过单次交易限值 5000 元，应按一般贸易全额征税",
                f"order {doc.id}: dutiable value {value} CNY is over the 5,000 CNY "
                "single-transaction limit; it is taxed as general trade",
                codes,
                {
                    "order": doc.id,
                    "value": str(value),
                    "limit": str(SINGLE_LIMIT),
                    "treatment": "general_trade",
                },
            )
        )
    if doc.buyer is not None and doc.year is not None:
        others = {k: v for k, v in view.buyer_orders(doc.buyer, doc.year).items() if k != doc.id}
        total = sum(others.values(), Decimal(0)) + value
        if total > ANNUAL_LIMIT:
            out.append(
                Draft(
                    "tax.annual_limit",
                    [s.seq],
                    [s.signer],
                    f"订购人 {doc.buyer[:20]}… 在 {doc.year} 年的交易额累计 {total} 元，"
                    "超过年度限值 26000 元；"
                    f"订单 {doc.id} 应按一般贸易征税",
                    f"buyer {doc.buyer[:20]}… has bought {total} CNY in {doc.year}, over the 26,000 CNY "
                    f"annual limit; order {doc.id} is taxed as general trade",
                    codes,
                    {
                        "order": doc.id,
                        "buyerIdHash": doc.buyer,
                        "year": doc.year,
                        "total": str(total),
                        "limit": str(ANNUAL_LIMIT),
                        "orders": len(others) + 1,
                        "treatment": "general_trade",
                    },
                )
            )
    return out


def _hs_codes(doc: Document) -> list[str]:
    """The declaration's HS code, then its lines' (a customs inventory has one per line)."""
    codes = [doc.hs_code] if doc.hs_code else []
    lines = doc.info.get("lines")
    for x in lines if isinstance(lines, list) else ():
        hs = x.get("hsCode") if isinstance(x, Mapping) else None
        if isinstance(hs, str) and hs not in codes:
            codes.append(hs)
    return codes


def rule_positive_list(s: Subject, view: View, doc: Document) -> list[Draft]:
    if doc.type != "cbec:declaration" or doc.procedure not in RETAIL_PROCEDURES:
        return []
    off = [hs for hs in _hs_codes(doc) if not view.on_positive_list(hs)]
    if not off:
        return []
    return [
        Draft(
            "positive_list.missing",
            [s.seq],
            [s.signer],
            f"申报 {doc.id} 的商品编码 {'、'.join(off)} 不在跨境电商零售进口正面清单内",
            f"declaration {doc.id}: HS code {', '.join(off)} is not on the retail-import positive list",
            s.named,
            {
                "declaration": doc.id,
                "hsCode": off[0],
                **({"hsCodes": off} if len(off) > 1 else {}),
                "procedure": doc.procedure,
            },
        )
    ]


def rule_release(s: Subject, view: View) -> list[Draft]:
    """A release of retail-import goods whose declaration names a missing or disagreeing
    document."""
    if s.classified.activity != "release":
        return []
    numbers = [i for t, i in s.codes.biz_transactions if t == "cbec:declaration"]
    procedure = procedure_of(s.body)
    decl = _present(view.document("cbec:declaration", numbers[0])) if numbers else None
    if procedure is None and decl is not None:
        procedure = decl.procedure
    if procedure is not None and procedure not in RETAIL_PROCEDURES:
        return []  # exports (9710, 9810) are not matched against three documents
    if procedure == "1210" and s.codes.disposition == BONDED_ENTRY_DISPOSITION:
        return []  # goods released into bonded storage: matched when released to a buyer
    if procedure is None and not (numbers and decl is None):
        return []
    codes = s.named
    missing: list[str] = []
    seqs, parties = [s.seq], [s.signer]
    if decl is None:
        missing.append("cbec:declaration")
        docs: dict[str, Document] = {}
    else:
        seqs.append(decl.seq)
        parties.append(decl.signer)
        docs = {}
        for t in ("cbec:order", "cbec:payment", "cbec:waybill"):
            number = decl.links.get(t)
            d = _present(view.document(t, number)) if number else None
            if d is None:
                missing.append(t)
            else:
                docs[t] = d
                seqs.append(d.seq)
                parties.append(d.signer)
    out: list[Draft] = []
    if missing:
        names = ", ".join(m.split(":")[1] for m in missing)
        zh_names = "、".join(
            {
                "cbec:declaration": "申报单",
                "cbec:order": "订单",
                "cbec:payment": "支付单",
                "cbec:waybill": "运单",
            }[m]
            for m in missing
        )
        out.append(
            Draft(
                "three_docs.missing",
                seqs,
                parties,
                f"海关放行时缺少{zh_names}",
                f"customs released goods with no {names} on the ledger",
                codes,
                {
                    "missing": [m.split(":")[1] for m in missing],
                    "declaration": numbers[0] if numbers else None,
                },
            )
        )
    order = docs.get("cbec:order")
    if order is not None:
        problems = _order_arithmetic(order)
        for t in ("cbec:payment", "cbec:waybill"):
            if t in docs:
                problems += _pair(order, docs[t])
        if decl is not None:
            problems += _lines(order, decl)
        if problems:
            zh, en = _describe(problems)
            out.append(
                Draft(
                    "three_docs.release_mismatch",
                    seqs,
                    parties,
                    f"订单 {order.id} 三单不符仍予放行：{zh}",
                    f"customs released order {order.id} although its documents disagree: {en}",
                    codes,
                    {"order": order.id, "problems": problems},
                )
            )
    return out


# --- running them -------------------------------------------------------------------------


def evaluate(s: Subject, view: View, doc: Document | None) -> list[Draft]:
    """Every finding one event raises, in a fixed order; ``doc`` is ``document_of(s)``.

    An error declaration raises none: it says an earlier event did not happen as stated (a
    customs message's deletion is one), and withdraws the document that event was."""
    if "errorDeclaration" in s.body:
        return []
    drafts = rule_future_time(s, view)
    drafts += rule_unregistered_enterprise(s, view)
    if doc is not None:
        drafts += rule_registered(s, view, doc)
        drafts += rule_three_docs_arrival(s, view, doc)
        drafts += rule_tax_limits(s, view, doc)
        drafts += rule_positive_list(s, view, doc)
    drafts += rule_release(s, view)
    drafts += rule_sold_before_release(s, view)
    drafts += rule_receive_without_ship(s, view)
    drafts += rule_after_recall(s, view)
    drafts += rule_after_decommission(s, view)
    drafts += rule_unregistered_prefix(s, view)
    return drafts


def _uniq(xs: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(set(xs)))


def finding_from(draft: Draft, *, seq: int, n: int, time: str) -> Finding:
    rule = RULES[draft.rule]
    return Finding(
        id=f"{seq}-{n}",
        seq=seq,
        rule=rule.code,
        severity=rule.severity,
        time=time,
        seqs=_uniq(draft.seqs),
        parties=_uniq(draft.parties),
        codes=_uniq(draft.codes),
        message_zh=draft.zh,
        message_en=draft.en,
        details=dict(draft.details),
    )


def record_scan_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Hook for the counterfeit signal from scans (rule ``scan.counterfeit``).

    Scans are kept outside the ledger, so their findings cannot be rebuilt from entries:
    the scans module builds ``Finding`` values with ``source="scan"``, ``rule`` set to
    ``COUNTERFEIT_RULE`` and an id of its own (``scan-…``), and stores them with
    ``ledger.store.findingsdb.save_scan_findings``; ``suyuan reindex`` keeps them (it
    clears only findings whose source is ``entry``) and ``list_findings`` returns both.
    This function checks them before they are stored.
    """
    for f in findings:
        if f.source != "scan" or f.rule != COUNTERFEIT_RULE or not f.id.startswith("scan-"):
            raise ValueError(
                "scan findings have source 'scan', rule scan.counterfeit and an id starting with 'scan-'"
            )
    return list(findings)


# --- reading findings -----------------------------------------------------------------------
