"""``suyuan demo``: a fresh ledger holding a realistic Tangshan cross-border e-commerce
scenario, built through the real append path, and where to look at it.

The scenario (``Scenario``) is a pure function of ``--scale``: every party key, the
operator's checkpoint key, the registrar's key, the zone's matching key and every salt of
private data derive from one public demo seed, every time is fixed in 2026, and every
choice comes from a seeded random generator. A re-run therefore signs byte-identical
statements, and the ledger's idempotence appends none of them twice.

The demo's keys are public knowledge (anyone can derive them from ``SEED``): they belong
in a demo ledger and nowhere else. ``suyuan init`` makes fresh keys and refuses a home that
holds these; the demo refuses a home that holds another ledger's keys, and overwrites none.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import json
import math
import os
import random
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import nacl.signing

from ledger.core import canonical
from ledger.core.errors import ConfigError, LedgerError
from ledger.core.ids import gs1_check_digit, make_uscc
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.core.private import commitment_of
from ledger.core.statements import sign_one
from ledger.core.tokens import make_token, read_token
from ledger.epcis.validation import schema_dir
from ledger.log.home import (
    DEFAULT_ORIGIN,
    DEFAULT_REGISTRAR_ID,
    DEFAULT_REGISTRAR_NAME,
    REGISTRAR_KEY,
    Home,
    create_ledger,
    home_in_use,
)
from ledger.log.keyfiles import read_key_file, text_in, write_key_file
from ledger.log.sequencer import Ledger
from ledger.store.db import Store

SEED = b"suyuan-demo/tangshan/v1"
BATCH = 800
ZONE_KEY_FILE = "demo-zone.key"
TOKEN_TTL = 24 * 3600
ANNUAL_LIMIT = Decimal("26000")
TAX_RATE = Decimal("0.091")  # CBEC retail import: 70% of 13% VAT, no consumption tax
CENT = Decimal("0.01")
DL = "https://id.gs1.org"

JST = timezone(timedelta(hours=9))  # Japan; Korea keeps the same offset
KST = JST
CST = timezone(timedelta(hours=8))
CEST = timezone(timedelta(hours=2))
CET = timezone(timedelta(hours=1))


def derive(label: str, n: int = 32) -> bytes:
    """Deterministic secret material for the demo, from the public demo seed."""
    return hashlib.sha256(SEED + b"/" + label.encode()).digest()[:n]


def gln(prefix: str, ref: int = 0) -> str:
    body = prefix + f"{ref:0{12 - len(prefix)}d}"
    return body + gs1_check_digit(body)


def gtin14(prefix: str, item_ref: str) -> str:
    body = "0" + prefix + item_ref
    return body + gs1_check_digit(body)


def sscc(extension: int, prefix: str, serial: int) -> str:
    body = f"{extension}{prefix}{serial:0{16 - len(prefix)}d}"
    return f"{DL}/00/{body}{gs1_check_digit(body)}"


def place(gln13: str) -> dict[str, str]:
    return {"id": f"{DL}/414/{gln13}"}


def money(d: Decimal) -> str:
    return str(d.quantize(CENT, rounding=ROUND_HALF_UP))


def working_hours(t: datetime) -> datetime:
    """The same moment, or the next 08:xx local time if it falls at night."""
    if 8 <= t.hour < 20:
        return t
    day = t if t.hour < 8 else t + timedelta(days=1)
    return day.replace(hour=8)


def german_time(y: int, m: int, d: int, h: int, mi: int = 0) -> datetime:
    # Central European Summer Time ends on the last Sunday of October (25 Oct 2026).
    naive = datetime(y, m, d, h, mi)
    return naive.replace(tzinfo=CEST if naive < datetime(2026, 10, 25, 3) else CET)


# --- parties ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartySpec:
    slug: str
    id: str
    name: str
    roles: tuple[str, ...]
    name_en: str | None = None  # its registered English name (``nameEn``)


def _uscc(first16: str) -> str:
    # Both check characters are computed: the organisation code's and the USCC's own.
    return "uscc:" + make_uscc(first16)


# GS1 company prefixes, one per brand or operator; every GTIN, SSCC and GLN below uses its own.
PREFIX = {
    "mirai": "4573921", "nihonkai": "4580337", "kansai_wh": "4560218",
    "seoul_beauty": "8809612", "hanbit": "8801047", "rheinfeld": "4031947",
    "rheinruhr": "4260711", "cidu": "6975512", "hengfeng": "6972338",
    "bonded_wh": "6938811", "cfd_port": "6944102", "jt_port": "6944107", "rail": "6951230",
}  # fmt: skip

PARTIES: tuple[PartySpec, ...] = (
    PartySpec(
        "mirai",
        "gln:" + gln(PREFIX["mirai"]),
        "北海道みらい乳業株式会社",
        ("producer", "brand_owner"),
        "Hokkaido Mirai Dairy Co., Ltd.",
    ),
    PartySpec(
        "nihonkai",
        "gln:" + gln(PREFIX["nihonkai"]),
        "日本海ロジスティクス株式会社",
        ("logistics",),
        "Nihonkai Logistics Co., Ltd.",
    ),
    PartySpec(
        "kansai_wh",
        "gln:" + gln(PREFIX["kansai_wh"]),
        "関西ハーバー倉庫株式会社",
        ("warehouse", "logistics"),
        "Kansai Harbor Warehouse Co., Ltd.",
    ),
    PartySpec(
        "seoul_beauty",
        "gln:" + gln(PREFIX["seoul_beauty"]),
        "서울뷰티랩 주식회사",
        ("producer", "brand_owner"),
        "Seoul Beauty Lab Co., Ltd.",
    ),
    PartySpec(
        "hanbit",
        "gln:" + gln(PREFIX["hanbit"]),
        "한빛글로벌물류 주식회사",
        ("logistics",),
        "Hanbit Global Logistics Co., Ltd.",
    ),
    PartySpec(
        "rheinfeld",
        "gln:" + gln(PREFIX["rheinfeld"]),
        "Porzellanhaus Rheinfeld GmbH",
        ("merchant", "warehouse"),
    ),
    PartySpec("rheinruhr", "gln:" + gln(PREFIX["rheinruhr"]), "RheinRuhr Rail Terminal GmbH", ("logistics",)),
    PartySpec(
        "cidu",
        _uscc("91130203MA0CDGC8"),
        "唐山瓷都骨质瓷有限公司",
        ("producer", "brand_owner", "merchant"),
        "Tangshan Cidu Bone China Co., Ltd.",
    ),
    PartySpec(
        "hengfeng",
        _uscc("91130224MA0HFYL2"),
        "滦南县恒锋园林工具有限公司",
        ("producer", "brand_owner", "merchant"),
        "Luannan Hengfeng Garden Tools Co., Ltd.",
    ),
    PartySpec(
        "bonded_wh",
        _uscc("91130209MA0FB121"),
        "唐山曹妃甸综保跨境供应链有限公司",
        ("warehouse",),
        "Tangshan Caofeidian Bonded Zone Cross-border Supply Chain Co., Ltd.",
    ),
    PartySpec(
        "cfd_port",
        _uscc("91130209MA0GT5P3"),
        "曹妃甸港通集装箱码头有限公司",
        ("logistics",),
        "Caofeidian Gangtong Container Terminal Co., Ltd.",
    ),
    PartySpec(
        "jt_port",
        _uscc("91130225MA0JT8D4"),
        "京唐港通达国际物流有限公司",
        ("logistics",),
        "Jingtang Port Tongda International Logistics Co., Ltd.",
    ),
    PartySpec(
        "rail",
        _uscc("91130208MA0CR8E5"),
        "唐山中欧班列国际物流有限公司",
        ("logistics",),
        "Tangshan China-Europe Railway Express Logistics Co., Ltd.",
    ),
    PartySpec(
        "forwarder",
        _uscc("91130225MA0HF6W7"),
        "唐山海丰国际货运代理有限公司",
        ("logistics",),
        "Tangshan Haifeng International Freight Forwarding Co., Ltd.",
    ),
    PartySpec(
        "tangpin",
        _uscc("91130203MA0TP6Y1"),
        "唐山唐品优选跨境电子商务有限公司",
        ("platform",),
        "Tangshan Tangpin Select Cross-border E-commerce Co., Ltd.",
    ),
    PartySpec(
        "haitao",
        _uscc("91130202MA0HT3K5"),
        "唐山京唐海淘网络科技有限公司",
        ("platform",),
        "Tangshan Jingtang Haitao Network Technology Co., Ltd.",
    ),
    PartySpec(
        "ruihe",
        _uscc("91130209MA0RH2M7"),
        "唐山瑞禾母婴国际贸易有限公司",
        ("merchant",),
        "Tangshan Ruihe Mother & Baby International Trading Co., Ltd.",
    ),
    PartySpec(
        "jitong_pay", _uscc("91130100MA0JTPY6"), "冀通支付有限公司", ("payment",), "Jitong Payment Co., Ltd."
    ),
    PartySpec(
        "yanshan_pay",
        _uscc("91130200MA0YUY94"),
        "燕山云付科技有限公司",
        ("payment",),
        "Yanshan Cloud Pay Technology Co., Ltd.",
    ),
    PartySpec(
        "shunchi",
        _uscc("91130207MA0XCKD3"),
        "唐山顺驰速运有限公司",
        ("logistics",),
        "Tangshan Shunchi Express Co., Ltd.",
    ),
    PartySpec(
        "youtong",
        _uscc("91130225MA0YTGJ8"),
        "唐山邮通国际快件有限公司",
        ("logistics",),
        "Tangshan Youtong International Express Co., Ltd.",
    ),
    PartySpec(
        "huacheng",
        _uscc("91130209MA0HCBG1"),
        "唐山华诚报关有限公司",
        ("customs_broker",),
        "Tangshan Huacheng Customs Brokerage Co., Ltd.",
    ),
    PartySpec(
        "ganglian",
        _uscc("91130225MA0GLBG2"),
        "唐山港联报关行有限公司",
        ("customs_broker",),
        "Tangshan Ganglian Customs Brokerage Co., Ltd.",
    ),
    PartySpec(
        "cfd_customs",
        _uscc("11130209MB0C4120"),
        "中华人民共和国曹妃甸海关",
        ("customs",),
        "Caofeidian Customs of the People's Republic of China",
    ),
    PartySpec(
        "jt_customs",
        _uscc("11130225MB0C4040"),
        "中华人民共和国京唐港海关",
        ("customs",),
        "Jingtang Port Customs of the People's Republic of China",
    ),
    PartySpec(
        "ts_customs",
        _uscc("11130200MB0C4040"),
        "中华人民共和国唐山海关",
        ("customs",),
        "Tangshan Customs of the People's Republic of China",
    ),
    PartySpec(
        "regulator",
        _uscc("11130200MB158325"),
        "唐山市市场监督管理局",
        ("regulator",),
        "Tangshan Administration for Market Regulation",
    ),
)
PARTY = {p.slug: p for p in PARTIES}
REGISTERED = "2026-01-05T09:00:00+08:00"

# Places, each a GLN under its operator's prefix.
LOC = {
    "mirai_plant": gln(PREFIX["mirai"], 1),         # 帯広工場, Obihiro, Hokkaido
    "tomakomai": gln(PREFIX["nihonkai"], 1),        # 苫小牧港 container terminal
    "caofeidian_port": gln(PREFIX["cfd_port"], 1),  # 曹妃甸港区
    "bonded_wh": gln(PREFIX["bonded_wh"], 1),       # 曹妃甸综合保税区 warehouse
    "seoul_plant": gln(PREFIX["seoul_beauty"], 1),  # Osan plant
    "incheon": gln(PREFIX["hanbit"], 1),            # Incheon express hub
    "jingtang_port": gln(PREFIX["jt_port"], 1),     # 京唐港区
    "tangshan_rail": gln(PREFIX["rail"], 1),        # 唐山 China-Europe rail container station
    "erenhot": gln(PREFIX["rail"], 2),              # 二连浩特 border station
    "duisburg": gln(PREFIX["rheinruhr"], 1),
    "duesseldorf_wh": gln(PREFIX["rheinfeld"], 1),
    "cidu_plant": gln(PREFIX["cidu"], 1),
    "hengfeng_plant": gln(PREFIX["hengfeng"], 1),
    "osaka_wh": gln(PREFIX["kansai_wh"], 1),
}  # fmt: skip


@dataclass(frozen=True)
class Product:
    gtin: str
    zh: str
    en: str
    price: Decimal
    hs: str
    weight_kg: Decimal
    brand: str = ""  # the slug of the party holding its GS1 company prefix
    net: tuple[str, str] | None = None  # net content: (value, UN/ECE unit code)

    def name(self) -> list[dict[str, str]]:
        return [{"@language": "zh", "@value": self.zh}, {"@language": "en", "@value": self.en}]

    def item(self, serial: str) -> str:
        return f"{DL}/01/{self.gtin}/21/{serial}"

    def lot(self, lot: str) -> str:
        return f"{DL}/01/{self.gtin}/10/{lot}"


def _p(
    brand: str, ref: str, zh: str, en: str, price: str, hs: str, kg: str, net: tuple[str, str] | None = None
) -> Product:
    return Product(gtin14(PREFIX[brand], ref), zh, en, Decimal(price), hs, Decimal(kg), brand, net)


FORMULA = (
    _p(
        "mirai",
        "00011",
        "未来 婴儿配方奶粉 1段（0–6月龄）800克",
        "Mirai Infant Formula Stage 1 (0–6 months) 800 g",
        "328.00",
        "1901101010",
        "1.05",
        ("800", "GRM"),
    ),
    _p(
        "mirai",
        "00012",
        "未来 较大婴儿配方奶粉 2段（6–12月龄）800克",
        "Mirai Follow-on Formula Stage 2 (6–12 months) 800 g",
        "318.00",
        "1901101010",
        "1.05",
        ("800", "GRM"),
    ),
    _p(
        "mirai",
        "00013",
        "未来 幼儿配方奶粉 3段（12–36月龄）800克",
        "Mirai Growing-up Formula Stage 3 (12–36 months) 800 g",
        "298.00",
        "1901101090",
        "1.05",
        ("800", "GRM"),
    ),
)
COSMETICS = (
    _p(
        "seoul_beauty",
        "00021",
        "雪花潭 保湿面霜 50毫升",
        "Seolhwadam Hydrating Cream 50 ml",
        "189.00",
        "33049900",
        "0.16",
        ("50", "MLT"),
    ),
    _p(
        "seoul_beauty",
        "00022",
        "雪花潭 人参精华液 30毫升",
        "Seolhwadam Ginseng Essence 30 ml",
        "239.00",
        "33049900",
        "0.12",
        ("30", "MLT"),
    ),
    _p(
        "seoul_beauty",
        "00023",
        "雪花潭 清透防晒乳 SPF50+ PA++++ 50毫升",
        "Seolhwadam Clear Sun Fluid SPF50+ PA++++ 50 ml",
        "129.00",
        "33049900",
        "0.09",
        ("50", "MLT"),
    ),
)
CHINA = (
    _p(
        "cidu",
        "00031",
        "瓷都 骨质瓷56头餐具套装·牡丹",
        "Cidu Bone China Dinner Set, 56 pieces, Peony",
        "1680.00",
        "6911101900",
        "14.5",
        ("56", "H87"),
    ),
    _p(
        "cidu",
        "00032",
        "瓷都 骨质瓷咖啡杯碟套装（6杯6碟）",
        "Cidu Bone China Coffee Set, 6 cups and saucers",
        "420.00",
        "6911101900",
        "3.2",
        ("12", "H87"),
    ),
)
TOOLS = (
    _p(
        "hengfeng",
        "00041",
        "恒锋 SK5高碳钢修枝剪 210毫米",
        "Hengfeng SK5 Carbon Steel Pruning Shears 210 mm",
        "68.00",
        "8201500000",
        "0.35",
    ),
    _p(
        "hengfeng",
        "00042",
        "恒锋 不锈钢园艺移植铲",
        "Hengfeng Stainless Steel Transplanting Trowel",
        "39.00",
        "8201100000",
        "0.28",
    ),
)
# Each brand's name and the country its products come from, for their master data.
BRANDS = {
    "mirai": ("未来", "Mirai", "JP"),
    "seoul_beauty": ("雪花潭", "Seolhwadam", "KR"),
    "cidu": ("瓷都", "Cidu", "CN"),
    "hengfeng": ("恒锋", "Hengfeng", "CN"),
}

# What each place is called, where it is (city, country, latitude, longitude): the master
# data its GLN's owner (the holder of the prefix it falls under) signs.
PLACES = {
    "mirai_plant": (
        "北海道未来乳业 带广工厂",
        "Hokkaido Mirai Dairy Obihiro Plant",
        "带广",
        "Obihiro",
        "JP",
        "42.9236",
        "143.1966",
    ),
    "tomakomai": (
        "苫小牧港 集装箱码头",
        "Port of Tomakomai container terminal",
        "苫小牧",
        "Tomakomai",
        "JP",
        "42.6347",
        "141.6192",
    ),
    "caofeidian_port": (
        "曹妃甸港区 集装箱码头",
        "Caofeidian Port container terminal",
        "唐山",
        "Tangshan",
        "CN",
        "38.9389",
        "118.4947",
    ),
    "bonded_wh": (
        "曹妃甸综合保税区 跨境电商仓",
        "Caofeidian Comprehensive Bonded Zone CBEC warehouse",
        "唐山",
        "Tangshan",
        "CN",
        "39.0144",
        "118.4870",
    ),
    "seoul_plant": (
        "首尔美妆实验室 乌山工厂",
        "Seoul Beauty Lab Osan Plant",
        "乌山",
        "Osan",
        "KR",
        "37.1498",
        "127.0772",
    ),
    "incheon": (
        "仁川 国际快件中心",
        "Incheon international express hub",
        "仁川",
        "Incheon",
        "KR",
        "37.4602",
        "126.4407",
    ),
    "jingtang_port": (
        "京唐港区 码头",
        "Jingtang Port terminal",
        "唐山",
        "Tangshan",
        "CN",
        "39.2167",
        "119.0000",
    ),
    "tangshan_rail": (
        "唐山 中欧班列集装箱中心站",
        "Tangshan China-Europe Railway Express container station",
        "唐山",
        "Tangshan",
        "CN",
        "39.6309",
        "118.1802",
    ),
    "erenhot": (
        "二连浩特 铁路口岸站",
        "Erenhot railway border station",
        "二连浩特",
        "Erenhot",
        "CN",
        "43.6528",
        "111.9770",
    ),
    "duisburg": (
        "杜伊斯堡 铁路集装箱码头",
        "Duisburg rail container terminal",
        "杜伊斯堡",
        "Duisburg",
        "DE",
        "51.4344",
        "6.7623",
    ),
    "duesseldorf_wh": (
        "莱茵菲尔德瓷器 杜塞尔多夫仓库",
        "Porzellanhaus Rheinfeld Düsseldorf warehouse",
        "杜塞尔多夫",
        "Düsseldorf",
        "DE",
        "51.2277",
        "6.7735",
    ),
    "cidu_plant": (
        "唐山瓷都 骨质瓷工厂",
        "Tangshan Cidu bone china works",
        "唐山",
        "Tangshan",
        "CN",
        "39.6243",
        "118.1944",
    ),
    "hengfeng_plant": (
        "恒锋园林工具 滦南工厂",
        "Hengfeng garden tools works, Luannan",
        "唐山",
        "Tangshan",
        "CN",
        "39.5064",
        "118.6817",
    ),
    "osaka_wh": (
        "关西港湾仓库 大阪仓",
        "Kansai Harbor Warehouse Osaka",
        "大阪",
        "Osaka",
        "JP",
        "34.6500",
        "135.4333",
    ),
}
VTYPE = "urn:epcglobal:epcis:vtype:"
MDA = "urn:epcglobal:cbv:mda#"


def _both(attribute: str, zh: str, en: str) -> list[dict[str, Any]]:
    return [
        {"id": attribute, "attribute": {"@language": "zh", "@value": zh}},
        {"id": attribute, "attribute": {"@language": "en", "@value": en}},
    ]


def place_master_data() -> list[tuple[str, dict[str, Any]]]:
    """(owner slug, masterdata body) of every place the demo uses."""
    out = []
    for slug, (zh, en, city_zh, city_en, country, lat, lon) in PLACES.items():
        code = LOC[slug]
        owner = next(s for s, p in PREFIX.items() if code.startswith(p))
        out.append(
            (
                owner,
                {
                    "type": VTYPE + "BusinessLocation",
                    "id": f"{DL}/414/{code}",
                    "attributes": [
                        *_both(MDA + "name", zh, en),
                        *_both(MDA + "city", city_zh, city_en),
                        {"id": MDA + "countryCode", "attribute": country},
                        {"id": MDA + "latitude", "attribute": lat},
                        {"id": MDA + "longitude", "attribute": lon},
                    ],
                },
            )
        )
    return out


def product_master_data() -> list[tuple[str, dict[str, Any]]]:
    """(brand slug, masterdata body) of every product the demo makes."""
    out = []
    for p in (*FORMULA, *COSMETICS, *CHINA, *TOOLS):
        zh, en, country = BRANDS[p.brand]
        attrs = [
            *_both("gs1:productName", p.zh, p.en),
            *_both("gs1:brand", zh, en),
            {"id": MDA + "countryOfOrigin", "attribute": country},
        ]
        if p.net:
            attrs.append({"id": "gs1:netContent", "attribute": {"value": p.net[0], "unitCode": p.net[1]}})
        out.append((p.brand, {"type": VTYPE + "EPCClass", "id": f"{DL}/01/{p.gtin}", "attributes": attrs}))
    return out


RECALL_ZH = "批次 MF260407 经工厂复检维生素D含量低于标签标示值，主动召回。"
RECALL_EN = "Lot MF260407: vitamin D below the labelled value on re-testing at the factory; voluntary recall."

SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华玉萍红建文辉力鹏宇欣怡雪晨浩然子涵梓轩思雨佳琪"
DISTRICTS = (
    "路北区",
    "路南区",
    "开平区",
    "古冶区",
    "丰南区",
    "丰润区",
    "曹妃甸区",
    "迁安市",
    "遵化市",
    "滦州市",
    "滦南县",
    "乐亭县",
    "玉田县",
)
STREETS = (
    "建设北路",
    "新华道",
    "北新道",
    "长宁道",
    "学院南路",
    "龙泽路",
    "卫国路",
    "大里路",
    "光明路",
    "朝阳道",
    "翔云道",
    "友谊路",
)
ESTATES = ("凤凰新城", "远洋城", "龙湖香醍", "御景园", "金色家园", "世博广场", "翰林苑", "华岩小区")
FORMULA_REVIEWS = (
    (5, "罐体完好，日期新鲜，扫码能看到通关放行记录。"),
    (5, "宝宝喝了不上火，保税仓发货，第二天就到了。"),
    (5, "包装严实，生产日期和保质期清楚。Tin sealed, dates clear."),
    (5, "回购第三次了，扫码能查到从北海道工厂到曹妃甸保税仓的全程，放心。"),
    (4, "奶粉没问题，快递盒有点压痕。"),
    (3, "物流慢了一天，客服态度还行。"),
)
COSMETIC_REVIEWS = (
    (5, "质地清爽，吸收快，韩国直邮正品。"),
    (4, "邮政包裹慢了几天，但东西是正品，京唐港放行记录能查到。"),
    (5, "防晒不油腻，回购。"),
    (3, "味道有点重，效果一般。"),
)


# --- the scenario ------------------------------------------------------------------------------


@dataclass
class Draft:
    """One statement to be signed: who signs what, when, with which private data."""

    utc: datetime
    n: int
    signer: str  # party slug
    body: dict[str, Any]
    private: dict[str, Any] | None = None


@dataclass
class Consumer:
    name: str
    phone: str
    address: str
    id_hash: str
    id_number: str = ""  # only the customs messages carry it (tools/demo_ceb.py)


@dataclass(frozen=True)
class Sale:
    """One consumer order of the 1210 or 9610 flow, as customs messages carry it: the order,
    payment, waybill and inventory, and customs' release (tools/demo_ceb.py writes them)."""

    procedure: str
    platform: str  # party slugs
    merchant: str
    payment: str
    logistics: str
    broker: str
    customs: str
    order_no: str
    pay_tx: str
    waybill_no: str
    declaration_no: str
    lines: tuple[tuple[Product, int], ...]
    goods: Decimal
    freight: Decimal
    tax: Decimal
    discount: Decimal
    paid: Decimal
    pay_amount: Decimal
    waybill_freight: Decimal
    weight: Decimal
    buyer: Consumer
    payer: Consumer
    ordered: datetime
    paid_at: datetime
    waybill_at: datetime
    declared: datetime
    released: datetime


