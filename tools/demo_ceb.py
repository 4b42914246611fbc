"""``suyuan demo --ceb DIR``: the demo's consumer orders (the 1210 formula and the 9610
cosmetics flows) as the China Customs CBEC messages their enterprises send: each platform's
orders (CEB311), each payment institution's vouchers (CEB411), each logistics company's
waybills (CEB511), the broker's inventories (CEB621) and customs' releases (CEB622), in
messages of up to 100 documents, in time order.

Imported into a fresh ledger (``suyuan ceb import``, each message with its sender's demo
key) they raise the findings the demo's own events raise about the same orders.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.epcis import ceb
from ledger.log.home import Home
from tools.demo import CST, PARTY, Sale, Scenario, zone_matching_key

PER_MESSAGE = 100
# The customs code each demo enterprise uses in its messages: its USCC, or for Hanbit (a
# Korean carrier, registered by GLN) the 10-character code its Chinese filing would give it.
OWN_CODES = {"hanbit": "1302980HBT"}
COUNTRY = {"JP": "116", "KR": "133", "CN": "142"}
CUSTOMS_DISTRICT = {"cfd_customs": "0409", "jt_customs": "0408"}


def customs_code(slug: str) -> str:
    party = PARTY[slug].id
    return OWN_CODES.get(slug) or party.removeprefix("uscc:")


def customs_parties() -> dict[str, list[str]]:
    """party slug -> the customs codes its registration holds, for every enterprise the
    messages name (customs itself signs receipts by its role)."""
    slugs = ("tangpin", "haitao", "ruihe", "jitong_pay", "yanshan_pay", "shunchi", "hanbit", "huacheng")
    return {s: [customs_code(s)] for s in slugs}


def _t(t: datetime, *, millis: bool = False) -> str:
    return t.astimezone(CST).strftime("%Y%m%d%H%M%S") + ("000" if millis else "")


def _guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "suyuan-demo/ceb/" + "/".join(parts))).upper()


def _money(d: Decimal) -> str:
    return f"{d:.2f}"


def _name(slug: str) -> str:
    return PARTY[slug].name


def _order(s: Sale) -> tuple[dict[str, str], list[dict[str, str]]]:
    head = {
        "guid": _guid("order", s.order_no),
        "appType": "1",
        "appTime": _t(s.ordered),
        "appStatus": "2",
        "orderType": "I",
        "orderNo": s.order_no,
        "ebpCode": customs_code(s.platform),
        "ebpName": _name(s.platform),
        "ebcCode": customs_code(s.merchant),
        "ebcName": _name(s.merchant),
        "goodsValue": _money(s.goods),
        "freight": _money(s.freight),
        "discount": _money(s.discount),
        "taxTotal": _money(s.tax),
        "acturalPaid": _money(s.paid),
        "currency": "142",
        "buyerRegNo": "u" + s.buyer.id_hash[-12:],
        "buyerName": s.buyer.name,
        "buyerTelephone": s.buyer.phone,
        "buyerIdType": "1",
        "buyerIdNumber": s.buyer.id_number,
        "payCode": customs_code(s.payment),
        "payName": _name(s.payment),
        "payTransactionId": s.pay_tx,
        "consignee": s.buyer.name,
        "consigneeTelephone": s.buyer.phone,
        "consigneeAddress": s.buyer.address,
    }
    country = COUNTRY["JP" if s.procedure == "1210" else "KR"]
    lines = [
        {
            "gnum": str(n),
            "itemNo": p.gtin,
            "itemName": p.zh,
            "gmodel": p.en,
            "barCode": p.gtin,
            "unit": "007",
            "qty": str(q),
            "price": _money(p.price),
            "totalPrice": _money(p.price * q),
            "currency": "142",
            "country": country,
        }
        for n, (p, q) in enumerate(s.lines, 1)
    ]
    return head, lines


def _payment(s: Sale) -> tuple[dict[str, str], list[dict[str, str]]]:
    return {
        "guid": _guid("payment", s.pay_tx),
        "appType": "1",
        "appTime": _t(s.paid_at),
        "appStatus": "2",
        "payCode": customs_code(s.payment),
        "payName": _name(s.payment),
        "payTransactionId": s.pay_tx,
        "orderNo": s.order_no,
        "ebpCode": customs_code(s.platform),
        "ebpName": _name(s.platform),
        "payerIdType": "1",
        "payerIdNumber": s.payer.id_number,
        "payerName": s.payer.name,
        "telephone": s.payer.phone,
        "amountPaid": _money(s.pay_amount),
        "currency": "142",
        "payTime": _t(s.paid_at),
    }, []


def _waybill(s: Sale) -> tuple[dict[str, str], list[dict[str, str]]]:
    goods = ";".join(f"{p.zh[:40]}{q}件" for p, q in s.lines)[:200]
    return {
        "guid": _guid("waybill", s.waybill_no),
        "appType": "1",
        "appTime": _t(s.waybill_at),
        "appStatus": "2",
        "logisticsCode": customs_code(s.logistics),
        "logisticsName": _name(s.logistics),
        "logisticsNo": s.waybill_no,
        "orderNo": s.order_no,
        "freight": _money(s.waybill_freight),
        "insuredFee": "0",
        "currency": "142",
        "weight": f"{s.weight:.3f}",
        "packNo": "1",
        "goodsInfo": goods,
        "consignee": s.buyer.name,
        "consigneeAddress": s.buyer.address,
        "consigneeTelephone": s.buyer.phone,
    }, []


def _inventory(s: Sale) -> tuple[dict[str, str], list[dict[str, str]]]:
    bonded = s.procedure == "1210"
    district = CUSTOMS_DISTRICT[s.customs]
    head = {
        "guid": _guid("inventory", s.declaration_no),
        "appType": "1",
        "appTime": _t(s.declared),
        "appStatus": "2",
        "orderNo": s.order_no,
        "ebpCode": customs_code(s.platform),
        "ebpName": _name(s.platform),
        "ebcCode": customs_code(s.merchant),
        "ebcName": _name(s.merchant),
        "logisticsNo": s.waybill_no,
        "logisticsCode": customs_code(s.logistics),
        "logisticsName": _name(s.logistics),
        "copNo": s.declaration_no,
        "assureCode": customs_code(s.broker),
        "ieFlag": "I",
        "declTime": s.declared.astimezone(CST).strftime("%Y%m%d"),
        "customsCode": district,
        "portCode": district,
        "buyerIdType": "1",
        "buyerIdNumber": s.buyer.id_number,
        "buyerName": s.buyer.name,
        "buyerTelephone": s.buyer.phone,
        "consigneeAddress": s.buyer.address,
        "agentCode": customs_code(s.broker),
        "agentName": _name(s.broker),
        "tradeMode": s.procedure,
        "trafMode": "4" if bonded else "2",
        "country": "142" if bonded else COUNTRY["KR"],
        "freight": _money(s.freight),
        "insuredFee": "0",
        "currency": "142",
        "packNo": "1",
        "grossWeight": f"{s.weight:.3f}",
        "netWeight": f"{sum((p.weight_kg * q for p, q in s.lines), Decimal(0)):.3f}",
    }
    if bonded:
        head.update(
            {
                "emsNo": "T0409W000001",
                "areaCode": customs_code("bonded_wh"),
                "areaName": PARTY["bonded_wh"].name,
            }
        )
    else:
        head.update(
            {"trafNo": "HANBIT STAR", "voyageNo": s.declared.strftime("%y%m%d"), "billNo": s.waybill_no}
        )
    country = COUNTRY["JP" if bonded else "KR"]
    lines = [
        {
            "gnum": str(n),
            **({"itemRecordNo": p.gtin} if bonded else {}),
            "itemNo": p.gtin,
            "itemName": p.zh,
            "gcode": p.hs.ljust(10, "0"),
            "gname": p.zh,
            "gmodel": p.en,
            "barCode": p.gtin,
            "country": country,
            "currency": "142",
            "qty": str(q),
            "unit": "007",
            "qty1": f"{p.weight_kg * q:.3f}",
            "unit1": "035",
            "price": _money(p.price),
            "totalPrice": _money(p.price * q),
        }
        for n, (p, q) in enumerate(s.lines, 1)
    ]
    return head, lines


def _release(s: Sale) -> tuple[dict[str, str], list[dict[str, str]]]:
    return {
        "guid": _guid("release", s.declaration_no),
        "customsCode": CUSTOMS_DISTRICT[s.customs],
        "ebpCode": customs_code(s.platform),
        "ebcCode": customs_code(s.merchant),
        "agentCode": customs_code(s.broker),
        "copNo": s.declaration_no,
        "preNo": "B" + s.declaration_no[-17:],
        "returnStatus": "800",
        "returnTime": _t(s.released, millis=True),
        "returnInfo": "放行",
    }, []


@dataclass(frozen=True)
class CebFile:
    """One message the demo writes: who sends it and what it is."""

    path: str  # relative to the output directory
    sender: str  # party slug; its demo key is demo-<slug>
    message: str
    documents: int
    data: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "signer": PARTY[self.sender].id,
            "key": "demo-" + self.sender.replace("_", "-"),
            "message": self.message,
            "documents": self.documents,
        }


Document = tuple[dict[str, str], list[dict[str, str]]]
# message type, who sends it, how a sale becomes its document
_STREAMS: tuple[tuple[str, Callable[[Sale], str], Callable[[Sale], Document]], ...] = (
    ("CEB311Message", lambda s: s.platform, _order),
    ("CEB411Message", lambda s: s.payment, _payment),
    ("CEB511Message", lambda s: s.logistics, _waybill),
    ("CEB621Message", lambda s: s.broker, _inventory),
    ("CEB622Message", lambda s: s.customs, _release),
)


def _chunks(docs: Sequence[Document]) -> Iterable[Sequence[Document]]:
    for i in range(0, len(docs), PER_MESSAGE):
        yield docs[i : i + PER_MESSAGE]


def messages(sales: Sequence[Sale]) -> list[CebFile]:
    """Every message, in the order they import best: by type (orders first), then sender,
    then time."""
    out: list[CebFile] = []
    ordered = sorted(sales, key=lambda s: s.ordered)
    for message, sender_of, document in _STREAMS:
        by_sender: dict[str, list[Document]] = {}
        for s in ordered:
            by_sender.setdefault(sender_of(s), []).append(document(s))
        for sender, docs in by_sender.items():
            for n, chunk in enumerate(_chunks(docs), 1):
                guid = _guid("message", message, sender, str(n))
                transfer = (
                    None
                    if ceb.KINDS[message].receipt
                    else {
                        "copCode": customs_code(sender),
                        "copName": _name(sender),
                        "dxpMode": "DXP",
                        "dxpId": "DXPENT" + customs_code(sender)[-10:],
                    }
                )
                data = ceb.message_xml(message, guid, chunk, transfer)
                out.append(CebFile(f"{sender}/{message[:6]}-{n:03d}.xml", sender, message, len(chunk), data))
    return out


def write(scenario: Scenario, out: Path) -> dict[str, Any]:
    """Write the messages under ``out`` and a ``messages.json`` listing them in import order,
    with each sender's party, demo key and customs codes."""
    files = messages(scenario.sales)
    for f in files:
        path = out / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
    doc: dict[str, Any] = {
        "messages": [f.as_dict() for f in files],
        "parties": {
            PARTY[s].id: {"key": "demo-" + s.replace("_", "-"), "customsCodes": codes}
            for s, codes in customs_parties().items()
        },
        "documents": sum(f.documents for f in files),
    }
    (out / "messages.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    return {"dir": str(out), "files": len(files), "documents": doc["documents"]}


def run(*, home: Home, scale: float, out: Path) -> int:
    """`suyuan demo --ceb DIR`: the messages only; no ledger is read or written."""
    scenario = Scenario(scale=scale, zone_key=zone_matching_key(home))
    summary = write(scenario, out)
    summary["matchingKey"] = str(home.path / "demo-zone.key")
    sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    return 0
