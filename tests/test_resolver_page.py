"""The Digital Link resolver and the consumer page through the real ASGI stack: content
negotiation, languages, size, accessibility markers, escaping of hostile names, error
pages, linkset, EPCIS, the resolver description, recall and counterfeit banners, and the
verification the page claims (which must fail when an entry is tampered with)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from ledger.queries import scans
from ledger.queries.documents import export_document
from ledger.queries.trace import journey
from tests.pagechain import (
    BONDED_EN,
    BONDED_ZH,
    FACTORY_ZH,
    NAME_EN,
    NAME_ZH,
    RECALL_EN,
    RECALL_ZH,
    FormulaChain,
    witness_quorum,
)
from tests.support import Client, World

BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148",
}
JSON = {"Accept": "application/json"}


def path(code: str) -> str:
    return code.removeprefix("https://id.gs1.org")


class Outline(HTMLParser):
    """Headings, lang attributes, landmarks and the visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.langs: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        for k, v in attrs:
            if k == "lang":
                self.langs.append((tag, v or ""))
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def outline(html: str) -> Outline:
    o = Outline()
    o.feed(html)
    return o


@pytest.fixture
def built(world: World, tmp_path: Path) -> dict[str, Any]:
    c = FormulaChain(world)
    x = c.build()
    x["recalled"] = c.build_recalled()["tins"][0]
    x["class"] = c.build_class_order()
    x["described"] = c.describe()
    x["chain"] = c
    witness_quorum(world, tmp_path, up=2, of=3, quorum=2)
    return x


@pytest.fixture
def client(world: World, built: dict[str, Any]) -> Iterator[Client]:
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example"))
    yield Client(app)
    app.state.store.dispose()


def test_browser_gets_the_chinese_page(world: World, built: dict[str, Any], client: Client) -> None:
    r = client.get(path(built["sold"]), headers=BROWSER)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert len(r.content) < 100_000
    html = r.text
    assert html.startswith('<!DOCTYPE html>\n<html lang="zh-CN">')
    assert "<script" not in html and "http://" not in html.split("<body>")[0]  # no assets
    o = outline(html)
    text = o.visible
    assert o.headings[0] == 1 and o.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(o.headings, o.headings[1:], strict=False))
    assert {"header", "main", "footer", "nav"} <= set(o.tags)
    for want in (
        NAME_ZH,
        "樱花乳业株式会社",
        "日本 (JP)",
        "L2026A",
        "2026-09-15",
        "2028-03-14",
        "1210 保税备货进口",
        "bonded import",
        "040220****0123",
        "2026-11-27 13:43 (UTC+08:00)",
        "2026-09-15 10:20 (UTC+09:00)",
        "曹妃甸海关",
        "唐山曹妃甸综合保税区仓储有限公司",
        f"{BONDED_ZH}（唐山，中国）",
        f"{FACTORY_ZH}（帯広，日本）",
        "品牌 樱花",
        "净含量 800克",
        "送达消费者",
        "✓ 记录已核验",
    ):
        assert want in text, want
    assert "GLN" not in text  # every place is named by its master data
    assert "040220261127000123" not in html  # the declaration number is masked
    # The English words inside the Chinese page carry their own language.
    assert ("span", "en") in o.langs
    # 12 journey entries and the master data of its 2 places and of its product, one
    # signature each; 2 of the 3 configured witnesses cosigned.
    n = len(journey(world.store, built["sold"])["journey"]) + 3
    size = world.ledger.size()
    assert (
        f"本页 {n} 条记录的 {n} 个数字签名均已核验有效；每条记录都包含在账本第 {size} 号检查点中，"
        "该检查点由账本签名，并由 2/3 个独立见证方联署（至少需要 2 个）。"
    ) in text
    assert "召回" not in text.split("流转记录")[0] and "仿冒" not in text


