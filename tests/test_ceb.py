"""China Customs CBEC messages in (issue 13): the official samples and the assembled
scenarios of the customs reference (CEB.md §9) import on SQLite and PostgreSQL; personal data stays private;
the official linking rules raise findings; re-import appends nothing; hostile XML, bad
messages and other enterprises' keys are refused with nothing landed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from ledger.compliance.findings import Finding
from ledger.core.errors import LedgerError
from ledger.core.keys import PartyKey
from ledger.core.private import Viewer
from ledger.epcis import ceb
from ledger.log.ceb_import import CebResult, import_ceb
from ledger.queries.findings import list_findings
from tests.support import World
from tests.test_auth import Api

FIXTURES = Path(__file__).parent / "fixtures" / "ceb"
SAMPLES = FIXTURES / "samples"
SCENARIOS = FIXTURES / "scenarios"
ZONE = bytes(range(32))  # the zone's matching key in these tests

# The scenario's enterprises by customs code, and their roles (CEB.md §9).
ENTERPRISES = {
    "P": ("3301TEST0P", ("platform",)),
    "E": ("3301TEST0E", ("merchant",)),
    "Y": ("3301TEST0Y", ("payment",)),
    "L": ("3301TEST0L", ("logistics",)),
    "A": ("3301TEST0A", ("customs_broker",)),
}
# Which enterprise sends each scenario file (customs, "C", sends the receipts).
SENDER = {"CEB311": "P", "CEB411": "Y", "CEB511": "L", "CEB621": "A"}
A_FILES = [
    "A1-CEB311.xml",
    "A-CEB312.xml",
    "A2-CEB411.xml",
    "A-CEB412.xml",
    "A3-CEB511.xml",
    "A-CEB512.xml",
    "A4-CEB621.xml",
    "A-CEB622.xml",
]
B_FILES = ["B1-CEB311.xml", "B2-CEB411.xml", "B3-CEB511.xml", "B4-CEB621.xml", "B-CEB622.xml"]
CHAIN = ("three_docs.mismatch", "three_docs.release_mismatch", "three_docs.missing", "party.unregistered")


Parties = dict[str, tuple[str, PartyKey]]


def enterprises(world: World, *, only: str = "PEYLA") -> Parties:
    out: Parties = {}
    for name, (code, roles) in ENTERPRISES.items():
        if name in only:
            out[name] = world.register(roles, customs_codes=[code])
    out["C"] = world.register(["customs"])
    return out


def text(name: str) -> str:
    return (SCENARIOS / name).read_text(encoding="utf-8")


def sender(name: str) -> str:
    kind = re.search(r"CEB\d{3}", name)
    assert kind is not None
    return SENDER.get(kind.group(0), "C")


def imp(
    world: World, parties: Parties, who: str, data: str | bytes, source: str = "message"
) -> list[CebResult]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return import_ceb(world.ledger, raw, key=parties[who][1], matching_key=ZONE, source=source)


def imp_files(world: World, parties: Parties, names: list[str]) -> list[CebResult]:
    return [r for n in names for r in imp(world, parties, sender(n), text(n), n)]


def findings(world: World, *rules: str) -> list[Finding]:
    return [f for f in list_findings(world.store) if not rules or f.rule in rules]


def problems(f: Finding) -> set[str]:
    return {p["field"] for p in f.details.get("problems", ())}


def body(world: World, seq: int) -> dict[str, Any]:
    return dict(world.ledger.entry(seq).decoded()["envelope"]["statement"]["body"])


# --- the assembled scenarios and the official samples import ------------------------------------


def test_the_assembled_scenarios_import_and_agree(world: World) -> None:
    p = enterprises(world)
    results = imp_files(world, p, A_FILES + B_FILES)
    assert [r.kind for r in results] == [
        "order",
        "order_receipt",
        "payment",
        "payment_receipt",
        "waybill",
        "waybill_receipt",
        "inventory",
        "inventory_receipt",
        "order",
        "payment",
        "waybill",
        "inventory",
        "inventory_receipt",
    ]
    assert all(r.receipt.duplicate_of is None for r in results)
    assert results[0].key == {"ebpCode": "3301TEST0P", "ebcCode": "3301TEST0E", "orderNo": "SO20240501000001"}
    # Consistent documents raise nothing of the three-documents rules, nor of registration.
    assert findings(world, *CHAIN, "three_docs.unregistered") == []
    order = body(world, results[0].receipt.seq)
    assert order["cbec:orderInfo"] == {
        "goods": "250.00",
        "freight": "10.00",
        "tax": "22.75",
        "discount": "5.00",
        "paid": "277.75",
        "currency": "CNY",
        "buyerIdHash": ceb.buyer_id_hash(ZONE, "110101199001010000"),
        "consigneeHash": ceb.consignee_hash(ZONE, "张三", "13800000000", "杭州市示例路1号"),
    }
    assert order["sourceList"] == [{"type": "owning_party", "source": p["E"][0]}]
    assert [(x["gnum"], x["name"]) for x in order["cbec:lines"]] == [(1, "维生素软糖"), (2, "护手霜")]
    # The declaration names the payment customs finds by the order, and the waybill.
    decl = body(world, results[6].receipt.seq)
    assert [bt["type"] for bt in decl["bizTransactionList"]] == [
        "cbec:order",
        "cbec:payment",
        "cbec:waybill",
        "cbec:declaration",
    ]
    assert decl["cbec:customsProcedure"] == "9610" and decl["cbec:hsCode"] == "2106909090"
    # The release is customs' and names the declared goods (items by the enterprise's SKU).
    release = body(world, results[7].receipt.seq)
    assert release["bizStep"] == "cbec:releasing" and release["quantityList"] == decl["quantityList"]
    assert decl["quantityList"][0]["epcClass"] == "urn:suyuan:ceb:item:3301TEST0E:SKU-A01"
    assert body(world, results[1].receipt.seq)["bizStep"] == "cbec:acknowledging_customs"
    # B is bonded: 1210, and its waybill's missing freight is the specification's "0".
    assert body(world, results[11].receipt.seq)["cbec:customsProcedure"] == "1210"
    assert body(world, results[10].receipt.seq)["cbec:waybillInfo"]["freight"] == "0.00"


def test_a_release_of_documents_that_disagree_is_found(world: World) -> None:
    p = enterprises(world)
    imp_files(world, p, ["A1-CEB311.xml"])
    imp(world, p, "Y", text("A2-CEB411.xml").replace("277.75", "270.00"))
    imp_files(world, p, ["A3-CEB511.xml", "A4-CEB621.xml", "A-CEB622.xml"])
    [arrival] = findings(world, "three_docs.mismatch")
    assert problems(arrival) == {"paid"}
    [release] = findings(world, "three_docs.release_mismatch")
    assert problems(release) == {"paid"} and release.seq == world.ledger.size() - 1


def _sample_parties(world: World) -> Parties:
    """The official samples' enterprises: 1105910159 (platform, e-commerce enterprise and
    broker), 1101110323 (payment), 1101180326 (logistics; the transmitter of every sample)."""
    return {
        "P": world.register(["platform", "merchant", "customs_broker"], customs_codes=["1105910159"]),
        "Y": world.register(["payment"], customs_codes=["1101110323"]),
        "L": world.register(["logistics"], customs_codes=["1101180326"]),
        "C": world.register(["customs"]),
    }


SAMPLE_SENDERS = {"CEB311": "P", "CEB411": "Y", "CEB511": "L", "CEB621": "P"}
PERSONAL = (
    "buyerName",
    "buyerIdNumber",
    "buyerTelephone",
    "consignee",
    "consigneeTelephone",
    "consigneeAddress",
    "payerName",
    "payerIdNumber",
    "telephone",
)


def _personal_data(path: Path) -> set[str]:
    """Every name, ID number, phone and address in a file, long enough to be told apart."""
    found = set()
    for field in PERSONAL:
        for value in re.findall(rf"<(?:ceb:)?{field}>([^<]+)</", path.read_text(encoding="utf-8")):
            if len(value.strip()) >= 3:
                found.add(value.strip())
    return found


def test_every_official_sample_imports_and_its_people_stay_private(world: World) -> None:
    p = _sample_parties(world)
    results: list[CebResult] = []
    for path in sorted(SAMPLES.glob("*.xml")):
        results += imp(world, p, SAMPLE_SENDERS.get(path.name[:6], "C"), path.read_bytes(), path.name)
    kinds = [r.kind for r in results]
    for kind in (
        "order",
        "payment",
        "waybill",
        "inventory",
        "order_receipt",
        "payment_receipt",
        "waybill_receipt",
        "inventory_receipt",
    ):
        assert kind in kinds
    # The samples repeat whole documents: each identical one counts once (the 311 holds one
    # order six times), and later versions of a natural key sent as new answer with the first.
    assert kinds.count("order") == 1 and kinds.count("waybill") == 5
    assert [r.receipt.duplicate_of is not None for r in results if r.kind == "waybill"] == [
        False,
        True,
        True,
        True,
        True,
    ]
    people = set().union(*(_personal_data(f) for f in SAMPLES.glob("*.xml")))
    assert {"焦洪宇", "130681136250023332", "北京市海淀区", "18813025940", "支付人"} <= people
    # Not in any entry's bytes (what GraphQL's `bytes`, `statement`, bundles and exports show).
    raw = b"".join(world.ledger.entry(s).raw for s in range(world.ledger.size()))
    for value in people:
        assert value.encode() not in raw, value
    # Kept, for those entitled: a regulator reads the buyer in the order's private data.
    order = next(r for r in results if r.kind == "order").receipt.seq
    shown = world.ledger.private_data(order, Viewer("regulator"))
    assert "焦洪宇" in json.dumps(shown, ensure_ascii=False)
    # Not in a GraphQL answer to anyone but them, nor on a page.
    api = Api(create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example")))
    try:
        r = api.gql(
            "{ entries(first: 100) { edges { node { seq bytes statement "
            "private { status data } signerParty { name customsCodes } } } } }"
        )
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        answer = r.text + json.dumps(r.json(), ensure_ascii=False)
        for value in people:
            assert value not in answer, value
        assert "not_entitled" in answer and "1105910159" in answer
    finally:
        api.app.state.store.dispose()


def test_a_product_page_shows_no_buyer(world: World) -> None:
    """A line with a GTIN bar code links the order to the product: its page and trace show
    the order, never who bought it."""
    p = enterprises(world)
    gtin = "09506000134352"
    order = text("A1-CEB311.xml").replace(
        "<ceb:unit>011</ceb:unit><ceb:qty>2</ceb:qty>",
        f"<ceb:barCode>{gtin}</ceb:barCode><ceb:unit>011</ceb:unit><ceb:qty>2</ceb:qty>",
    )
    [r] = imp(world, p, "P", order)
    assert body(world, r.receipt.seq)["quantityList"][0] == {
        "epcClass": f"https://id.gs1.org/01/{gtin}",
        "quantity": 2,
    }
    api = Api(create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example")))
    try:
        for accept in ("text/html", "application/json"):
            page = api.request("GET", f"/01/{gtin}", headers={"Accept": accept})
            assert page.status_code == 200, page.text
            for value in ("张三", "13800000000", "110101199001010000", "杭州市示例路1号"):
                assert value not in page.text
        trace = api.gql("query($c: String!) { trace(code: $c) { journey { seq } } }", c=gtin)
        assert [j["seq"] for j in trace.json()["data"]["trace"]["journey"]] == [r.receipt.seq]
    finally:
        api.app.state.store.dispose()


# --- the official rules as findings -------------------------------------------------------------


def test_an_order_that_does_not_add_up_to_the_fen_is_found(world: World) -> None:
    """acturalPaid = goodsValue + freight + taxTotal − discount, to the fen: a customs order
    5 fen off (inside the 5 % other orders are allowed) is found."""
    p = enterprises(world)
    imp(world, p, "P", text("A1-CEB311.xml").replace("277.75", "277.70"))
    [f] = findings(world, "three_docs.mismatch")
    assert problems(f) == {"amount"}
    assert f.details["problems"][0]["deviation"] == "0.05"
    assert f.details["problems"][0]["tolerance"] == "0"


def test_a_payment_of_another_amount_is_found(world: World) -> None:
    p = enterprises(world)
    imp_files(world, p, ["A1-CEB311.xml"])
    imp(world, p, "Y", text("A2-CEB411.xml").replace("277.75", "277.00"))
    [f] = findings(world, "three_docs.mismatch")
    assert problems(f) == {"paid"}
    assert f.details["problems"][0] == {"field": "paid", "order": "277.75", "payment": "277.00"}


def test_a_waybill_to_another_consignee_is_found(world: World) -> None:
    p = enterprises(world)
    imp_files(world, p, ["A1-CEB311.xml", "A2-CEB411.xml"])
    imp(world, p, "L", text("A3-CEB511.xml").replace("杭州市示例路1号", "杭州市示例路2号"))
    [f] = findings(world, "three_docs.mismatch")
    assert problems(f) == {"consignee"}
    # Only the keyed hashes are compared and shown; the addresses are not.
    assert "示例路" not in json.dumps(f.as_dict(), ensure_ascii=False)
    imp_files(world, p, ["A4-CEB621.xml", "A-CEB622.xml"])
    [release] = findings(world, "three_docs.release_mismatch")
    assert problems(release) == {"consignee"}


@pytest.mark.parametrize("change", ["name", "number"])
def test_an_inventory_line_unlike_the_order_is_found(world: World, change: str) -> None:
    p = enterprises(world)
    imp_files(world, p, ["A1-CEB311.xml", "A2-CEB411.xml", "A3-CEB511.xml"])
    inventory = text("A4-CEB621.xml")
    inventory = (
        inventory.replace("<ceb:gname>护手霜</ceb:gname>", "<ceb:gname>润肤霜</ceb:gname>")
        if change == "name"
        else inventory.replace(
            "<ceb:InventoryList><ceb:gnum>2</ceb:gnum>", "<ceb:InventoryList><ceb:gnum>3</ceb:gnum>"
        )
    )
    imp(world, p, "A", inventory)
    [f] = findings(world, "three_docs.mismatch")
    assert problems(f) == {"lines"}
    wrong = {(x["gnum"], x["order"], x["declaration"]) for x in f.details["problems"]}
    assert wrong == (
        {(2, "护手霜", "润肤霜")} if change == "name" else {(2, "护手霜", None), (3, None, "护手霜")}
    )


def test_a_responsible_enterprise_not_registered_is_named_by_its_code(world: World) -> None:
    """The platform registered, the e-commerce enterprise not: the order is recorded, and
    its enterprise is a finding. A transmitter may sign for an enterprise not registered."""
    p = enterprises(world, only="PA")
    imp_files(world, p, ["A1-CEB311.xml"])
    [f] = findings(world, "party.unregistered")
    assert f.details["codes"] == ["3301TEST0E"] and f.parties == (p["P"][0],)
    # An express operator transmits the waybill of a carrier not registered.
    p["T"] = world.register(["logistics"], customs_codes=["3301TEST0T"])
    waybill = text("A3-CEB511.xml").replace(
        "<ceb:copCode>3301TEST0L</ceb:copCode>", "<ceb:copCode>3301TEST0T</ceb:copCode>"
    )
    [r] = imp(world, p, "T", waybill)
    message = body(world, r.receipt.seq)["cbec:customsMessage"]
    assert message["onBehalfOf"] == ["3301TEST0L"] and message["transmitter"] == "3301TEST0T"
    # The transmitter may not sign what its role does not cover (a broker a waybill).
    with pytest.raises(LedgerError, match=r"^message: document 0 \(waybill .*may not sign logistics"):
        imp(
            world,
            p,
            "A",
            text("A3-CEB511.xml")
            .replace("LN240501000001", "LN240501000009")
            .replace("<ceb:copCode>3301TEST0L</ceb:copCode>", "<ceb:copCode>3301TEST0A</ceb:copCode>"),
        )
    assert [f.details["codes"] for f in findings(world, "party.unregistered")] == [
        ["3301TEST0E"],
        ["3301TEST0L"],
    ]


# --- idempotent, changes and withdrawals --------------------------------------------------------


def test_importing_again_appends_nothing(world: World) -> None:
    p = enterprises(world)
    first = imp_files(world, p, A_FILES)
    size = world.ledger.size()
    again = imp_files(world, p, A_FILES)
    assert world.ledger.size() == size
    assert [r.receipt.duplicate_of for r in again] == [r.receipt.seq for r in first]
    assert [r.receipt.seq for r in again] == [r.receipt.seq for r in first]
    # The same document in a new message (new guid, sent later) is still the same document.
    resent = (
        text("A1-CEB311.xml")
        .replace("000000000311", "000000009311")
        .replace("20240501093000", "20240501180000")
    )
    [r] = imp(world, p, "P", resent)
    assert r.receipt.duplicate_of == first[0].receipt.seq and world.ledger.size() == size


def test_a_change_supersedes_and_the_latest_counts(world: World) -> None:
    """appType 2 appends a new version (both kept); the release is judged on the latest."""
    p = enterprises(world)
    imp(world, p, "P", text("A1-CEB311.xml").replace("277.75", "270.00"))
    imp_files(world, p, ["A2-CEB411.xml", "A3-CEB511.xml"])
    assert [problems(f) for f in findings(world, "three_docs.mismatch")] == [{"amount"}, {"paid"}]
    fixed = (
        text("A1-CEB311.xml")
        .replace("<ceb:appType>1</ceb:appType>", "<ceb:appType>2</ceb:appType>")
        .replace("20240501093000", "20240501094500")
    )
    [changed] = imp(world, p, "P", fixed)
    assert changed.receipt.duplicate_of is None
    assert body(world, changed.receipt.seq)["cbec:customsMessage"]["appType"] == "2"
    imp_files(world, p, ["A4-CEB621.xml", "A-CEB622.xml"])
    assert findings(world, "three_docs.release_mismatch") == []
    # The same change again is no new fact.
    size = world.ledger.size()
    [again] = imp(world, p, "P", fixed)
    assert again.receipt.duplicate_of == changed.receipt.seq and world.ledger.size() == size


def test_a_deletion_withdraws_the_document(world: World) -> None:
    p = enterprises(world)
    imp_files(world, p, ["A1-CEB311.xml", "A2-CEB411.xml", "A3-CEB511.xml"])
    deleted = text("A2-CEB411.xml").replace("<ceb:appType>1</ceb:appType>", "<ceb:appType>3</ceb:appType>")
    [w] = imp(world, p, "Y", deleted)
    withdrawal = body(world, w.receipt.seq)
    assert withdrawal["errorDeclaration"]["reason"] == "did_not_occur"
    imp_files(world, p, ["A4-CEB621.xml", "A-CEB622.xml"])
    # The inventory finds no payment of the order, and the release misses it.
    assert "cbec:payment" not in {bt["type"] for bt in body(world, w.receipt.seq + 1)["bizTransactionList"]}
    [missing] = findings(world, "three_docs.missing")
    assert missing.details["missing"] == ["payment"]


# --- transport, encodings and hostile XML -------------------------------------------------------


def test_a_message_in_a_dxp_wrapper_imports(world: World) -> None:
    p = enterprises(world)
    wrapped = ceb.dxp_wrapped(
        text("A1-CEB311.xml").encode(), message="CEB311Message", sender="DXPENT0000000001"
    )
    [r] = imp(world, p, "P", wrapped, "wrapped.xml")
    assert r.kind == "order"
    assert (
        world.ledger.private_data(r.receipt.seq, Viewer("regulator"))["data"]["transport"]["MsgType"]
        == "CEB311Message"
    )
    # A wrapper whose MsgType says otherwise is refused.
    other = ceb.dxp_wrapped(text("A2-CEB411.xml").encode(), message="CEB311Message", sender="X")
    with pytest.raises(LedgerError, match="MsgType CEB311Message, but it carries a CEB411Message"):
        imp(world, p, "Y", other)


@pytest.mark.parametrize("encoding", ["GB2312", "GBK", "UTF-8-BOM"])
def test_a_message_in_gb2312_or_gbk_or_with_a_bom_imports(world: World, encoding: str) -> None:
    p = enterprises(world)
    xml = text("A1-CEB311.xml")
    if encoding == "UTF-8-BOM":
        data = b"\xef\xbb\xbf" + xml.encode("utf-8")
    else:
        data = xml.replace('encoding="UTF-8"', f'encoding="{encoding}"').encode("gbk")
        assert "张三".encode("gbk") in data and "张三".encode() not in data
    [r] = imp(world, p, "P", data)
    fields = world.ledger.private_data(r.receipt.seq, Viewer("regulator"))["data"]["fields"]
    assert fields["buyerName"] == "张三" and fields["ebpName"] == "示例平台公司"
    assert body(world, r.receipt.seq)["cbec:orderInfo"]["buyerIdHash"] == ceb.buyer_id_hash(
        ZONE, "110101199001010000"
    )


XXE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
    '<ceb:CEB312Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" '
    'guid="E0000000-0000-4000-8000-000000000312" version="1.0"><ceb:OrderReturn>'
    "<ceb:guid>E0000000-0000-4000-8000-0000000003R1</ceb:guid><ceb:ebpCode>3301TEST0P</ceb:ebpCode>"
    "<ceb:ebcCode>3301TEST0E</ceb:ebcCode><ceb:orderNo>&secret;</ceb:orderNo>"
    "<ceb:returnStatus>2</ceb:returnStatus><ceb:returnTime>20240501093001123</ceb:returnTime>"
    "<ceb:returnInfo>x</ceb:returnInfo></ceb:OrderReturn></ceb:CEB312Message>\n"
)
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    + ']>\n<ceb:CEB312Message xmlns:ceb="http://www.chinaport.gov.cn/ceb">&lol9;'
    "</ceb:CEB312Message>\n"
)


def _cli(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``suyuan ARGS`` in this process; the store it opens is disposed of after it (the
    command leaves that to the process's exit)."""
    import tools.cli

    monkeypatch.setenv("SUYUAN_DB", world.url)
    monkeypatch.setenv("SUYUAN_HOME", str(world.home.path))
    (world.home.path / "zone.key").write_text(json.dumps({"hmacKey": ZONE.hex()}))
    opened = []
    real = tools.cli._ledger

    def tracked(home: Any) -> Any:
        opened.append(real(home))
        return opened[-1]

    monkeypatch.setattr(tools.cli, "_ledger", tracked)
    capsys.readouterr()
    try:
        code = tools.cli.main(list(args))
    finally:
        while opened:
            opened.pop().store.dispose()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("hostile", ["xxe", "laughs", "wrapped_xxe", "deep", "large"])
