"""Statistics (known answers and an independent count from decoded entries), the HTML audit
report (parsed, charts checked bar by bar), the one-chain scope audit (every proof checked
here again, a tampered proof or entry fails), and ``suyuan audit --report/--scope``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.core import merkle
from ledger.core.errors import ProofError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.epcis.stages import classify
from ledger.log.home import Home
from ledger.queries.chain_audit import scope_audit
from ledger.queries.stats import compute, gln_country, statistics
from tests.chain import ITEM, ITEM_Q, LOT_P, build
from tests.support import World
from tools.report import collect, render_html

REPO = Path(__file__).resolve().parent.parent


def _decoded(world: World) -> list[tuple[int, dict[str, Any]]]:
    size = world.ledger.size()
    return [(e.seq, e.decoded()["envelope"]["statement"]) for e in world.ledger.entries(range(size))]


# --- statistics -------------------------------------------------------------------------------


def test_statistics_known_answers(world: World) -> None:
    build(world)
    s = statistics(world.store)
    assert s["tradeByProcedure"] == [
        {"procedure": "9610", "declarations": 1, "orders": 1, "valueCNY": "100.50"},
        {"procedure": "1210", "declarations": 1, "orders": 2, "valueCNY": "316.03"},
        {"procedure": "9710", "declarations": 1, "orders": 0, "valueCNY": "0.00"},
        {"procedure": "9810", "declarations": 0, "orders": 0, "valueCNY": "0.00"},
    ]
    assert s["otherCurrencies"] == [{"procedure": "1210", "currency": "USD", "value": "20.00"}]
    assert s["origins"] == {"JP": 3, "CN": 1}  # S1-S3 of lot L1; T1
    assert s["destinations"] == {"CN": 2, "US": 1}  # two imports; the 9710 export to a US GLN
    # D1: 13:41:00 -> 13:43:26 is 146 s; D2: 28 h; D3 never released.
    assert s["clearanceTime"] == {
        "buckets": {"<10min": 1, "10-60min": 0, "1-6h": 0, "6-24h": 0, "1-3d": 1, ">3d": 0, "pending": 1},
        "released": 2,
        "medianSeconds": (146 + 28 * 3600) / 2,
    }
    assert s["entriesByKind"] == {"genesis": 1, "party.register": 6, "event": 15, "credit.record": 2}


def test_statistics_match_an_independent_count(world: World) -> None:
    """Recount from the decoded entries, without the projections or ledger.queries.stats."""
    build(world)
    decoded = _decoded(world)
    roles = {st["body"]["id"]: st["body"]["roles"] for _, st in decoded if st["kind"] == "party.register"}
    by_stage: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    paid: dict[str, Decimal] = {}
    order_proc: dict[str, str] = {}
    bodies = [st["body"] for _, st in decoded if st["kind"] == "event"]
    for _, st in decoded:
        kinds[st["kind"]] += 1
        if st["kind"] != "event":
            continue
        b = st["body"]
        month = datetime.fromisoformat(b["eventTime"]).astimezone(UTC).strftime("%Y-%m")
        by_stage[(classify(b, signer_roles=roles[st["signer"]]).stage, month)] += 1
        if b.get("bizStep") == "cbec:declaring":
            for bt in b["bizTransactionList"]:
                if bt["type"] == "cbec:order":
                    order_proc[bt["bizTransaction"]] = b["cbec:customsProcedure"]
    for b in bodies:
        info = b.get("cbec:orderInfo")
        if info and info["currency"] == "CNY":
            proc = b.get("cbec:customsProcedure") or order_proc[b["bizTransactionList"][0]["bizTransaction"]]
            paid[proc] = paid.get(proc, Decimal(0)) + Decimal(info["paid"])
    s = statistics(world.store)
    assert {(st, m): n for st, months in s["eventsByStageMonth"].items() for m, n in months.items()} == dict(
        by_stage
    )
    assert s["entriesByKind"] == dict(kinds)
    assert {
        t["procedure"]: Decimal(t["valueCNY"]) for t in s["tradeByProcedure"] if t["valueCNY"] != "0.00"
    } == paid


def test_statistics_rules_on_their_own() -> None:
    assert gln_country("https://id.gs1.org/414/4901234000018") == "JP"
    assert gln_country("gln:0614141000012") == "US"
    assert gln_country("https://id.gs1.org/414/6901234000108") == "CN"
    assert gln_country("uscc:91310110666007217T") is None
    s = compute(
        [],
        [],
        [
            (
                1,
                "2026-11-01T00:00:00.000000Z",
                {
                    "cbec:customsProcedure": "9810",
                    "bizTransactionList": [{"type": "cbec:declaration", "bizTransaction": "d"}],
                },
            )
        ],
        [],
        [
            (
                2,
                "2026-11-05T00:00:00.000000Z",
                {"bizTransactionList": [{"type": "cbec:declaration", "bizTransaction": "d"}]},
            )
        ],
        [],
    )
    assert s["clearanceTime"]["buckets"][">3d"] == 1  # exactly four days
    assert s["destinations"] == {"unknown": 1}
    empty = compute([], [], [], [], [], [])
    assert empty["clearanceTime"]["medianSeconds"] is None
    assert [t["valueCNY"] for t in empty["tradeByProcedure"]] == ["0.00"] * 4


# --- the HTML report --------------------------------------------------------------------------


VOID = frozenset({"meta", "line", "br"})


class Page(HTMLParser):
    """Collects what the tests look at: the html lang, headings, th scopes, each SVG's
    title/desc and its bars, and any script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.headings: list[tuple[str, str]] = []
        self.th_scopes: list[str | None] = []
        self.svgs: dict[str, dict[str, Any]] = {}
        self.scripts = 0
        self._svg: str | None = None
        self._in: list[tuple[str, list[str]]] = []  # open tags with the text inside each

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "script":
            self.scripts += 1
        if tag == "th":
            self.th_scopes.append(a.get("scope"))
        if tag == "svg":
            self._svg = a["id"]
            self.svgs[a["id"] or ""] = {"title": "", "desc": "", "bars": []}
        elif self._svg and tag == "rect" and a.get("class") == "bar":
            self.svgs[self._svg]["bars"].append(
                (a.get("data-series"), a["data-label"], float(a["data-value"] or "nan"))
            )
        if tag not in VOID:
            self._in.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        name, parts = self._in.pop()
        assert name == tag, f"<{name}> closed by </{tag}>"
        text = "".join(parts).strip()
        if tag in ("h1", "h2", "h3"):
            self.headings.append((tag, text))
        if self._svg and tag in ("title", "desc") and self._in[-1][0] == "svg":
            self.svgs[self._svg][tag] = text
        if tag == "svg":
            self._svg = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        for _, parts in self._in:
            parts.append(data)


