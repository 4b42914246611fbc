"""A small CBEC world with known answers for credit, statistics and the audit report.

Two producers (P: Japanese infant formula, lot L1; Q: Tangshan porcelain), a platform, a
customs broker, customs and a regulator. What each party's credit and each statistic must
be is worked out by hand in the tests from the facts listed here.

Findings it raises (``ledger.compliance.findings``): each of the two releases has an order but no
payment or waybill on the ledger, so each raises one ``three_docs.missing`` (high) naming
the platform, the broker and customs. Every event time lies in the past (2025), so no
``order.future_time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from tests.support import World

GTIN_P = "04901234567894"
GTIN_Q = "06901234000016"
ITEM = "https://id.gs1.org/01/04901234567894/21/S{}"
LOT_P = "https://id.gs1.org/01/04901234567894/10/L1"
ITEM_Q = "https://id.gs1.org/01/06901234000016/21/T1"
ORDER = "https://mall.example.cn/orders/O{}"
DECL = "https://customs.example.cn/inventory/D{}"
HASH = "hmac-sha256:" + "ab" * 32


@dataclass
class Chain:
    world: World
    parties: dict[str, tuple[str, PartyKey]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)

    def id(self, name: str) -> str:
        return self.parties[name][0]

    def add(self, label: str, name: str, body: dict[str, Any], kind: str = "event") -> int:
        who, key = self.parties[name]
        if kind == "event":
            body = {"eventTimeZoneOffset": body["eventTime"][-6:], **body}
        seq = self.world.ledger.append(sign_one(kind=kind, signer=who, key=key, body=body)).seq
        self.seqs[label] = seq
        return seq


def _obj(time: str, epcs: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "ObjectEvent", "eventTime": time, "epcList": epcs, "action": "OBSERVE", **extra}


def _order(
    n: int, time: str, item: str, paid: str, currency: str = "CNY", procedure: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "TransactionEvent",
        "eventTime": time,
        "action": "ADD",
        "epcList": [item],
        "bizTransactionList": [{"type": "cbec:order", "bizTransaction": ORDER.format(n)}],
        "cbec:orderInfo": {
            "goods": paid,
            "freight": "0.00",
            "tax": "0.00",
            "discount": "0.00",
            "paid": paid,
            "currency": currency,
            "buyerIdHash": HASH,
        },
    }
    if procedure:
        body["cbec:customsProcedure"] = procedure
    return body


def _declaration(
    n: int, time: str, item: str, procedure: str, order: int | None, **extra: Any
) -> dict[str, Any]:
    docs = [{"type": "cbec:declaration", "bizTransaction": DECL.format(n)}]
    if order is not None:
        docs.insert(0, {"type": "cbec:order", "bizTransaction": ORDER.format(order)})
    return _obj(
        time,
        [item],
        bizStep="cbec:declaring",
        bizTransactionList=docs,
        **{"cbec:customsProcedure": procedure, **extra},
    )


def _release(n: int, time: str, item: str) -> dict[str, Any]:
    return _obj(
        time,
        [item],
        bizStep="cbec:releasing",
        bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": DECL.format(n)}],
    )


def _evaluation(time: str, item: str, rating: int) -> dict[str, Any]:
    return _obj(time, [item], bizStep="cbec:evaluating", **{"cbec:evaluation": {"rating": rating}})


def credit_record(c: Chain, label: str, party: str, points: int, item: str) -> int:
    return c.add(
        label,
        "regulator",
        {"party": c.id(party), "item": item, "points": points, "reason": f"{item} 记录"},
        kind="credit.record",
    )


def build(world: World) -> Chain:
    c = Chain(world)
    for name, roles in (
        ("P", ["producer"]),
        ("Q", ["producer"]),
        ("platform", ["platform"]),
        ("broker", ["customs_broker"]),
        ("customs", ["customs"]),
        ("regulator", ["regulator"]),
    ):
        # P and Q hold the GS1 company prefixes of their goods (GTIN_P, GTIN_Q).
        prefixes = {"P": [GTIN_P[1:8]], "Q": [GTIN_Q[1:8]]}.get(name, [])
        c.parties[name] = world.register(roles, gs1_prefixes=prefixes)
    # Production: P makes S1-S3 of lot L1 in Japan (September); Q makes T1 in China (October).
    c.add(
        "commission_p",
        "P",
        {
            "type": "ObjectEvent",
            "eventTime": "2025-09-15T10:20:00+09:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": [ITEM.format(i) for i in (1, 2, 3)],
            "ilmd": {"cbvmda:lotNumber": "L1", "cbec:countryOfOrigin": "JP"},
        },
    )
    c.add(
        "commission_q",
        "Q",
        {
            "type": "ObjectEvent",
            "eventTime": "2025-10-02T09:00:00+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": [ITEM_Q],
            "ilmd": {"cbvmda:lotNumber": "TC1", "cbec:countryOfOrigin": "CN"},
        },
    )
    # Orders (November): O1 1210 316.03 CNY; O2 procedure only from its declaration (9610);
    # O3 1210 in USD (listed apart, not converted).
    c.add(
        "order1",
        "platform",
        _order(1, "2025-11-27T13:02:11+08:00", ITEM.format(1), "316.03", procedure="1210"),
    )
    c.add("order2", "platform", _order(2, "2025-11-19T21:00:00+08:00", ITEM.format(2), "100.50"))
    c.add(
        "order3",
        "platform",
        _order(3, "2025-11-20T08:00:00+08:00", ITEM.format(3), "20.00", currency="USD", procedure="1210"),
    )
    # Clearance: D1 released after 146 s; D2 after 28 h; D3 (9710 export to a US GLN) pending.
    c.add(
        "decl1",
        "broker",
        _declaration(
            1, "2025-11-27T13:41:00+08:00", ITEM.format(1), "1210", 1, **{"cbec:countryOfOrigin": "JP"}
        ),
    )
    c.add("release1", "customs", _release(1, "2025-11-27T13:43:26+08:00", ITEM.format(1)))
    c.add("decl2", "broker", _declaration(2, "2025-11-20T11:00:00+08:00", ITEM.format(2), "9610", 2))
    c.add("release2", "customs", _release(2, "2025-11-21T15:00:00+08:00", ITEM.format(2)))
    c.add(
        "decl3",
        "broker",
        _declaration(
            3,
            "2025-12-01T10:00:00+08:00",
            ITEM_Q,
            "9710",
            None,
            destinationList=[{"type": "location", "destination": "https://id.gs1.org/414/0614141000012"}],
        ),
    )
    # Evaluations (December): S1 one star, S2 two stars, S3 five stars.
    for i, rating in ((1, 1), (2, 2), (3, 5)):
        c.add(f"eval{i}", "platform", _evaluation(f"2025-12-0{i}T20:30:00+08:00", ITEM.format(i), rating))
    # Recalls (January): the regulator recalls P's lot L1; Q recalls its own T1.
    recall = {"reason": "铁含量不足 iron below label", "scope": [LOT_P]}
    c.add(
        "recall_p",
        "regulator",
        {
            "type": "ObjectEvent",
            "eventTime": "2026-01-10T09:00:00+08:00",
            "action": "OBSERVE",
            "quantityList": [{"epcClass": LOT_P, "quantity": 3}],
            "bizStep": "cbec:recalling",
            "disposition": "recalled",
            "cbec:recall": recall,
        },
    )
    c.add(
        "recall_q",
        "Q",
        _obj(
            "2026-01-11T09:00:00+08:00",
            [ITEM_Q],
            bizStep="cbec:recalling",
            disposition="recalled",
            **{"cbec:recall": {"reason": "釉面缺陷 glaze flaw", "scope": [ITEM_Q]}},
        ),
    )
    credit_record(c, "record_p", "P", -15, "逾期备案 late filing")
    credit_record(c, "record_q", "Q", 5, "诚信示范 model conduct")
    return c