def test_hostile_xml_is_refused_and_nothing_lands(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hostile: str,
) -> None:
    p = enterprises(world)
    data = {
        "xxe": XXE.encode(),
        "laughs": LAUGHS.encode(),
        "wrapped_xxe": ceb.dxp_wrapped(XXE.encode(), message="CEB312Message", sender="X"),
        "deep": b'<?xml version="1.0"?><a>' + b"<b>" * 300 + b"</b>" * 300 + b"</a>",
        "large": b" " * (ceb.MAX_MESSAGE_BYTES + 1),
    }[hostile]
    path = tmp_path / "hostile.xml"
    path.write_bytes(data)
    key = _key_file(world, p["C"][1], "customs")
    size = world.ledger.size()
    code, out, err = _cli(world, monkeypatch, capsys, "ceb", "import", str(path), "--key", key)
    assert code == 2 and out == ""
    expected = {
        "xxe": "xml_refused",
        "laughs": "xml_refused",
        "wrapped_xxe": "xml_refused",
        "deep": "malformed",
        "large": "too_large",
    }[hostile]
    assert err.startswith(f"error [{expected}]: {path}"), err
    assert "root:" not in err  # nothing of /etc/passwd
    assert world.ledger.size() == size


def _key_file(world: World, key: PartyKey, name: str) -> str:
    """File a test party's key in the world's SUYUAN_HOME under ``name``."""
    world.home.keys.create(name, seed=bytes(key.signing_key))
    return name