def test_english_by_query_or_accept_language(built: dict[str, Any], client: Client) -> None:
    en = client.get(path(built["sold"]), params={"lang": "en"}, headers=BROWSER).text
    assert '<html lang="en">' in en
    text = outline(en).visible
    for want in (
        NAME_EN,
        "Japan (JP)",
        "1210 bonded import",
        "Released",
        "cosigned by 2 of 3 independent witnesses (2 required)",
    ):
        assert want in text, want
    assert '<span lang="zh-CN">保税备货进口</span>' in en
    pref = client.get(
        path(built["sold"]), headers={**BROWSER, "Accept-Language": "en-US,en;q=0.9,zh-CN;q=0.8"}
    )
    assert '<html lang="en">' in pref.text
    zh = client.get(path(built["sold"]), headers={**BROWSER, "Accept-Language": "zh-CN,en;q=0.5"})
    assert '<html lang="zh-CN">' in zh.text
    other = client.get(path(built["sold"]), headers={**BROWSER, "Accept-Language": "fr-FR"})
    assert '<html lang="zh-CN">' in other.text  # Chinese by default


def test_json_clients_get_the_facts(built: dict[str, Any], client: Client) -> None:
    r = client.get(path(built["sold"]), headers=JSON)
    assert r.headers["content-type"] == "application/json"
    facts = r.json()
    assert facts["product"]["names"] == {"zh": NAME_ZH, "en": NAME_EN}
    assert facts["product"]["origin"] == "JP" and facts["product"]["lot"] == "L2026A"
    assert facts["clearance"]["procedure"] == "1210"
    assert facts["clearance"]["declaration"] == "040220****0123"
    v = facts["verification"]
    # The journey's events and the master data of its places and product.
    assert v["verified"] and v["entries"] == v["entriesVerified"] == len(facts["timeline"]) + 3
    assert v["witnesses"] == {
        "cosigned": 2,
        "of": 3,
        "quorum": 2,
        "names": ["w1.example/witness", "w2.example/witness"],
        "configured": ["w1.example/witness", "w2.example/witness", "w3.example/witness"],
    }
    md = facts["product"]["masterData"]
    assert md["brand"] == {"zh": "樱花", "en": "Sakura"} and md["netContent"] == "800 g"
    bonded = [s["place"] for s in facts["timeline"] if s["activity"] == "receiving"][0]
    assert bonded["names"] == {"zh": BONDED_ZH, "en": BONDED_EN} and bonded["country"] == "CN"
    assert facts["product"]["producer"]["nameEn"] == "Sakura Dairy Co., Ltd."
    assert facts["recall"] == {"recalled": False, "recalls": []}
    # gs1:pip is the page whatever the Accept header says.
    pip = client.get(path(built["sold"]), params={"linkType": "gs1:pip"}, headers=JSON)
    assert pip.headers["content-type"].startswith("text/html")


def test_recalled_item_shows_the_red_banner(built: dict[str, Any], client: Client) -> None:
    html = client.get(path(built["recalled"]), headers=BROWSER).text
    text = outline(html).visible
    assert '<section class="alert recall" role="alert"' in html
    assert "此商品已被召回" in text and RECALL_ZH in text and "2027-01-10" in text
    assert RECALL_EN not in text  # the reason in the page's language only
    rec = client.get(path(built["recalled"]), params={"linkType": "gs1:recallStatus"}).json()
    assert rec["recalled"] is True and len(rec["recalls"]) == 1


def test_counterfeit_warning_after_three_regions(world: World, built: dict[str, Any]) -> None:
    from api.visitors import parse_proxies

    code = built["unsold"]
    # Regions a front end at 127.0.0.1 sets, which is trusted to (see test_visitors).
    app = create_app(
        Settings(
            db_url=world.url,
            home=world.home.path,
            base_url="https://t.example",
            trusted_proxies=parse_proxies("127.0.0.1"),
        )
    )
    client = Client(app)
    for region in ("CN-HE", "CN-BJ"):
        r = client.get(path(code), headers={**BROWSER, "X-Region": region})
        assert "可能是仿冒品" not in r.text
    r = client.get(path(code), headers={**BROWSER, "X-Region": "CN-GD"})
    assert "可能是仿冒品" in r.text and "此追溯码已在 3 个不同地区被扫描。" in outline(r.text).visible
    assert scans.counterfeit_signal(world.store, code) == {
        "reason": "regions",
        "regions": 3,
        "scansAfterSale": 0,
    }
    app.state.store.dispose()


