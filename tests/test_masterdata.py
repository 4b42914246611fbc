"""Master data (issue 12): what places and products are called, signed by the owner of the
identifier, attacked through the public interfaces on SQLite and PostgreSQL — the
`suyuan` command (``tools.cli.main`` in process), the consumer page over the ASGI app,
and `suyuan audit` for a history written around the rules with the operator's key.

- Only the owner may describe an identifier: ``gln:<GLN>`` or the holder of the GS1
  company prefix a GLN falls under; the holder of a GTIN's prefix, or its delegate.
  Anyone else is refused ``not_owner``, and the ledger is unchanged.
- Later versions supersede earlier ones, every version stays; the version in force
  signed again is not appended again.
- EPCIS documents' EPCISMasterData imports the same way (GS1's all-possible-fields
  example, XML and its JSON twin), and importing it again appends nothing.
- The page shows a master-data name only from bytes it verified, signed by the owner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.epcis import masterdata
from ledger.epcis import xml as epcis_xml
from ledger.log.audit import audit
from ledger.log.reindex import reindex
from ledger.queries.page import page_facts
from ledger.store import masterdatadb, tracedb
from tests.forge import forge
from tests.pagechain import BONDED, BONDED_ZH, FACTORY, FACTORY_ZH, FormulaChain
from tests.support import Client, World
from tests.test_authz import T0, Cli, _Store, gtin, refusal, signed
from tools import cli as suyuan

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "epcis-standard"
GS1_EXAMPLE = FIXTURES / "xml-masterdata_all_possible_fields.xml"
LOCATION = "urn:epcglobal:epcis:vtype:BusinessLocation"
PRODUCT = "urn:epcglobal:epcis:vtype:EPCClass"
MDA = "urn:epcglobal:cbv:mda#"
PREFIX = "4573921"
OTHER_PREFIX = "4580337"


def gln(prefix: str, ref: int) -> str:
    from ledger.core.ids import gs1_check_digit

    body = prefix + f"{ref:0{12 - len(prefix)}d}"
    return body + gs1_check_digit(body)


PLANT = gln(PREFIX, 1)
GOODS = gtin(PREFIX, "00011")


def named(attribute: str, zh: str, en: str) -> list[dict[str, Any]]:
    return [
        {"id": attribute, "attribute": {"@language": "zh", "@value": zh}},
        {"id": attribute, "attribute": {"@language": "en", "@value": en}},
    ]


def location(code: str, zh: str = "帯広工場", en: str = "Obihiro plant") -> dict[str, Any]:
    return {
        "type": LOCATION,
        "id": f"https://id.gs1.org/414/{code}",
        "attributes": [*named(MDA + "name", zh, en), {"id": MDA + "countryCode", "attribute": "JP"}],
    }


def product(code: str, zh: str = "未来奶粉", en: str = "Mirai formula") -> dict[str, Any]:
    return {
        "type": PRODUCT,
        "id": f"https://id.gs1.org/01/{code}",
        "attributes": [
            *named("gs1:productName", zh, en),
            {"id": "gs1:netContent", "attribute": {"value": "800", "unitCode": "GRM"}},
        ],
    }


@pytest.fixture
def cli(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Cli:
    """`suyuan` in process on the world's database and home (as tests/test_authz.py)."""
    monkeypatch.setenv("SUYUAN_DB", world.url)
    monkeypatch.setenv("SUYUAN_HOME", str(world.home.path))
    monkeypatch.setattr(suyuan, "Store", _Store)
    return Cli(world, capsys, tmp_path)


def described(world: World, code: str) -> list[masterdatadb.Row]:
    with world.store.reading() as conn:
        return masterdatadb.versions(conn, [code]).get(code, [])


# --- owners, versions, idempotence -----------------------------------------------------------


