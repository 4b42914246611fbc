"""The demo ledger: built through the real append path, audited, and checked against the
facts it claims — each one recomputed here from the entries themselves, with check
digits and sums written independently of the code that made them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core.errors import LedgerError
from ledger.core.private import Viewer
from ledger.core.registry import ROLES
from ledger.core.tokens import check_token
from ledger.log.audit import audit
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.queries.stats import statistics
from ledger.queries.trace import recall_impact
from ledger.store.db import Store
from tests.conftest import fresh_schema_url
from tests.support import Client, World
from tools.demo import Built, build, summary

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://trace.example"

# --- check characters, written again here from the standards ----------------------------------

_USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_W = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_ok(code: str) -> bool:
    if len(code) != 18 or any(c not in _USCC for c in code) or not code[2:8].isdigit():
        return False
    total = sum(_USCC.index(c) * w for c, w in zip(code[:17], _USCC_W, strict=True))
    # GB 11714: positions 9-17 are an organisation code with its own check character.
    org = sum(int(c, 36) * w for c, w in zip(code[8:16], (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    inner = {10: "X", 11: "0"}.get(11 - org % 11, str(11 - org % 11))
    return _USCC[(31 - total % 31) % 31] == code[17] and inner == code[16]


def gs1_ok(digits: str) -> bool:
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def test_check_characters_known_answers() -> None:
    assert uscc_ok("91310110666007217T") and uscc_ok("91350100M000100Y43")
    assert not uscc_ok("91310110666007217U")
    assert not uscc_ok("91737249R62AMHU005")  # the outer check passes, the inner one fails
    assert gs1_ok("09506000134352") and gs1_ok("4901234567894") and not gs1_ok("09506000134353")


# --- one demo per database ---------------------------------------------------------------------


@dataclass
class Demo:
    store: Store
    ledger: Ledger
    home: Home
    url: str
    built: Built
    doc: dict[str, Any]
    scale: float
    statements: list[tuple[int, dict[str, Any]]]  # (seq, statement), every entry

    def events(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        for seq, st in self.statements:
            if st["kind"] == "event":
                yield seq, st["signer"], st["body"]


def _pg_url(request: pytest.FixtureRequest) -> str:
    return fresh_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("sqlite", 1.0), id="sqlite-full"),
        pytest.param(("postgres", 0.3), id="postgres-0.3", marks=pytest.mark.postgres),
    ],
)
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    kind, scale = request.param
    tmp = tmp_path_factory.mktemp(f"demo-{kind}")
    url = f"sqlite:///{tmp}/demo.db" if kind == "sqlite" else _pg_url(request)
    home = Home(tmp / "home")
    store = Store(url)
    built = build(store, home, scale=scale)
    led = Ledger(store, note_signer=home.note_signer_if_any())
    doc = summary(built, base_url=BASE, elapsed=0.0, db=url)
    statements = [(e.seq, e.decoded()["envelope"]["statement"]) for e in led.entries(range(led.size()))]
    yield Demo(store, led, home, url, built, doc, scale, statements)
    store.dispose()


def test_counts_parties_and_identifiers(demo: Demo) -> None:
    size = demo.ledger.size()
    assert demo.doc["entries"] == demo.doc["checkpointSize"] == size == len(demo.statements)
    assert demo.built.appended == size - 1  # everything but the genesis entry
    if demo.scale >= 1:
        assert size >= 5000
    reg = demo.ledger.registry_view()
    assert demo.doc["parties"] == len(reg.parties) >= 20
    for pid in reg.parties:
        scheme, _, value = pid.partition(":")
        assert (scheme == "uscc" and uscc_ok(value)) or (
            scheme == "gln" and len(value) == 13 and gs1_ok(value)
        ), pid
    assert {r for p in reg.parties.values() for r in p.roles} == set(ROLES)
    names = " ".join(p.name for p in reg.parties.values())
    assert re.search("[\uac00-\ud7af]", names) and re.search("[\u3040-\u30ff]", names)  # Hangul, kana
    assert "GmbH" in names and "唐山" in names and "滦南" in names
    # Every GS1 key the events name carries a right check digit, and each brand keeps its
    # own company prefix for its products.
    keys = set()
    for _, _, body in demo.events():
        keys.update(re.findall(r"https://id\.gs1\.org/(01|00|414)/(\d+)", json.dumps(body)))
    assert keys and all(gs1_ok(k) for _, k in keys)
    prefixes = {
        (signer, k[1:8])
        for _, signer, body in demo.events()
        if body.get("bizStep") == "commissioning"
        for k in re.findall(r"/01/(\d{14})", json.dumps(body))
    }
    by_signer: dict[str, set[str]] = defaultdict(set)
    for signer, prefix in prefixes:
        by_signer[signer].add(prefix)
    assert len(by_signer) == 4 and all(len(v) == 1 for v in by_signer.values())


def test_audits_clean(demo: Demo) -> None:
    rep = audit(demo.store)
    assert rep.ok, [p.line() for p in rep.problems[:5]]
    assert rep.entries == demo.ledger.size()


def test_times_are_in_2026_and_signers_are_registered(demo: Demo) -> None:
    parties = demo.ledger.registry_view().parties
    for _, signer, body in demo.events():
        assert body["eventTime"].startswith("2026-")
        assert signer in parties


def test_the_readmes_claims_about_the_data_hold(demo: Demo) -> None:
    # README, "The demo": the span of event times it states, and a destination for every
    # declaration (the 9710 declaration named none, and was counted as "unknown").
    readme = (ROOT / "README.md").read_text()
    assert "at the default scale the events run from\n  20 February to 10 November 2026" in readme
    times = sorted(datetime.fromisoformat(b["eventTime"]).astimezone(UTC) for _, _, b in demo.events())
    assert times[0].year == times[-1].year == 2026
    if demo.scale == 1:
        assert times[0].date().isoformat() == "2026-02-20"
        assert times[-1].astimezone(timezone(timedelta(hours=8))).date().isoformat() == "2026-11-10"
    issued = {seq: st["issued"] for seq, st in demo.statements if st["kind"] == "event"}
    assert all(issued[seq] == b["eventTime"] for seq, _, b in demo.events())
    dest = statistics(demo.store)["destinations"]
    assert "unknown" not in dest and {"CN", "DE", "JP"} <= set(dest), dest
    declared = {
        p: sum(
            1
            for _, _, b in demo.events()
            if b.get("bizStep") == "cbec:declaring" and b.get("cbec:customsProcedure") == p
        )
        for p in ("9710", "9810")
    }
    assert (dest["DE"], dest["JP"]) == (declared["9710"], declared["9810"])
    assert "the 9710 export's as `DE`" in readme


def _journey(demo: Demo, url: str) -> list[dict[str, Any]]:
    assert url.startswith(BASE + "/01/")
    app = create_app(Settings(db_url=demo.url, home=demo.home.path, base_url=BASE))
    try:
        r = Client(app).get(
            url.removeprefix(BASE),
            params={"linkType": "gs1:traceability"},
            headers={"Accept": "application/json"},
        )
    finally:
        app.state.store.dispose()
    assert r.status_code == 200, r.text
    steps: list[dict[str, Any]] = r.json()["journey"]
    return steps


def _body(demo: Demo, seq: int) -> dict[str, Any]:
    st = dict(demo.statements)[seq]
    body: dict[str, Any] = st["body"]
    return body


def test_formula_page_is_a_1210_journey(demo: Demo) -> None:
    steps = _journey(demo, demo.doc["urls"]["formula"])
    stages = {s["stage"] for s in steps}
    assert {"production", "logistics", "clearance", "transaction", "payment"} <= stages
    clearance = [_body(demo, s["seq"]) for s in steps if s["stage"] == "clearance"]
    assert {b["bizStep"] for b in clearance} >= {"cbec:declaring", "cbec:releasing"}
    assert {b["cbec:customsProcedure"] for b in clearance} == {"1210"}
    made = [_body(demo, s["seq"]) for s in steps if s["activity"] == "commissioning"]
    ilmd = made[0]["ilmd"]
    assert ilmd["cbvmda:countryOfOrigin"] == "JP" and ilmd["cbvmda:lotNumber"]
    assert {n["@language"] for n in ilmd["gs1:productName"]} == {"zh", "en"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ilmd["cbvmda:itemExpirationDate"])
    times = [s["eventTime"] for s in steps]
    assert len(times) >= 15


def test_cosmetics_page_is_a_9610_journey(demo: Demo) -> None:
    steps = _journey(demo, demo.doc["urls"]["cosmetics"])
    stages = {s["stage"] for s in steps}
    assert {"production", "transaction", "payment", "clearance", "logistics"} <= stages
    clearance = [_body(demo, s["seq"]) for s in steps if s["stage"] == "clearance"]
    assert {b["cbec:customsProcedure"] for b in clearance} == {"9610"}
    assert all(b["cbec:countryOfOrigin"] == "KR" for b in clearance if "cbec:countryOfOrigin" in b)
    made = [_body(demo, s["seq"]) for s in steps if s["activity"] == "commissioning"]
    assert made[0]["ilmd"]["cbvmda:countryOfOrigin"] == "KR"


def test_recalled_page_shows_the_recall(demo: Demo) -> None:
    url = demo.doc["urls"]["recalled"]
    steps = _journey(demo, url)
    assert "recall" in {s["stage"] for s in steps}
    assert "transaction" in {s["stage"] for s in steps}  # it was sold before the recall
    app = create_app(Settings(db_url=demo.url, home=demo.home.path, base_url=BASE))
    try:
        r = Client(app).get(
            url.removeprefix(BASE),
            params={"linkType": "gs1:recallStatus"},
            headers={"Accept": "application/json"},
        )
    finally:
        app.state.store.dispose()
    assert r.status_code == 200 and r.json()["recalled"] is True


def test_every_procedure_code_is_declared_and_released(demo: Demo) -> None:
    declared: dict[str, set[str]] = defaultdict(set)  # procedure -> declarations
    released: set[str] = set()
    for _, _, body in demo.events():
        decls = {
            bt["bizTransaction"]
            for bt in body.get("bizTransactionList", [])
            if bt["type"] == "cbec:declaration"
        }
        if body.get("bizStep") == "cbec:declaring":
            declared[body["cbec:customsProcedure"]].update(decls)
        elif body.get("bizStep") == "cbec:releasing":
            released.update(decls)
    assert set(declared) == {"1210", "9610", "9710", "9810"}
    assert all(d <= released for d in declared.values())


def _page_text(demo: Demo, url: str, lang: str) -> str:
    """The visible text of a page, leaving out what is marked as another language than
    the page's (the language switch, an official term given in both)."""
    app = create_app(Settings(db_url=demo.url, home=demo.home.path, base_url=BASE))
    try:
        html = (
            Client(app)
            .get(url.removeprefix(BASE), params={"lang": lang}, headers={"Accept": "text/html"})
            .text
        )
    finally:
        app.state.store.dispose()
    body = html.split("<body>", 1)[1]
    mine = "zh-CN" if lang == "zh" else "en"
    body = re.sub(rf'<(\w+)[^>]*\blang="(?!{mine}")[^"]*"[^>]*>.*?</\1>', " ", body)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