# --- who may sign, bad messages -------------------------------------------------------------------


def test_a_key_of_another_enterprise_is_refused(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = enterprises(world)
    path = tmp_path / "A2.xml"
    path.write_text(text("A2-CEB411.xml"), encoding="utf-8")
    size = world.ledger.size()
    platform = _key_file(world, p["P"][1], "platform")
    code, out, err = _cli(world, monkeypatch, capsys, "ceb", "import", str(path), "--key", platform)
    assert code == 2 and out == ""
    assert err.startswith(
        f"error [wrong_sender]: {path}: document 0 (payment payCode 3301TEST0Y, "
        "payTransactionId PAY20240501000001): "
    ), err
    assert "payCode 3301TEST0Y" in err and "copCode 3301TEST0Y" in err
    # A receipt is customs' own: the platform may not import one either.
    receipt = tmp_path / "R.xml"
    receipt.write_text(text("A-CEB312.xml"), encoding="utf-8")
    code, _, err = _cli(world, monkeypatch, capsys, "ceb", "import", str(receipt), "--key", platform)
    assert code == 2 and "[wrong_sender]" in err and "is not customs" in err
    assert world.ledger.size() == size
    # Its own key imports it, one JSON line per document.
    payer = _key_file(world, p["Y"][1], "payer")
    code, out, err = _cli(world, monkeypatch, capsys, "ceb", "import", str(path), "--key", payer)
    assert code == 0, err
    line = json.loads(out)
    assert line["kind"] == "payment" and line["seq"] == size
    assert line["key"] == {"payCode": "3301TEST0Y", "payTransactionId": "PAY20240501000001"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("277.75</ceb:acturalPaid>", "-277.75</ceb:acturalPaid>"),
            "document 0 (order ebpCode 3301TEST0P, ebcCode 3301TEST0E, orderNo SO20240501000001): "
            "acturalPaid -277.75 is not an amount the ledger records (negative)",
        ),
        (
            ("<ceb:buyerIdType>1</ceb:buyerIdType>", ""),
            "line 8: document 0: not a valid CEB311Message: Element '{http://www.chinaport.gov.cn/ceb}"
            "buyerIdNumber': This element is not expected. Expected is ( {http://www.chinaport.gov.cn/ceb}"
            "buyerIdType ).",
        ),
        (
            ("<ceb:appTime>20240501093000</ceb:appTime>", "<ceb:appTime>20241301093000</ceb:appTime>"),
            "appTime 20241301093000 is not a real date and time",
        ),
        (("<ceb:qty>2</ceb:qty>", "<ceb:qty>2.0000001</ceb:qty>"), "not a valid CEB311Message"),
        (
            ("<ceb:freight>10.00</ceb:freight>", "<ceb:freight>10.001</ceb:freight>"),
            "freight 10.001 has fractions of a fen",
        ),
    ],
)
def test_a_bad_message_is_refused_naming_file_document_and_field(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    expected: str,
) -> None:
    p = enterprises(world)
    path = tmp_path / "bad.xml"
    good = text("A1-CEB311.xml")
    assert change[0] in good
    path.write_text(good.replace(change[0], change[1], 1), encoding="utf-8")
    key = _key_file(world, p["P"][1], "platform")
    size = world.ledger.size()
    code, out, err = _cli(world, monkeypatch, capsys, "ceb", "import", str(path), "--key", key)
    assert code == 2 and out == "" and err.startswith(f"error [malformed]: {path}"), err
    assert expected in err
    assert world.ledger.size() == size