def test_hostile_names_are_escaped(world: World, tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    c = FormulaChain(
        world,
        producer_name=f"ACME {evil}",
        product_name=[{"@language": "en", "@value": "<img src=x onerror=alert(1)>"}],
    )
    x = c.build()
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://t.example"))
    try:
        html = Client(app).get(path(x["sold"]), headers=BROWSER).text
    finally:
        app.state.store.dispose()
    assert "<script" not in html and "<img" not in html
    assert "ACME &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # An English-only name on the Chinese page is marked as English.
    assert '<h1 id="name"><span lang="en">&lt;img src=x onerror=alert(1)&gt;</span></h1>' in html


def test_error_pages(client: Client) -> None:
    bad = client.get("/01/04901234567895/21/JP0001", headers=BROWSER)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")
    assert "GTIN 04901234567895 的校验位是 5，正确的应为 4。" in bad.text
    assert '<html lang="zh-CN">' in bad.text
    en = client.get("/00/049012340000001238", params={"lang": "en"}, headers=BROWSER)
    assert en.status_code == 400
    assert "SSCC 049012340000001238 has check digit 8; the correct one is 7." in en.text
    js = client.get("/01/04901234567895/21/JP0001", headers=JSON)
    assert js.status_code == 400 and js.json()["error"]["code"] == "bad_identifier"
    assert "expected 4" in js.json()["error"]["message"]
    gone = client.get("/01/04901234567894/21/NOPE", headers=BROWSER)
    assert gone.status_code == 404 and "未找到此追溯码" in gone.text
    assert "https://id.gs1.org/01/04901234567894/21/NOPE" in gone.text
    assert client.get("/01/04901234567894/21/NOPE", headers=JSON).json()["error"]["code"] == "not_found"
    odd = client.get("/01/04901234567894/21/JP0001", params={"linkType": "gs1:nonsense"}, headers=JSON)
    assert odd.status_code == 400 and odd.json()["error"]["code"] == "bad_link_type"


def test_linkset(built: dict[str, Any], client: Client) -> None:
    p = path(built["sold"])
    r = client.get(p, params={"linkType": "linkset"}, headers={"Accept": "application/linkset+json"})
    assert r.headers["content-type"] == "application/linkset+json"
    (ctx,) = r.json()["linkset"]
    anchor = f"https://trace.example{p}"
    assert ctx["anchor"] == anchor
    assert ctx["https://gs1.org/voc/pip"][0] == {
        "href": f"{anchor}?linkType=gs1:pip",
        "title": "商品追溯页面",
        "type": "text/html",
        "hreflang": ["zh"],
    }
    for lt in ("traceability", "epcis", "recallStatus", "defaultLink"):
        (target,) = ctx[f"https://gs1.org/voc/{lt}"]
        assert target["href"].startswith(anchor + "?linkType=gs1:")
    # Every link answers.
    for rel, targets in ctx.items():
        if rel != "anchor":
            for t in targets:
                got = client.get(t["href"].removeprefix("https://trace.example"), headers=JSON)
                assert got.status_code == 200, t


def test_epcis_document_of_the_journey(world: World, built: dict[str, Any], client: Client) -> None:
    r = client.get(path(built["sold"]), params={"linkType": "gs1:epcis"})
    assert r.headers["content-type"] == "application/ld+json"
    doc = r.json()
    want = export_document(world.store, built["sold"])
    assert doc["type"] == "EPCISDocument" and doc["schemaVersion"] == "2.0"
    assert doc["epcisBody"] == want["epcisBody"] and doc["@context"] == want["@context"]
    assert len(doc["epcisBody"]["eventList"]) == len(journey(world.store, built["sold"])["journey"])
    j = client.get(path(built["sold"]), params={"linkType": "gs1:traceability"})
    assert j.json() == journey(world.store, built["sold"])


def test_well_known_resolver_description(client: Client) -> None:
    d = client.get("/.well-known/gs1resolver").json()
    assert d["resolverRoot"] == "https://trace.example/"
    assert set(d["supportedPrimaryKeys"]) == {"01", "00"}
    assert {"namespace": "https://gs1.org/voc/", "prefix": "gs1:"} in d["supportedLinkType"]
    assert isinstance(d["linkTypeDefaultCanBeLinkset"], bool) and d["name"]
    assert set(d) <= {
        "name",
        "resolverRoot",
        "supportedPrimaryKeys",
        "supportedLinkType",
        "linkTypeDefaultCanBeLinkset",
    }  # the description file schema's fields


def test_cors_and_options(built: dict[str, Any], client: Client) -> None:
    r = client.get(path(built["sold"]), headers=JSON)
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["link"] == (
        f"<https://trace.example{path(built['sold'])}?linkType=linkset>; "
        'rel="linkset"; type="application/linkset+json"'
    )
    bad = client.get("/01/04901234567895", headers=JSON)
    assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == "*"

    async def options() -> Any:
        import httpx

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=client.app), base_url="http://test"
        ) as c:
            return await c.options(path(built["sold"]))

    import asyncio

    pre = asyncio.run(options())
    assert pre.status_code == 204 and "GET" in pre.headers["access-control-allow-methods"]


