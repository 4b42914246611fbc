"""What each console page shows, read from the ledger: plain data for the templates. The values
are the ledger's own (``ledger.compliance.findings``, ``ledger.queries.chain_audit``,
``ledger.queries.trace``, ``ledger.queries.contacts``, ``ledger.queries.credit``,
``ledger.log.bundle``); nothing here decides a rule."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ledger.compliance.findings import RULES, SEVERITIES
from ledger.core.errors import MalformedInput, NotFound
from ledger.core.ids import parse_party_id
from ledger.core.private import Viewer
from ledger.log.bundle import make_bundle, verify_bundle
from ledger.log.sequencer import Ledger
from ledger.queries import credit as credit_mod
from ledger.queries import trace
from ledger.queries.chain_audit import scope_audit
from ledger.queries.contacts import recall_contacts
from ledger.queries.findings import findings_summary, list_findings

REGULATOR = Viewer("regulator")
FINDINGS_SHOWN = 500
HISTORY_PAGE = 50
_DATE_LEN = len("2026-11-27")
SALES = ("order", "retail_selling")  # activities by which an item reaches a buyer


def names(led: Ledger) -> dict[str, str]:
    return {p.id: p.name for p in led.registry_view().parties.values()}


def _date(value: str | None, what: str) -> str | None:
    if not value:
        return None
    if (
        len(value) != _DATE_LEN
        or value[4] != "-"
        or value[7] != "-"
        or not (value[:4] + value[5:7] + value[8:]).isdigit()
    ):
        raise MalformedInput(f"{what} is a date such as 2026-11-27, not {value[:40]!r}")
    return value


def findings_page(
    led: Ledger,
    *,
    rule: str | None,
    party: str | None,
    severity: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    """Findings newest first, filtered by rule, party, severity and the (UTC) day raised."""
    lo, hi = _date(since, "from"), _date(until, "to")
    if party:
        parse_party_id(party)
    found = list_findings(led.store, rule=rule or None, party=party or None, severity=severity or None)
    found = [
        f
        for f in found
        if (lo is None or f.time[:_DATE_LEN] >= lo) and (hi is None or f.time[:_DATE_LEN] <= hi)
    ]
    found.reverse()
    summary = findings_summary(led.store)
    return {
        "rules": [
            {"code": code, "zh": r.zh, "en": r.en, "severity": r.severity} for code, r in RULES.items()
        ],
        "severities": list(SEVERITIES),
        "parties_with_findings": sorted(summary["byParty"]),
        "total": len(found),
        "findings": [f.as_dict() for f in found[:FINDINGS_SHOWN]],
        "filters": {
            "rule": rule or "",
            "party": party or "",
            "severity": severity or "",
            "since": since or "",
            "until": until or "",
        },
    }


def _by_owner(affected: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    sold: Counter[str] = Counter()
    unsold: Counter[str] = Counter()
    for a in affected:
        owner = a["owner"] or ""
        (sold if a["sold"] else unsold)[owner] += 1
    owners = sorted(set(sold) | set(unsold), key=lambda o: (-(sold[o] + unsold[o]), o))
    return [{"owner": o, "sold": sold[o], "unsold": unsold[o]} for o in owners]


def chain_page(led: Ledger, code: str) -> dict[str, Any]:
    """One product chain: every entry proved (``scope_audit``), its recall impact, and for a
    recalled product the contacts of the buyers of its sold items."""
    if not code.strip():
        raise MalformedInput("give a product code: a GS1 Digital Link, an EPC URN or a GTIN")
    scope = scope_audit(led, code)
    if not scope["journey"] and not scope["upstream"] and not scope["downstream"]:
        raise NotFound(f"the ledger has no entry about {scope['code']}")
    impact = trace.recall_impact(led.store, scope["code"])
    recalled = any(s["stage"] == "recall" for s in scope["journey"])
    contacts = None
    if recalled:
        sold = [a["code"] for a in impact["affected"] if a["sold"]]
        if any(s["activity"] in SALES and s["via"] is None for s in scope["journey"]):
            sold.insert(0, scope["code"])  # an item, sold itself
        got = recall_contacts(led, sold, REGULATOR)
        contacts = {
            "sold": got.items,
            "looked_up": got.looked_up,
            **_people([c.as_dict() for c in got.contacts]),
        }
    verified = sum(1 for e in scope["entries"] if e["proofVerified"] and e["signaturesVerified"])
    status = {e["seq"]: e for e in scope["entries"]}
    return {
        "scope": scope,
        "impact": impact,
        "by_owner": _by_owner(impact["affected"]),
        "recalled": recalled,
        "contacts": contacts,
        "verified": verified,
        "entry_status": status,
    }


def _people(contacts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The people to call, once each (a buyer of several items, who is also the waybill's
    recipient, is one row), with the items and entries that name them; and the entries
    whose private data could not be shown (shredded, never given)."""
    people: dict[tuple[str, str, str], dict[str, Any]] = {}
    unavailable = []
    for c in contacts:
        if c["status"] != "shown":
            unavailable.append(c)
            continue
        for role, who in (c["data"] or {}).items():
            if not isinstance(who, dict) or not (who.get("phone") or who.get("address")):
                continue  # a payer's masked account is no way to reach anyone
            key = (str(who.get("name", "")), str(who.get("phone", "")), str(who.get("address", "")))
            p = people.setdefault(
                key,
                {"name": key[0], "phone": key[1], "address": key[2], "roles": [], "items": [], "seqs": []},
            )
            if role not in p["roles"]:
                p["roles"].append(role)
            if c["item"] not in p["items"]:
                p["items"].append(c["item"])
            if c["seq"] not in p["seqs"]:
                p["seqs"].append(c["seq"])
    return {"people": list(people.values()), "unavailable": unavailable}


