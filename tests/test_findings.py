"""Compliance findings: every rule with cases that must fire and cases that must not, the
edges of each limit, findings rebuilt identically, never a refusal; and the tax on retail
imports against known answers (9.1 %, 23.1 %) and orders computed by hand."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.compliance.findings import RULES, Finding
from ledger.compliance.tax import comprehensive_rate, tax_for
from ledger.core.errors import IdentifierError, MalformedInput
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.log.reindex import reindex
from ledger.log.sequencer import Ledger
from ledger.queries.findings import findings_summary, list_findings
from ledger.store import findingsdb, tracedb
from ledger.store.db import Store
from tests.support import World

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
GTIN = "04901234567894"
ITEM = f"https://id.gs1.org/01/{GTIN}/21/"
PALLET = "https://id.gs1.org/00/049012340000001237"
MALL = "https://mall.example.cn/orders/"
PAY = "https://pay.example.cn/tx/"
WB = "https://express.example.cn/waybill/"
DECL = "https://customs.example.cn/inventory/"
PAST = "2026-11-20T10:00:00+08:00"


def buyer(idno: str) -> str:
    """A buyerIdHash as schemas/README.md defines it, under a test matching key."""
    return (
        "hmac-sha256:" + hmac.new(b"zone-test-key", f"id:{idno.upper()}".encode(), hashlib.sha256).hexdigest()
    )


ALICE, BOB = buyer("110101199003070011"), buyer("11010119900307002x")


class Chain:
    """A pilot zone: one party per role, and helpers that sign CBEC events."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.parties: dict[str, tuple[str, PartyKey]] = {}
        for role in (
            "producer",
            "platform",
            "merchant",
            "payment",
            "logistics",
            "warehouse",
            "customs_broker",
            "customs",
            "regulator",
        ):
            # The producer holds the GS1 company prefix of the goods (GTIN 04901234567894).
            self.parties[role] = world.register(
                [role], gs1_prefixes=["4901234"] if role == "producer" else ()
            )

    def id(self, role: str) -> str:
        return self.parties[role][0]

    def env(
        self, role: str, body: dict[str, Any], *, kind: str = "event", issued: str | None = None
    ) -> dict[str, Any]:
        party, key = self.parties[role]
        return sign_one(kind=kind, signer=party, key=key, body=body, issued=issued)

    def append(self, role: str, body: dict[str, Any], **kw: Any) -> int:
        return self.world.ledger.append(self.env(role, body, **kw)).seq

    def positive(self, action: str, *codes: str) -> int:
        return self.append(
            "regulator",
            {
                "list": "positive",
                "action": action,
                "hsCodes": list(codes),
                "reason": "正面清单 positive list",
            },
            kind="list.update",
        )


def ev(time: str = PAST, **f: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": time,
        "eventTimeZoneOffset": time[-6:] if time[-6] in "+-" else "+08:00",
        **f,
    }


def order(
    no: str,
    *,
    goods: str = "298.00",
    freight: str = "10.00",
    tax: str = "28.03",
    discount: str = "20.00",
    paid: str = "316.03",
    who: str = ALICE,
    currency: str = "CNY",
    time: str = PAST,
    items: tuple[str, ...] = ("JP0001",),
    procedure: str = "1210",
    offset: str | None = None,
    **f: Any,
) -> dict[str, Any]:
    body = {
        "type": "TransactionEvent",
        "action": "ADD",
        "eventTime": time,
        "eventTimeZoneOffset": offset or (time[-6:] if time[-6] in "+-" else "+08:00"),
        "bizTransactionList": [{"type": "cbec:order", "bizTransaction": MALL + no}],
        "epcList": [ITEM + i for i in items],
        "cbec:customsProcedure": procedure,
        "cbec:orderInfo": {
            "goods": goods,
            "freight": freight,
            "tax": tax,
            "discount": discount,
            "paid": paid,
            "currency": currency,
            "buyerIdHash": who,
        },
        **f,
    }
    return body


def payment(
    no: str, *, paid: str = "316.03", who: str = ALICE, currency: str = "CNY", pay_no: str | None = None
) -> dict[str, Any]:
    return {
        "type": "TransactionEvent",
        "action": "ADD",
        "eventTime": PAST,
        "eventTimeZoneOffset": "+08:00",
        "bizTransactionList": [
            {"type": "cbec:order", "bizTransaction": MALL + no},
            {"type": "cbec:payment", "bizTransaction": PAY + (pay_no or no)},
        ],
        "epcList": [ITEM + "JP0001"],
        "cbec:customsProcedure": "1210",
        "cbec:paymentInfo": {"paid": paid, "currency": currency, "buyerIdHash": who},
    }