def _page(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def test_html_report(world: World) -> None:
    build(world)
    doc = collect(world.ledger, world.home, scope=ITEM.format(1))
    html = render_html(doc)
    page = _page(html)
    assert page.lang == "zh-CN" and page.scripts == 0
    assert "<link" not in html and "src=" not in html  # self-contained
    assert [t for t, _ in page.headings].count("h1") == 1
    h2 = [text for t, text in page.headings if t == "h2"]
    assert h2 == [
        "一、账本完整性 1. Integrity",
        "二、合规发现 2. Findings",
        "三、统计 3. Statistics",
        "四、信用 4. Credit",
        "五、产品链审计 5. Product chain audit",
    ]
    assert page.th_scopes and all(s == "col" for s in page.th_scopes)
    charts = page.svgs
    assert set(charts) == {
        "chart-findings",
        "chart-stage-month",
        "chart-trade",
        "chart-origins",
        "chart-destinations",
        "chart-clearance",
    }
    assert [(lbl, v) for _, lbl, v in charts["chart-findings"]["bars"]] == [("three_docs.missing", 2)]
    for c in charts.values():
        assert c["title"] and c["desc"]
    assert [(lbl, v) for _, lbl, v in charts["chart-trade"]["bars"]] == [
        ("9610", 100.5),
        ("1210", 316.03),
        ("9710", 0),
        ("9810", 0),
    ]
    assert [(lbl, v) for _, lbl, v in charts["chart-origins"]["bars"]] == [("JP", 3), ("CN", 1)]
    assert [(lbl, v) for _, lbl, v in charts["chart-destinations"]["bars"]] == [("CN", 2), ("US", 1)]
    assert [(lbl, v) for _, lbl, v in charts["chart-clearance"]["bars"]] == [
        ("<10min", 1),
        ("10-60min", 0),
        ("1-6h", 0),
        ("6-24h", 0),
        ("1-3d", 1),
        (">3d", 0),
    ]
    segments = {
        (series.split()[-1], month): v for series, month, v in charts["chart-stage-month"]["bars"] if series
    }
    stats = doc["statistics"]["eventsByStageMonth"]
    assert segments == {(st, m): n for st, months in stats.items() for m, n in months.items()}
    assert "316.03" in charts["chart-trade"]["desc"]
    # The credit table and the scope's entries are in the page.
    for row in doc["credit"]:
        assert row["party"] in html
    assert html.count("✔ verified") == 2 * len(doc["scope"]["entries"])
    assert "✘" not in html


def test_report_counts_findings_by_rule_and_party(world: World) -> None:
    from ledger.queries import findings as finding_list

    c = build(world)
    doc = collect(world.ledger, world.home, scope=ITEM.format(2))
    f = doc["findings"]
    # The two releases without payment and waybill: one high finding each, naming three parties.
    assert f["total"] == 2 and f["bySeverity"] == {"high": 2}
    assert [(r["rule"], r["count"], r["severity"]) for r in f["byRule"]] == [
        ("three_docs.missing", 2, "high")
    ]
    assert sorted((r["party"], r["count"]) for r in f["byParty"]) == sorted(
        (c.id(n), 2) for n in ("platform", "broker", "customs")
    )
    every = finding_list.list_findings(world.store)
    assert [x["id"] for x in f["recent"]] == [x.id for x in reversed(every)]
    # The scope of S2 touches the second release's finding only.
    s = c.seqs
    assert [(x["rule"], x["seqs"]) for x in doc["scope"]["findings"]] == [
        ("three_docs.missing", [s["order2"], s["decl2"], s["release2"]])
    ]
    html = render_html(doc)
    for x in every:
        assert escape(x.message_zh) in html and escape(x.message_en) in html
    assert "放行时缺少订单、支付单、运单或申报单" in html  # the rule's name, from the engine


class Markup(HTMLParser):
    """Every element a browser would build, and all the text it would show."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attrs += [name for name, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_NAME_EN = '"><img src=x onerror=alert(1)>'
HOSTILE_ORDER = "https://mall.example.cn/orders/<b>O9</b><img/src=x/onerror=alert(2)>"
HOSTILE_REASON = "</td></tr></table><iframe src=javascript:alert(3)>"


def test_report_shows_what_parties_signed_as_text(world: World) -> None:
    """A party's name, an order number inside a finding's message and a regulator's credit
    reason are what parties signed: the report shows each as text, never as markup (the
    templates escape every value; api/charts.py escapes what it draws)."""
    from ledger.core.errors import BatchRejected
    from ledger.core.keys import PartyKey
    from ledger.core.statements import sign_one
    from tests.chain import _order
    from tests.support import new_uscc

    c = build(world)
    party = new_uscc()
    key = PartyKey.generate(party)

    def register(name: str) -> dict[str, Any]:
        body = {
            "id": party,
            "name": name,
            "nameEn": HOSTILE_NAME_EN,
            "roles": ["platform"],
            "publicKey": key.public_key_b64,
        }
        return sign_one(
            kind="party.register",
            signer=party,
            key=key,
            body=body,
            cosigners=[(world.registrar, world.registrar_key)],
        )

    # A leading NUL (the old raw-HTML marker of the report's cells) never reaches the ledger.
    size = world.ledger.size()
    with pytest.raises(BatchRejected, match="NUL"):
        world.ledger.append(register("\0" + HOSTILE_NAME))
    assert world.ledger.size() == size
    world.ledger.append(register(HOSTILE_NAME))
    c.parties["evil"] = (party, key)
    # Over the single-transaction limit: a tax.single_limit finding that quotes the order.
    c.add(
        "order9",
        "evil",
        {
            **_order(9, "2025-11-27T13:02:11+08:00", ITEM.format(9), "6000.00", procedure="1210"),
            "bizTransactionList": [{"type": "cbec:order", "bizTransaction": HOSTILE_ORDER}],
        },
    )
    c.add(
        "record9",
        "regulator",
        {"party": party, "item": ITEM.format(9), "points": -5, "reason": HOSTILE_REASON},
        kind="credit.record",
    )
    doc = collect(world.ledger, world.home, scope=ITEM.format(9))
    # The hostile text is in the document: in the finding's message, the party's row, the credit.
    limit = [f for f in doc["findings"]["recent"] if f["rule"] == "tax.single_limit"]
    assert limit and HOSTILE_ORDER in limit[0]["message"]["en"]
    assert {"party": party, "name": HOSTILE_NAME, "count": 1} in doc["findings"]["byParty"]
    row = next(r for r in doc["credit"] if r["party"] == party)
    assert row["name"] == HOSTILE_NAME
    assert any(HOSTILE_REASON in i["reason"]["en"] for i in row["explained"])
    assert any(HOSTILE_ORDER in f["message"]["en"] for f in doc["scope"]["findings"])

    html = render_html(doc)
    page = Markup()
    page.feed(html)
    page.close()
    for tag in ("script", "img", "b", "iframe"):
        assert page.tags[tag] == 0, tag
    assert "onerror" not in page.attrs
    shown = "".join(page.text)
    assert shown.count(HOSTILE_NAME) >= 3  # by party, the credit table, the credit details
    assert shown.count(HOSTILE_ORDER) >= 3  # the finding, in both languages, and the scope's
    assert HOSTILE_REASON in shown
    # The same sections on the regulator console, and the statistics page's charts.
    from api.report import report_sections, statistics_html

    console = Markup()
    console.feed(str(report_sections(doc)) + str(statistics_html(doc["statistics"])))
    console.close()
    assert not {"script", "img", "b", "iframe"} & set(console.tags)
    assert HOSTILE_NAME in "".join(console.text)


# --- the scope audit --------------------------------------------------------------------------


def _check_scope_independently(doc: dict[str, Any]) -> Checkpoint:
    cp = Checkpoint.parse(
        NoteVerifier.from_vkey(doc["checkpoint"]["logKey"]).verify(doc["checkpoint"]["note"])
    )
    for e in doc["entries"]:
        raw = base64.b64decode(e["entry"])
        assert orjson.loads(raw)["seq"] == e["seq"]
        proof = e["inclusionProof"]
        assert proof["treeSize"] == cp.size and proof["leafIndex"] == e["seq"]
        merkle.verify_inclusion(
            leaf=merkle.leaf_hash(raw),
            index=e["seq"],
            size=cp.size,
            proof=[bytes.fromhex(h) for h in proof["hashes"]],
            root=cp.root,
        )
    return cp


def test_scope_proofs_verify_and_tampering_fails(world: World) -> None:
    c = build(world)
    doc = scope_audit(world.ledger, ITEM.format(1))
    s = c.seqs
    # S1's own events, and its lot's recall (through the lot edge).
    assert [e["seq"] for e in doc["entries"]] == sorted(
        [s["commission_p"], s["order1"], s["decl1"], s["release1"], s["eval1"], s["recall_p"]]
    )
    assert [i["code"] for i in doc["upstream"]] == [LOT_P]
    assert doc["ok"] and doc["problems"] == []
    assert all(e["proofVerified"] and e["signaturesVerified"] for e in doc["entries"])
    cp = _check_scope_independently(doc)
    assert cp.size == world.ledger.size()
    # One changed proof hash, or one changed entry byte, and the proof fails.
    e = doc["entries"][2]
    raw = base64.b64decode(e["entry"])
    hashes = [bytes.fromhex(h) for h in e["inclusionProof"]["hashes"]]
    bad = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]
    with pytest.raises(ProofError):
        merkle.verify_inclusion(
            leaf=merkle.leaf_hash(raw), index=e["seq"], size=cp.size, proof=bad, root=cp.root
        )
    flipped = raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:]
    with pytest.raises(ProofError):
        merkle.verify_inclusion(
            leaf=merkle.leaf_hash(flipped), index=e["seq"], size=cp.size, proof=hashes, root=cp.root
        )
    # The other product chain does not reach S1's entries.
    other = scope_audit(world.ledger, ITEM_Q)
    assert {x["seq"] for x in other["entries"]} == {s["commission_q"], s["decl3"], s["recall_q"]}


def test_scope_reports_an_entry_changed_in_the_database(world: World) -> None:
    c = build(world)
    seq = c.seqs["decl1"]
    with world.store.engine.connect() as conn:
        raw = conn.exec_driver_sql(f"SELECT entry FROM entries WHERE seq = {seq}").scalar_one()
    world.store.drop_append_only()
    world.store.raw(
        "UPDATE entries SET entry = :e WHERE seq = :s",
        {"e": bytes(raw).replace(b"13:41:00", b"13:42:00"), "s": seq},
    )
    doc = scope_audit(world.ledger, ITEM.format(1))
    assert not doc["ok"]
    bad = [e for e in doc["entries"] if e["problems"]]
    assert [e["seq"] for e in bad] == [seq]
    assert not bad[0]["proofVerified"] and not bad[0]["signaturesVerified"]
    assert any(p.startswith(f"seq {seq}: inclusion") for p in doc["problems"])


# --- the command ------------------------------------------------------------------------------


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_audit_report_and_scope(world: World, tmp_path: Path) -> None:
    build(world)
    out = tmp_path / "audit.html"
    r = _cli(world, "audit", "--report", str(out), "--scope", ITEM.format(1), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["integrity"]["ok"] and doc["scope"]["ok"]
    _check_scope_independently(doc["scope"])
    page = _page(out.read_text(encoding="utf-8"))
    assert len(page.svgs) == 6 and page.lang == "zh-CN"
    assert doc["statistics"] == statistics(world.store)
    short = _cli(world, "audit", "--scope", ITEM_Q)
    assert short.returncode == 0, short.stderr
    assert json.loads(short.stdout)["scopeEntries"] == 3
    stats = _cli(world, "stats")
    assert stats.returncode == 0 and json.loads(stats.stdout) == statistics(world.store)
    bad = _cli(world, "audit", "--scope", "not a code")
    assert bad.returncode == 2 and bad.stderr.startswith("error [")
    # A changed entry: the report is still written, and the audit exits 1.
    world.store.drop_append_only()
    world.store.raw("UPDATE entries SET entry = :e WHERE seq = 3", {"e": b'{"v":1}'})
    r = _cli(world, "audit", "--report", str(out))
    assert r.returncode == 1
    assert json.loads(r.stdout)["ok"] is False
    r = _cli(world, "audit", "--report", str(out), "--json")
    problems = json.loads(r.stdout)["integrity"]["problems"]
    assert r.returncode == 1 and problems and problems[0]["seq"] == 3
    html = out.read_text(encoding="utf-8")
    assert all(escape(p["problem"]) in html for p in problems)
    assert "发现问题" in html


def test_witnesses_in_the_report(world: World, tmp_path: Path) -> None:
    from ledger.log.witnesses import WitnessConfig, Witnessing, gather
    from tests.support import asgi_post
    from tests.test_witnessing import _witness

    build(world)
    doc = collect(world.ledger, Home(world.home.path))
    assert doc["integrity"]["witnesses"] == {"configured": 0, "quorum": 0, "cosigned": [], "witnessed": None}
    assert doc["integrity"]["latestCheckpoint"] == world.ledger.latest_checkpoint()
    # Three witnesses configured, quorum 2, one of them down: 2 of 3 cosigned.
    ws = [_witness(world, tmp_path, n) for n in (1, 2, 3)]
    cfg = world.home.config()
    cfg.update({"witnesses": [{"url": url, "key": c.vkey()} for url, c, _ in ws], "quorum": 2})
    world.home.save_config(cfg)
    res = gather(
        world.ledger,
        Witnessing(tuple(WitnessConfig(url, c.vkey()) for url, c, _ in ws), quorum=2),
        asgi_post({u: a for u, _, a in ws[:2]}),
    )
    assert res.witnessed
    doc = collect(world.ledger, Home(world.home.path))
    assert doc["integrity"]["witnesses"] == {
        "configured": 3,
        "quorum": 2,
        "witnessed": True,
        "cosigned": ["w1.example/witness", "w2.example/witness"],
    }
    html = render_html(doc)
    assert "2 / 3 (quorum 2)" in html and "已见证" in html


# --- GraphQL, regulators only ------------------------------------------------------------------

REGULATOR_Q = """query($p: String!, $s: String) {
  statistics { tradeByProcedure { procedure valueCNY orders declarations }
                clearanceTime { buckets { key count } released medianSeconds }
                origins { key count } eventsByStageMonth { stage month count } }
  credit(party: $p) { party name score items { source seqs points reason { zh en } } }
  audit(scope: $s) { integrity { ok entries problems { seq problem } }
    scope { code ok problems treeSize checkpointNote
            entries { seq entry leafHash proofVerified signaturesVerified
                      inclusionProof { leafIndex treeSize hashes } } } }
}"""


@pytest.fixture
def api(world: World) -> Any:
    from api.app import create_app
    from api.settings import Settings
    from tests.test_auth import Api

    app = create_app(Settings(db_url=world.url, home=world.home.path))
    yield Api(app)
    app.state.store.dispose()


def test_graphql_regulator_fields(world: World, api: Any) -> None:
    from ledger.core.tokens import make_token
    from ledger.queries.credit import credit
    from tests.support import ORIGIN

    c = build(world)
    regulator, rkey = c.parties["regulator"]
    platform, pkey = c.parties["platform"]
    variables = {"p": c.id("P"), "s": ITEM.format(1)}
    # Nobody but a regulator: not the public, not a party, field by field.
    for token in (None, make_token(pkey, signer=platform, audience=ORIGIN)):
        for field in (
            "statistics { released: entriesByKind { key } }",
            'credit(party: "' + c.id("P") + '") { score }',
            "audit { scope { ok } }",
            "findings { id }",
        ):
            r = api.gql("{ " + field + " }", token)
            errs = r.json()["errors"]
            assert errs[0]["extensions"]["code"] == "regulator_only", errs
            assert "regulator" in errs[0]["message"]
    token = make_token(rkey, signer=regulator, audience=ORIGIN)
    body = api.gql(REGULATOR_Q, token, **variables).json()
    assert "errors" not in body, body["errors"]
    d = body["data"]
    s = statistics(world.store)
    assert [(t["procedure"], t["valueCNY"]) for t in d["statistics"]["tradeByProcedure"]] == [
        (t["procedure"], t["valueCNY"]) for t in s["tradeByProcedure"]
    ]
    assert {b["key"]: b["count"] for b in d["statistics"]["clearanceTime"]["buckets"]} == s["clearanceTime"][
        "buckets"
    ]
    assert {o["key"]: o["count"] for o in d["statistics"]["origins"]} == {"JP": 3, "CN": 1}
    want = credit(world.store, c.id("P"))
    assert d["credit"]["score"] == want["score"]
    assert [(i["source"], i["points"]) for i in d["credit"]["items"]] == [
        (i["source"], i["points"]) for i in want["items"]
    ]
    assert d["audit"]["integrity"]["ok"] and d["audit"]["integrity"]["problems"] == []
    sc = d["audit"]["scope"]
    assert sc["ok"] and sc["treeSize"] == world.ledger.size()
    assert all(e["proofVerified"] and e["signaturesVerified"] for e in sc["entries"])
    _check_scope_independently(
        {
            "checkpoint": {"note": sc["checkpointNote"], "logKey": world.ledger.log_verifier().vkey()},
            "entries": sc["entries"],
        }
    )
    from ledger.queries import findings as finding_list

    f = api.gql(
        "query($p: String!) { findings(filter: {party: $p, limit: 5}) { id seq rule "
        "severity parties message { zh en } } }",
        token,
        p=c.id("customs"),
    ).json()
    assert "errors" not in f, f
    want = finding_list.list_findings(world.store, party=c.id("customs"), limit=5)
    assert [(x["id"], x["seq"], x["rule"], x["message"]["en"]) for x in f["data"]["findings"]] == [
        (x.id, x.seq, x.rule, x.message_en) for x in want
    ] and len(want) == 2
    bad = api.gql('{ findings(filter: {rule: "no.such"}) { id } }', token).json()
    assert bad["errors"][0]["extensions"]["code"] == "malformed"