def test_the_owner_describes_and_later_versions_supersede(world: World, cli: Cli) -> None:
    holder = cli.party("mirai", "producer,brand_owner", PREFIX)
    code = f"https://id.gs1.org/414/{PLANT}"
    first = cli.submit(signed(holder, location(PLANT), kind="masterdata")).lines()[0]["seq"]
    newer = location(PLANT, "帯広第一工場", "Obihiro plant no. 1")
    second = cli.submit(signed(holder, newer, kind="masterdata")).lines()[0]["seq"]
    assert [r.seq for r in described(world, code)] == [first, second]
    # The page names the place by the version in force.
    here = {"id": code}
    item = f"https://id.gs1.org/01/{GOODS}/21/1"
    cli.submit(
        signed(
            holder,
            {
                "type": "ObjectEvent",
                "action": "ADD",
                "eventTime": T0,
                "eventTimeZoneOffset": "+08:00",
                "bizStep": "commissioning",
                "epcList": [item],
                "readPoint": here,
            },
        )
    )
    facts = page_facts(world.ledger, item)
    assert facts is not None and facts["verification"]["verified"], facts
    assert facts["timeline"][0]["place"]["names"] == {"zh": "帯広第一工場", "en": "Obihiro plant no. 1"}
    # The earlier version is kept: its entry still says what it said.
    old = cli("entry", str(first)).json()["decoded"]["envelope"]["statement"]["body"]
    assert old == location(PLANT)
    # The version in force signed again (another issued time): its receipt, no new entry.
    size = world.ledger.size()
    again = sign_one(
        kind="masterdata", signer=holder[0], key=holder[1], body=newer, issued="2026-12-02T09:00:00+08:00"
    )
    receipt = cli.submit(again).lines()[0]
    assert receipt["seq"] == second and receipt["duplicateOf"] == second
    assert world.ledger.size() == size
    # Going back to the first version is a new version.
    back = sign_one(
        kind="masterdata",
        signer=holder[0],
        key=holder[1],
        body=location(PLANT),
        issued="2026-12-03T09:00:00+08:00",
    )
    third = cli.submit(back).lines()[0]["seq"]
    assert third == size and [r.seq for r in described(world, code)] == [first, second, third]
    # The index is a projection: rebuilt from the entries alone, the same rows.
    with world.store.reading() as conn:
        before = tracedb.dump_projections(conn)
    reindex(world.store)
    with world.store.reading() as conn:
        assert tracedb.dump_projections(conn) == before
    assert audit(world.store).ok


def test_who_owns_what(world: World, cli: Cli) -> None:
    """Each way to own an identifier, and a delegation that ends."""
    holder = cli.party("mirai", "producer,brand_owner", PREFIX)
    maker = cli.party("maker", "producer")
    # A party whose id is a GLN describes that GLN, with no prefix registered.
    site_key = PartyKey.generate("site")
    site = gln(OTHER_PREFIX, 7)
    world.ledger.append(world.registration(f"gln:{site}", site_key, ["warehouse"]))
    cli.submit(signed((f"gln:{site}", site_key), location(site), kind="masterdata"))
    # The prefix holder describes its GLNs and GTINs.
    cli.submit(
        signed(holder, location(gln(PREFIX, 2)), kind="masterdata"),
        signed(holder, product(GOODS), kind="masterdata"),
    )
    # A delegate describes the holder's products, not its places.
    cli("party", "delegate", "--id", holder[0], "--key", "mirai", "--prefix", PREFIX, "--to", maker[0])
    cli.submit(signed(maker, product(GOODS, "代工奶粉", "Contract formula"), kind="masterdata"))
    size = world.ledger.size()
    line = refusal(cli.submit(signed(maker, location(gln(PREFIX, 3)), kind="masterdata"), rc=2), "not_owner")
    assert f"may not describe location GLN {gln(PREFIX, 3)}" in line and holder[0] in line
    cli(
        "party",
        "delegate",
        "--id",
        holder[0],
        "--key",
        "mirai",
        "--prefix",
        PREFIX,
        "--to",
        maker[0],
        "--revoke",
    )
    size = world.ledger.size()
    line = refusal(
        cli.submit(signed(maker, product(GOODS, "再次", "Again"), kind="masterdata"), rc=2), "not_owner"
    )
    assert f"may not describe GTIN {GOODS}" in line and "has not delegated it" in line
    assert world.ledger.size() == size