def waybill(no: str, *, freight: str = "10.00", wb_no: str | None = None) -> dict[str, Any]:
    return {
        "type": "TransactionEvent",
        "action": "ADD",
        "eventTime": PAST,
        "eventTimeZoneOffset": "+08:00",
        "bizTransactionList": [
            {"type": "cbec:order", "bizTransaction": MALL + no},
            {"type": "cbec:waybill", "bizTransaction": WB + (wb_no or no)},
        ],
        "epcList": [ITEM + "JP0001"],
        "cbec:customsProcedure": "1210",
        "cbec:waybillInfo": {"freight": freight, "currency": "CNY"},
    }


def declaration(
    no: str,
    *,
    hs: str = "1901101010",
    procedure: str = "1210",
    docs: tuple[str, ...] = ("order", "payment", "waybill"),
    pay_no: str | None = None,
    items: tuple[str, ...] = ("JP0001",),
) -> dict[str, Any]:
    links = {"order": MALL + no, "payment": PAY + (pay_no or no), "waybill": WB + no}
    bts = [{"type": f"cbec:{d}", "bizTransaction": links[d]} for d in docs]
    return ev(
        epcList=[ITEM + i for i in items],
        bizStep="cbec:declaring",
        bizTransactionList=[*bts, {"type": "cbec:declaration", "bizTransaction": DECL + no}],
        **{"cbec:customsProcedure": procedure, "cbec:hsCode": hs},
    )


def release(no: str, *, items: tuple[str, ...] = ("JP0001",), **f: Any) -> dict[str, Any]:
    f.setdefault("disposition", "sellable_accessible")
    return ev(
        epcList=[ITEM + i for i in items],
        bizStep="cbec:releasing",
        bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": DECL + no}],
        **{"cbec:customsProcedure": "1210"},
        **f,
    )


def rules_of(world: World, **kw: Any) -> list[str]:
    return [f.rule for f in list_findings(world.store, **kw)]


def at(world: World, seq: int) -> list[Finding]:
    return [f for f in list_findings(world.store, since_seq=seq) if f.seq == seq]


@pytest.fixture
def chain(world: World) -> Chain:
    return Chain(world)


def documents(c: Chain, no: str, **kw: Any) -> None:
    """Order, payment and waybill of one order, all agreeing unless told otherwise."""
    c.append("platform", order(no, **kw.get("order", {})))
    c.append("payment", payment(no, **kw.get("payment", {})))
    c.append("logistics", waybill(no, **kw.get("waybill", {})))


# --- the example chain raises nothing -----------------------------------------------------------


def _example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(next(EXAMPLES.glob(f"{name}-*.json")).read_text())
    return doc


def test_the_example_1210_chain_raises_no_finding(chain: Chain) -> None:
    chain.positive("add", "1901101010")
    steps = [
        ("01", "producer"),
        ("02", "producer"),
        ("03", "logistics"),
        ("04", "warehouse"),
        ("13", "customs"),
        ("05", "platform"),
        ("06", "payment"),
        ("07", "logistics"),
        ("08", "customs_broker"),
        ("09", "customs"),
        ("10", "warehouse"),
        ("11", "logistics"),
        ("12", "platform"),
    ]
    for name, role in steps:
        body = _example(name)
        if body["eventTime"] > "2026-11-27T17":  # keep every event in the past
            body["eventTime"] = "2026-11-27T17:00:00+08:00"
        chain.append(role, body)
    assert list_findings(chain.world.store) == []
    assert findings_summary(chain.world.store)["total"] == 0


# --- 三单对碰 ------------------------------------------------------------------------------------


def test_agreeing_documents_raise_nothing_and_each_disagreement_is_named(chain: Chain) -> None:
    documents(chain, "A1")
    assert list_findings(chain.world.store) == []

    chain.append("platform", order("A2"))
    seq = chain.append("payment", payment("A2", paid="300.00", who=BOB))
    [f] = at(chain.world, seq)
    assert f.rule == "three_docs.mismatch" and f.severity == "medium"
    assert {p["field"] for p in f.details["problems"]} == {"paid", "buyer"}
    assert set(f.parties) == {chain.id("platform"), chain.id("payment")}
    assert "支付金额不一致" in f.message_zh and "amounts paid differ" in f.message_en

    seq = chain.append("logistics", waybill("A2", freight="12.00"))
    [f] = at(chain.world, seq)
    assert [p["field"] for p in f.details["problems"]] == ["freight"]
    assert f.codes == (ITEM + "JP0001",)


def test_order_first_or_last_the_disagreement_is_raised_once(chain: Chain) -> None:
    chain.append("payment", payment("B1", paid="1.00"))
    assert list_findings(chain.world.store) == []  # nothing to compare with yet
    seq = chain.append("platform", order("B1"))
    [f] = list_findings(chain.world.store)
    assert f.seq == seq and f.rule == "three_docs.mismatch"
    assert f.details["problems"] == [{"field": "paid", "order": "316.03", "payment": "1.00"}]


