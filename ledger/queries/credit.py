"""Credit (信用): a 0–100 score per party, every point explained.

``score`` is a pure function of credit items; ``credit_items`` reads them from the ledger.
Rules (README "Credit"):

- start at 100 (``BASE``);
- ``credit.record``: the points a regulator signed (−100 … +100), as recorded;
- ``finding``: each finding (``ledger.compliance.findings``) naming the party, by severity
  (``FINDING_POINTS``: high −10, medium −5, low −2);
- ``recall``: each recall event naming one of the party's products (what it named in its own
  production events, and their lots): −10, or −5 when the party recalled them itself
  (主动召回, a voluntary recall);
- ``complaint``: each evaluation of the party's products with rating 1 (−2) or 2 (−1),
  complaints together at most −10 (``COMPLAINT_CAP``);
- the total is clamped to 0 … 100.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.core.errors import NotFound
from ledger.core.ids import parse_party_id
from ledger.queries.findings import list_findings
from ledger.store import reportdb
from ledger.store.db import Store

BASE = 100
FINDING_POINTS: Mapping[str, int] = {"high": -10, "medium": -5, "low": -2}
FINDING_POINTS_OTHER = -5  # a severity the table does not name
RECALL_POINTS = -10
VOLUNTARY_RECALL_POINTS = -5
COMPLAINT_POINTS: Mapping[int, int] = {1: -2, 2: -1}
COMPLAINT_CAP = -10


@dataclass(frozen=True)
class CreditItem:
    source: str  # credit.record | finding | recall | complaint
    seqs: tuple[int, ...]
    points: int
    reason_zh: str
    reason_en: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "seqs": list(self.seqs),
            "points": self.points,
            "reason": {"zh": self.reason_zh, "en": self.reason_en},
        }


def score(items: Sequence[CreditItem]) -> tuple[int, list[CreditItem]]:
    """(score, items as counted): complaints beyond the cap count 0 and say so."""
    counted: list[CreditItem] = []
    complaints = 0
    for it in items:
        if it.source == "complaint":
            pts = max(it.points, COMPLAINT_CAP - complaints)
            complaints += pts
            if pts != it.points:
                it = CreditItem(
                    it.source,
                    it.seqs,
                    pts,
                    it.reason_zh + "（投诉扣分已达上限）",
                    it.reason_en + " (complaint deductions capped)",
                )
        counted.append(it)
    total = BASE + sum(it.points for it in counted)
    return max(0, min(100, total)), counted


def finding_points(severity: str) -> int:
    return FINDING_POINTS.get(severity, FINDING_POINTS_OTHER)


# --- reads ----------------------------------------------------------------------------------


def _statement(raw: bytes) -> dict[str, Any]:
    st: dict[str, Any] = orjson.loads(raw)["envelope"]["statement"]
    return st


def _record_items(records: Iterable[tuple[int, bytes]], party: str) -> list[CreditItem]:
    out = []
    for seq, raw in records:
        st = _statement(raw)
        b = st["body"]
        if b["party"] != party:
            continue
        out.append(
            CreditItem(
                "credit.record",
                (seq,),
                int(b["points"]),
                f"监管记录「{b['item']}」：{b['reason']}（{st['signer']}）",
                f'regulator record "{b["item"]}": {b["reason"]} ({st["signer"]})',
            )
        )
    return out


def _finding_items(findings: Iterable[Mapping[str, Any]]) -> list[CreditItem]:
    out = []
    for f in findings:
        sev, msg = str(f["severity"]), f["message"]
        out.append(
            CreditItem(
                "finding",
                tuple(int(s) for s in f["seqs"]),
                finding_points(sev),
                f"合规发现 {f['rule']}（{sev}）：{msg['zh']}",
                f"finding {f['rule']} ({sev}): {msg['en']}",
            )
        )
    return out


@dataclass(frozen=True)
class _Inputs:
    """What credit is computed from, read once in one snapshot."""

    names: dict[str, str]
    records: list[tuple[int, bytes]]
    recalls: list[tuple[int, str, str]]  # (seq, event time, signer)
    complaints: list[tuple[int, int]]  # (seq, rating) of ratings that cost points
    codes: dict[int, set[str]]  # seq -> codes, for recalls and complaints
    products: dict[str, set[str]]  # party -> its products and their lots


def _load(store: Store, parties: Sequence[str] | None) -> _Inputs:
    with store.reading(snapshot=True) as conn:
        names = {
            p["id"]: p["name"]
            for p in reportdb.party_rows(conn)
            if parties is not None or "registrar" not in p["roles"]
        }
        for party in parties or ():
            if party not in names:
                raise NotFound(f"party {party} is not registered on this ledger")
        wanted = list(names) if parties is None else list(parties)
        products = {p: reportdb.produced_codes(conn, p) for p in wanted}
        recalls = reportdb.event_seqs(conn, stage="recall")
        evals = reportdb.event_seqs(conn, stage="evaluation")
        codes = reportdb.codes_of(conn, [s for s, _, _ in recalls + evals])
        mine = set().union(*products.values()) if products else set()
        raw = reportdb.entry_bytes(conn, [s for s, _, _ in evals if codes.get(s, set()) & mine])
        records = reportdb.entries_of_kind(conn, "credit.record")
    complaints = []
    for seq in sorted(raw):
        ev = _statement(raw[seq])["body"].get("cbec:evaluation") or {}
        rating = ev.get("rating")
        if type(rating) is int and rating in COMPLAINT_POINTS:
            complaints.append((seq, rating))
    return _Inputs(names, records, recalls, complaints, codes, products)


def _party_items(inp: _Inputs, party: str, findings: Iterable[Mapping[str, Any]]) -> list[CreditItem]:
    products = inp.products[party]
    items = _record_items(inp.records, party) + _finding_items(findings)
    for seq, _, signer in inp.recalls:
        if not inp.codes.get(seq, set()) & products:
            continue
        if signer == party:
            items.append(
                CreditItem(
                    "recall",
                    (seq,),
                    VOLUNTARY_RECALL_POINTS,
                    "主动召回本企业产品",
                    "voluntary recall of its own products",
                )
            )
        else:
            items.append(
                CreditItem(
                    "recall",
                    (seq,),
                    RECALL_POINTS,
                    f"产品被召回（{signer} 发起）",
                    f"its products were recalled by {signer}",
                )
            )
    for seq, rating in inp.complaints:
        if inp.codes.get(seq, set()) & products:
            items.append(
                CreditItem(
                    "complaint",
                    (seq,),
                    COMPLAINT_POINTS[rating],
                    f"消费者差评（{rating} 星）",
                    f"consumer complaint (rating {rating} of 5)",
                )
            )
    return items


def credit_items(store: Store, party: str) -> tuple[str, list[CreditItem]]:
    """(party name, every item that counts for ``party``): records, findings, recalls,
    complaints."""
    parse_party_id(party)
    inp = _load(store, [party])
    findings = [f.as_dict() for f in list_findings(store, party=party)]
    return inp.names[party], _party_items(inp, party, findings)


def _doc(party: str, name: str, items: Sequence[CreditItem]) -> dict[str, Any]:
    total, counted = score(items)
    return {"party": party, "name": name, "score": total, "items": [it.as_dict() for it in counted]}


def credit(store: Store, party: str) -> dict[str, Any]:
    name, items = credit_items(store, party)
    return _doc(party, name, items)


def credit_table(store: Store) -> list[dict[str, Any]]:
    """Every registered party but the registrar: score, item count, the sum of their points
    (before the clamp) and the items themselves, lowest score first."""
    inp = _load(store, None)
    by_party: dict[str, list[Mapping[str, Any]]] = {}
    for f in list_findings(store):
        for who in f.parties:
            by_party.setdefault(who, []).append(f.as_dict())
    with store.reading() as conn:
        rows = [p for p in reportdb.party_rows(conn) if p["id"] in inp.names]
    table = []
    for p in rows:
        c = _doc(p["id"], p["name"], _party_items(inp, p["id"], by_party.get(p["id"], [])))
        table.append(
            {
                "party": p["id"],
                "name": p["name"],
                "roles": p["roles"],
                "score": c["score"],
                "items": len(c["items"]),
                "points": sum(i["points"] for i in c["items"]),
                "explained": c["items"],
            }
        )
    table.sort(key=lambda r: (r["score"], r["party"]))
    return table