CJK = re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def test_every_place_and_product_is_described_by_its_owner(demo: Demo) -> None:
    """Issue 12: master data for every place the demo's events name and every product it
    makes, each signed by the holder of the GS1 company prefix of its GLN or GTIN."""
    from ledger.epcis.masterdata import describe
    from ledger.store import masterdatadb

    places, products = set(), set()
    for _, _, body in demo.events():
        for where in ("readPoint", "bizLocation"):
            if isinstance(body.get(where), dict):
                places.add(body[where]["id"])
        if body.get("bizStep") == "commissioning":
            products |= {f"https://id.gs1.org/01/{g}" for g in re.findall(r"/01/(\d{14})", json.dumps(body))}
    with demo.store.reading() as conn:
        latest = masterdatadb.latest(conn, places | products)
    assert set(latest) == places | products
    if demo.scale >= 1:  # every place and product of the scenario is in use
        assert len(places) == 14 and len(products) == 10
    parties = demo.ledger.registry_view().parties
    names = {}
    for code, now in latest.items():
        key = code.rsplit("/", 1)[1]
        key = key if "/414/" in code else key[1:]
        assert any(key.startswith(p) for p in parties[now.row.signer].gs1_prefixes), code
        md = describe(dict(demo.statements)[now.row.seq]["body"])
        assert set(md.names) == {"zh", "en"}, code
        names[code] = md
    english = " ".join(m.names["en"] for m in names.values())
    for place in (
        "Obihiro",
        "Tomakomai",
        "Caofeidian Port",
        "Caofeidian Comprehensive Bonded Zone",
        "Incheon",
        "Jingtang",
        "Erenhot",
        "Duisburg",
        "Osaka",
    ):
        assert place in english, place
    assert all(m.country for m in names.values())