def test_page_says_not_verified_when_an_entry_was_altered(
    world: World, built: dict[str, Any], client: Client
) -> None:
    seq = journey(world.store, built["sold"])["journey"][0]["seq"]
    raw = world.ledger.entry(seq).raw
    forged = raw.replace(b"L2026A", b"L2026Z")
    assert forged != raw
    world.store.drop_append_only()
    world.store.raw("UPDATE entries SET entry = :e WHERE seq = :s", {"e": forged, "s": seq})
    html = client.get(path(built["sold"]), headers=BROWSER).text
    text = outline(html).visible
    assert "✗ 记录未能全部核验" in text and "有 1 条记录未能通过核验" in text
    assert f"seq {seq}:" in text
    facts = client.get(path(built["sold"]), headers=JSON).json()
    assert facts["verification"]["verified"] is False


def test_cached_checks_do_not_hide_an_entry_altered_later(
    world: World, built: dict[str, Any], client: Client
) -> None:
    """The server keeps checks it made, but keyed by the bytes: an entry altered after the
    page was verified (one every tin of the chain shares, and the entry that introduced
    the producer's key) makes the next page say so, for this tin and for the others."""
    sold, unsold = built["sold"], built["unsold"]
    for code in (sold, unsold):
        assert client.get(path(code), headers=JSON).json()["verification"]["verified"] is True
    steps = journey(world.store, sold)["journey"]
    shared = {s["seq"] for s in steps} & {s["seq"] for s in journey(world.store, unsold)["journey"]}
    assert shared
    seq = min(shared)
    raw = world.ledger.entry(seq).raw
    forged = raw.replace(b'"eventTime":"2026', b'"eventTime":"2025', 1)
    assert forged != raw
    world.store.drop_append_only()
    world.store.raw("UPDATE entries SET entry = :e WHERE seq = :s", {"e": forged, "s": seq})
    for code in (sold, unsold):
        v = client.get(path(code), headers=JSON).json()["verification"]
        assert v["verified"] is False
        assert [p.split(":")[0] for p in v["problems"]] == [f"seq {seq}"]
    world.store.raw("UPDATE entries SET entry = :e WHERE seq = :s", {"e": raw, "s": seq})
    assert client.get(path(sold), headers=JSON).json()["verification"]["verified"] is True
    # The producer's key came in with its party.register entry, outside the journey.
    producer = steps[0]["signer"]
    intro = world.ledger.registry_view().parties[producer].registered_seq
    assert intro not in {s["seq"] for s in steps}
    reg_raw = world.ledger.entry(intro).raw
    world.store.raw(
        "UPDATE entries SET entry = :e WHERE seq = :s",
        {"e": reg_raw.replace(b'"roles"', b'"roles" ', 1), "s": intro},
    )
    text = outline(client.get(path(sold), headers=BROWSER).text).visible
    assert "✗ 记录未能全部核验" in text and f"seq {intro}:" in text


