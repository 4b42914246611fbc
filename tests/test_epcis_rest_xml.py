"""EPCIS XML by content negotiation on the ledger's query interface (``/epcis/``): the
answers the bindings define in ``application/xml`` (event queries, one event, a named
query's events) are EPCISQueryDocuments that GS1's own XSD (the copy in
tests/fixtures/epcis-standard, not the package's) accepts, carry the same events as the
JSON answer, and keep the ledger's position as extension elements; every other resource
is 406 to a client that accepts only XML, as the bindings say for a representation a
resource does not have."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from ledger.core.statements import sign_one
from ledger.core.tokens import make_token
from ledger.epcis import xml as epcis_xml
from ledger.queries.epcis_query import LEDGER_NAMESPACE
from tests import test_epcis_rest
from tests.support import World
from tests.test_epcis_rest import Api

REPO = Path(__file__).resolve().parent.parent
XSD = etree.XMLSchema(
    etree.parse(str(REPO / "tests/fixtures/epcis-standard/xsd/EPCglobal-epcis-query-2_0.xsd"))
)
QUERY = "urn:epcglobal:epcis-query:xsd:2"
XML = {"Accept": "application/xml"}
Chain = tuple[World, Api, dict[str, int]]
chain = test_epcis_rest.chain  # the fixture: four events of a producer and a warehouse


def valid(data: bytes) -> etree._Element:
    root = etree.fromstring(data)
    assert XSD.validate(root.getroottree()), XSD.error_log
    assert root.tag == f"{{{QUERY}}}EPCISQueryDocument"
    return root


def ledger_positions(root: etree._Element) -> list[tuple[int, str]]:
    out = []
    for ev in root.iterfind(".//EventList/*"):
        out.append(
            (
                int(ev.findtext(f"{{{LEDGER_NAMESPACE}}}seq") or "-1"),
                ev.findtext(f"{{{LEDGER_NAMESPACE}}}leafHash") or "",
            )
        )
    return out


def as_read(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON events as the XML reader gives them back: the ledger's fields as text."""
    return [{**e, "suyuan:seq": str(e["suyuan:seq"])} for e in events]