def test_pages_name_every_place_in_both_languages(demo: Demo) -> None:
    """Issue 15: the demo's pages name places and companies, never a bare GLN, and the
    English page is English (but for what is marked as Chinese)."""
    for which, place_zh, place_en in (
        ("formula", "曹妃甸综合保税区", "Caofeidian Comprehensive Bonded Zone"),
        ("cosmetics", "仁川", "Incheon international express hub"),
        ("recalled", "带广工厂", "Obihiro Plant"),
    ):
        url = demo.doc["urls"][which]
        zh, en = _page_text(demo, url, "zh"), _page_text(demo, url, "en")
        assert "GLN" not in zh and "GLN" not in en, which
        assert place_zh in zh and place_en in en, which
        assert "(UTC+08:00)" in zh and "(UTC+08:00)" in en
        assert not CJK.search(en), (which, CJK.findall(en)[:20])
    recalled = _page_text(demo, demo.doc["urls"]["recalled"], "en")
    assert "vitamin D below the labelled value" in recalled and "维生素" not in recalled
    assert "(UTC+09:00)" in recalled  # the factory's events in Japan's offset


def _lot_items(demo: Demo, lot: str) -> set[str]:
    return {
        e
        for _, _, b in demo.events()
        if b.get("bizStep") == "commissioning" and b.get("ilmd", {}).get("cbvmda:lotNumber") == lot
        for e in b.get("epcList", [])
    }


