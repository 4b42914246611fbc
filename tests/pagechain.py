"""A 1210 bonded-import chain of infant formula for the resolver and page tests: named
parties (with their English names), a commissioning event with product master data,
packing, export shipping, bonded receiving, order, payment, waybill, declaration, release,
delivery; a second lot that its producer recalls; master data of the places and the
product, signed by their owners (``describe``); and witnesses that cosign the latest
checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing

from api.witness_app import create_witness_app
from ledger.core.keys import PartyKey
from ledger.core.statements import sign, sign_one
from ledger.log.cosigner import Cosigner, Witness
from ledger.log.witnesses import WitnessConfig, Witnessing, gather
from tests.support import ORIGIN, World, asgi_post, new_uscc

GTIN = "04901234567894"
FACTORY = "4901234000018"  # the producer's GLN: its place and its party id
BONDED = "6901234000108"
PALLET = "https://id.gs1.org/00/049012340000001237"
PALLET_B = "https://id.gs1.org/00/049012340000001244"
ORDER = "https://mall.example.cn/orders/TS20261127000123"
PAYMENT = "https://pay.example.cn/tx/P20261127130500001"
WAYBILL = "https://express.example.cn/waybill/YT7712345678901"
DECLARATION = "https://customs.example.cn/inventory/040220261127000123"
NAME_ZH = "樱花牌婴儿配方奶粉 1段 800克"
NAME_EN = "Sakura infant formula stage 1, 800 g"
FACTORY_ZH, FACTORY_EN = "樱花乳业 帯広工厂", "Sakura Dairy Obihiro plant"
BONDED_ZH, BONDED_EN = "曹妃甸综合保税区 跨境仓", "Caofeidian Comprehensive Bonded Zone warehouse"
RECALL_ZH, RECALL_EN = "铁含量低于标签标示值", "Iron below the labelled value"
MDA = "urn:epcglobal:cbv:mda#"


def texts(attribute: str, zh: str, en: str) -> list[dict[str, Any]]:
    """One master-data attribute in Chinese and in English."""
    return [
        {"id": attribute, "attribute": {"@language": "zh", "@value": zh}},
        {"id": attribute, "attribute": {"@language": "en", "@value": en}},
    ]


def item(serial: str) -> str:
    return f"https://id.gs1.org/01/{GTIN}/21/{serial}"


def lot(name: str) -> str:
    return f"https://id.gs1.org/01/{GTIN}/10/{name}"


def _ev(kind: str, time: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": time, "eventTimeZoneOffset": time[-6:], **fields}


class FormulaChain:
    def __init__(
        self, w: World, *, producer_name: str = "樱花乳业株式会社", product_name: Any = None
    ) -> None:
        self.w = w
        self.keys: dict[str, PartyKey] = {}
        self.producer = self._register(
            f"gln:{FACTORY}", producer_name, ["producer"], "Sakura Dairy Co., Ltd.", ["4901234"]
        )
        self.carrier = self._register(
            new_uscc(), "日邮国际物流有限公司", ["logistics"], "Nichiyu International Logistics Co., Ltd."
        )
        self.warehouse = self._register(
            new_uscc(),
            "唐山曹妃甸综合保税区仓储有限公司",
            ["warehouse"],
            "Tangshan Caofeidian Bonded Warehousing Co.",
            ["6901234"],
        )
        self.platform = self._register(
            new_uscc(), "唐山跨境优选电商平台", ["platform"], "Tangshan Cross-border Select"
        )
        self.payer = self._register(new_uscc(), "冀付支付有限公司", ["payment"], "Jifu Payment Co.")
        self.express = self._register(new_uscc(), "京唐速递有限公司", ["logistics"], "Jingtang Express Co.")
        self.broker = self._register(
            new_uscc(), "曹妃甸报关行", ["customs_broker"], "Caofeidian Customs Brokerage"
        )
        self.customs = self._register(new_uscc(), "曹妃甸海关", ["customs"], "Caofeidian Customs")
        self.product_name = (
            product_name
            if product_name is not None
            else [{"@language": "zh", "@value": NAME_ZH}, {"@language": "en", "@value": NAME_EN}]
        )

    def _register(
        self, pid: str, name: str, roles: list[str], name_en: str, prefixes: list[str] | None = None
    ) -> str:
        key = PartyKey.generate(pid)
        env = self.w.registration(pid, key, roles, name=name, gs1_prefixes=prefixes or ())
        st = env["statement"]
        st["body"]["nameEn"] = name_en
        self.w.ledger.append(sign(st, [(pid, key), (self.w.registrar, self.w.registrar_key)]))
        self.keys[pid] = key
        return pid

    def describe(self) -> list[int]:
        """Master data of the factory (by its producer, whose id is its GLN), of the bonded
        warehouse (by the holder of its GS1 company prefix) and of the product (by the
        holder of its GTIN's prefix); their seqs."""
        loc = "urn:epcglobal:epcis:vtype:BusinessLocation"
        bodies = [
            (
                self.producer,
                {
                    "type": loc,
                    "id": f"https://id.gs1.org/414/{FACTORY}",
                    "attributes": [
                        *texts(MDA + "name", FACTORY_ZH, FACTORY_EN),
                        *texts(MDA + "city", "帯広", "Obihiro"),
                        {"id": MDA + "countryCode", "attribute": "JP"},
                        {"id": MDA + "latitude", "attribute": "42.9236"},
                        {"id": MDA + "longitude", "attribute": "143.1966"},
                    ],
                },
            ),
            (
                self.warehouse,
                {
                    "type": loc,
                    "id": f"https://id.gs1.org/414/{BONDED}",
                    "attributes": [
                        *texts(MDA + "name", BONDED_ZH, BONDED_EN),
                        *texts(MDA + "city", "唐山", "Tangshan"),
                        {"id": MDA + "countryCode", "attribute": "CN"},
                    ],
                },
            ),
            (
                self.producer,
                {
                    "type": "urn:epcglobal:epcis:vtype:EPCClass",
                    "id": f"https://id.gs1.org/01/{GTIN}",
                    "attributes": [
                        *texts("gs1:productName", NAME_ZH, NAME_EN),
                        *texts("gs1:brand", "樱花", "Sakura"),
                        {"id": "gs1:netContent", "attribute": {"value": "800", "unitCode": "GRM"}},
                        {"id": MDA + "countryOfOrigin", "attribute": "JP"},
                    ],
                },
            ),
        ]
        got = self.w.ledger.append_batch(
            [
                sign_one(
                    kind="masterdata",
                    signer=who,
                    key=self.keys[who],
                    body=b,
                    issued="2026-09-01T09:00:00+09:00",
                )
                for who, b in bodies
            ]
        )
        return [r.seq for r in got]

    def append(self, pairs: list[tuple[str, dict[str, Any]]]) -> None:
        self.w.ledger.append_batch(
            [
                sign_one(
                    kind="event", signer=who, key=self.keys[who], body=b, issued="2026-11-27T13:05:00+08:00"
                )
                for who, b in pairs
            ]
        )

    def build(self) -> dict[str, Any]:
        """Lot L2026A: three tins, the first one sold, cleared and delivered."""
        tins = [item("JP0001"), item("JP0002"), item("JP0003")]
        here = {"id": f"https://id.gs1.org/414/{FACTORY}"}
        bonded = {"id": f"https://id.gs1.org/414/{BONDED}"}
        self.append(
            [
                (
                    self.producer,
                    _ev(
                        "ObjectEvent",
                        "2026-09-15T10:20:00+09:00",
                        action="ADD",
                        bizStep="commissioning",
                        disposition="active",
                        epcList=tins,
                        readPoint=here,
                        bizLocation=here,
                        ilmd={
                            "gs1:productName": self.product_name,
                            "cbvmda:lotNumber": "L2026A",
                            "cbvmda:itemExpirationDate": "2028-03-14",
                            "cbvmda:countryOfOrigin": "JP",
                            "cbec:hsCode": "1901101010",
                        },
                    ),
                ),
                (
                    self.producer,
                    _ev(
                        "AggregationEvent",
                        "2026-09-16T09:00:00+09:00",
                        action="ADD",
                        bizStep="packing",
                        parentID=PALLET,
                        childEPCs=tins,
                        readPoint=here,
                    ),
                ),
            ]
        )
        self.append(
            [
                (
                    self.carrier,
                    _ev(
                        "ObjectEvent",
                        "2026-09-20T16:40:00+09:00",
                        action="OBSERVE",
                        bizStep="shipping",
                        disposition="in_transit",
                        epcList=[PALLET],
                        readPoint=here,
                    ),
                ),
                (
                    self.warehouse,
                    _ev(
                        "ObjectEvent",
                        "2026-10-08T14:15:00+08:00",
                        action="OBSERVE",
                        bizStep="receiving",
                        disposition="sellable_not_accessible",
                        epcList=[PALLET],
                        readPoint=bonded,
                        bizLocation=bonded,
                        **{"cbec:customsProcedure": "1210"},
                    ),
                ),
                (
                    self.warehouse,
                    _ev(
                        "AggregationEvent",
                        "2026-11-27T12:00:00+08:00",
                        action="DELETE",
                        bizStep="unpacking",
                        parentID=PALLET,
                        childEPCs=[tins[0]],
                        bizLocation=bonded,
                    ),
                ),
                (
                    self.platform,
                    _ev(
                        "TransactionEvent",
                        "2026-11-27T13:02:11+08:00",
                        action="ADD",
                        bizTransactionList=[{"type": "cbec:order", "bizTransaction": ORDER}],
                        epcList=[tins[0]],
                        bizLocation=bonded,
                        **{
                            "cbec:customsProcedure": "1210",
                            "cbec:orderInfo": {
                                "goods": "298.00",
                                "freight": "10.00",
                                "tax": "28.03",
                                "discount": "20.00",
                                "paid": "316.03",
                                "currency": "CNY",
                                "buyerIdHash": "hmac-sha256:" + "a0" * 32,
                            },
                        },
                    ),
                ),
                (
                    self.payer,
                    _ev(
                        "TransactionEvent",
                        "2026-11-27T13:05:00+08:00",
                        action="ADD",
                        bizTransactionList=[
                            {"type": "cbec:order", "bizTransaction": ORDER},
                            {"type": "cbec:payment", "bizTransaction": PAYMENT},
                        ],
                        epcList=[tins[0]],
                        **{
                            "cbec:customsProcedure": "1210",
                            "cbec:paymentInfo": {
                                "paid": "316.03",
                                "currency": "CNY",
                                "buyerIdHash": "hmac-sha256:" + "a0" * 32,
                            },
                        },
                    ),
                ),
                (
                    self.express,
                    _ev(
                        "TransactionEvent",
                        "2026-11-27T13:30:42+08:00",
                        action="ADD",
                        bizTransactionList=[
                            {"type": "cbec:order", "bizTransaction": ORDER},
                            {"type": "cbec:waybill", "bizTransaction": WAYBILL},
                        ],
                        epcList=[tins[0]],
                        bizLocation=bonded,
                        **{
                            "cbec:customsProcedure": "1210",
                            "cbec:waybillInfo": {"freight": "10.00", "currency": "CNY"},
                        },
                    ),
                ),
                (
                    self.broker,
                    _ev(
                        "ObjectEvent",
                        "2026-11-27T13:41:00+08:00",
                        action="OBSERVE",
                        bizStep="cbec:declaring",
                        epcList=[tins[0]],
                        bizLocation=bonded,
                        bizTransactionList=[
                            {"type": "cbec:order", "bizTransaction": ORDER},
                            {"type": "cbec:payment", "bizTransaction": PAYMENT},
                            {"type": "cbec:waybill", "bizTransaction": WAYBILL},
                            {"type": "cbec:declaration", "bizTransaction": DECLARATION},
                        ],
                        **{
                            "cbec:customsProcedure": "1210",
                            "cbec:hsCode": "1901101010",
                            "cbec:countryOfOrigin": "JP",
                        },
                    ),
                ),
                (
                    self.customs,
                    _ev(
                        "ObjectEvent",
                        "2026-11-27T13:43:27+08:00",
                        action="OBSERVE",
                        bizStep="cbec:releasing",
                        disposition="sellable_accessible",
                        epcList=[tins[0]],
                        bizLocation=bonded,
                        bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": DECLARATION}],
                        **{"cbec:customsProcedure": "1210"},
                    ),
                ),
                (
                    self.express,
                    _ev(
                        "ObjectEvent",
                        "2026-11-27T16:05:00+08:00",
                        action="OBSERVE",
                        bizStep="shipping",
                        disposition="in_transit",
                        epcList=[tins[0]],
                        readPoint=bonded,
                        bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": WAYBILL}],
                    ),
                ),
                (
                    self.express,
                    _ev(
                        "ObjectEvent",
                        "2026-11-29T10:12:00+08:00",
                        action="OBSERVE",
                        bizStep="accepting",
                        disposition="retail_sold",
                        epcList=[tins[0]],
                        bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": WAYBILL}],
                    ),
                ),
            ]
        )
        return {"tins": tins, "sold": tins[0], "unsold": tins[1], "lot": lot("L2026A")}

    def build_class_order(self) -> str:
        """The platform's purchase order of 120 tins of the product, by GTIN: the one event
        naming the product class itself (its GTIN page)."""
        self.append(
            [
                (
                    self.platform,
                    _ev(
                        "TransactionEvent",
                        "2026-08-20T10:30:00+08:00",
                        action="ADD",
                        bizTransactionList=[
                            {"type": "po", "bizTransaction": "https://mall.example.cn/po/PO-2026-0820"}
                        ],
                        quantityList=[{"epcClass": f"https://id.gs1.org/01/{GTIN}", "quantity": 120}],
                        sourceList=[{"type": "owning_party", "source": self.producer}],
                        destinationList=[{"type": "owning_party", "destination": self.platform}],
                    ),
                )
            ]
        )
        return f"https://id.gs1.org/01/{GTIN}"

    def build_recalled(self) -> dict[str, Any]:
        """Lot L2026B: two tins, commissioned, packed, then recalled by the producer."""
        tins = [item("JP0101"), item("JP0102")]
        here = {"id": f"https://id.gs1.org/414/{FACTORY}"}
        self.append(
            [
                (
                    self.producer,
                    _ev(
                        "ObjectEvent",
                        "2026-09-18T10:00:00+09:00",
                        action="ADD",
                        bizStep="commissioning",
                        epcList=tins,
                        readPoint=here,
                        ilmd={
                            "gs1:productName": self.product_name,
                            "cbvmda:lotNumber": "L2026B",
                            "cbvmda:itemExpirationDate": "2028-03-17",
                            "cbvmda:countryOfOrigin": "JP",
                        },
                    ),
                ),
                (
                    self.producer,
                    _ev(
                        "AggregationEvent",
                        "2026-09-19T09:00:00+09:00",
                        action="ADD",
                        bizStep="packing",
                        parentID=PALLET_B,
                        childEPCs=tins,
                        readPoint=here,
                    ),
                ),
            ]
        )
        self.append(
            [
                (
                    self.producer,
                    _ev(
                        "ObjectEvent",
                        "2027-01-10T09:00:00+08:00",
                        action="OBSERVE",
                        bizStep="cbec:recalling",
                        disposition="recalled",
                        epcList=tins,
                        **{
                            "cbec:recall": {
                                "reason": [
                                    {"@language": "zh", "@value": RECALL_ZH},
                                    {"@language": "en", "@value": RECALL_EN},
                                ],
                                "scope": [lot("L2026B")],
                            }
                        },
                    ),
                ),
            ]
        )
        return {"tins": tins, "lot": lot("L2026B")}


def witness_quorum(w: World, tmp_path: Path, *, up: int = 2, of: int = 3, quorum: int = 2) -> Witnessing:
    """``of`` witnesses configured in the world's home with ``quorum``; the first ``up`` of
    them cosign the latest checkpoint (through their real HTTP apps, in process)."""
    apps: dict[str, Any] = {}
    configs = []
    for n in range(1, of + 1):
        c = Cosigner(f"w{n}.example/witness", nacl.signing.SigningKey(bytes([n]) * 32))
        url = f"http://w{n}.example"
        if n <= up:
            apps[url] = create_witness_app(
                Witness(c, {ORIGIN: w.ledger.log_verifier()}, tmp_path / f"w{n}.json")
            )
        configs.append(WitnessConfig(url, c.vkey()))
    cfg = Witnessing(tuple(configs), quorum=quorum)
    doc = w.home.config()
    doc["witnesses"] = [{"url": c.url, "key": c.key} for c in configs]
    doc["quorum"] = quorum
    w.home.save_config(doc)

    gather(w.ledger, Witnessing(cfg.witnesses, quorum, timeout=1.0, retries=0), asgi_post(apps))
    return cfg