def test_event_answers_are_epcis_xml_the_xsd_accepts_with_the_json_events(chain: Chain) -> None:
    world, api, at = chain
    for path in (
        "/epcis/events",
        "/epcis/events?EQ_bizStep=shipping|packing",
        "/epcis/epcs/https://id.gs1.org/01/09506000134352/21/2/events",
        "/epcis/bizSteps/inspecting/events",
        "/epcis/events/urn:uuid:6d7b2a1e-0000-4000-8000-000000000001",
    ):
        r = api.call("GET", path, headers=XML)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"] == "application/xml"
        assert r.headers["gs1-epcis-version"] == "2.0.0"
        root = valid(r.content)
        j = api.call("GET", path)
        events = j.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert events, path
        # Where each event is on the ledger, as extension elements in the ledger's namespace.
        assert ledger_positions(root) == [(e["suyuan:seq"], e["suyuan:leafHash"]) for e in events]
        # The same events: read back by the ledger's own XML reader, they are the JSON ones.
        back = epcis_xml.parse(r.content, source="the answer")
        assert back["type"] == "EPCISQueryDocument"
        got = back["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert got == as_read(events), path
        assert root.findtext(f".//{{{QUERY}}}QueryResults/queryName") == "SimpleEventQuery"
    # CBV words as the URNs GS1's XML examples use.
    r = api.call("GET", "/epcis/events?EQ_bizStep=shipping", headers=XML)
    assert b"<bizStep>urn:epcglobal:cbv:bizstep:shipping</bizStep>" in r.content


def test_xml_pages_follow_the_same_link(chain: Chain) -> None:
    _, api, at = chain
    r = api.call("GET", "/epcis/events?perPage=2&orderBy=recordTime&orderDirection=ASC", headers=XML)
    assert r.status_code == 200
    first = [s for s, _ in ledger_positions(valid(r.content))]
    link = r.headers["link"]
    url = link[link.index("<") + 1 : link.index(">")]
    r2 = api.call("GET", url.replace("http://test", ""), headers=XML)
    second = [s for s, _ in ledger_positions(valid(r2.content))]
    assert first + second == sorted(at.values())


def test_a_named_query_answers_xml_with_its_name(chain: Chain) -> None:
    world, api, at = chain
    owner, okey = world.register(["producer"])
    auth = {"Authorization": f"Bearer {make_token(okey, signer=owner, audience=world.ledger.origin())}"}
    body = {"name": "packed", "query": {"EQ_bizStep": ["packing"]}}
    assert api.call("POST", "/epcis/queries", json=body, headers=auth).status_code == 201
    r = api.call("GET", "/epcis/queries/packed/events", headers=XML)
    root = valid(r.content)
    assert root.findtext(f".//{{{QUERY}}}QueryResults/queryName") == "packed"
    assert [s for s, _ in ledger_positions(root)] == [at["pack"]]
    # The definition of a named query has no XML in the bindings.
    r = api.call("GET", "/epcis/queries/packed", headers=XML)
    assert r.status_code == 406
    assert r.json()["type"] == "epcisException:NotAcceptableException"


def test_negotiation_follows_the_clients_preferences(chain: Chain) -> None:
    _, api, _ = chain
    cases = {
        "application/xml": "application/xml",
        "text/xml": "text/xml",
        "application/json;q=0.5, application/xml": "application/xml",
        "application/xml;q=0.4, application/json": "application/json",
        "*/*": "application/json",
        "application/*": "application/json",
        "application/ld+json, application/xml;q=0.9": "application/ld+json",
        # A browser prefers XML to anything else.
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": "application/xml",
    }
    for accept, want in cases.items():
        r = api.call("GET", "/epcis/events", headers={"Accept": accept})
        assert r.status_code == 200, (accept, r.text)
        assert r.headers["content-type"].split(";")[0] == want, accept
        if want.endswith("xml"):
            valid(r.content)
    for accept in ("application/xml;q=0", "image/png", "application/json;q=0, text/xml;q=0"):
        r = api.call("GET", "/epcis/events", headers={"Accept": accept})
        assert r.status_code == 406, accept
        assert r.headers["content-type"] == "application/problem+json"


def test_resources_without_xml_in_the_bindings_are_406_for_xml(chain: Chain) -> None:
    _, api, _ = chain
    for path in (
        "/epcis/",
        "/epcis/eventTypes",
        "/epcis/bizSteps",
        "/epcis/dispositions",
        "/epcis/readPoints",
        "/epcis/bizLocations",
        "/epcis/epcs",
        "/epcis/queries",
        "/epcis/bizSteps/shipping",
    ):
        r = api.call("GET", path, headers=XML)
        assert r.status_code == 406, path
        problem = r.json()
        assert problem["type"] == "epcisException:NotAcceptableException"
        assert "no XML" in problem["detail"], problem
        # The same resource is there in JSON.
        assert api.call("GET", path).status_code == 200, path


def test_an_event_xml_cannot_carry_is_406_not_broken_xml(world: World) -> None:
    """A signed body may hold a character XML 1.0 cannot (a control character in an
    extension's text): the XML answer is refused, naming JSON, and the JSON answer stands."""
    party, key = world.register(["producer"])
    env = sign_one(
        kind="event",
        signer=party,
        key=key,
        issued="2026-11-27T13:05:00+08:00",
        body={
            "type": "ObjectEvent",
            "eventTime": "2026-11-27T13:05:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "OBSERVE",
            "epcList": ["https://id.gs1.org/01/09506000134352/21/9"],
            "eventID": "urn:uuid:6d7b2a1e-0000-4000-8000-00000000000b",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"},
            "https://ns.example.com/epcis/note": "bell \u0007 here",
        },
    )
    world.ledger.append(env)
    api = Api(world)
    try:
        r = api.call("GET", "/epcis/events", headers=XML)
        assert r.status_code == 406, r.text
        assert r.json()["detail"].startswith("[not_xml]")
        assert "application/json" in r.json()["detail"]
        assert api.call("GET", "/epcis/events").status_code == 200
    finally:
        api.app.state.store.dispose()


@pytest.fixture
def empty(world: World) -> Iterator[Api]:
    api = Api(world)
    yield api
    api.app.state.store.dispose()


def test_an_empty_answer_is_a_valid_query_document(empty: Api) -> None:
    r = empty.call("GET", "/epcis/events", headers=XML)
    root = valid(r.content)
    assert root.find(".//EventList") is not None and ledger_positions(root) == []
    assert empty.call("GET", "/epcis/events/urn:uuid:none", headers=XML).status_code == 404


def test_a_path_no_route_takes_is_a_404_problem(empty: Api) -> None:
    """A path holding a line break (``%0A``, which Starlette's path convertor does not
    match) was the router's plain-text 404; the bindings document problem bodies only."""
    for path in ("/epcis/dispositions/%C3%A5%0A%14/events", "/epcis/events/a%0Ab", "/epcis/no-such-resource"):
        r = empty.call("GET", path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json", path
        assert r.json()["type"] == "epcisException:NoSuchNameException"


def test_an_event_that_binds_suyuan_otherwise_keeps_its_fields(world: World) -> None:
    """A document may bind the prefix ``suyuan`` to a namespace of its own, and sign
    ``suyuan:seq`` as a field of its event. Its field stays as signed; the ledger's position
    is written in the ledger's namespace all the same: as absolute IRIs in JSON (where
    ``suyuan:`` means the event's namespace) and as elements in that namespace in XML."""
    from ledger.queries.documents import import_document
    from tests.test_epcis_rest import GS1

    party, key = world.register(["producer"])
    other = "https://other.example/ns/"
    [receipt] = import_document(
        world.ledger,
        {
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"suyuan": other}],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-11-27T05:00:00Z",
            "epcisBody": {
                "eventList": [
                    {
                        "type": "ObjectEvent",
                        "eventTime": "2026-11-27T13:05:00+08:00",
                        "eventTimeZoneOffset": "+08:00",
                        "action": "ADD",
                        "bizStep": "commissioning",
                        "epcList": ["https://id.gs1.org/01/09506000134352/21/77"],
                        "suyuan:seq": "theirs",
                        "suyuan:colour": "red",
                    }
                ]
            },
        },
        signer=party,
        key=key,
    )
    api = Api(world)
    try:
        r = api.call("GET", "/epcis/events")
        GS1.validate(r.json())
        [event] = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert event["@context"] == [{"suyuan": other}]
        assert (event["suyuan:seq"], event["suyuan:colour"]) == ("theirs", "red")
        assert event[LEDGER_NAMESPACE + "seq"] == receipt.seq
        assert event[LEDGER_NAMESPACE + "leafHash"] == receipt.leaf_hash.hex()
        r = api.call("GET", "/epcis/events", headers=XML)
        root = valid(r.content)
        assert ledger_positions(root) == [(receipt.seq, receipt.leaf_hash.hex())]
        [ev] = root.iterfind(".//EventList/*")
        assert ev.findtext(f"{{{other}}}seq") == "theirs"
        assert ev.findtext(f"{{{other}}}colour") == "red"
    finally:
        api.app.state.store.dispose()