def test_recalled_lot_reaches_items_already_sold(demo: Demo) -> None:
    lot_code = demo.doc["planted"]["recalledLot"]
    lot = lot_code.rsplit("/", 1)[1]
    recalls = [(signer, b) for _, signer, b in demo.events() if b.get("bizStep") == "cbec:recalling"]
    assert len(recalls) == 1
    signer, body = recalls[0]
    assert body["cbec:recall"]["scope"] == [lot_code]
    roles = demo.ledger.registry_view().parties[signer].roles
    assert {"producer", "brand_owner"} & set(roles)
    # Independently: the lot's tins that some consumer order named.
    items = _lot_items(demo, lot)
    ordered = {e for _, _, b in demo.events() if "cbec:orderInfo" in b for e in b["epcList"]}
    sold = items & ordered
    assert sold and items - sold  # some sold before the recall, some still in the warehouse
    impact = recall_impact(demo.store, lot_code)
    affected = {a["code"]: a for a in impact["affected"]}
    assert items <= set(affected)
    assert {c for c, a in affected.items() if a["sold"]} == sold
    assert impact["counts"]["sold"] == len(sold)
    recalled_item = demo.doc["urls"]["recalled"].replace(BASE, "https://id.gs1.org")
    assert affected[recalled_item]["sold"] is True


def _documents(demo: Demo) -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, list[Any]]]:
    orders: dict[str, Any] = {}
    payments: dict[str, list[Any]] = defaultdict(list)
    waybills: dict[str, list[Any]] = defaultdict(list)
    for _, _, b in demo.events():
        cited = [bt["bizTransaction"] for bt in b.get("bizTransactionList", []) if bt["type"] == "cbec:order"]
        if "cbec:orderInfo" in b:
            orders[cited[0]] = (b["cbec:orderInfo"], b["eventTime"])
        if "cbec:paymentInfo" in b:
            payments[cited[0]].append(b["cbec:paymentInfo"])
        if "cbec:waybillInfo" in b:
            waybills[cited[0]].append(b["cbec:waybillInfo"])
    return orders, payments, waybills


def _released_orders(demo: Demo) -> set[str]:
    decl_of: dict[str, str] = {}
    released: set[str] = set()
    for _, _, b in demo.events():
        bts = {bt["type"]: bt["bizTransaction"] for bt in b.get("bizTransactionList", [])}
        if b.get("bizStep") == "cbec:declaring" and "cbec:order" in bts:
            decl_of[bts["cbec:declaration"]] = bts["cbec:order"]
        if b.get("bizStep") == "cbec:releasing":
            released.add(bts["cbec:declaration"])
    return {o for d, o in decl_of.items() if d in released}