def _codes_named(body: Mapping[str, Any]) -> list[str]:
    """The product codes an event body names, for links to their chains."""
    out: list[str] = []
    for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        out += [c for c in body.get(key) or () if isinstance(c, str)]
    if isinstance(body.get("parentID"), str):
        out.append(body["parentID"])
    for key in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        out += [
            q["epcClass"]
            for q in body.get(key) or ()
            if isinstance(q, dict) and isinstance(q.get("epcClass"), str)
        ]
    return list(dict.fromkeys(out))


def entry_page(led: Ledger, seq: int) -> dict[str, Any]:
    """One entry: its statement, the regulator's view of its private data, and its proof
    and signatures verified as a bundle against the latest checkpoint and the log's key."""
    (entry,) = led.entries([seq])
    doc = entry.decoded()
    st = doc["envelope"]["statement"]
    check = verify_bundle(make_bundle(led, [seq]), log_key=led.log_verifier().vkey())
    private = led.private_views([entry], REGULATOR).get(seq)
    body = st.get("body") if isinstance(st.get("body"), dict) else {}
    stage = trace.stages_of(led.store, [seq]).get(seq)
    return {
        "seq": seq,
        "leaf": entry.leaf_hash.hex(),
        "recorded": doc.get("time"),
        "statement": st,
        "signatures": doc["envelope"].get("signatures", []),
        "stage": stage,
        "body_json": json.dumps(st, ensure_ascii=False, indent=1),
        "private": private,
        "ok": check.ok and seq in check.verified,
        "problems": check.problems,
        "checkpoint": check.checkpoint.size if check.checkpoint else None,
        "codes": _codes_named(body) if st.get("kind") == "event" else [],
        "findings": [f.as_dict() for f in list_findings(led.store) if seq in f.seqs],
    }


def parties_page(led: Ledger) -> dict[str, Any]:
    return {"table": credit_mod.credit_table(led.store)}


def party_page(led: Ledger, party: str, *, after: int) -> dict[str, Any]:
    parse_party_id(party)
    reg = led.registry_view()
    p = reg.parties.get(party)
    if p is None:
        raise NotFound(f"{party} is not a registered party")
    keys = sorted((k for k in reg.keys.values() if k.party == party), key=lambda k: k.valid_from)
    history, more = led.list_entries(first=HISTORY_PAGE, after=after, signer=party)
    stages = trace.stages_of(led.store, [e.seq for e in history])
    rows = []
    for e in history:
        d = e.decoded()
        st = d["envelope"]["statement"]
        rows.append(
            {
                "seq": e.seq,
                "kind": st.get("kind"),
                "stage": stages.get(e.seq),
                "issued": st.get("issued"),
                "recorded": d.get("time"),
            }
        )
    credit = credit_mod.credit(led.store, party) if "registrar" not in p.roles else None
    return {
        "party": p,
        "keys": keys,
        "credit": credit,
        "history": rows,
        "more": more,
        "next_after": rows[-1]["seq"] if rows else after,
    }