def test_a_wrapper_holding_several_heads_and_repeated_documents(world: World) -> None:
    """Some senders put several PaymentHeads in one Payment (common-customs-beans): read as
    the XSD's one per Payment. An identical document sent twice in one message counts once."""
    p = enterprises(world)
    a2 = text("A2-CEB411.xml")
    head = re.search(r"<ceb:PaymentHead>.*?</ceb:PaymentHead>", a2, re.S)
    assert head is not None
    second = (
        head.group(0)
        .replace("PAY20240501000001", "PAY20240501000009")
        .replace("0000000004A1", "0000000004A9")
    )
    doubled = a2.replace(head.group(0), head.group(0) + second)
    results = imp(
        world,
        p,
        "Y",
        doubled.replace(
            "</ceb:Payment>", "</ceb:Payment>" + "<ceb:Payment>" + head.group(0) + "</ceb:Payment>", 1
        ),
    )
    assert [r.key["payTransactionId"] for r in results] == ["PAY20240501000001", "PAY20240501000009"]
    assert len({r.receipt.seq for r in results}) == 2


# --- registry: customs codes -----------------------------------------------------------------------


def test_customs_codes_are_registered_once_and_shown(world: World) -> None:
    party, _ = world.register(["platform"], customs_codes=["3301TEST0P", "91310110666007217T"])
    assert world.ledger.party_records([party])[party].customs_codes == ("3301TEST0P", "91310110666007217T")
    from ledger.core.errors import BatchRejected
    from ledger.core.statements import sign_one
    from tests.support import new_uscc

    with pytest.raises(BatchRejected) as e:
        world.register(["merchant"], customs_codes=["3301TEST0P"])
    assert e.value.errors[0][1].code == "customs_code_taken"
    for bad in (["3301test0p"], ["3301TEST0"], ["91310110666007217X"], [], ["3301TEST0Q"] * 2):
        other = new_uscc()
        key = PartyKey.generate(other)
        body = {
            "id": other,
            "name": "x",
            "roles": ["merchant"],
            "publicKey": key.public_key_b64,
            "customsCodes": bad,
        }
        env = sign_one(
            kind="party.register",
            signer=other,
            key=key,
            body=body,
            cosigners=[(world.registrar, world.registrar_key)],
        )
        with pytest.raises(BatchRejected) as e:
            world.ledger.append(env)
        assert e.value.errors[0][1].code == "malformed", bad
    api = Api(create_app(Settings(db_url=world.url, home=world.home.path)))
    try:
        r = api.gql("query($id: String!) { party(id: $id) { customsCodes } }", id=party)
        assert r.json()["data"]["party"]["customsCodes"] == ["3301TEST0P", "91310110666007217T"]
    finally:
        api.app.state.store.dispose()