def test_exactly_the_planted_order_disagrees_and_was_released(demo: Demo) -> None:
    orders, payments, waybills = _documents(demo)
    assert len(orders) > 30
    disagree = set()
    for uri, (o, _) in orders.items():
        assert len(payments[uri]) == 1 and len(waybills[uri]) == 1, uri
        p, w = payments[uri][0], waybills[uri][0]
        total = Decimal(o["goods"]) + Decimal(o["freight"]) + Decimal(o["tax"]) - Decimal(o["discount"])
        if (
            Decimal(p["paid"]) != Decimal(o["paid"])
            or p["buyerIdHash"] != o["buyerIdHash"]
            or Decimal(w["freight"]) != Decimal(o["freight"])
            or total != Decimal(o["paid"])
        ):
            disagree.add(uri)
    planted = demo.doc["planted"]["mismatchedOrder"]
    assert disagree == {planted}
    o, p, w = orders[planted][0], payments[planted][0], waybills[planted][0]
    assert abs(Decimal(p["paid"]) - Decimal(o["paid"])) > Decimal("0.05") * Decimal(o["paid"])
    assert p["buyerIdHash"] != o["buyerIdHash"]
    assert Decimal(w["freight"]) != Decimal(o["freight"])
    assert planted in _released_orders(demo)


def test_exactly_the_planted_buyer_is_over_the_annual_limit(demo: Demo) -> None:
    orders, _, _ = _documents(demo)
    yearly: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    per_buyer: dict[str, list[str]] = defaultdict(list)
    for uri, (o, when) in orders.items():
        assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", o["buyerIdHash"])
        yearly[(o["buyerIdHash"], when[:4])] += Decimal(o["paid"])
        per_buyer[o["buyerIdHash"]].append(uri)
    over = {buyer for (buyer, _), total in yearly.items() if total > Decimal("26000")}
    planted = demo.doc["planted"]["overLimitBuyer"]
    assert over == {planted}
    assert all(Decimal(orders[u][0]["paid"]) <= Decimal("5000") for u in per_buyer[planted])
    assert set(per_buyer[planted]) <= _released_orders(demo)


def test_findings_engine_flags_the_planted_order_and_buyer(demo: Demo) -> None:
    """The findings the append path raised over the demo: the planted order's three
    documents (disagreeing, and released anyway) and the planted buyer over the annual
    limit. No event lies in the future, every HS code is on the positive list the demo's
    regulator signed, and the bulk entry into the bonded zone is not a retail release."""
    from ledger.queries.findings import list_findings

    found = list_findings(demo.store)
    planted = demo.doc["planted"]
    by_rule: dict[str, list[Any]] = defaultdict(list)
    for f in found:
        by_rule[f.rule].append(f)
    assert {f.details["order"] for f in by_rule["three_docs.mismatch"]} == {planted["mismatchedOrder"]}
    assert [f.details.get("order") for f in by_rule["three_docs.release_mismatch"]] == [
        planted["mismatchedOrder"]
    ]
    annual = by_rule["tax.annual_limit"]
    assert annual and all(f.details["buyerIdHash"] == planted["overLimitBuyer"] for f in annual)
    for rule in (
        "positive_list.missing",
        "order.future_time",
        "three_docs.missing",
        "order.receive_without_ship",
        "tax.single_limit",
    ):
        assert rule not in by_rule, (rule, by_rule.get(rule, [])[:1])
    # What else the scenario holds is named here, so a new kind of finding fails this test.
    assert (
        set(by_rule)
        - {"three_docs.mismatch", "three_docs.release_mismatch", "tax.annual_limit", "order.after_recall"}
        == set()
    ), sorted(by_rule)