@pytest.mark.parametrize(
    ("goods", "fires"),
    [
        ("298.00", False),  # adds up exactly
        ("313.80", False),  # 15.80 over: exactly 5 % of 316.00
        ("313.81", True),  # 15.81 over: more than 5 %
        ("282.20", False),  # 15.80 under: exactly 5 %
        ("282.19", True),
    ],
)
def test_order_amounts_add_up_within_five_percent(chain: Chain, goods: str, fires: bool) -> None:
    seq = chain.append("platform", order("C1", goods=goods, paid="316.00", tax="28.00"))
    # 298.00 + 10.00 + 28.00 − 20.00 = 316.00: goods moves the sum one to one.
    assert [f.rule for f in at(chain.world, seq)] == (["three_docs.mismatch"] if fires else [])


def test_declaration_naming_another_orders_payment(chain: Chain) -> None:
    chain.positive("add", "1901101010")
    documents(chain, "D1")
    documents(chain, "D2")
    seq = chain.append("customs_broker", declaration("D1", pay_no="D2"))
    [f] = at(chain.world, seq)
    assert f.rule == "three_docs.mismatch"
    assert f.details["problems"] == [{"field": "orderNumber", "order": MALL + "D1", "payment": MALL + "D2"}]
    # ... and customs releasing it anyway is the high-severity finding.
    seq = chain.append("customs", release("D1"))
    [f] = at(chain.world, seq)
    assert f.rule == "three_docs.release_mismatch" and f.severity == "high"
    assert chain.id("customs") in f.parties and chain.id("customs_broker") in f.parties


def test_release_with_a_missing_document(chain: Chain) -> None:
    chain.positive("add", "1901101010")
    chain.append("platform", order("E1"))
    chain.append("payment", payment("E1"))
    chain.append("customs_broker", declaration("E1", docs=("order", "payment")))
    seq = chain.append("customs", release("E1"))
    [f] = at(chain.world, seq)
    assert (f.rule, f.severity) == ("three_docs.missing", "high")
    assert f.details["missing"] == ["waybill"]
    assert "运单" in f.message_zh

    # a waybill named but never sent is as missing as one not named
    chain.append("platform", order("E2"))
    chain.append("payment", payment("E2"))
    chain.append("customs_broker", declaration("E2"))
    assert at(chain.world, chain.append("customs", release("E2")))[0].details["missing"] == ["waybill"]

    # a release naming a declaration the ledger never saw
    [f] = at(chain.world, chain.append("customs", release("NOPE")))
    assert f.details["missing"] == ["declaration"]

    # all there: nothing
    documents(chain, "E3")
    chain.append("customs_broker", declaration("E3"))
    assert at(chain.world, chain.append("customs", release("E3"))) == []


def test_release_of_exports_is_not_matched(chain: Chain) -> None:
    body = release("X1")
    body["cbec:customsProcedure"] = "9710"
    assert at(chain.world, chain.append("customs", body)) == []


def test_bulk_entry_into_the_bonded_zone_is_not_matched(chain: Chain) -> None:
    """一线进区: a 1210 release of bulk goods into bonded storage (not yet reachable by any
    buyer) names no order; the three documents are matched at each parcel's release."""
    entry = release("B1", disposition="sellable_not_accessible")
    assert at(chain.world, chain.append("customs", entry)) == []
    # the same release to a buyer, with no documents, is a finding
    [f] = at(chain.world, chain.append("customs", release("B1")))
    assert f.rule == "three_docs.missing"


def test_platform_and_merchant_must_be_registered(chain: Chain) -> None:
    # signed by a merchant, not a platform
    seq = chain.append("merchant", order("F1"))
    [f] = at(chain.world, seq)
    assert f.rule == "three_docs.unregistered" and f.details["problems"][0]["as"] == "platform"
    # a named seller that is not registered
    ghost = "uscc:91350100M000100Y43"
    seq = chain.append("platform", order("F2", sourceList=[{"type": "owning_party", "source": ghost}]))
    [f] = at(chain.world, seq)
    assert f.details["problems"] == [{"party": ghost, "as": "merchant", "roles": None}]
    assert ghost in f.parties
    # a registered merchant selling on a registered platform
    seq = chain.append(
        "platform", order("F3", sourceList=[{"type": "owning_party", "source": chain.id("merchant")}])
    )
    assert at(chain.world, seq) == []


# --- tax limits and the comprehensive rate -----------------------------------------------------


def test_known_answer_rates() -> None:
    assert comprehensive_rate() == Decimal("0.091")
    cosmetics = comprehensive_rate(consumption=Decimal("0.15"))
    assert cosmetics.quantize(Decimal("0.001")) == Decimal("0.231")
    # 0.28 / 0.85 × 0.7 = 0.196 / 0.85 = 0.230588235294117647…
    assert abs(cosmetics - Decimal(196) / Decimal(850)) < Decimal("1e-25")