@dataclass
class Case:
    code: str
    lot: str  # lot number
    items: list[str]
    opened: bool = False


@dataclass
class Planted:
    """What the scenario deliberately contains for regulators to find."""

    mismatched_order: str = ""
    over_limit_buyer: str = ""
    recalled_lot: str = ""
    formula_item: str = ""
    cosmetics_item: str = ""
    recalled_item: str = ""


def cn_id_number(rng: random.Random) -> str:
    """A well-formed (fictional) resident ID number, GB 11643: it only ever feeds the HMAC."""
    region = rng.choice(
        (
            "130202",
            "130203",
            "130204",
            "130205",
            "130207",
            "130208",
            "130209",
            "130224",
            "130225",
            "130281",
            "130283",
        )
    )
    born = date(1982, 1, 1) + timedelta(days=rng.randrange(0, 16 * 365))
    first = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first + "10X98765432"[sum(int(c) * w for c, w in zip(first, weights, strict=True)) % 11]


def buyer_id_hash(zone_key: bytes, id_number: str) -> str:
    """schemas/README.md: HMAC-SHA256 under the zone's matching key of "id:" + the number."""
    mac = hmac.new(zone_key, ("id:" + id_number.upper()).encode(), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()


def check_scale(scale: float) -> None:
    if not 0 < scale <= 20:
        raise LedgerError(f"--scale must be above 0 and at most 20, not {scale}", code="bad_scale")


class Scenario:
    """Every statement of the demo, as drafts in event-time order."""

    def __init__(self, *, scale: float, zone_key: bytes) -> None:
        check_scale(scale)
        self.scale = scale
        self.zone_key = zone_key
        self.rng = random.Random(20261127)
        self.drafts: list[Draft] = []
        self.sales: list[Sale] = []  # the consumer orders, for the customs messages
        self.planted = Planted()
        self._ids = 0
        self._reviewed_formula = False
        self._reviewed_cosmetics = False
        self.consumers = [self._consumer() for _ in range(self.count(380, 24))]
        self.heavy = self._consumer()  # buys in bulk: over the annual limit
        self.other_payer = self._consumer()  # pays someone else's order
        self.formula_imports()
        self.cosmetics_direct()
        self.bone_china_b2b()
        self.garden_tools_overseas()
        self.drafts.sort(key=lambda d: (d.utc, d.n))

    def count(self, base: int, minimum: int) -> int:
        return max(minimum, round(base * self.scale))

    # --- building blocks ----------------------------------------------------------------

    def _consumer(self) -> Consumer:
        r = self.rng
        name = r.choice(SURNAMES) + "".join(r.choice(GIVEN) for _ in range(r.choice((1, 2))))
        address = (
            f"河北省唐山市{r.choice(DISTRICTS)}{r.choice(STREETS)}{r.randrange(1, 300)}号"
            f"{r.choice(ESTATES)}{r.randrange(1, 30)}栋{r.randrange(1, 6)}单元"
            f"{r.randrange(1, 28)}{r.randrange(1, 5):02d}室"
        )
        phone = f"1{r.choice('3578')}{r.randrange(10**9):09d}"
        number = cn_id_number(r)
        return Consumer(name, phone, address, buyer_id_hash(self.zone_key, number), number)

    def event(self, signer: str, kind: str, when: datetime, /, **fields: Any) -> dict[str, Any]:
        """Draft one event body; ``private=`` (not an EPCIS field) is the data kept off the chain."""
        private: dict[str, Any] | None = fields.pop("private", None)
        when = when.replace(microsecond=0)
        stamp = when.isoformat()
        self._ids += 1
        body: dict[str, Any] = {
            "type": kind,
            "eventTime": stamp,
            "eventTimeZoneOffset": stamp[-6:],
            "eventID": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'suyuan-demo/{self._ids}')}",
            **fields,
        }
        if signer not in PARTY:
            raise KeyError(f"no demo party {signer!r}")
        self.drafts.append(Draft(when.astimezone(UTC), self._ids, signer, body, private))
        return body

    def minutes(self, lo: int, hi: int) -> timedelta:
        return timedelta(minutes=self.rng.randint(lo, hi))

    # --- (a) Japanese infant formula, 1210 through the Caofeidian bonded zone --------------

    def formula_imports(self) -> None:
        r = self.rng
        start, end = datetime(2026, 5, 12, tzinfo=CST), datetime(2026, 10, 20, tzinfo=CST)
        recall_at = datetime(2026, 9, 18, 10, 0, tzinfo=JST)
        orders: list[dict[str, Any]] = []
        span = int((end - start).total_seconds())
        for _ in range(self.count(540, 40)):
            t0 = start + timedelta(seconds=r.randrange(span))
            t0 = t0.replace(hour=r.choice((8, 9, 10, 11, 12, 13, 14, 15, 19, 20, 21, 22, 23)))
            orders.append(
                {
                    "t0": t0,
                    "product": r.choices(FORMULA, (4, 3, 3))[0],
                    "qty": r.choice((1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 6)),
                    "buyer": r.choice(self.consumers),
                }
            )
        # One buyer orders nine tins of stage 1 ten times: each order within the 5,000 RMB
        # single-transaction limit, the year over the 26,000 RMB annual limit.
        for k in range(10):
            t0 = datetime(2026, 6, 3, 21, 15, tzinfo=CST) + timedelta(days=17 * k, minutes=37 * k)
            orders.append({"t0": t0, "product": FORMULA[0], "qty": 9, "buyer": self.heavy})
        orders.sort(key=lambda o: o["t0"])
        # One order whose payment and waybill disagree with it (三单不一致).
        target = datetime(2026, 8, 8, 20, 0, tzinfo=CST)
        odd = min((o for o in orders if o["buyer"] is not self.heavy), key=lambda o: abs(o["t0"] - target))
        odd["mismatch"] = True
        odd["qty"] = 2

        # Lots sized to the demand: stage 1 has a second lot, the one that will be recalled.
        demand = {p.gtin: sum(o["qty"] for o in orders if o["product"] is p) for p in FORMULA}
        lots = [  # (product, lot number, production day, tins)
            (FORMULA[0], "MF260310", date(2026, 3, 10), _cases(demand[FORMULA[0].gtin] + 24)),
            (FORMULA[1], "MF260317", date(2026, 3, 17), _cases(demand[FORMULA[1].gtin] * 1.1 + 24)),
            (FORMULA[2], "MF260324", date(2026, 3, 24), _cases(demand[FORMULA[2].gtin] * 1.1 + 24)),
            (FORMULA[0], "MF260407", date(2026, 4, 7), _cases(self.count(240, 24))),
        ]
        recalled_lot = FORMULA[0].lot("MF260407")
        self.planted.recalled_lot = recalled_lot
        mirai, case_n, pallet_n = "mirai", 0, 0
        pallets: list[str] = []
        shelves: dict[str, list[Case]] = {p.gtin: [] for p in FORMULA}
        self.event(
            "ruihe",
            "TransactionEvent",
            datetime(2026, 2, 20, 10, 30, tzinfo=CST),
            action="ADD",
            bizTransactionList=[
                {"type": "po", "bizTransaction": "https://erp.ruihe.example.cn/po/RH-2026-0031"}
            ],
            quantityList=[
                {"epcClass": f"{DL}/01/{p.gtin}", "quantity": sum(n for q, _, _, n in lots if q is p)}
                for p in FORMULA
            ],
            sourceList=[{"type": "owning_party", "source": PARTY["mirai"].id}],
            destinationList=[{"type": "owning_party", "destination": PARTY["ruihe"].id}],
        )
        for product, lot, day, tins in lots:
            t = datetime(day.year, day.month, day.day, 8, 0, tzinfo=JST)
            expiry = date(day.year + 2, day.month, day.day) - timedelta(days=1)
            prodorder = f"https://erp.mirai-dairy.example.jp/prodorder/{lot}"
            lot_cases: list[Case] = []
            for c in range(tins // 12):
                case_n += 1
                items = [product.item(f"{lot[2:]}{c * 12 + i + 1:05d}") for i in range(12)]
                self.event(
                    mirai,
                    "ObjectEvent",
                    t,
                    action="ADD",
                    epcList=items,
                    bizStep="commissioning",
                    disposition="active",
                    readPoint=place(LOC["mirai_plant"]),
                    bizLocation=place(LOC["mirai_plant"]),
                    bizTransactionList=[{"type": "prodorder", "bizTransaction": prodorder}],
                    ilmd={
                        "gs1:productName": product.name(),
                        "cbvmda:lotNumber": lot,
                        "cbvmda:itemExpirationDate": expiry.isoformat(),
                        "cbvmda:countryOfOrigin": "JP",
                        "cbec:hsCode": product.hs,
                    },
                )
                case = sscc(0, PREFIX["mirai"], case_n)
                self.event(
                    mirai,
                    "AggregationEvent",
                    t + timedelta(minutes=1),
                    action="ADD",
                    parentID=case,
                    childEPCs=items,
                    bizStep="packing",
                    disposition="in_progress",
                    readPoint=place(LOC["mirai_plant"]),
                )
                lot_cases.append(Case(case, lot, items))
                t += timedelta(minutes=3)
            self.event(
                mirai,
                "ObjectEvent",
                t + timedelta(hours=5),
                action="OBSERVE",
                quantityList=[{"epcClass": product.lot(lot), "quantity": tins}],
                bizStep="inspecting",
                disposition="conformant",
                readPoint=place(LOC["mirai_plant"]),
                certificationInfo=f"https://qa.mirai-dairy.example.jp/coa/{lot}",
            )
            for i in range(0, len(lot_cases), 20):
                pallet_n += 1
                pallet = sscc(1, PREFIX["mirai"], pallet_n)
                pallets.append(pallet)
                self.event(
                    mirai,
                    "AggregationEvent",
                    t + timedelta(hours=6, minutes=i),
                    action="ADD",
                    parentID=pallet,
                    childEPCs=[c.code for c in lot_cases[i : i + 20]],
                    bizStep="packing",
                    disposition="in_progress",
                    readPoint=place(LOC["mirai_plant"]),
                )
            shelves[product.gtin].extend(lot_cases)

        # Export by sea: Obihiro -> Tomakomai -> Caofeidian, into the bonded zone.
        self.event(
            mirai,
            "ObjectEvent",
            datetime(2026, 4, 21, 9, 0, tzinfo=JST),
            action="OBSERVE",
            epcList=pallets,
            bizStep="loading",
            disposition="in_progress",
            readPoint=place(LOC["mirai_plant"]),
        )
        bol = "https://www.nihonkai-logistics.example.jp/bol/NKL26TMK0424"
        self.event(
            "nihonkai",
            "ObjectEvent",
            datetime(2026, 4, 24, 16, 40, tzinfo=JST),
            action="OBSERVE",
            epcList=pallets,
            bizStep="shipping",
            disposition="in_transit",
            readPoint=place(LOC["tomakomai"]),
            bizTransactionList=[
                {"type": "bol", "bizTransaction": bol},
                {
                    "type": "desadv",
                    "bizTransaction": "https://erp.mirai-dairy.example.jp/desadv/DA-2026-0424",
                },
            ],
            sourceList=[
                {"type": "owning_party", "source": PARTY["mirai"].id},
                {"type": "location", "source": f"{DL}/414/{LOC['mirai_plant']}"},
            ],
            destinationList=[
                {"type": "owning_party", "destination": PARTY["ruihe"].id},
                {"type": "location", "destination": f"{DL}/414/{LOC['bonded_wh']}"},
            ],
        )
        arrive = datetime(2026, 5, 2, 7, 30, tzinfo=CST)
        self.event(
            "cfd_port",
            "ObjectEvent",
            arrive,
            action="OBSERVE",
            epcList=pallets,
            bizStep="arriving",
            disposition="in_progress",
            readPoint=place(LOC["caofeidian_port"]),
            bizTransactionList=[{"type": "bol", "bizTransaction": bol}],
        )
        self.event(
            "cfd_port",
            "ObjectEvent",
            arrive + timedelta(hours=5),
            action="OBSERVE",
            epcList=pallets,
            bizStep="unloading",
            disposition="in_progress",
            readPoint=place(LOC["caofeidian_port"]),
        )
        entry_decl = "https://customs.example.cn/entry/040920260503000017"
        self.event(
            "huacheng",
            "ObjectEvent",
            datetime(2026, 5, 3, 9, 20, tzinfo=CST),
            action="OBSERVE",
            epcList=pallets,
            bizStep="cbec:declaring",
            bizLocation=place(LOC["caofeidian_port"]),
            bizTransactionList=[
                {"type": "po", "bizTransaction": "https://erp.ruihe.example.cn/po/RH-2026-0031"},
                {"type": "cbec:declaration", "bizTransaction": entry_decl},
            ],
            **{"cbec:customsProcedure": "1210", "cbec:hsCode": "1901101010", "cbec:countryOfOrigin": "JP"},
        )
        for k, (product, lot, _, tins) in enumerate(lots):
            inspected = datetime(2026, 5, 4, 9, 30, tzinfo=CST) + timedelta(minutes=10 * k)
            self.event(
                "cfd_customs",
                "ObjectEvent",
                inspected,
                action="OBSERVE",
                quantityList=[{"epcClass": product.lot(lot), "quantity": tins}],
                bizStep="cbec:inspecting_customs",
                disposition="conformant",
                bizLocation=place(LOC["caofeidian_port"]),
                **{"cbec:customsProcedure": "1210"},
            )
        self.event(
            "cfd_customs",
            "ObjectEvent",
            datetime(2026, 5, 5, 10, 5, tzinfo=CST),
            action="OBSERVE",
            epcList=pallets,
            bizStep="cbec:releasing",
            disposition="sellable_not_accessible",
            bizLocation=place(LOC["caofeidian_port"]),
            bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": entry_decl}],
            **{"cbec:customsProcedure": "1210"},
        )
        self.event(
            "bonded_wh",
            "ObjectEvent",
            datetime(2026, 5, 5, 15, 10, tzinfo=CST),
            action="OBSERVE",
            epcList=pallets,
            bizStep="receiving",
            disposition="sellable_not_accessible",
            readPoint=place(LOC["bonded_wh"]),
            bizLocation=place(LOC["bonded_wh"]),
            sourceList=[{"type": "location", "source": f"{DL}/414/{LOC['caofeidian_port']}"}],
            destinationList=[{"type": "possessing_party", "destination": PARTY["bonded_wh"].id}],
            **{"cbec:customsProcedure": "1210"},
        )
        t = datetime(2026, 5, 6, 9, 0, tzinfo=CST)
        for pallet in pallets:
            self.event(
                "bonded_wh",
                "AggregationEvent",
                t,
                action="DELETE",
                parentID=pallet,
                bizStep="unpacking",
                disposition="sellable_not_accessible",
                bizLocation=place(LOC["bonded_wh"]),
            )
            t += timedelta(minutes=7)

        # Stage 1 alternates its two lots on the shelf, so the lot to be recalled sells too.
        s1 = shelves[FORMULA[0].gtin]
        lot_a = [c for c in s1 if c.lot == "MF260310"]
        lot_r = [c for c in s1 if c.lot == "MF260407"]
        mixed: list[Case] = []
        while lot_a or lot_r:
            if lot_r:
                mixed.append(lot_r.pop(0))
            mixed.extend(lot_a[:2])
            del lot_a[:2]
        shelves[FORMULA[0].gtin] = mixed
        stock = {g: deque(cases) for g, cases in shelves.items()}
        open_case: dict[str, Case | None] = {g: None for g in shelves}
        loose: dict[str, deque[str]] = {g: deque() for g in shelves}

        def pick(product: Product, qty: int, at: datetime, recalled: bool) -> list[str]:
            g = product.gtin
            out: list[str] = []
            while len(out) < qty:
                if not loose[g]:
                    while True:
                        case = stock[g].popleft()
                        if not (recalled and case.lot == "MF260407"):
                            break
                    case.opened = True
                    open_case[g] = case
                    loose[g].extend(case.items)
                    self.event(
                        "bonded_wh",
                        "AggregationEvent",
                        at,
                        action="DELETE",
                        parentID=case.code,
                        childEPCs=case.items,
                        bizStep="unpacking",
                        disposition="sellable_not_accessible",
                        bizLocation=place(LOC["bonded_wh"]),
                    )
                out.append(loose[g].popleft())
            return out

        recalled = False
        for k, o in enumerate(orders, 1):
            if not recalled and o["t0"] >= recall_at:
                recalled = True
                self._recall(recalled_lot, recall_at, stock, open_case, loose)
            self._formula_order(k, o, pick, recalled)

    def _recall(
        self,
        lot_code: str,
        at: datetime,
        stock: dict[str, deque[Case]],
        open_case: dict[str, Case | None],
        loose: dict[str, deque[str]],
    ) -> None:
        g = FORMULA[0].gtin
        self.event(
            "mirai",
            "ObjectEvent",
            at,
            action="OBSERVE",
            quantityList=[{"epcClass": lot_code}],
            bizStep="cbec:recalling",
            disposition="recalled",
            **{
                "cbec:recall": {
                    "reason": [
                        {"@language": "zh", "@value": RECALL_ZH},
                        {"@language": "en", "@value": RECALL_EN},
                    ],
                    "scope": [lot_code],
                }
            },
        )
        held: list[str] = [c.code for c in stock[g] if c.lot == "MF260407"]
        case = open_case[g]
        if case is not None and case.lot == "MF260407":
            held.extend(loose[g])
            loose[g].clear()
        if not held:
            return
        # The bonded warehouse quarantines what it still holds of the lot.
        self.event(
            "bonded_wh",
            "ObjectEvent",
            at.astimezone(CST) + timedelta(hours=2),
            action="OBSERVE",
            epcList=held,
            bizStep="holding",
            disposition="recalled",
            bizLocation=place(LOC["bonded_wh"]),
        )

    def _formula_order(
        self,
        k: int,
        o: dict[str, Any],
        pick: Callable[[Product, int, datetime, bool], list[str]],
        recalled: bool,
    ) -> None:
        r = self.rng
        t0: datetime = o["t0"].replace(minute=r.randrange(60), second=r.randrange(60))
        product: Product = o["product"]
        buyer: Consumer = o["buyer"]
        qty: int = o["qty"]
        goods = product.price * qty
        freight = Decimal("0.00") if goods >= 399 else Decimal("10.00")
        discount = Decimal("20.00") if goods >= 200 and r.random() < 0.25 else Decimal("0.00")
        tax = ((goods + freight) * TAX_RATE).quantize(CENT, rounding=ROUND_HALF_UP)
        paid = goods + freight + tax - discount
        order = f"https://mall.tangpin.example.cn/orders/TP{t0:%Y%m%d}{k:06d}"
        t_pay = t0 + self.minutes(1, 6)
        payment = f"https://pay.jitong.example.cn/tx/JT{t_pay:%Y%m%d%H%M%S}{k:04d}"
        waybill = f"https://www.shunchi-express.example.cn/waybill/SC{7712000000000 + k}"
        decl = f"https://customs.example.cn/inventory/0409{t0:%Y%m%d}{k:06d}"
        t_decl = t0 + self.minutes(40, 80)
        t_rel = t_decl + self.minutes(1, 8)
        items = pick(product, qty, t_rel + timedelta(minutes=10), recalled)
        odd = o.get("mismatch", False)
        bt_order = {"type": "cbec:order", "bizTransaction": order}
        proc = {"cbec:customsProcedure": "1210"}
        wh = place(LOC["bonded_wh"])
        self.event(
            "tangpin",
            "TransactionEvent",
            t0,
            action="ADD",
            epcList=items,
            bizTransactionList=[bt_order],
            bizLocation=wh,
            private={"buyer": {"name": buyer.name, "phone": buyer.phone, "address": buyer.address}},
            **proc,
            **{
                "cbec:orderInfo": {
                    "goods": money(goods),
                    "freight": money(freight),
                    "tax": money(tax),
                    "discount": money(discount),
                    "paid": money(paid),
                    "currency": "CNY",
                    "buyerIdHash": buyer.id_hash,
                }
            },
        )
        payer = self.other_payer if odd else buyer
        pay_amount = (paid * Decimal("0.7")).quantize(CENT) if odd else paid
        self.event(
            "jitong_pay",
            "TransactionEvent",
            t_pay,
            action="ADD",
            epcList=items,
            bizTransactionList=[bt_order, {"type": "cbec:payment", "bizTransaction": payment}],
            private={"payer": {"name": payer.name, "account": f"6217 **** **** {r.randrange(10000):04d}"}},
            **proc,
            **{
                "cbec:paymentInfo": {
                    "paid": money(pay_amount),
                    "currency": "CNY",
                    "buyerIdHash": payer.id_hash,
                }
            },
        )
        weight = product.weight_kg * qty + Decimal("0.2")
        wb = self.event(
            "shunchi",
            "TransactionEvent",
            t0 + self.minutes(15, 38),
            action="ADD",
            epcList=items,
            bizLocation=wh,
            bizTransactionList=[bt_order, {"type": "cbec:waybill", "bizTransaction": waybill}],
            private={"recipient": {"name": buyer.name, "phone": buyer.phone, "address": buyer.address}},
            **proc,
            **{
                "cbec:waybillInfo": {
                    "freight": money(freight + (Decimal("15.00") if odd else 0)),
                    "currency": "CNY",
                    "grossWeightKg": f"{weight:.3f}",
                }
            },
        )
        self.event(
            "huacheng",
            "ObjectEvent",
            t_decl,
            action="OBSERVE",
            epcList=items,
            bizStep="cbec:declaring",
            bizLocation=wh,
            bizTransactionList=[
                bt_order,
                {"type": "cbec:payment", "bizTransaction": payment},
                {"type": "cbec:waybill", "bizTransaction": waybill},
                {"type": "cbec:declaration", "bizTransaction": decl},
            ],
            **proc,
            **{"cbec:hsCode": product.hs, "cbec:countryOfOrigin": "JP"},
        )
        self.event(
            "cfd_customs",
            "ObjectEvent",
            t_rel,
            action="OBSERVE",
            epcList=items,
            bizStep="cbec:releasing",
            disposition="sellable_accessible",
            bizLocation=wh,
            bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": decl}],
            **proc,
        )
        self.sales.append(
            Sale(
                "1210",
                "tangpin",
                "ruihe",
                "jitong_pay",
                "shunchi",
                "huacheng",
                "cfd_customs",
                order.rsplit("/", 1)[1],
                payment.rsplit("/", 1)[1],
                waybill.rsplit("/", 1)[1],
                decl.rsplit("/", 1)[1],
                ((product, qty),),
                goods,
                freight,
                tax,
                discount,
                paid,
                pay_amount,
                freight + (Decimal("15.00") if odd else 0),
                weight,
                buyer,
                payer,
                t0,
                t_pay,
                datetime.fromisoformat(wb["eventTime"]),
                t_decl,
                t_rel,
            )
        )
        t_out = working_hours(t_rel + self.minutes(120, 300))
        self.event(
            "bonded_wh",
            "ObjectEvent",
            t_out,
            action="OBSERVE",
            epcList=items,
            bizStep="shipping",
            disposition="in_transit",
            readPoint=wh,
            bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": waybill}],
            sourceList=[{"type": "possessing_party", "source": PARTY["bonded_wh"].id}],
        )
        t_del = (t_out + timedelta(days=r.choice((1, 1, 2, 3)))).replace(hour=r.randint(9, 19))
        self.event(
            "shunchi",
            "ObjectEvent",
            t_del,
            action="OBSERVE",
            epcList=items,
            bizStep="accepting",
            disposition="retail_sold",
            bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": waybill}],
        )
        reviewed = r.random() < 0.35
        if reviewed:
            rating, text = r.choice(FORMULA_REVIEWS)
            self.event(
                "tangpin",
                "ObjectEvent",
                t_del + timedelta(days=r.randint(1, 9), hours=3),
                action="OBSERVE",
                epcList=items,
                bizStep="cbec:evaluating",
                bizTransactionList=[bt_order],
                **{"cbec:evaluation": {"rating": rating, "text": text}},
            )
        if odd:
            self.planted.mismatched_order = order
        if buyer is self.heavy:
            self.planted.over_limit_buyer = buyer.id_hash
        if not odd and buyer is not self.heavy and product is FORMULA[1]:
            # The consumer page shows off best on a reviewed tin; any sold tin will do.
            if reviewed and not self._reviewed_formula:
                self._reviewed_formula = True
                self.planted.formula_item = items[0]
            self.planted.formula_item = self.planted.formula_item or items[0]
        if not self.planted.recalled_item and "/21/260407" in items[0]:
            self.planted.recalled_item = items[0]

    # --- (b) Korean cosmetics, 9610 direct purchase by postal parcel via Jingtang port ---------

    def cosmetics_direct(self) -> None:
        r = self.rng
        parcels = self.count(140, 12)
        start = datetime(2026, 6, 1, tzinfo=CST)
        span = int((datetime(2026, 10, 15, tzinfo=CST) - start).total_seconds())
        orders = sorted(
            (start + timedelta(seconds=r.randrange(span))).replace(hour=r.randint(8, 23))
            for _ in range(parcels)
        )
        baskets = [
            [(r.choices(COSMETICS, (4, 3, 3))[0], r.choice((1, 1, 2))) for _ in range(r.choice((1, 1, 2)))]
            for _ in orders
        ]
        need = {p.gtin: sum(q for b in baskets for x, q in b if x is p) for p in COSMETICS}
        stock: dict[str, deque[str]] = {}
        for n, p in enumerate(COSMETICS):
            lot = f"SB26{n + 1:02d}05"
            t = datetime(2026, 5, 11 + n, 9, 0, tzinfo=KST)
            expiry = date(2028, 11, 10 + n)
            count = math.ceil((need[p.gtin] + 12) / 24) * 24
            items = [p.item(f"K{lot[4:]}{i + 1:05d}") for i in range(count)]
            for i in range(0, count, 24):
                self.event(
                    "seoul_beauty",
                    "ObjectEvent",
                    t + timedelta(minutes=i),
                    action="ADD",
                    epcList=items[i : i + 24],
                    bizStep="commissioning",
                    disposition="active",
                    readPoint=place(LOC["seoul_plant"]),
                    bizLocation=place(LOC["seoul_plant"]),
                    ilmd={
                        "gs1:productName": p.name(),
                        "cbvmda:lotNumber": lot,
                        "cbvmda:itemExpirationDate": expiry.isoformat(),
                        "cbvmda:countryOfOrigin": "KR",
                        "cbec:hsCode": p.hs,
                    },
                )
            self.event(
                "seoul_beauty",
                "ObjectEvent",
                t + timedelta(hours=6),
                action="OBSERVE",
                quantityList=[{"epcClass": p.lot(lot), "quantity": count}],
                bizStep="inspecting",
                disposition="conformant",
                readPoint=place(LOC["seoul_plant"]),
            )
            stock[p.gtin] = deque(items)
        for k, (t0, basket) in enumerate(zip(orders, baskets, strict=True), 1):
            items = [stock[p.gtin].popleft() for p, q in basket for _ in range(q)]
            goods = sum((p.price * q for p, q in basket), Decimal(0))
            freight = Decimal(r.choice(("15.00", "18.00", "22.00")))
            discount = Decimal("10.00") if r.random() < 0.2 else Decimal("0.00")
            tax = ((goods + freight) * TAX_RATE).quantize(CENT, rounding=ROUND_HALF_UP)
            paid = goods + freight + tax - discount
            buyer = r.choice(self.consumers)
            order = f"https://www.jthaitao.example.cn/orders/JH{t0:%Y%m%d}{k:06d}"
            t_pay = t0 + self.minutes(1, 5)
            payment = f"https://pay.yanshanyun.example.cn/tx/YS{t_pay:%Y%m%d%H%M%S}{k:04d}"
            waybill = f"https://track.hanbit-global.example.kr/waybill/HB{880100000 + k}KR"
            decl = f"https://customs.example.cn/inventory/0408{t0:%Y%m%d}{k:06d}"
            bt_order = {"type": "cbec:order", "bizTransaction": order}
            proc = {"cbec:customsProcedure": "9610"}
            self.event(
                "haitao",
                "TransactionEvent",
                t0,
                action="ADD",
                epcList=items,
                bizTransactionList=[bt_order],
                private={"buyer": {"name": buyer.name, "phone": buyer.phone, "address": buyer.address}},
                **proc,
                **{
                    "cbec:orderInfo": {
                        "goods": money(goods),
                        "freight": money(freight),
                        "tax": money(tax),
                        "discount": money(discount),
                        "paid": money(paid),
                        "currency": "CNY",
                        "buyerIdHash": buyer.id_hash,
                    }
                },
            )
            self.event(
                "yanshan_pay",
                "TransactionEvent",
                t_pay,
                action="ADD",
                epcList=items,
                bizTransactionList=[bt_order, {"type": "cbec:payment", "bizTransaction": payment}],
                private={
                    "payer": {"name": buyer.name, "account": f"6228 **** **** {r.randrange(10000):04d}"}
                },
                **proc,
                **{
                    "cbec:paymentInfo": {"paid": money(paid), "currency": "CNY", "buyerIdHash": buyer.id_hash}
                },
            )
            weight = sum((p.weight_kg * q for p, q in basket), Decimal("0.30"))
            t_wb = t0 + self.minutes(120, 600)
            self.event(
                "hanbit",
                "TransactionEvent",
                t_wb.astimezone(KST),
                action="ADD",
                epcList=items,
                bizTransactionList=[bt_order, {"type": "cbec:waybill", "bizTransaction": waybill}],
                private={"recipient": {"name": buyer.name, "phone": buyer.phone, "address": buyer.address}},
                **proc,
                **{
                    "cbec:waybillInfo": {
                        "freight": money(freight),
                        "currency": "CNY",
                        "grossWeightKg": f"{weight:.3f}",
                    }
                },
            )
            parcel = sscc(0, PREFIX["hanbit"], k)
            t_pack = working_hours((t_wb + self.minutes(600, 1500)).astimezone(KST))
            self.event(
                "hanbit",
                "AggregationEvent",
                t_pack,
                action="ADD",
                parentID=parcel,
                childEPCs=items,
                bizStep="packing",
                disposition="in_progress",
                readPoint=place(LOC["incheon"]),
            )
            t_dep = t_pack + self.minutes(180, 600)
            self.event(
                "hanbit",
                "ObjectEvent",
                t_dep,
                action="OBSERVE",
                epcList=[parcel],
                bizStep="departing",
                disposition="in_transit",
                readPoint=place(LOC["incheon"]),
                bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": waybill}],
                destinationList=[{"type": "location", "destination": f"{DL}/414/{LOC['jingtang_port']}"}],
            )
            t_arr = (t_dep + self.minutes(1560, 2400)).astimezone(CST)
            self.event(
                "jt_port",
                "ObjectEvent",
                t_arr,
                action="OBSERVE",
                epcList=[parcel],
                bizStep="arriving",
                disposition="in_progress",
                readPoint=place(LOC["jingtang_port"]),
                bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": waybill}],
            )
            t_decl = t_arr + self.minutes(60, 180)
            self.event(
                "huacheng",
                "ObjectEvent",
                t_decl,
                action="OBSERVE",
                epcList=items,
                bizStep="cbec:declaring",
                bizLocation=place(LOC["jingtang_port"]),
                bizTransactionList=[
                    bt_order,
                    {"type": "cbec:payment", "bizTransaction": payment},
                    {"type": "cbec:waybill", "bizTransaction": waybill},
                    {"type": "cbec:declaration", "bizTransaction": decl},
                ],
                **proc,
                **{"cbec:hsCode": basket[0][0].hs, "cbec:countryOfOrigin": "KR"},
            )
            t_rel = t_decl + self.minutes(5, 40)
            self.event(
                "jt_customs",
                "ObjectEvent",
                t_rel,
                action="OBSERVE",
                epcList=items,
                bizStep="cbec:releasing",
                disposition="sellable_accessible",
                bizLocation=place(LOC["jingtang_port"]),
                bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": decl}],
                **proc,
            )
            self.sales.append(
                Sale(
                    "9610",
                    "haitao",
                    "haitao",
                    "yanshan_pay",
                    "hanbit",
                    "huacheng",
                    "jt_customs",
                    order.rsplit("/", 1)[1],
                    payment.rsplit("/", 1)[1],
                    waybill.rsplit("/", 1)[1],
                    decl.rsplit("/", 1)[1],
                    tuple(basket),
                    goods,
                    freight,
                    tax,
                    discount,
                    paid,
                    paid,
                    freight,
                    weight,
                    buyer,
                    buyer,
                    t0,
                    t_pay,
                    t_wb,
                    t_decl,
                    t_rel,
                )
            )
            t_del = (t_rel + timedelta(days=r.choice((1, 2, 2, 3)))).replace(hour=r.randint(9, 19))
            self.event(
                "youtong",
                "ObjectEvent",
                t_del,
                action="OBSERVE",
                epcList=items,
                bizStep="accepting",
                disposition="retail_sold",
                bizTransactionList=[{"type": "cbec:waybill", "bizTransaction": waybill}],
            )
            if r.random() < 0.3:
                rating, text = r.choice(COSMETIC_REVIEWS)
                self.event(
                    "haitao",
                    "ObjectEvent",
                    t_del + timedelta(days=r.randint(2, 12), hours=2),
                    action="OBSERVE",
                    epcList=items,
                    bizStep="cbec:evaluating",
                    bizTransactionList=[bt_order],
                    **{"cbec:evaluation": {"rating": rating, "text": text}},
                )
                if not self._reviewed_cosmetics:
                    self._reviewed_cosmetics = True
                    self.planted.cosmetics_item = items[0]
            self.planted.cosmetics_item = self.planted.cosmetics_item or items[0]

    # --- (c) Tangshan bone china, 9710 B2B export to Germany by China-Europe rail --------------

    def bone_china_b2b(self) -> None:
        for k in range(self.count(3, 1)):
            product = CHINA[k % 2]
            day = date(2026, 7, 6) + timedelta(days=35 * k)
            lot = f"TC{day:%y%m%d}"
            sets = 480 if product is CHINA[0] else 960
            per_pallet = sets // 10
            lot_code = product.lot(lot)
            po = f"https://b2b.cidu-china.example.cn/po/DE-2026-{3380 + k}"
            t = datetime(day.year, day.month, day.day, 8, 30, tzinfo=CST)
            self.event(
                "cidu",
                "TransactionEvent",
                t - timedelta(days=20),
                action="ADD",
                bizTransactionList=[{"type": "po", "bizTransaction": po}],
                quantityList=[{"epcClass": f"{DL}/01/{product.gtin}", "quantity": sets}],
                sourceList=[{"type": "owning_party", "source": PARTY["cidu"].id}],
                destinationList=[{"type": "owning_party", "destination": PARTY["rheinfeld"].id}],
            )
            self.event(
                "cidu",
                "ObjectEvent",
                t,
                action="ADD",
                quantityList=[{"epcClass": lot_code, "quantity": sets}],
                bizStep="commissioning",
                disposition="active",
                readPoint=place(LOC["cidu_plant"]),
                bizLocation=place(LOC["cidu_plant"]),
                ilmd={
                    "gs1:productName": product.name(),
                    "cbvmda:lotNumber": lot,
                    "cbvmda:countryOfOrigin": "CN",
                    "cbec:hsCode": product.hs,
                },
            )
            self.event(
                "cidu",
                "ObjectEvent",
                t + timedelta(days=2),
                action="OBSERVE",
                quantityList=[{"epcClass": lot_code, "quantity": sets}],
                bizStep="inspecting",
                disposition="conformant",
                readPoint=place(LOC["cidu_plant"]),
                certificationInfo=f"https://qa.cidu-china.example.cn/report/{lot}",
            )
            pallets = [sscc(2, PREFIX["cidu"], 100 * k + i + 1) for i in range(10)]
            for i, pallet in enumerate(pallets):
                self.event(
                    "cidu",
                    "AggregationEvent",
                    t + timedelta(days=3, minutes=6 * i),
                    action="ADD",
                    parentID=pallet,
                    childQuantityList=[{"epcClass": lot_code, "quantity": per_pallet}],
                    bizStep="packing",
                    disposition="in_progress",
                    readPoint=place(LOC["cidu_plant"]),
                )
            declared = day + timedelta(days=5)
            decl = f"https://customs.example.cn/declaration/0402{declared:%Y%m%d}{9710 + k:06d}"
            t_decl = t + timedelta(days=5, hours=1)
            self.event(
                "ganglian",
                "ObjectEvent",
                t_decl,
                action="OBSERVE",
                quantityList=[{"epcClass": lot_code, "quantity": sets}],
                bizStep="cbec:declaring",
                bizLocation=place(LOC["tangshan_rail"]),
                bizTransactionList=[
                    {"type": "po", "bizTransaction": po},
                    {"type": "cbec:declaration", "bizTransaction": decl},
                ],
                # The declaration names where the goods go (运抵国), as the 9810 one
                # does: the importer and its warehouse in Düsseldorf.
                destinationList=[
                    {"type": "owning_party", "destination": PARTY["rheinfeld"].id},
                    {"type": "location", "destination": f"{DL}/414/{LOC['duesseldorf_wh']}"},
                ],
                **{"cbec:customsProcedure": "9710", "cbec:hsCode": product.hs, "cbec:countryOfOrigin": "CN"},
            )
            self.event(
                "ts_customs",
                "ObjectEvent",
                t_decl + timedelta(hours=3),
                action="OBSERVE",
                quantityList=[{"epcClass": lot_code, "quantity": sets}],
                bizStep="cbec:releasing",
                disposition="in_progress",
                bizLocation=place(LOC["tangshan_rail"]),
                bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": decl}],
                **{"cbec:customsProcedure": "9710"},
            )
            rail = place(LOC["tangshan_rail"])
            self.event(
                "rail",
                "ObjectEvent",
                t_decl + timedelta(hours=8),
                action="OBSERVE",
                epcList=pallets,
                bizStep="loading",
                disposition="in_progress",
                readPoint=rail,
            )
            t_dep = t_decl + timedelta(days=1)
            self.event(
                "rail",
                "ObjectEvent",
                t_dep,
                action="OBSERVE",
                epcList=pallets,
                bizStep="departing",
                disposition="in_transit",
                readPoint=rail,
                bizTransactionList=[
                    {"type": "po", "bizTransaction": po},
                    {
                        "type": "bol",
                        "bizTransaction": f"https://www.ts-chinaeurope.example.cn/cim/TS-DUI-26{k:03d}",
                    },
                ],
                destinationList=[
                    {"type": "owning_party", "destination": PARTY["rheinfeld"].id},
                    {"type": "location", "destination": f"{DL}/414/{LOC['duesseldorf_wh']}"},
                ],
            )
            self.event(
                "rail",
                "ObjectEvent",
                t_dep + timedelta(days=3, hours=5),
                action="OBSERVE",
                epcList=pallets,
                bizStep="entering_exiting",
                disposition="in_transit",
                readPoint=place(LOC["erenhot"]),
            )
            a = (t_dep + timedelta(days=17)).astimezone(UTC)
            arrive = german_time(a.year, a.month, a.day, 6, 40)
            self.event(
                "rheinruhr",
                "ObjectEvent",
                arrive,
                action="OBSERVE",
                epcList=pallets,
                bizStep="arriving",
                disposition="in_progress",
                readPoint=place(LOC["duisburg"]),
            )
            self.event(
                "rheinruhr",
                "ObjectEvent",
                arrive + timedelta(hours=4),
                action="OBSERVE",
                epcList=pallets,
                bizStep="unloading",
                disposition="in_progress",
                readPoint=place(LOC["duisburg"]),
            )
            self.event(
                "rheinfeld",
                "ObjectEvent",
                arrive + timedelta(days=1, hours=3),
                action="OBSERVE",
                epcList=pallets,
                bizStep="receiving",
                disposition="sellable_accessible",
                readPoint=place(LOC["duesseldorf_wh"]),
                bizLocation=place(LOC["duesseldorf_wh"]),
                bizTransactionList=[{"type": "po", "bizTransaction": po}],
            )

    # --- (d) Luannan garden tools, 9810 export to an overseas warehouse in Japan -----------------

    def garden_tools_overseas(self) -> None:
        r = self.rng
        cartons: list[tuple[str, list[str]]] = []
        t = datetime(2026, 8, 3, 8, 0, tzinfo=CST)
        per_product = self.count(200, 20)
        for n, p in enumerate(TOOLS):
            lot = f"HF2608{n + 1:02d}"
            for c in range(math.ceil(per_product / 20)):
                items = [p.item(f"{lot[2:]}{c * 20 + i + 1:05d}") for i in range(20)]
                self.event(
                    "hengfeng",
                    "ObjectEvent",
                    t,
                    action="ADD",
                    epcList=items,
                    bizStep="commissioning",
                    disposition="active",
                    readPoint=place(LOC["hengfeng_plant"]),
                    bizLocation=place(LOC["hengfeng_plant"]),
                    ilmd={
                        "gs1:productName": p.name(),
                        "cbvmda:lotNumber": lot,
                        "cbvmda:countryOfOrigin": "CN",
                        "cbec:hsCode": p.hs,
                    },
                )
                carton = sscc(0, PREFIX["hengfeng"], len(cartons) + 1)
                self.event(
                    "hengfeng",
                    "AggregationEvent",
                    t + timedelta(minutes=2),
                    action="ADD",
                    parentID=carton,
                    childEPCs=items,
                    bizStep="packing",
                    disposition="in_progress",
                    readPoint=place(LOC["hengfeng_plant"]),
                )
                cartons.append((carton, items))
                t += timedelta(minutes=5)
        pallets: list[tuple[str, list[tuple[str, list[str]]]]] = []
        for i in range(0, len(cartons), 10):
            pallet = sscc(1, PREFIX["hengfeng"], len(pallets) + 1)
            self.event(
                "hengfeng",
                "AggregationEvent",
                t + timedelta(minutes=i),
                action="ADD",
                parentID=pallet,
                childEPCs=[c for c, _ in cartons[i : i + 10]],
                bizStep="packing",
                disposition="in_progress",
                readPoint=place(LOC["hengfeng_plant"]),
            )
            pallets.append((pallet, cartons[i : i + 10]))
        codes = [p for p, _ in pallets]
        jt = place(LOC["jingtang_port"])
        decl = "https://customs.example.cn/declaration/040820260810009810"
        self.event(
            "ganglian",
            "ObjectEvent",
            datetime(2026, 8, 10, 9, 40, tzinfo=CST),
            action="OBSERVE",
            epcList=codes,
            bizStep="cbec:declaring",
            bizLocation=jt,
            destinationList=[{"type": "location", "destination": f"{DL}/414/{LOC['osaka_wh']}"}],
            bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": decl}],
            **{"cbec:customsProcedure": "9810", "cbec:hsCode": TOOLS[0].hs, "cbec:countryOfOrigin": "CN"},
        )
        self.event(
            "jt_customs",
            "ObjectEvent",
            datetime(2026, 8, 10, 14, 5, tzinfo=CST),
            action="OBSERVE",
            epcList=codes,
            bizStep="cbec:releasing",
            disposition="in_progress",
            bizLocation=jt,
            bizTransactionList=[{"type": "cbec:declaration", "bizTransaction": decl}],
            **{"cbec:customsProcedure": "9810"},
        )
        self.event(
            "forwarder",
            "ObjectEvent",
            datetime(2026, 8, 11, 8, 0, tzinfo=CST),
            action="OBSERVE",
            epcList=codes,
            bizStep="loading",
            disposition="in_progress",
            readPoint=jt,
        )
        self.event(
            "forwarder",
            "ObjectEvent",
            datetime(2026, 8, 11, 18, 30, tzinfo=CST),
            action="OBSERVE",
            epcList=codes,
            bizStep="departing",
            disposition="in_transit",
            readPoint=jt,
            bizTransactionList=[
                {
                    "type": "bol",
                    "bizTransaction": "https://www.haifeng-forwarding.example.cn/bol/HFJT26081101",
                }
            ],
            destinationList=[{"type": "location", "destination": f"{DL}/414/{LOC['osaka_wh']}"}],
        )
        osaka = place(LOC["osaka_wh"])
        t = datetime(2026, 8, 16, 10, 0, tzinfo=JST)
        self.event(
            "kansai_wh",
            "ObjectEvent",
            t,
            action="OBSERVE",
            epcList=codes,
            bizStep="receiving",
            disposition="sellable_accessible",
            readPoint=osaka,
            bizLocation=osaka,
            sourceList=[{"type": "location", "source": f"{DL}/414/{LOC['jingtang_port']}"}],
            **{"cbec:customsProcedure": "9810"},
        )
        on_shelf: list[str] = []
        for pallet, inside in pallets:
            t += timedelta(minutes=20)
            self.event(
                "kansai_wh",
                "AggregationEvent",
                t,
                action="DELETE",
                parentID=pallet,
                bizStep="unpacking",
                disposition="sellable_accessible",
                bizLocation=osaka,
            )
            for carton, items in inside:
                t += timedelta(minutes=4)
                self.event(
                    "kansai_wh",
                    "AggregationEvent",
                    t,
                    action="DELETE",
                    parentID=carton,
                    childEPCs=items,
                    bizStep="unpacking",
                    disposition="sellable_accessible",
                    bizLocation=osaka,
                )
                on_shelf.extend(items)
        r.shuffle(on_shelf)
        day = date(2026, 8, 20)
        while len(on_shelf) > len(cartons) * 20 // 4 and day < date(2026, 11, 1):
            sold = [on_shelf.pop() for _ in range(min(len(on_shelf), r.randint(4, 14)))]
            t = datetime(day.year, day.month, day.day, 21, 0, tzinfo=JST)
            self.event(
                "hengfeng",
                "ObjectEvent",
                t,
                action="OBSERVE",
                epcList=sold,
                bizStep="retail_selling",
                disposition="retail_sold",
                bizLocation=osaka,
                bizTransactionList=[
                    {
                        "type": "inv",
                        "bizTransaction": f"https://shop.hengfeng-tools.example.jp/sales/{day:%Y%m%d}",
                    }
                ],
            )
            self.event(
                "kansai_wh",
                "ObjectEvent",
                t + timedelta(hours=13),
                action="OBSERVE",
                epcList=sold,
                bizStep="shipping",
                disposition="in_transit",
                readPoint=osaka,
            )
            day += timedelta(days=r.randint(2, 5))


def _cases(tins: float) -> int:
    """Tins made, in whole cases of 12."""
    return math.ceil(tins / 12) * 12


# --- keys and signing ---------------------------------------------------------------------------


def party_key(slug: str) -> PartyKey:
    """The demo party's key, from the demo seed, filed in SUYUAN_HOME as ``demo-<slug>``."""
    return PartyKey.from_seed(f"demo-{slug.replace('_', '-')}", derive(f"key/{slug}"))


def operator_keys(origin: str) -> tuple[NoteSigner, PartyKey]:
    """The demo's checkpoint and registrar keys: public like every demo key, so that
    the demo ledger is the same everywhere, and so that `suyuan init` can tell them."""
    return (
        NoteSigner(origin, nacl.signing.SigningKey(derive("key/operator"))),
        PartyKey.from_seed(REGISTRAR_KEY, derive("key/registrar")),
    )


def holds_demo_keys(home: Home) -> bool:
    """Whether ``home``'s checkpoint or registrar key is the demo's."""
    signer, registrar = operator_keys(DEFAULT_ORIGIN)
    note = home.note_signer_if_any()
    reg_path = home.keys.path(REGISTRAR_KEY)
    reg = home.keys.load(REGISTRAR_KEY) if reg_path.exists() or reg_path.is_symlink() else None
    return (
        (note is not None and note.key_bytes == signer.key_bytes)  # whatever its origin
        or (reg is not None and reg.public_key == registrar.public_key)
    )


def refuse_foreign_keys(home: Home, signer: NoteSigner, keys: Sequence[PartyKey]) -> None:
    """Refuse a home in which a key file the demo files (its checkpoint, registrar and
    party keys, its zone key) holds another key: the demo overwrites none of them, and
    signs with none of them. Nothing is written before this passed."""
    others = []
    note = home.note_signer_if_any()
    if note is not None and note.verifier_key() != signer.verifier_key():
        others.append(home.note_key_file)
    for key in keys:
        path = home.keys.path(key.name)
        if (path.exists() or path.is_symlink()) and home.keys.load(key.name).public_key != key.public_key:
            others.append(path)
    zone = home.path / ZONE_KEY_FILE
    if (zone.exists() or zone.is_symlink()) and (
        text_in(read_key_file(zone), zone, "hmacKey") != derive("zone-matching-key").hex()
    ):
        others.append(zone)
    if others:
        raise home_in_use(home, others, whose="another ledger, not the demo")


def file_demo_keys(home: Home, keys: Sequence[PartyKey]) -> None:
    """File the demo parties' keys (for `suyuan sign --key demo-…`) and the zone's
    matching key where missing (``refuse_foreign_keys`` has seen the others)."""
    for key in keys:
        path = home.keys.path(key.name)
        if not (path.exists() or path.is_symlink()):
            with contextlib.suppress(ConfigError):  # filed meanwhile by another demo run
                home.keys.save(key)
    with contextlib.suppress(FileExistsError):
        write_key_file(
            home.path / ZONE_KEY_FILE,
            {"name": "demo zone matching key (buyerIdHash)", "hmacKey": derive("zone-matching-key").hex()},
        )


def zone_matching_key(home: Home) -> bytes:
    """The demo zone's matching key (buyerIdHash, consigneeHash): derived from the public
    demo seed, and filed as SUYUAN_HOME/demo-zone.key where missing, for
    `suyuan ceb import --matching-key`."""
    home.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        write_key_file(
            home.path / ZONE_KEY_FILE,
            {"name": "demo zone matching key (buyerIdHash)", "hmacKey": derive("zone-matching-key").hex()},
        )
    return derive("zone-matching-key")


def private_blob(label: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(commitment, blob) with a salt derived from the seed, so re-runs commit alike."""
    salt = base64.b64encode(derive(f"salt/{label}", 16)).decode()
    blob = {"salt": salt, "data": data}
    return commitment_of(blob), blob


@dataclass
class Signed:
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[tuple[str, dict[str, Any]] | None] = field(default_factory=list)


def sign_all(scenario: Scenario, keys: dict[str, PartyKey], registrar: tuple[str, PartyKey]) -> Signed:
    out = Signed()
    for p in PARTIES:
        key = keys[p.slug]
        body: dict[str, Any] = {
            "id": p.id,
            "name": p.name,
            "roles": list(p.roles),
            "publicKey": key.public_key_b64,
        }
        if p.name_en:
            body["nameEn"] = p.name_en
        if p.slug in PREFIX:
            # Its GS1 company prefix: only a brand may then make or recall its own GTINs.
            body["gs1Prefixes"] = [PREFIX[p.slug]]
        out.envelopes.append(
            sign_one(
                kind="party.register",
                signer=p.id,
                key=key,
                body=body,
                cosigners=[registrar],
                issued=REGISTERED,
            )
        )
        out.blobs.append(None)
    # The zone's regulator keeps the retail-import positive list: the sample shipped in
    # schemas/, signed before any goods move, so that only goods off it raise a finding.
    sample = json.loads((schema_dir() / "positive-list.sample.json").read_text(encoding="utf-8"))
    out.envelopes.append(
        sign_one(
            kind="list.update",
            signer=PARTY["regulator"].id,
            key=keys["regulator"],
            body={
                "list": "positive",
                "action": "add",
                "reason": sample["reason"],
                "hsCodes": [e["hsCode"] for e in sample["entries"]],
            },
            issued=REGISTERED,
        )
    )
    out.blobs.append(None)
    # Master data of every place and product, by the owner of its GLN or GTIN: the page
    # names places and products by it.
    for slug, body in (*place_master_data(), *product_master_data()):
        out.envelopes.append(
            sign_one(kind="masterdata", signer=PARTY[slug].id, key=keys[slug], body=body, issued=REGISTERED)
        )
        out.blobs.append(None)
    for d in scenario.drafts:
        party = PARTY[d.signer]
        blob = private_blob(d.body["eventID"], d.private) if d.private is not None else None
        out.envelopes.append(
            sign_one(
                kind="event",
                signer=party.id,
                key=keys[d.signer],
                body=d.body,
                issued=d.body["eventTime"],
                private=blob[0] if blob else None,
            )
        )
        out.blobs.append(blob)
    return out


def statement_hash(envelope: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical.canonical_bytes(envelope["statement"])).digest()


# --- building ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    entries: int
    appended: int
    parties: int
    checkpoint_size: int
    origin: str
    regulator: str
    regulator_key: PartyKey
    planted: Planted


def _already_there(led: Ledger, hashes: Sequence[bytes]) -> set[bytes]:
    """Which of the demo's statements the ledger holds; refuses a database that holds
    anything else than (part of) this very demo."""
    size = led.size()
    if size <= 1:
        return set()
    with led.store.reading() as conn:
        present = set(led.store.seqs_of_statements(conn, hashes))
    others = size - 1 - len(present)
    if others == 0:
        return present
    where = "point SUYUAN_DB at another database, e.g. SUYUAN_DB=sqlite:///demo.db suyuan demo"
    if not present:
        raise LedgerError(
            f"this database already holds a ledger of {size} entries that is not the "
            f"demo's, and the demo builds a fresh one; {where}",
            code="not_demo_ledger",
        )
    raise LedgerError(
        f"this database holds a demo with {others} entries that are not part of the demo "
        f"at this --scale (another scale, or entries added since); {where}",
        code="not_demo_ledger",
    )


def _refuse_other_genesis(led: Ledger, signer: NoteSigner) -> None:
    """A database holding the demo's statements under another checkpoint key (a demo
    made before its operator key was derived from the seed) is not appended to."""
    if led.log_verifier().vkey() != signer.verifier_key():
        raise LedgerError(
            "this database holds a ledger whose genesis names another checkpoint key "
            "than the demo's (not the demo, or a demo made by an older version); "
            "point SUYUAN_DB at another database, e.g. SUYUAN_DB=sqlite:///demo.db "
            "suyuan demo",
            code="not_demo_ledger",
        )


def build(
    store: Store,
    home: Home,
    *,
    scale: float = 1.0,
    origin: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Built:
    """Create the ledger if the database has none, then append the whole demo to it.

    Appending is idempotent, so on a database that already holds this demo nothing is
    appended, and an interrupted build is completed.
    """
    check_scale(scale)
    store.migrate()
    origin = origin or os.environ.get("SUYUAN_ORIGIN") or DEFAULT_ORIGIN
    signer, reg_key = operator_keys(origin)
    keys = {p.slug: party_key(p.slug) for p in PARTIES}
    scenario = Scenario(scale=scale, zone_key=derive("zone-matching-key"))
    signed = sign_all(scenario, keys, (DEFAULT_REGISTRAR_ID, reg_key))
    hashes = [statement_hash(e) for e in signed.envelopes]
    # The database first, then the home: neither is written before both are known to be
    # the demo's (or empty), and a home holding another ledger's keys keeps them.
    led = Ledger(store, note_signer=signer)
    present = _already_there(led, hashes)
    refuse_foreign_keys(home, signer, [reg_key, *keys.values()])
    if led.size() == 0:
        create_ledger(
            led,
            home,
            origin=origin,
            registrar_id=DEFAULT_REGISTRAR_ID,
            registrar_name=DEFAULT_REGISTRAR_NAME,
            signer=signer,
            registrar_key=reg_key,
        )
    else:
        _refuse_other_genesis(led, signer)
        home.file_ledger_keys(signer, reg_key)  # this home may be new to the demo database
        if not home.config().get("registrar"):
            home.save_config(
                home.config()
                | {"origin": origin, "registrar": {"id": DEFAULT_REGISTRAR_ID, "key": REGISTRAR_KEY}}
            )
    file_demo_keys(home, list(keys.values()))
    # What is there already is skipped rather than resubmitted: same outcome, no receipts
    # to look up again.
    todo = [i for i, h in enumerate(hashes) if h not in present]
    before = led.size()
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        blobs = dict(b for b in (signed.blobs[i] for i in chunk) if b is not None)
        led.append_batch([signed.envelopes[i] for i in chunk], private=blobs)
        if progress is not None:
            progress(start + len(chunk), len(todo))
    reg = led.registry_view()
    size = led.size()
    return Built(
        entries=size,
        appended=size - before,
        parties=len(reg.parties),
        checkpoint_size=size,
        origin=reg.origin or DEFAULT_ORIGIN,
        regulator=PARTY["regulator"].id,
        regulator_key=keys["regulator"],
        planted=scenario.planted,
    )


def consumer_url(base: str, code: str) -> str:
    return base.rstrip("/") + code.removeprefix(DL)


def summary(built: Built, *, base_url: str, elapsed: float, db: str) -> dict[str, Any]:
    p = built.planted
    token = make_token(built.regulator_key, signer=built.regulator, audience=built.origin, ttl=TOKEN_TTL)
    return {
        "entries": built.entries,
        "appended": built.appended,
        "parties": built.parties,
        "checkpointSize": built.checkpoint_size,
        "origin": built.origin,
        "elapsedSeconds": round(elapsed, 2),
        "db": db,
        "urls": {
            "formula": consumer_url(base_url, p.formula_item),
            "cosmetics": consumer_url(base_url, p.cosmetics_item),
            "recalled": consumer_url(base_url, p.recalled_item),
        },
        "regulator": {
            "id": built.regulator,
            "name": PARTY["regulator"].name,
            "key": built.regulator_key.name,
        },
        "regulatorToken": token,
        "tokenExpires": datetime.fromtimestamp(read_token(token)[0].exp, UTC).isoformat(timespec="seconds"),
        "planted": {
            "recalledLot": p.recalled_lot,
            "mismatchedOrder": p.mismatched_order,
            "overLimitBuyer": p.over_limit_buyer,
        },
    }


def run(*, home: Home, scale: float, serve: bool, host: str, port: int) -> int:
    """`suyuan demo`: build, print the JSON summary, and serve it if asked."""
    from dataclasses import replace

    from api.settings import Settings

    started = time.monotonic()
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            sys.stderr.write(f"\rdemo: {done:,}/{total:,} statements ({time.monotonic() - started:.1f} s)")
            sys.stderr.flush()

    settings = Settings.from_env()
    if not os.environ.get("SUYUAN_BASE_URL"):
        settings = replace(settings, base_url=f"http://{host}:{port}")
    # Take the port before building: a busy one is refused at once, not after the build
    # and a "serving" line, and nothing can take it in between.
    sock = _listen(host, port) if serve else None
    store = Store(settings.db_url)
    try:
        built = build(store, home, scale=scale, progress=progress)
    finally:
        store.dispose()
    elapsed = time.monotonic() - started
    if tty:
        sys.stderr.write(f"\ndemo: {built.entries:,} entries, {built.parties} parties in {elapsed:.1f} s\n")
    from sqlalchemy.engine import make_url

    doc = summary(
        built,
        base_url=settings.base_url,
        elapsed=elapsed,
        db=make_url(settings.db_url).render_as_string(hide_password=True),
    )
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    sys.stdout.flush()
    if serve:
        import uvicorn

        from api.app import create_app

        assert sock is not None
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, log_level="warning", proxy_headers=False
        )  # the app decides whom to believe
        print(f"serving {settings.base_url} (Ctrl-C stops); open the urls above", file=sys.stderr)
        uvicorn.Server(config).run(sockets=[sock])
    elif sock is not None:
        sock.close()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port for the server, or ConfigError naming why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as e:
        raise ConfigError(f"cannot serve on {host}:{port}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ConfigError(
            f"cannot serve on {host}:{port}: {why}; stop what listens there or "
            "give another --port (nothing was built)",
            code="port_in_use" if e.errno == errno.EADDRINUSE else "config",
        ) from None
    return sock