def test_consumers_are_private(demo: Demo) -> None:
    """Names, phones and addresses sit in private blobs; no entry holds any of them."""
    people: set[str] = set()
    committed = [(seq, st) for seq, st in demo.statements if "private" in st]
    assert len(committed) > 100
    for seq, _ in committed[:: max(1, len(committed) // 60)]:
        data = demo.ledger.private_data(seq, Viewer("regulator"))["data"]
        person = next(iter(data.values()))
        people.update(v for k, v in person.items() if k in ("name", "phone", "address"))
    assert people
    for _, st in demo.statements:
        text = json.dumps(st, ensure_ascii=False)
        for value in people:
            if len(value) >= 3:  # a two-character name could be a word in a review
                assert value not in text


def test_regulator_token_verifies(demo: Demo) -> None:
    reg = demo.ledger.registry_view()
    claims = check_token(demo.doc["regulatorToken"], reg, audience=reg.origin or "", seq=demo.ledger.size())
    assert claims.sub == demo.doc["regulator"]["id"]
    assert reg.parties[claims.sub].roles == ("regulator",)
    assert 0 < claims.exp - time.time() <= 24 * 3600


# --- re-runs, refusals, the command -----------------------------------------------------------


def _statements(store: Store) -> list[str]:
    """Every statement after the genesis entry (which names this home's own keys)."""
    led = Ledger(store)
    return [
        json.dumps(e.decoded()["envelope"]["statement"], sort_keys=True)
        for e in led.entries(range(1, led.size()))
    ]


def test_rerun_appends_nothing_and_another_home_builds_the_same(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    try:
        home = Home(tmp_path / "home")
        first = build(store, home, scale=0.05)
        again = build(store, home, scale=0.05)
        assert first.appended > 0 and again.appended == 0 and again.entries == first.entries
        assert again.planted == first.planted
        other = Store(f"sqlite:///{tmp_path}/other.db")
        try:
            build(other, Home(tmp_path / "home2"), scale=0.05)
            assert _statements(other) == _statements(store)
        finally:
            other.dispose()
        with pytest.raises(LedgerError) as e:
            build(store, home, scale=0.1)
        assert e.value.code == "not_demo_ledger" and "--scale" in e.value.message
        assert Ledger(store).size() == first.entries
    finally:
        store.dispose()


def test_refuses_a_ledger_that_is_not_the_demo(world: World) -> None:
    world.register(["producer"])
    size = world.ledger.size()
    with pytest.raises(LedgerError) as e:
        build(world.store, world.home, scale=0.05)
    assert e.value.code == "not_demo_ledger"
    assert "SUYUAN_DB" in e.value.message
    assert world.ledger.size() == size


def test_refuses_a_scale_out_of_range(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/demo.db")
    try:
        for scale in (0, -1, 21, float("nan")):
            with pytest.raises(LedgerError) as e:
                build(store, Home(tmp_path / "home"), scale=scale)
            assert e.value.code == "bad_scale"
        assert not store.is_initialised()
    finally:
        store.dispose()


def test_suyuan_demo_serve(tmp_path: Path, port: int) -> None:
    env = {**os.environ, "SUYUAN_DB": f"sqlite:///{tmp_path}/demo.db", "SUYUAN_HOME": str(tmp_path / "home")}
    env.pop("SUYUAN_BASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "demo", "--scale", "0.05", "--serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line == "}\n":
                break
        doc = json.loads("".join(lines))
        assert set(doc) >= {
            "entries",
            "parties",
            "checkpointSize",
            "elapsedSeconds",
            "urls",
            "regulatorToken",
        }
        url = doc["urls"]["formula"]
        assert url.startswith(f"http://127.0.0.1:{port}/01/")
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(
                    url,
                    headers={"Accept": "application/json"},
                    params={"linkType": "gs1:traceability"},
                    timeout=5,
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read() if proc.stderr else "") from None
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["journey"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_suyuan_demo_serve_on_a_busy_port_fails_first(tmp_path: Path) -> None:
    # Before: it built the ledger, printed "serving … open the urls above", then failed.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "SUYUAN_DB": f"sqlite:///{tmp_path}/demo.db",
            "SUYUAN_HOME": str(tmp_path / "home"),
        }
        r = subprocess.run(
            [sys.executable, "-m", "tools.cli", "demo", "--scale", "0.05", "--serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        f"error [port_in_use]: cannot serve on 127.0.0.1:{port}: the port is in "
        "use; stop what listens there or give another --port (nothing was "
        "built)\n"
    )
    assert not (tmp_path / "demo.db").exists()


def test_suyuan_demo_refusal_is_one_sentence(world: World) -> None:
    world.register(["producer"])
    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    r = subprocess.run(
        [sys.executable, "-m", "tools.cli", "demo", "--scale", "0.05"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error [not_demo_ledger]: this database already holds a ledger")