def test_tax_for_orders_computed_by_hand() -> None:
    # The example order: (298 + 10) × 13 % × 70 % = 28.028 -> 28.03, which is the tax it collected.
    ex = tax_for(_example("05"))
    assert ex["treatment"] == "cbec_retail"
    assert (ex["dutiableValue"], ex["vat"], ex["consumptionTax"], ex["total"]) == (
        Decimal("308.00"),
        Decimal("28.03"),
        Decimal("0.00"),
        Decimal("28.03"),
    )
    assert ex["total"] == ex["declaredTax"]
    # Face cream (HS 3304): 1,020 / (1 − 0.15) = 1,200; CT 1,200 × 15 % × 70 % = 126.00,
    # VAT 1,200 × 13 % × 70 % = 109.20; 235.20 = 1,020 × 23.0588… %.
    cream = tax_for(
        {
            "goods": "1000.00",
            "freight": "20.00",
            "tax": "0",
            "discount": "0",
            "paid": "1020.00",
            "currency": "CNY",
            "buyerIdHash": ALICE,
        },
        hs_code="3304990000",
    )
    assert (cream["consumptionTax"], cream["vat"], cream["total"]) == (
        Decimal("126.00"),
        Decimal("109.20"),
        Decimal("235.20"),
    )
    assert cream["consumptionTaxRate"] == Decimal("0.15")
    assert cream["comprehensiveRate"].quantize(Decimal("0.001")) == Decimal("0.231")
    over = tax_for(order("T", goods="4990.01")["cbec:orderInfo"])
    assert over["treatment"] == "general_trade" and over["total"] is None
    edge = tax_for(order("T", goods="4990.00")["cbec:orderInfo"])
    assert edge["treatment"] == "cbec_retail" and edge["vat"] == Decimal("455.00")


@pytest.mark.parametrize(("goods", "fires"), [("4990.00", False), ("4990.01", True)])
def test_single_transaction_limit(chain: Chain, goods: str, fires: bool) -> None:
    paid = str(Decimal(goods) + Decimal("10.00"))
    seq = chain.append("platform", order("G1", goods=goods, tax="0.00", discount="0.00", paid=paid))
    found = at(chain.world, seq)
    assert [f.rule for f in found] == (["tax.single_limit"] if fires else [])
    if fires:
        assert found[0].details["value"] == "5000.01"
        assert "general trade" in found[0].message_en and "一般贸易" in found[0].message_zh


def _buy(
    c: Chain,
    no: str,
    value: str,
    *,
    who: str = ALICE,
    time: str = "2025-06-01T10:00:00+08:00",
    offset: str | None = None,
) -> list[str]:
    seq = c.append(
        "platform",
        order(
            no,
            goods=value,
            freight="0.00",
            tax="0.00",
            discount="0.00",
            paid=value,
            who=who,
            time=time,
            offset=offset,
        ),
    )
    return [f.rule for f in at(c.world, seq)]


def test_annual_limit_per_buyer_and_calendar_year(chain: Chain) -> None:
    for i in range(5):
        assert _buy(chain, f"Y{i}", "5000.00") == []
    assert _buy(chain, "Y5", "1000.00") == []  # exactly 26,000.00 in 2025
    assert _buy(chain, "Y5", "1000.00") == []  # the same order again counts once
    assert _buy(chain, "B0", "5000.00", who=BOB) == []  # another buyer
    # 2025-12-31T16:00:00Z is 2026-01-01 00:00 in the order's own +08:00: next year
    assert _buy(chain, "Y6", "0.01", time="2025-12-31T16:00:00Z", offset="+08:00") == []
    # the last second of 2025 in China: over the limit
    assert _buy(chain, "Y7", "0.01", time="2025-12-31T23:59:59+08:00") == ["tax.annual_limit"]
    [f] = list_findings(chain.world.store, rule="tax.annual_limit")
    assert f.details["total"] == "26000.01" and f.details["year"] == 2025
    assert f.details["buyerIdHash"] == ALICE and f.details["orders"] == 7
    # every later order of that year is over too
    assert _buy(chain, "Y8", "10.00", time="2025-07-01T00:00:00+08:00") == ["tax.annual_limit"]


# --- positive list -----------------------------------------------------------------------------


def test_positive_list(chain: Chain) -> None:
    def declared(no: str, hs: str, procedure: str = "1210") -> list[str]:
        seq = chain.append("customs_broker", declaration(no, hs=hs, procedure=procedure))
        return [f.rule for f in at(chain.world, seq) if f.rule.startswith("positive")]

    assert declared("P1", "1901101010") == ["positive_list.missing"]  # the list is empty
    chain.positive("add", "1901101010", "330499")
    assert declared("P2", "1901101010") == []
    assert declared("P3", "3304990000") == []  # a listed heading covers its lines
    assert declared("P4", "3304100000") == ["positive_list.missing"]
    assert declared("P5", "9999999999", procedure="9710") == []  # exports are not retail imports
    chain.positive("remove", "1901101010")
    assert declared("P6", "1901101010") == ["positive_list.missing"]
    last = chain.world.ledger.size() - 1
    [f] = list_findings(chain.world.store, rule="positive_list.missing", since_seq=last)
    assert f.details == {"declaration": DECL + "P6", "hsCode": "1901101010", "procedure": "1210"}