REFUSED = {
    "a stranger describes a GLN under a held prefix": (
        lambda s: location(gln(PREFIX, 5)),
        "the GS1 company prefix 4573921 it falls under is held by",
    ),
    "a stranger describes a GTIN under a held prefix": (
        lambda s: product(GOODS),
        "its GS1 company prefix 4573921 is held by",
    ),
    "a GLN under no registered prefix": (
        lambda s: location(gln("4912345", 1)),
        "no registered party holds the GS1 company prefix",
    ),
    "a GTIN under no registered prefix": (
        lambda s: product("09506000134352"),
        "no registered party holds its GS1 company prefix",
    ),
    "a child location of another owner": (
        lambda s: {**location(s), "children": [f"https://id.gs1.org/414/{gln(PREFIX, 6)}"]},
        f"may not describe location GLN {gln(PREFIX, 6)}",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_master_data_of_what_the_signer_does_not_own_is_refused(world: World, cli: Cli, case: str) -> None:
    cli.party("mirai", "producer,brand_owner", PREFIX)
    key = PartyKey.generate("stranger")
    own = gln(OTHER_PREFIX, 9)
    stranger = f"gln:{own}"
    world.ledger.append(world.registration(stranger, key, ["producer"]))
    body, why = REFUSED[case]
    size = world.ledger.size()
    with world.store.reading() as conn:
        before = tracedb.dump_projections(conn)
    line = refusal(cli.submit(signed((stranger, key), body(own), kind="masterdata"), rc=2), "not_owner")
    assert why in line, line
    assert world.ledger.size() == size
    with world.store.reading() as conn:
        assert tracedb.dump_projections(conn) == before


SHAPES = {
    "an unsupported vocabulary": (
        {"type": "urn:epcglobal:epcis:vtype:BusinessStep", "id": "urn:epcglobal:cbv:bizstep:x"},
        "unsupported_vocabulary",
        "is not one of urn:epcglobal:epcis:vtype:BusinessLocation",
    ),
    "a product named by an item": (
        {"type": PRODUCT, "id": f"https://id.gs1.org/01/{GOODS}/21/7"},
        "malformed",
        "names a item; a product class is named by a GTIN",
    ),
    "a location named by a GTIN": (
        {"type": LOCATION, "id": f"https://id.gs1.org/01/{GOODS}"},
        "malformed",
        "a location is named by a GLN or SGLN",
    ),
    "a wrong check digit": (
        {"type": LOCATION, "id": f"https://id.gs1.org/414/{PLANT[:-1]}0"},
        "bad_identifier",
        "has check digit 0",
    ),
    "an unknown field": ({**location(PLANT), "name": "x"}, "malformed", "unknown field(s) name"),
    "an attribute without an id": (
        {"type": LOCATION, "id": f"https://id.gs1.org/414/{PLANT}", "attributes": [{"attribute": 1}]},
        "malformed",
        "attributes[0] must be an object with id and attribute",
    ),
    "a name that displays as another": (
        location(PLANT, zh="帯広\u202e場工"),
        "malformed",
        "bidirectional control",
    ),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_malformed_master_data_is_refused_with_a_sentence(world: World, cli: Cli, case: str) -> None:
    holder = cli.party("mirai", "producer,brand_owner", PREFIX)
    body, code, why = SHAPES[case]
    size = world.ledger.size()
    line = refusal(cli.submit(signed(holder, body, kind="masterdata"), rc=2), code)
    assert why in line, line
    assert world.ledger.size() == size


# --- EPCIS documents ----------------------------------------------------------------------------


def test_gs1_masterdata_example_imports_once(world: World, cli: Cli, tmp_path: Path) -> None:
    """GS1's masterdata_all_possible_fields: its BusinessLocation and ReadPoint elements of
    urn:epc:id:sgln:0037000.00729.0 (with a child) become two masterdata statements of
    their prefix's holder, attributes as the XML gives them; again, XML or its JSON twin,
    nothing is appended."""
    holder = cli.party("gs1", "warehouse", "0037000")
    other = cli.party("other", "warehouse")
    code = "https://id.gs1.org/414/0037000007296"
    before = world.ledger.size()
    run = cli("epcis", "import", str(GS1_EXAMPLE), "--key", "other", "--signer", other[0], rc=2)
    assert run.err.startswith(
        f"error [not_owner]: {GS1_EXAMPLE} refused, nothing appended: "
        "master data BusinessLocation urn:epc:id:sgln:0037000.00729.0: "
    ), run.err
    assert world.ledger.size() == before
    lines = cli("epcis", "import", str(GS1_EXAMPLE), "--key", "gs1", "--signer", holder[0]).lines()
    seqs = [x["masterdata"]["seq"] for x in lines if "masterdata" in x]
    assert len(seqs) == 2 and "document" in lines[-1]
    assert [r.seq for r in described(world, code)] == seqs
    bodies = [world.ledger.entry(s).decoded()["envelope"]["statement"]["body"] for s in seqs]
    assert [b["type"] for b in bodies] == [LOCATION, "urn:epcglobal:epcis:vtype:ReadPoint"]
    for b in bodies:
        assert b["id"] == "urn:epc:id:sgln:0037000.00729.0"
        assert b["children"] == ["urn:epc:id:sgln:0037000.00729.8201"]
        attrs = b["attributes"]
        assert [a["id"] for a in attrs] == [
            "http://example.com/ext1#string",
            "http://example.com/ext1#array",
            "http://example.com/ext1#array",
            "http://example.com/ext1#object1",
            "http://example.com/ext1#object2",
        ]
        assert attrs[0]["attribute"] == "stringValue"
        assert attrs[3]["attribute"] == {
            "ext1:object2": {"inner1": "val1", "inner2": "val2"},
            "ext1:string": "string",
        }
        nested = attrs[4]["attribute"]["ext1:object"]
        assert nested["ext2:array"] == ["11", "21", "stringInArrayInObject"]
        assert nested["ext2:object"] == {"ext3:string": "stringInObjectInObject"}
    size = world.ledger.size()
    again = cli("epcis", "import", str(GS1_EXAMPLE), "--key", "gs1", "--signer", holder[0]).lines()
    assert [x["masterdata"]["duplicateOf"] for x in again if "masterdata" in x] == seqs
    twin = tmp_path / "twin.jsonld"
    twin.write_text(json.dumps(epcis_xml.parse(GS1_EXAMPLE.read_bytes()), ensure_ascii=False))
    cli("epcis", "import", str(twin), "--key", "gs1", "--signer", holder[0])
    # Each vocabulary has its own version in force: neither element is appended again.
    assert world.ledger.size() == size + 1  # the JSON document's own record only
    assert audit(world.store).ok


def test_one_code_in_two_vocabularies_signed_again_later(world: World, cli: Cli) -> None:
    """GS1's example describes one SGLN as a BusinessLocation and as a ReadPoint. Signed
    again in a later second (so not the same statements), each is still the version in force
    of its own vocabulary: two receipts with duplicateOf, nothing appended. Keyed by code
    alone, the BusinessLocation would be taken for a change of the ReadPoint and appended."""
    holder = cli.party("gs1", "warehouse", "0037000")
    bodies = masterdata.elements_of(epcis_xml.parse(GS1_EXAMPLE.read_bytes()))
    assert len(bodies) == 2 and bodies[0]["id"] == bodies[1]["id"]
    first = world.ledger.append_batch(
        masterdata.sign_elements(bodies, signer=holder[0], key=holder[1], issued="2026-03-01T08:00:00Z")
    )
    size = world.ledger.size()
    again = world.ledger.append_batch(
        masterdata.sign_elements(bodies, signer=holder[0], key=holder[1], issued="2026-03-01T08:00:01Z")
    )
    assert [r.duplicate_of for r in again] == [r.seq for r in first]
    assert world.ledger.size() == size
    changed = [dict(bodies[0], children=[]), bodies[1]]
    third = world.ledger.append_batch(
        masterdata.sign_elements(changed, signer=holder[0], key=holder[1], issued="2026-03-01T08:00:02Z")
    )
    assert third[0].duplicate_of is None and third[1].duplicate_of == first[1].seq
    assert world.ledger.size() == size + 1


def test_master_data_section_shape_is_checked(world: World, cli: Cli, tmp_path: Path) -> None:
    holder = cli.party("gs1", "warehouse", "0037000")
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": T0,
        "epcisHeader": {
            "epcisMasterData": {
                "vocabularyList": [{"type": LOCATION, "vocabularyElementList": [{"id": "not a gln"}]}]
            }
        },
        "epcisBody": {"eventList": []},
    }
    path = tmp_path / "bad.jsonld"
    path.write_text(json.dumps(doc))
    size = world.ledger.size()
    run = cli("epcis", "import", str(path), "--key", "gs1", "--signer", holder[0], rc=2)
    assert (
        run.err.startswith("error [bad_identifier]: ")
        and (
            "epcisHeader.epcisMasterData.vocabularyList[0].vocabularyElementList[0]: "
            "masterdata id 'not a gln'"
        )
        in run.err
    ), run.err
    assert world.ledger.size() == size


# --- the page believes only verified master data ---------------------------------------------


@pytest.fixture
def chain(world: World) -> dict[str, Any]:
    c = FormulaChain(world)
    x = c.build()
    x["described"] = c.describe()
    x["chain"] = c
    return x


def _page(world: World, code: str) -> tuple[dict[str, Any], str]:
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://t.example"))
    try:
        client = Client(app)
        p = code.removeprefix("https://id.gs1.org")
        facts = client.get(p, headers={"Accept": "application/json"}).json()
        html = client.get(p, headers={"Accept": "text/html"}).text
    finally:
        app.state.store.dispose()
    return facts, html


def _places(facts: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {s["place"]["gln"]: s["place"]["names"] for s in facts["timeline"] if s["place"]}


def test_altered_master_data_bytes_show_nothing(world: World, chain: dict[str, Any]) -> None:
    factory_md = chain["described"][0]
    raw = world.ledger.entry(factory_md).raw
    world.store.drop_append_only()
    world.store.raw(
        "UPDATE entries SET entry = :e WHERE seq = :s",
        {"e": raw.replace(FACTORY_ZH.encode(), "假工厂".encode()), "s": factory_md},
    )
    facts, html = _page(world, chain["sold"])
    v = facts["verification"]
    assert v["verified"] is False and [p.split(":")[0] for p in v["problems"]] == [f"seq {factory_md}"]
    assert _places(facts)[FACTORY] == {} and _places(facts)[BONDED]["zh"] == BONDED_ZH
    assert "假工厂" not in html and "✗ 记录未能全部核验" in html


def test_an_index_pointing_at_another_places_master_data(world: World, chain: dict[str, Any]) -> None:
    factory_md, bonded_md, _ = chain["described"]
    world.store.raw("UPDATE master_data SET seq = :f WHERE seq = :b", {"f": factory_md, "b": bonded_md})
    facts, html = _page(world, chain["sold"])
    v = facts["verification"]
    assert v["verified"] is False
    assert v["problems"] == [
        f"the master-data index names seq {factory_md} for https://id.gs1.org/414/{BONDED}, "
        f"but that entry describes https://id.gs1.org/414/{FACTORY}"
    ], v["problems"]
    # The factory is named (its own code's entry); the warehouse is not named as the factory.
    assert _places(facts)[BONDED] == {}
    assert _places(facts)[FACTORY]["zh"] == FACTORY_ZH


def test_master_data_forged_by_an_insider_for_a_place_it_does_not_own(
    world: World, chain: dict[str, Any]
) -> None:
    """Someone with the operator's checkpoint key and the database appends master data of
    the bonded warehouse signed by the carrier, around the rules: the page does not show
    it and names the seq, and so does the audit."""
    c: FormulaChain = chain["chain"]
    body = {
        "type": LOCATION,
        "id": f"https://id.gs1.org/414/{BONDED}",
        "attributes": named(MDA + "name", "走私仓库", "Smugglers' den"),
    }
    env = sign_one(kind="masterdata", signer=c.carrier, key=c.keys[c.carrier], body=body, issued=T0)
    (seq,) = forge(world, [env], note_signer=world.ledger.note_signer)  # type: ignore[arg-type]
    subject = masterdata.subject_of(body)
    world.store.raw(
        "INSERT INTO master_data (code, seq, kind, signer, body_hash) VALUES (:c, :s, 'location', :w, :h)",
        {"c": subject.code, "s": seq, "w": c.carrier, "h": masterdata.body_hash(body)},
    )
    facts, html = _page(world, chain["sold"])
    v = facts["verification"]
    assert v["verified"] is False
    (why,) = [p for p in v["problems"] if p.startswith(f"seq {seq}: ")]
    assert f"{c.carrier} may not describe location GLN {BONDED}" in why
    assert _places(facts)[BONDED] == {} and "走私" not in html
    lines = [p.line() for p in audit(world.store).problems]
    assert any(line.startswith(f"seq {seq}: ") and "may not describe location" in line for line in lines), (
        lines
    )


# --- GraphQL -----------------------------------------------------------------------------------

TRACE_Q = """query($c: String!) { trace(code: $c) {
  product { masterData { code kind name(language: "en") brand { value language } netContent
                         country versions signerParty { nameEn } } }
  journey { seq place { code name(language: "zh") city { value language } country
                        latitude } } } }"""


def test_graphql_shows_the_master_data_of_products_and_places(world: World, chain: dict[str, Any]) -> None:
    from tests.test_auth import Api
    from tests.test_authz import gql_data

    app = create_app(Settings(db_url=world.url, home=world.home.path))
    try:
        api = Api(app)
        got = gql_data(api.gql(TRACE_Q, c=chain["sold"]))["trace"]
        md = got["product"]["masterData"]
        assert md["kind"] == "product" and md["name"] == "Sakura infant formula stage 1, 800 g"
        assert {"value": "樱花", "language": "zh"} in md["brand"] and md["netContent"] == "800 g"
        assert md["versions"] == [chain["described"][2]] and md["country"] == "JP"
        assert md["signerParty"]["nameEn"] == "Sakura Dairy Co., Ltd."
        places = {s["place"]["code"]: s["place"] for s in got["journey"] if s["place"]}
        bonded = places[f"https://id.gs1.org/414/{BONDED}"]
        assert bonded["name"] == BONDED_ZH and bonded["country"] == "CN"
        assert {"value": "Tangshan", "language": "en"} in bonded["city"]
        assert places[f"https://id.gs1.org/414/{FACTORY}"]["latitude"] == "42.9236"
        one = gql_data(
            api.gql("query($c: String!) { masterData(code: $c) { kind versions } }", c=chain["lot"])
        )["masterData"]  # a lot: its product's
        assert one == {"kind": "product", "versions": [chain["described"][2]]}
        none = gql_data(
            api.gql('query { masterData(code: "https://id.gs1.org/414/0614141000005") { code } }')
        )
        assert none["masterData"] is None
        bad = api.gql('query { masterData(code: "https://id.gs1.org/414/0614141000006") { code } }')
        assert bad.json()["errors"][0]["extensions"]["code"] == "bad_identifier"
    finally:
        app.state.store.dispose()


def test_the_schema_examples_are_accepted_from_their_owner(world: World) -> None:
    """schemas/examples/statements/04 and 05, appended as they are once their signer (whose
    example key derives from a public seed) registered its GS1 company prefix."""
    import hashlib

    examples = Path(__file__).resolve().parents[1] / "schemas" / "examples" / "statements"
    envs = [
        json.loads((examples / f"{n}.json").read_text(encoding="utf-8"))
        for n in ("04-masterdata-location", "05-masterdata-product")
    ]
    signer = envs[0]["statement"]["signer"]
    key = PartyKey.from_seed("example-brand", hashlib.sha256(b"suyuan-example/brand").digest())
    assert key.key_id == envs[0]["statement"]["key"]
    world.ledger.append(
        world.registration(signer, key, ["producer", "brand_owner"], gs1_prefixes=["4598765"])
    )
    seqs = [r.seq for r in world.ledger.append_batch(envs)]
    with world.store.reading() as conn:
        latest = masterdatadb.latest(conn, [e["statement"]["body"]["id"] for e in envs])
    assert sorted(v.row.seq for v in latest.values()) == seqs
    md = masterdata.describe(envs[0]["statement"]["body"])
    assert md.names["en"] == "Hokkaido Mirai Dairy Obihiro Plant" and md.postal_code == "080-2470"


def test_a_recall_reason_in_two_languages_survives_xml(world: World) -> None:
    """cbec:recall.reason as [{"@language", "@value"}, …] (the page shows the one in its
    language) is exported to XML as one reason element per language with xml:lang, and
    read back as the same list (it was written as empty elements before)."""
    from ledger.queries import documents as epcis

    tin = FormulaChain(world).build_recalled()["tins"][0]
    xml = epcis.export_xml(world.store, tin)
    assert b'<reason xml:lang="en">Iron below the labelled value</reason>' in xml
    back = [e for e in epcis_xml.parse(xml)["epcisBody"]["eventList"] if "cbec:recall" in e]
    signed = [
        e for e in epcis.export_document(world.store, tin)["epcisBody"]["eventList"] if "cbec:recall" in e
    ]
    assert back[0]["cbec:recall"]["reason"] == signed[0]["cbec:recall"]["reason"]
    assert {r["@language"] for r in back[0]["cbec:recall"]["reason"]} == {"zh", "en"}


def test_migration_0013_goes_down_and_up(world: World, chain: dict[str, Any]) -> None:
    import sqlalchemy as sa

    from ledger.store import migrate

    migrate.downgrade(world.store.engine, "0012")
    inspect = sa.inspect(world.store.engine)
    assert "master_data" not in inspect.get_table_names()
    assert "name_en" not in {c["name"] for c in inspect.get_columns("parties")}
    world.store.migrate()
    inspect = sa.inspect(world.store.engine)
    assert "master_data" in inspect.get_table_names()
    reindex(world.store)  # a migrated ledger fills them from its entries
    assert [r.seq for r in described(world, f"https://id.gs1.org/414/{BONDED}")] == [chain["described"][1]]
    assert (
        world.ledger.party_records([chain["chain"].producer])[chain["chain"].producer].name_en
        == "Sakura Dairy Co., Ltd."
    )
    assert audit(world.store).ok


def test_a_delegate_describes_the_product_and_the_page_verifies_its_right(world: World, cli: Cli) -> None:
    """A contract manufacturer, delegated the brand's prefix, makes and describes the
    product: the page reads the delegation (its bytes say to whom) and the brand's
    registration, and shows the name. Revoking the delegation later keeps what it signed
    while it ran (the page finds the delegation by its entry, not by the index of running
    delegations); a not-delegated party's master data is not shown."""
    brand = cli.party("mirai", "producer,brand_owner", PREFIX)
    maker = cli.party("maker", "producer")
    cli("party", "delegate", "--id", brand[0], "--key", "mirai", "--prefix", PREFIX, "--to", maker[0])
    tin = f"https://id.gs1.org/01/{GOODS}/21/1"
    cli.submit(
        signed(
            maker,
            {
                "type": "ObjectEvent",
                "action": "ADD",
                "eventTime": T0,
                "eventTimeZoneOffset": "+08:00",
                "bizStep": "commissioning",
                "epcList": [tin],
            },
        ),
        signed(maker, product(GOODS, "代工奶粉", "Contract formula"), kind="masterdata"),
    )

    def shown() -> tuple[dict[str, Any], str]:
        facts, html = _page(world, tin)
        return facts, html

    facts, html = shown()
    assert facts["verification"]["verified"], facts["verification"]
    assert facts["product"]["names"] == {"zh": "代工奶粉", "en": "Contract formula"}
    assert "代工奶粉" in html
    cli(
        "party",
        "delegate",
        "--id",
        brand[0],
        "--key",
        "mirai",
        "--prefix",
        PREFIX,
        "--to",
        maker[0],
        "--revoke",
    )
    facts, _ = shown()
    assert facts["verification"]["verified"], facts["verification"]
    assert facts["product"]["names"] == {"zh": "代工奶粉", "en": "Contract formula"}