def test_reindex_rebuilds_what_imports_wrote(world: World) -> None:
    from ledger.log.reindex import reindex
    from ledger.store import tracedb

    p = enterprises(world, only="PYLA")  # E unregistered: a party.unregistered finding too
    imp_files(world, p, A_FILES + B_FILES)
    imp(
        world,
        p,
        "Y",
        text("A2-CEB411.xml").replace("<ceb:appType>1</ceb:appType>", "<ceb:appType>3</ceb:appType>"),
    )
    with world.store.reading() as conn:
        before = tracedb.dump_projections(conn)
    assert [r[0] for r in before["customs_codes"]] == sorted(c for c, _ in [ENTERPRISES[n] for n in "PYLA"])
    assert len(before["findings"]) >= 1
    reindex(world.store)
    with world.store.reading() as conn:
        assert tracedb.dump_projections(conn) == before


# --- the demo's flows as customs messages ----------------------------------------------------------


def test_the_demo_written_as_customs_messages_gives_the_demos_findings(tmp_path: Path) -> None:
    from ledger.log.home import Home
    from ledger.store.db import Store
    from tools import demo, demo_ceb

    home = Home(tmp_path / "home")
    scale = 0.1
    store = Store(f"sqlite:///{tmp_path}/demo.db")
    try:
        demo.build(store, home, scale=scale)
        expected = _comparable(list_findings(store))
    finally:
        store.dispose()
    assert {r for r, _, _ in expected} >= {
        "three_docs.mismatch",
        "three_docs.release_mismatch",
        "tax.annual_limit",
    }
    scenario = demo.Scenario(scale=scale, zone_key=demo.zone_matching_key(home))
    files = demo_ceb.messages(scenario.sales)
    world = World.create(f"sqlite:///{tmp_path}/ceb.db", home=tmp_path / "home2")
    try:
        keys = {}
        for slug, codes in demo_ceb.customs_parties().items():
            keys[slug] = demo.party_key(slug)
            spec = demo.PARTY[slug]
            world.ledger.append(
                world.registration(spec.id, keys[slug], spec.roles, spec.name, customs_codes=codes)
            )
        for slug in ("cfd_customs", "jt_customs", "regulator"):
            keys[slug] = demo.party_key(slug)
            spec = demo.PARTY[slug]
            world.ledger.append(world.registration(spec.id, keys[slug], spec.roles, spec.name))
        sample = json.loads((Path("schemas") / "positive-list.sample.json").read_text("utf-8"))
        from ledger.core.statements import sign_one

        world.ledger.append(
            sign_one(
                kind="list.update",
                signer=demo.PARTY["regulator"].id,
                key=keys["regulator"],
                body={
                    "list": "positive",
                    "action": "add",
                    "reason": sample["reason"],
                    "hsCodes": [e["hsCode"] for e in sample["entries"]],
                },
            )
        )
        zone = demo.zone_matching_key(home)
        for f in files:
            import_ceb(world.ledger, f.data, key=keys[f.sender], matching_key=zone, source=f.path)
        assert _comparable(list_findings(world.store)) == expected
    finally:
        world.close()