def test_positive_list_change_in_the_same_batch(chain: Chain) -> None:
    led = chain.world.ledger
    receipts = led.append_batch(
        [
            chain.env("customs_broker", declaration("Q1")),
            chain.env(
                "regulator",
                {"list": "positive", "action": "add", "hsCodes": ["1901101010"], "reason": "x"},
                kind="list.update",
            ),
            chain.env("customs_broker", declaration("Q2")),
        ]
    )
    assert [f.seq for f in list_findings(chain.world.store, rule="positive_list.missing")] == [
        receipts[0].seq
    ]


# --- ordering -----------------------------------------------------------------------------------


def _import_pallet(c: Chain, serial: str = "JP0001") -> None:
    """Commission an item, pack it on a pallet, ship and receive the pallet under 1210."""
    c.append(
        "producer",
        ev(
            action="ADD",
            bizStep="commissioning",
            epcList=[ITEM + serial],
            ilmd={"cbvmda:lotNumber": "L2026A"},
            time="2026-09-15T10:00:00+09:00",
        ),
    )
    c.append(
        "producer",
        {
            "type": "AggregationEvent",
            "action": "ADD",
            "bizStep": "packing",
            "eventTime": "2026-09-16T09:00:00+09:00",
            "eventTimeZoneOffset": "+09:00",
            "parentID": PALLET,
            "childEPCs": [ITEM + serial],
        },
    )
    c.append("logistics", ev(bizStep="shipping", epcList=[PALLET], time="2026-09-20T16:00:00+09:00"))
    c.append(
        "warehouse",
        ev(
            bizStep="receiving",
            epcList=[PALLET],
            time="2026-10-08T14:00:00+08:00",
            **{"cbec:customsProcedure": "1210"},
        ),
    )


def test_sold_or_delivered_before_release(chain: Chain) -> None:
    chain.positive("add", "1901101010")
    _import_pallet(chain)
    assert list_findings(chain.world.store) == []
    documents(chain, "S1")  # the order comes before release by design: no finding
    chain.append("customs_broker", declaration("S1"))
    assert list_findings(chain.world.store) == []
    # shipped out of the bonded warehouse after declaration, before release
    seq = chain.append("warehouse", ev(bizStep="shipping", epcList=[ITEM + "JP0001"]))
    [f] = at(chain.world, seq)
    assert (f.rule, f.severity) == ("order.sold_before_release", "high")
    assert f.details["act"] == "shipped out of customs control"
    # sold at a counter and delivered, still before release
    seq = chain.append(
        "merchant", ev(bizStep="retail_selling", disposition="retail_sold", epcList=[ITEM + "JP0001"])
    )
    assert [f.rule for f in at(chain.world, seq)] == ["order.sold_before_release"]
    seq = chain.append("logistics", ev(bizStep="accepting", epcList=[ITEM + "JP0001"]))
    assert at(chain.world, seq)[0].details["act"] == "delivered"
    chain.append("customs", release("S1"))
    later = "2026-11-21T10:00:00+08:00"
    for role, body in [
        ("warehouse", ev(later, bizStep="shipping", epcList=[ITEM + "JP0001"])),
        ("logistics", ev(later, bizStep="accepting", disposition="retail_sold", epcList=[ITEM + "JP0001"])),
    ]:
        assert at(chain.world, chain.append(role, body)) == []


def test_goods_that_are_not_imports_may_be_sold_any_time(chain: Chain) -> None:
    chain.append("producer", ev(action="ADD", bizStep="commissioning", epcList=[ITEM + "CN1"]))
    seq = chain.append(
        "merchant", ev(bizStep="retail_selling", disposition="retail_sold", epcList=[ITEM + "CN1"])
    )
    assert at(chain.world, seq) == []


def test_events_after_a_recall(chain: Chain) -> None:
    for serial, lot_no in (("R1", "L2026A"), ("R2", "L2026B")):
        chain.append(
            "producer",
            ev(
                action="ADD",
                bizStep="commissioning",
                epcList=[ITEM + serial],
                ilmd={"cbvmda:lotNumber": lot_no},
            ),
        )
    lot = f"https://id.gs1.org/01/{GTIN}/10/L2026A"
    recall = chain.append(
        "regulator",
        ev(
            time="2026-11-21T09:00:00+08:00",
            bizStep="cbec:recalling",
            disposition="recalled",
            quantityList=[{"epcClass": lot, "quantity": 1200}],
            **{"cbec:recall": {"reason": "铁含量不足 iron below label", "scope": [lot]}},
        ),
    )
    later = "2026-11-22T09:00:00+08:00"
    # selling an item of the recalled lot
    seq = chain.append("merchant", ev(time=later, bizStep="retail_selling", epcList=[ITEM + "R1"]))
    [f] = at(chain.world, seq)
    assert (f.rule, f.severity) == ("order.after_recall", "high")
    assert recall in f.seqs and f.details["recalled"][ITEM + "R1"]["via"] == lot
    # The Chinese sentence is Chinese from its first word (it began with "retail_selling").
    assert f.message_zh.startswith(f"零售事件（retail_selling）涉及已召回的 {ITEM}R1")
    assert f.message_en.startswith(f"a retail_selling event names {ITEM}R1")
    # taking it back is recall handling; the other lot is not recalled; an event that
    # happened before the recall and is reported late is not after it
    for role, body in [
        ("warehouse", ev(time=later, bizStep="receiving", disposition="returned", epcList=[ITEM + "R1"])),
        ("merchant", ev(time=later, bizStep="retail_selling", epcList=[ITEM + "R2"])),
        ("merchant", ev(time="2026-11-20T09:00:00+08:00", bizStep="retail_selling", epcList=[ITEM + "R1"])),
    ]:
        assert [
            f.rule for f in at(chain.world, chain.append(role, body)) if f.rule == "order.after_recall"
        ] == []