def test_page_verification_agrees_with_a_trace_bundle(
    world: World, built: dict[str, Any], client: Client
) -> None:
    """The page's checks, made in one read with cached parts, say what an offline bundle of
    the same entries verified with the log key says, before and after an alteration."""
    from ledger.log.bundle import make_bundle, verify_bundle
    from ledger.queries.page import VerificationCache, verify_journey

    seqs = [s["seq"] for s in journey(world.store, built["sold"])["journey"]]
    cache = VerificationCache()

    def both() -> tuple[dict[str, Any], Any]:
        mine = verify_journey(world.ledger, seqs, witnessing=None, cache=cache)
        res = verify_bundle(make_bundle(world.ledger, seqs), log_key=world.ledger.log_verifier().vkey())
        return mine, res

    mine, res = both()
    assert mine["verified"] is res.ok is True and mine["checkpoint"] == res.checkpoint.size
    assert mine["entriesVerified"] == len(set(seqs)) and set(seqs) <= set(res.verified)
    signed = sum(len(world.ledger.entry(q).decoded()["envelope"]["signatures"]) for q in set(seqs))
    assert mine["signatures"] == signed
    assert both()[0] == mine  # from the cache, the same answer
    seq = seqs[-1]
    raw = world.ledger.entry(seq).raw
    world.store.drop_append_only()
    world.store.raw(
        "UPDATE entries SET entry = :e WHERE seq = :s",
        {"e": raw.replace(b'"signer"', b'"signer" ', 1), "s": seq},
    )
    mine, res = both()
    assert mine["verified"] is res.ok is False
    assert mine["entriesVerified"] == len(set(seqs)) - 1 and seq not in res.verified
    assert [p.split(":")[0] for p in mine["problems"]] == [f"seq {seq}"]


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = []
    for i in (0, 2, 4):
        c = int(h[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_of_every_text_colour(built: dict[str, Any], client: Client) -> None:
    """WCAG AA: every text colour in the page's CSS against its own background, or, for
    rules without one, against both backgrounds text sits on (page and cards)."""
    assert round(contrast("#000", "#fff"), 1) == 21.0  # the formula, on a known answer
    html = client.get(path(built["recalled"]), headers=BROWSER).text
    css = html.split("<style>")[1].split("</style>")[0]
    page_bg = re.search(r"body\{[^}]*background:(#[0-9a-f]{3,6})", css)
    assert page_bg is not None
    checked = 0
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        fg = re.search(r"(?:^|;)color:(#[0-9a-f]{3,6})", body)
        if not fg:
            continue
        bg = re.search(r"background:(#[0-9a-f]{3,6})", body)
        grounds = [bg.group(1)] if bg else [page_bg.group(1), "#fff"]
        for ground in grounds:
            ratio = contrast(fg.group(1), ground)
            assert ratio >= 4.5, f"{selector}: {fg.group(1)} on {ground} is {ratio:.2f}:1"
            checked += 1
    assert checked >= 10


def test_page_follows_new_entries_and_cosignatures(
    world: World, built: dict[str, Any], client: Client, tmp_path: Path
) -> None:
    """The page's cache is keyed by the cosigned checkpoint: a later recall and a later
    cosignature show at once."""
    p = path(built["sold"])
    first = outline(client.get(p, headers=BROWSER).text).visible
    assert "2/3 个独立见证方" in first and "此商品已被召回" not in first
    c: FormulaChain = built["chain"]
    c.append(
        [
            (
                c.producer,
                {
                    "type": "ObjectEvent",
                    "eventTime": "2027-02-01T09:00:00+08:00",
                    "eventTimeZoneOffset": "+08:00",
                    "action": "OBSERVE",
                    "bizStep": "cbec:recalling",
                    "disposition": "recalled",
                    "epcList": [built["sold"]],
                    "cbec:recall": {"reason": "包装密封不良", "scope": [built["sold"]]},
                },
            )
        ]
    )
    recalled = outline(client.get(p, headers=BROWSER).text).visible
    assert "此商品已被召回" in recalled and "包装密封不良" in recalled
    assert "0/3 个独立见证方" in recalled  # the new checkpoint is not cosigned yet
    witness_quorum(world, tmp_path, up=3, of=3, quorum=2)  # the same witnesses, and one more
    again = outline(client.get(p, headers=BROWSER).text).visible
    assert "3/3 个独立见证方" in again
    facts = client.get(p, headers=JSON).json()
    assert facts["verification"]["witnesses"]["cosigned"] == 3


def test_lot_and_logistic_unit_pages(built: dict[str, Any], client: Client) -> None:
    lot = client.get(path(built["lot"]), headers=BROWSER)
    assert lot.status_code == 200
    text = outline(lot.text).visible
    # No event names the lot itself: its items' commissioning tells where it was made.
    assert NAME_ZH in text and "L2026A" in text and "生产赋码" in text and "单品序列号" not in text
    assert lot.headers["vary"] == "Accept, Accept-Language"
    # No event names it, so there is no EPCIS document of its own events.
    none = client.get(path(built["lot"]), params={"linkType": "gs1:epcis"}, headers=JSON)
    assert none.status_code == 404 and none.json()["error"]["code"] == "not_found"
    unit = client.get("/00/049012340000001237", headers=BROWSER)
    assert unit.status_code == 200 and "收货入库" in outline(unit.text).visible
    facts = client.get("/00/049012340000001237", headers=JSON).json()
    assert facts["kind"] == "sscc" and facts["counterfeit"] is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_page_costs_the_same_few_statements_whatever_its_journey(
    world: World, built: dict[str, Any]
) -> None:
    """The journey is one statement whatever its length, and the page's other
    reads share two more; the scan is an insert and one tally (SQLite's trace counts what
    SQLAlchemy does not see: statements run on the driver's cursor, so SQLite only)."""
    from sqlalchemy import event

    from ledger.queries.page import VerificationCache, page_facts

    # Each of them holds an entry the ones before did not check against the new checkpoint.
    codes = [built["lot"], built["sold"], built["unsold"], built["recalled"]]
    cache = VerificationCache()
    for code in codes:  # where the signers' keys were introduced, read once per process
        page_facts(world.ledger, code, cache=cache)
    c: FormulaChain = built["chain"]  # a new checkpoint: every inclusion is checked again
    c.append(
        [
            (
                c.producer,
                {
                    "type": "ObjectEvent",
                    "eventTime": "2027-02-01T09:00:00+08:00",
                    "eventTimeZoneOffset": "+08:00",
                    "action": "OBSERVE",
                    "bizStep": "cbec:recalling",
                    "disposition": "recalled",
                    "epcList": [built["unsold"]],
                    "cbec:recall": {"reason": "包装密封不良", "scope": [built["unsold"]]},
                },
            )
        ]
    )
    run: list[str] = []
    world.store.engine.dispose()
    event.listen(world.store.engine, "connect", lambda dbapi, _: dbapi.set_trace_callback(run.append))
    counts = {}
    for code in codes:
        run.clear()
        facts = page_facts(world.ledger, code, cache=cache, scan=scans.Scan("CN-HE", "browser", "visitor-1"))
        assert facts is not None and facts["verification"]["verified"]
        counts[code] = [
            s.split()[0].upper() for s in run if s.split()[0].upper() not in ("BEGIN", "COMMIT", "PRAGMA")
        ]
    assert len({len(journey(world.store, code)["journey"]) for code in codes}) > 1
    item = ["WITH", "SELECT", "SELECT", "INSERT", "SELECT"]  # journey, rest, nodes; scan
    assert counts == {
        built["sold"]: item,
        built["unsold"]: item,
        built["recalled"]: item,
        built["lot"]: item[:3],
    }  # a lot records no scan


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_served_page_reads_its_snapshot_in_three_statements(world: World, built: dict[str, Any]) -> None:
    """As the server answers (one pinned snapshot, scans queued): the snapshot's checkpoint,
    the journey, and one statement for the rest: entries, registry and master data, the
    stored tree nodes of the unchecked entries' inclusion paths and the item's scans. The
    facts shown are those of a page that reads each part on its own."""
    from sqlalchemy import event

    from ledger.queries.page import VerificationCache, page_facts

    codes = [built["unsold"], built["tins"][2], built["recalled"]]
    cache = VerificationCache()
    writer = scans.ScanWriter(world.store, every_ms=60_000)
    scan = scans.Scan("CN-HE", "browser", "visitor-1")
    with world.store.pinned():  # every party's registry entries, checked once
        page_facts(world.ledger, built["sold"], cache=cache)
    plain = {code: page_facts(world.ledger, code) for code in codes}  # a cache of its own
    run: list[str] = []
    world.store.engine.dispose()
    event.listen(world.store.engine, "connect", lambda dbapi, _: dbapi.set_trace_callback(run.append))
    ahead = 0
    for code in codes:
        run.clear()
        with world.store.pinned():
            facts = page_facts(world.ledger, code, cache=cache, scan=scan, scans_to=writer)
        assert facts is not None and facts["verification"]["verified"]
        said = [s for s in run if s.split()[0].upper() not in ("BEGIN", "ROLLBACK", "PRAGMA")]
        assert [s.split()[0].upper() for s in said] == ["SELECT", "WITH", "SELECT"], said
        assert "FROM scans" in said[2]
        ahead += "merkle_nodes" in said[2]
        got = plain[code]
        assert got is not None
        assert {k: v for k, v in facts.items() if k != "counterfeit"} == {
            k: v for k, v in got.items() if k != "counterfeit"
        }
    assert ahead  # the other lot's entries were new to the cache: their paths came along
    writer.close()
    assert writer.written == len(codes) and writer.dropped == 0


def test_an_item_page_is_answered_on_the_event_loop_where_its_reads_are_local(
    world: World, built: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite with scans batched, an item's page does not go to a worker thread; the
    answers are those the threads give. Other pages, and PostgreSQL's, still go there."""
    import anyio.to_thread

    import api.app

    threaded: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kw: Any) -> Any:
        if args and hasattr(args[0], "url"):  # a request handed to a thread
            threaded.append(args[0].url.path)
        return await run_sync(fn, *args, **kw)

    monkeypatch.setattr(api.app.anyio.to_thread, "run_sync", counting)
    settings = dict(db_url=world.url, home=world.home.path, base_url="https://trace.example")
    batched = create_app(Settings(**settings, scan_batch_ms=5))  # type: ignore[arg-type]
    single = create_app(Settings(**settings))  # type: ignore[arg-type]
    pages = [
        (path(built["sold"]), BROWSER, {}),
        (path(built["sold"]), JSON, {}),
        (path(built["recalled"]), BROWSER, {"lang": "en"}),
        (path(built["unsold"]), JSON, {"linkType": "gs1:epcis"}),  # writes its scan: a thread
        (path(built["unsold"]), JSON, {"linkType": "gs1:recallStatus"}),
        (path(built["sold"]), JSON, {"linkType": "gs1:pip"}),
        (path(built["unsold"]), JSON, {"linkType": "linkset"}),
        (path(built["unsold"]) + "x%", BROWSER, {}),  # refused: not an item
        (path(built["lot"]), BROWSER, {}),
        ("/00/049012340000001237", JSON, {}),
    ]
    try:
        for p, headers, params in pages:
            threaded.clear()
            a = Client(batched).get(p, headers=headers, params=params)
            on_loop = not threaded
            b = Client(single).get(p, headers=headers, params=params)
            assert threaded, "without batched scans every page goes to a thread"
            assert (a.status_code, a.headers.get("content-type")) == (
                b.status_code,
                b.headers.get("content-type"),
            )
            if "json" in a.headers.get("content-type", ""):
                # the scans differ (each app's own), and a document's time of creation
                moment = ("counterfeit", "creationDate")
                assert {k: v for k, v in a.json().items() if k not in moment} == {
                    k: v for k, v in b.json().items() if k not in moment
                }
            else:
                assert outline(a.text).visible == outline(b.text).visible
            item = (
                a.status_code == 200
                and "/21/" in p
                and params.get("linkType") in (None, "gs1:pip", "linkset")
            )
            assert on_loop == (item and world.store.dialect == "sqlite"), (p, params)
    finally:
        for app in (batched, single):
            app.state.scan_writer and app.state.scan_writer.close()
            app.state.store.dispose()