def _comparable(found: list[Finding]) -> set[tuple[str, str, frozenset[str]]]:
    """(rule, order number, fields) of the findings about trade documents: the demo's order
    URIs end with the number its customs messages carry."""
    out = set()
    for f in found:
        if not f.rule.startswith(("three_docs.", "tax.", "positive_list.", "party.")):
            continue
        order = str(f.details.get("order") or f.details.get("declaration") or "")
        number = re.split(r"[/:]", order)[-1]
        out.add((f.rule, number, frozenset(problems(f))))
    return out


def test_suyuan_demo_ceb_writes_the_messages_and_their_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.cli import main

    monkeypatch.setenv("SUYUAN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SUYUAN_DB", f"sqlite:///{tmp_path}/untouched.db")
    assert main(["demo", "--scale", "0.1", "--ceb", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out)
    listing = json.loads((tmp_path / "out" / "messages.json").read_text(encoding="utf-8"))
    assert summary["files"] == len(listing["messages"]) and summary["documents"] > 300
    assert [m["message"] for m in listing["messages"]][:2] == ["CEB311Message"] * 2
    for m in listing["messages"]:
        msg = ceb.read_message((tmp_path / "out" / m["file"]).read_bytes(), source=m["file"])
        assert msg.type == m["message"] and len(msg.documents) == m["documents"]
    assert not (tmp_path / "untouched.db").exists()
    assert (tmp_path / "home" / "demo-zone.key").exists()


def test_suyuan_party_register_takes_customs_codes(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support import new_uscc

    party = new_uscc()
    world.home.keys.create("shop")
    code, out, err = _cli(
        world,
        monkeypatch,
        capsys,
        "party",
        "register",
        "--id",
        party,
        "--name",
        "示例平台公司",
        "--roles",
        "platform",
        "--key",
        "shop",
        "--customs-code",
        "3301TEST0P",
        "--customs-code",
        "3301TEST0E",
    )
    assert code == 0, err
    code, out, err = _cli(world, monkeypatch, capsys, "party", "show", "--id", party)
    assert json.loads(out)["customsCodes"] == ["3301TEST0E", "3301TEST0P"]
    size = world.ledger.size()
    world.home.keys.create("other")
    code, out, err = _cli(
        world,
        monkeypatch,
        capsys,
        "party",
        "register",
        "--id",
        new_uscc(),
        "--name",
        "x",
        "--roles",
        "merchant",
        "--key",
        "other",
        "--customs-code",
        "3301test0e",
    )
    assert code == 2 and err.startswith(
        "error [malformed]: --customs-code: '3301test0e' is not a customs code"
    ), err
    code, out, err = _cli(
        world,
        monkeypatch,
        capsys,
        "party",
        "register",
        "--id",
        new_uscc(),
        "--name",
        "x",
        "--roles",
        "merchant",
        "--key",
        "other",
        "--customs-code",
        "3301TEST0E",
    )
    assert code == 2 and "customs_code_taken" in err and party in err, err
    assert world.ledger.size() == size


def test_a_waybill_before_its_order_names_the_order_by_number_only(world: World) -> None:
    """A waybill knows its order's number, not its platform: imported before any order of
    that number, it cannot be linked, and the release says so."""
    p = enterprises(world)
    [w] = imp_files(world, p, ["A3-CEB511.xml"])
    cited = {bt["type"]: bt["bizTransaction"] for bt in body(world, w.receipt.seq)["bizTransactionList"]}
    assert cited["cbec:order"] == "urn:suyuan:ceb:order::SO20240501000001"
    imp_files(world, p, ["A1-CEB311.xml", "A2-CEB411.xml", "A4-CEB621.xml", "A-CEB622.xml"])
    [release] = findings(world, "three_docs.release_mismatch")
    assert problems(release) == {"orderNumber"}