def test_event_time_in_the_future(chain: Chain) -> None:
    issued = "2026-11-20T10:00:00+08:00"
    serials = iter(range(100))

    def rules(event_time: str) -> list[str]:
        return [
            f.rule
            for f in at(
                chain.world,
                chain.append(
                    "producer",
                    ev(
                        time=event_time,
                        action="ADD",
                        bizStep="commissioning",
                        epcList=[ITEM + f"T{next(serials)}"],
                    ),
                    issued=issued,
                ),
            )
        ]

    assert rules("2026-11-20T10:05:00+08:00") == []  # exactly five minutes
    assert rules("2026-11-20T10:05:01+08:00") == ["order.future_time"]
    assert rules("2026-11-20T02:05:00Z") == []  # the same instant in UTC
    # issued in time but recorded long before the event: the ledger's clock decides
    soon = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    [f] = at(
        chain.world,
        chain.append(
            "producer",
            ev(time=soon, action="ADD", bizStep="commissioning", epcList=[ITEM + "F9"]),
            issued=soon,
        ),
    )
    assert f.rule == "order.future_time" and f.details["aheadSeconds"] > 7000


def test_receiving_needs_an_earlier_shipping(chain: Chain) -> None:
    seq = chain.append("warehouse", ev(bizStep="receiving", epcList=[PALLET]))
    [f] = at(chain.world, seq)
    assert (f.rule, f.severity, f.codes) == ("order.receive_without_ship", "low", (PALLET,))
    _import_pallet(chain)  # shipping, then receiving: fine
    assert at(chain.world, chain.world.ledger.size() - 1) == []
    # an item received on its own, shipped inside the pallet
    assert (
        at(chain.world, chain.append("warehouse", ev(bizStep="receiving", epcList=[ITEM + "JP0001"]))) == []
    )
    # a carrier's departure counts as dispatch too (a train leaving with the pallets)
    other = "https://id.gs1.org/00/049012340000009998"
    assert at(chain.world, chain.append("warehouse", ev(bizStep="receiving", epcList=[other])))
    chain.append("logistics", ev(bizStep="departing", epcList=[other], time="2026-09-20T16:00:00+09:00"))
    assert (
        at(
            chain.world,
            chain.append(
                "warehouse", ev(bizStep="receiving", epcList=[other], time="2026-10-08T14:00:00+08:00")
            ),
        )
        == []
    )


def test_events_after_decommissioning(chain: Chain) -> None:
    chain.append("producer", ev(action="ADD", bizStep="commissioning", epcList=[ITEM + "D1", ITEM + "D2"]))
    ended = chain.append(
        "producer",
        ev(
            time="2026-11-21T10:00:00+08:00",
            bizStep="destroying",
            disposition="destroyed",
            epcList=[ITEM + "D1"],
        ),
    )
    seq = chain.append(
        "logistics",
        ev(time="2026-11-22T10:00:00+08:00", bizStep="shipping", epcList=[ITEM + "D1", ITEM + "D2"]),
    )
    [f] = [f for f in at(chain.world, seq) if f.rule == "order.after_decommission"]
    assert f.codes == (ITEM + "D1",) and ended in f.seqs
    for body in [
        ev(time="2026-11-22T10:00:00+08:00", bizStep="shipping", epcList=[ITEM + "D2"]),
        ev(time="2026-11-20T12:00:00+08:00", bizStep="shipping", epcList=[ITEM + "D1"]),
    ]:
        assert [
            f.rule
            for f in at(chain.world, chain.append("logistics", body))
            if f.rule == "order.after_decommission"
        ] == []


# --- findings are projections; they never refuse ------------------------------------------------


def _busy(c: Chain) -> None:
    _import_pallet(c)
    documents(c, "Z1", payment={"paid": "1.00"})
    c.append("customs_broker", declaration("Z1"))
    c.append("merchant", ev(bizStep="retail_selling", disposition="retail_sold", epcList=[ITEM + "JP0001"]))
    c.append("customs", release("Z1"))
    for i in range(6):
        _buy(c, f"ZZ{i}", "5000.00")


def test_a_finding_never_refuses_an_append(chain: Chain) -> None:
    led = chain.world.ledger
    size = led.size()
    receipts = led.append_batch(
        [
            chain.env("warehouse", ev(bizStep="receiving", epcList=[PALLET])),
            chain.env("platform", order("N1", goods="99999.00")),
            chain.env("payment", payment("N1", paid="0.01", who=BOB)),
        ]
    )
    assert [r.seq for r in receipts] == [size, size + 1, size + 2] and led.size() == size + 3
    assert {f.seq for f in list_findings(chain.world.store)} == {size, size + 1, size + 2}
    assert (
        led.entry(size + 2).decoded()["envelope"]["statement"]["body"]["cbec:paymentInfo"]["paid"] == "0.01"
    )


def test_one_batch_raises_what_single_appends_raise(chain: Chain, tmp_path: Path) -> None:
    """The same envelopes appended one by one here and as one batch into a fresh SQLite
    ledger (the rules then read the batch's own earlier entries) raise the same findings."""
    _busy(chain)
    single = [(f.seq, f.rule, f.codes, f.details) for f in list_findings(chain.world.store)]
    assert {r for _, r, _, _ in single} >= {
        "three_docs.mismatch",
        "three_docs.release_mismatch",
        "order.sold_before_release",
        "tax.annual_limit",
        "positive_list.missing",
    }
    with chain.world.store.reading() as conn:
        envs = [json.loads(raw)["envelope"] for _, _, _, raw in chain.world.store.stream_entries(conn)]
    other = Store(f"sqlite:///{tmp_path}/batch.db")
    other.migrate()
    try:
        Ledger(other, note_signer=chain.world.ledger.note_signer).append_batch(envs)
        assert [(f.seq, f.rule, f.codes, f.details) for f in list_findings(other)] == single
    finally:
        other.dispose()


def test_findings_rebuild_identically(chain: Chain) -> None:
    _busy(chain)
    store = chain.world.store
    scan = Finding(
        id="scan-1",
        seq=3,
        rule="scan.counterfeit",
        severity="high",
        time="2026-11-27T00:00:00.000000Z",
        seqs=(3,),
        parties=(),
        codes=(ITEM + "JP0001",),
        message_zh="同一码在两地同时被扫",
        message_en="one code scanned in two cities at once",
        details={"scans": 2},
        source="scan",
    )
    with store.writing() as conn:
        findingsdb.save_scan_findings(conn, [scan])
    with store.reading() as conn:
        before = tracedb.dump_projections(conn)
    assert len(before["findings"]) >= 6 and before["trade_documents"] and before["code_marks"]
    listed = list_findings(store)
    res = reindex(store)
    assert res["findings"] == len(listed) - 1  # the scan finding is not an entry's
    with store.reading() as conn:
        assert tracedb.dump_projections(conn) == before
    assert list_findings(store) == listed


def test_reading_findings(chain: Chain) -> None:
    _busy(chain)
    store = chain.world.store
    every = list_findings(store)
    assert [f.seq for f in every] == sorted(f.seq for f in every)
    assert all(f.rule in RULES and f.severity == RULES[f.rule].severity for f in every)
    customs = chain.id("customs")
    assert {f.rule for f in list_findings(store, party=customs)} == {"three_docs.release_mismatch"}
    urn = "urn:epc:id:sgtin:4901234.056789.JP0001"
    by_code = list_findings(store, code=urn)
    assert by_code and all(ITEM + "JP0001" in f.codes for f in by_code)
    # Codes are read as the trace reads them (one normalise_code): spaces around a pasted
    # code are dropped, and a blank code is refused rather than matching nothing.
    assert list_findings(store, code=f"  {urn}\n") == by_code
    with pytest.raises(IdentifierError, match="give a product code"):
        list_findings(store, code=" ")
    assert {f.severity for f in list_findings(store, severity="high")} == {"high"}
    assert len(list_findings(store, limit=2)) == 2
    last = every[-1].seq
    assert list_findings(store, since_seq=last) == [f for f in every if f.seq >= last]
    summary = findings_summary(store)
    assert summary["total"] == len(every)
    assert summary["byRule"]["tax.annual_limit"] == 1
    assert summary["byParty"][customs] == 1
    assert {"rule": "three_docs.release_mismatch", "party": customs, "count": 1} in summary["byRuleAndParty"]
    d = every[0].as_dict()
    assert set(d) == {
        "id",
        "seq",
        "rule",
        "severity",
        "time",
        "seqs",
        "parties",
        "codes",
        "message",
        "details",
        "source",
    }
    assert set(d["message"]) == {"zh", "en"}
    with pytest.raises(MalformedInput, match="unknown finding rule"):
        list_findings(store, rule="three_docs.nope")


# --- the command ---------------------------------------------------------------------------------


def test_cli_loads_the_positive_list_and_prints_findings(db_url: str, tmp_path: Path) -> None:
    from tests.test_cli import Cli, uscc

    cli = Cli(db_url, tmp_path / "cli-home")
    cli("init")
    regulator, warehouse = uscc(9001), uscc(9002)
    cli.many([("keygen", "reg"), ("keygen", "wh")])
    cli(
        "party", "register", "--id", regulator, "--name", "市场监管局", "--roles", "regulator", "--key", "reg"
    )
    cli("party", "register", "--id", warehouse, "--name", "保税仓", "--roles", "warehouse", "--key", "wh")
    sample = Path(__file__).resolve().parent.parent / "schemas" / "positive-list.sample.json"
    [receipt] = cli("list", "load", str(sample), "--key", "reg", "--signer", regulator).lines()
    listed = json.loads(cli("entry", str(receipt["seq"])).out)["decoded"]["envelope"]["statement"]
    assert listed["kind"] == "list.update" and listed["body"]["hsCodes"] == [
        e["hsCode"] for e in json.loads(sample.read_text())["entries"]
    ]
    assert cli("findings").out == ""

    body = tmp_path / "receiving.json"
    body.write_text(json.dumps(ev(bizStep="receiving", epcList=[PALLET])))
    env = cli("sign", "--key", "wh", "--signer", warehouse, str(body)).out
    [r] = cli("submit", "-", stdin=env.encode()).lines()
    [f] = cli("findings").lines()
    assert (f["rule"], f["seq"], f["parties"], f["codes"]) == (
        "order.receive_without_ship",
        r["seq"],
        [warehouse],
        [PALLET],
    )
    assert f["message"]["zh"] and f["message"]["en"]
    assert cli("findings", "--rule", "tax.single_limit").out == ""
    assert len(cli("findings", "--party", warehouse, "--code", PALLET).lines()) == 1
    assert cli("findings", "--summary").json()["byRule"] == {"order.receive_without_ship": 1}
    bad = cli("findings", "--rule", "three_docs.nope", rc=2)
    assert bad.err.startswith("error [malformed]: unknown finding rule")
    tax = cli("tax", str(EXAMPLES / "05-order.json")).json()
    assert (tax["total"], tax["comprehensiveRate"], tax["treatment"]) == ("28.03", "0.091", "cbec_retail")


def test_migration_0006_goes_down_and_up(chain: Chain) -> None:
    import sqlalchemy as sa

    from ledger.store import migrate
    from ledger.store.schema import FINDINGS_TABLES

    store = chain.world.store
    chain.append("warehouse", ev(bizStep="receiving", epcList=[PALLET]))
    migrate.downgrade(store.engine, "0005")  # below 0006 (0007, the capture index, goes too)
    assert not set(FINDINGS_TABLES) & set(sa.inspect(store.engine).get_table_names())
    store.migrate()
    assert list_findings(store) == []  # a migrated ledger fills its findings on reindex
    reindex(store)
    assert rules_of(chain.world) == ["order.receive_without_ship"]


def test_scan_findings_are_checked_before_they_are_stored() -> None:
    from ledger.compliance.findings import record_scan_findings

    good = Finding(
        id="scan-7",
        seq=1,
        rule="scan.counterfeit",
        severity="high",
        time="t",
        seqs=(1,),
        parties=(),
        codes=(),
        message_zh="…",
        message_en="…",
        details={},
        source="scan",
    )
    assert record_scan_findings([good]) == [good]
    for bad in ({"source": "entry"}, {"rule": "order.future_time"}, {"id": "7"}):
        with pytest.raises(ValueError, match="scan findings"):
            record_scan_findings([Finding(**{**good.__dict__, **bad})])


def test_the_store_refuses_to_keep_an_entrys_finding_as_a_scans(db_url: str) -> None:
    """A rebuild clears the findings of entries and keeps those of scans: the store takes
    as a scan's only a finding that says so and has a ``scan-`` id, whoever calls it."""
    store = Store(db_url)
    store.migrate()
    good = Finding(
        id="scan-9",
        seq=1,
        rule="scan.counterfeit",
        severity="high",
        time="t",
        seqs=(1,),
        parties=(),
        codes=("c",),
        message_zh="…",
        message_en="…",
        details={},
        source="scan",
    )
    try:
        for bad in ({"source": "entry"}, {"id": "1-0"}):
            with store.writing() as conn, pytest.raises(ValueError, match="scan findings"):
                findingsdb.save_scan_findings(conn, [good, Finding(**{**good.__dict__, **bad})])
        with store.reading() as conn:
            assert findingsdb.query_findings(conn) == []
        with store.writing() as conn:
            findingsdb.save_scan_findings(conn, [good])
        with store.reading() as conn:
            assert findingsdb.query_findings(conn) == [good]
            assert findingsdb.query_findings(conn, code="c") == [good]
    finally:
        store.dispose()
